// Each incident type of traceslo-loadgen is visible in the matching SLI within one bucket (10 s)
// of its start: an error burst in the service's entry-span error ratio, a latency regression in
// its entry-span latency, a propagation break in its propagation-break counter, a traffic drop in
// the request rate.
//
// One real-time run: traceslo (200 ms tick, 1 s trace idle timeout) and traceslo-loadgen at a
// steady rate with the four incidents one after another, each in its own service and time slot.
// While it runs the test scrapes /metrics every 250 ms and keeps (wall time, counters). Afterwards
// it finds, per incident, the first scrape whose sliding-window SLI crosses a threshold made from
// the same run's pre-incident scrapes and the incident's own parameters, and asserts it came at
// or after the incident's start (as the loadgen reports it) and at most 10 s after. The sliding
// windows (1 s, 2 s for the rate) span several ticks, so a late tick or scrape on a busy machine
// moves a window's value by a fraction of the margin between the threshold and both the healthy
// and the incident level.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { after, test } from 'node:test';

import { loadgenBin, serverPool } from '../clients/lib.mjs';

const pool = serverPool();
const children = new Set();
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await pool.cleanupAll();
});

const BUCKET_SECONDS = 10;  // design.md: bucket time, 10-second buckets
const SCRAPE_INTERVAL_MS = 250;
const RATE = 300;  // traces per second
const RUN = '18s';
// Healthy traffic before the first incident, minus the loadgen's first second.
const BASELINE_SKIP_S = 1;

// One incident per service and time slot; none changes what another's SLI measures (an error
// burst leaves latencies and trace shapes alone, a drop leaves ratios and means alone, ...).
const INCIDENTS = {
  error_burst: { service: 'payment', ratio: 0.5, start: 4, duration: 3 },
  latency_regression: { service: 'database', factor: 4, start: 7, duration: 3 },
  propagation_break: { service: 'inventory', ratio: 0.5, start: 10, duration: 3 },
  traffic_drop: { ratio: 0.9, start: 13, duration: 3 },
};
// --incident type:key=value,... (start and duration in seconds).
const incidentFlag = (type, { start, duration, ...keys }) => `${type}:${Object.entries(keys)
  .map(([k, v]) => `${k}=${v}`).join(',')},start=${start}s,duration=${duration}s`;

const CONFIG = {
  pipeline: { tick_interval: '200ms', trace_idle_timeout: '1s', trace_max_age: '5s' },
};

// What one scrape keeps: the counters the four SLIs are made of.
function extract(m) {
  const histogram = (suffix, service) => m.get(`traceslo_request_duration_seconds_${suffix}`, { service });
  return {
    paymentRequests: m.get('traceslo_requests_total', { service: 'payment' }),
    paymentErrors: m.get('traceslo_request_errors_total', { service: 'payment' }),
    databaseCount: histogram('count', 'database'),
    databaseSum: histogram('sum', 'database'),
    inventoryTraces: m.get('traceslo_traces_total', { service: 'inventory' }),
    inventoryBreaks: m.get('traceslo_propagation_breaks_total', { service: 'inventory' }),
    gatewayRequests: m.get('traceslo_requests_total', { service: 'gateway' }),
  };
}

// The loadgen in the background, its JSON report on stdout.
function startLoadgen(args) {
  const child = spawn(loadgenBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, exited };
}

// Sliding windows over the scrapes: for each scrape i (time t), the latest scrape j with
// t_j <= t - widthS; yields {t, from, to} with t in unix seconds. Windows that begin before
// `notBefore` are skipped (the loadgen's first moments are not steady).
function* windows(samples, widthS, notBefore) {
  let j = 0;
  for (let i = 0; i < samples.length; i++) {
    const t = samples[i].t;
    while (j + 1 < i && samples[j + 1].t <= t - widthS) j++;
    if (j >= i || samples[j].t > t - widthS || samples[j].t < notBefore) continue;
    yield { t, from: samples[j], to: samples[i] };
  }
}

// Totals over [t0, t1]: the first scrape at or after t0 to the last at or before t1.
function span(samples, t0, t1) {
  const inside = samples.filter((s) => s.t >= t0 && s.t <= t1);
  assert.ok(inside.length >= 2, `scrapes in [${t0}, ${t1}]: ${inside.length}`);
  return { from: inside[0], to: inside.at(-1), seconds: inside.at(-1).t - inside[0].t };
}

// For each SLI: window width, the value a window shows, the threshold (from the baseline and
// the incident's parameters as the loadgen reported them), and which side of it the incident is
// on.
function detectors(samples, incidents, baselineFrom, baselineTo) {
  const param = (type, key) => {
    const value = incidents.find((i) => i.type === type)?.[key];
    assert.equal(typeof value, 'number', `${type}.${key} in the report`);
    return value;
  };
  const base = span(samples, baselineFrom, baselineTo);
  const d = (k) => base.to.v[k] - base.from.v[k];
  const out = {};
  // numerator / denominator increase over a window; null below 20 in the denominator.
  const ratioOf = (num, den) => (w) => {
    const n = w.to.v[den] - w.from.v[den];
    return n >= 20 ? (w.to.v[num] - w.from.v[num]) / n : null;
  };

  {
    // Error ratio of the service's entry spans, 1 s windows of at least 20 requests.
    const ratio = param('error_burst', 'ratio');
    const baseline = d('paymentErrors') / d('paymentRequests');
    out.error_burst = {
      sli: 'traceslo_request_errors_total / traceslo_requests_total {service="payment"} over 1 s',
      widthS: 1,
      value: ratioOf('paymentErrors', 'paymentRequests'),
      baseline,
      threshold: baseline + ratio / 2,
      above: true,
      healthy: () => assert.ok(baseline < ratio / 10 && d('paymentRequests') > 100,
        `payment before the burst: error ratio ${baseline} over ${d('paymentRequests')} requests`),
    };
  }
  {
    // Mean entry-span latency (histogram sum / count). Every database entry span is the
    // database's own time, which the regression multiplies by `factor`: the mean too.
    const factor = param('latency_regression', 'factor');
    const baseline = d('databaseSum') / d('databaseCount');
    out.latency_regression = {
      sli: 'traceslo_request_duration_seconds_sum / _count {service="database"} over 1 s',
      widthS: 1,
      value: ratioOf('databaseSum', 'databaseCount'),
      baseline,
      threshold: baseline * (1 + (factor - 1) / 2),
      above: true,
      healthy: () => assert.ok(d('databaseCount') > 100 && baseline > 0,
        `database before the regression: ${d('databaseCount')} requests, mean ${baseline} s`),
    };
  }
  {
    // Propagation breaks per second. A trace has a break with probability >= ratio when the
    // service breaks `ratio` of its entry spans, so the incident's level is at least ratio × the
    // service's trace rate; the threshold is half of that above the baseline's break rate.
    const ratio = param('propagation_break', 'ratio');
    const baseline = d('inventoryBreaks') / base.seconds;
    const traceRate = d('inventoryTraces') / base.seconds;
    out.propagation_break = {
      sli: 'traceslo_propagation_breaks_total{service="inventory"} per second over 1 s',
      widthS: 1,
      value: (w) => (w.to.v.inventoryBreaks - w.from.v.inventoryBreaks) / (w.to.t - w.from.t),
      baseline,
      threshold: baseline + (ratio / 2) * traceRate,
      above: true,
      healthy: () => assert.ok(baseline < ratio * traceRate / 10 && traceRate > 20,
        `inventory before the break: ${baseline} breaks/s, ${traceRate} traces/s`),
    };
  }
  {
    // Entry-span requests per second at the gateway (one per trace), 2 s windows.
    const ratio = param('traffic_drop', 'ratio');
    const baseline = d('gatewayRequests') / base.seconds;
    out.traffic_drop = {
      sli: 'traceslo_requests_total{service="gateway"} per second over 2 s',
      widthS: 2,
      value: (w) => (w.to.v.gatewayRequests - w.from.v.gatewayRequests) / (w.to.t - w.from.t),
      baseline,
      // Deep: a stall of the loadgen or a late tick must hide two thirds of a window to cross it.
      threshold: baseline * (1 - ratio * 0.75),
      above: false,
      healthy: () => assert.ok(baseline > RATE / 2,
        `gateway before the drop: ${baseline} requests/s at a rate of ${RATE} traces/s`),
    };
  }
  return out;
}

// The first window (by its end) whose value is across the threshold, and every window that
// ends before `start` and is across it.
function firstVisible(samples, det, notBefore, start) {
  let first = null;
  let worstBefore = null;  // the value closest to (or across) the threshold before the start
  const early = [];
  const series = [];
  for (const w of windows(samples, det.widthS, notBefore)) {
    const value = det.value(w);
    if (value === null) continue;
    series.push([Number((w.t - start).toFixed(2)), Number(value.toPrecision(4))]);
    if (w.t < start) {
      worstBefore = worstBefore === null ? value
        : det.above ? Math.max(worstBefore, value) : Math.min(worstBefore, value);
    }
    const shows = det.above ? value > det.threshold : value < det.threshold;
    if (!shows) continue;
    if (w.t < start) early.push({ t: w.t, value });
    else if (first === null) first = { t: w.t, value };
  }
  return { first, worstBefore, early, series };
}

test('each incident type shows in its SLI within one bucket (10 s) of its start', async (t) => {
  const server = await pool.start({ config: CONFIG });
  const samples = [];
  const scrapeOnce = async () => {
    const m = await server.scrape();
    samples.push({ t: Date.now() / 1000, v: extract(m) });
  };
  await scrapeOnce();

  const run = startLoadgen([
    '--endpoint', server.grpcAddress, '--rate', String(RATE), '--duration', RUN, '--seed', '11',
    '--quiet', ...Object.entries(INCIDENTS).flatMap(([type, i]) => ['--incident', incidentFlag(type, i)]),
  ]);
  let result = null;
  run.exited.then((r) => { result = r; });

  // Sample until the loadgen is done and every incident start lies 10 s (plus a scrape) in the
  // past, or every incident already showed. The pause between scrapes is the sampling period,
  // not a wait for behaviour.
  let report = null;
  const hardDeadline = Date.now() + 45_000;
  for (;;) {
    const before = Date.now();
    await scrapeOnce();
    if (result && !report) {
      assert.equal(result.code, 0, `loadgen exit code\n${result.stderr}`);
      report = JSON.parse(result.stdout);
    }
    if (report) {
      const lastStart = Math.max(...report.incidents.map((i) => i.start_unix));
      const now = Date.now() / 1000;
      if (now > lastStart + BUCKET_SECONDS + SCRAPE_INTERVAL_MS / 1000) break;
      const base = report.start_unix;
      const firstStart = Math.min(...report.incidents.map((i) => i.start_unix));
      const dets = detectors(samples, report.incidents, base + BASELINE_SKIP_S, firstStart);
      const done = report.incidents.every((i) =>
        firstVisible(samples, dets[i.type], base + BASELINE_SKIP_S, i.start_unix).first !== null);
      if (done) break;
    }
    assert.ok(Date.now() < hardDeadline, 'the loadgen finished within 45 s');
    await delay(Math.max(0, SCRAPE_INTERVAL_MS - (Date.now() - before)));
  }

  // The run itself: everything sent was taken, each incident ran and changed traffic.
  assert.equal(report.exact, true, 'every span acknowledged');
  assert.equal(report.traces.failed, 0);
  assert.deepEqual(report.incidents.map((i) => i.type), Object.keys(INCIDENTS));
  for (const i of report.incidents) {
    assert.equal(i.start_offset_seconds, INCIDENTS[i.type].start, `${i.type} as scheduled`);
    assert.ok(i.start_unix !== null && i.affected > 0, `${i.type} ran: ${JSON.stringify(i)}`);
  }
  const gaps = samples.slice(1).map((s, k) => s.t - samples[k].t);
  t.diagnostic(`${samples.length} scrapes, gap max ${Math.max(...gaps).toFixed(3)} s; loadgen ` +
    `${report.elapsed_seconds.toFixed(2)} s, ${report.traces.sent} traces sent, ` +
    `${report.traces.dropped} dropped`);

  const notBefore = report.start_unix + BASELINE_SKIP_S;
  const firstStart = Math.min(...report.incidents.map((i) => i.start_unix));
  const dets = detectors(samples, report.incidents, notBefore, firstStart);
  const results = [];
  for (const incident of report.incidents) {
    const det = dets[incident.type];
    det.healthy();
    const { first, worstBefore, early, series } =
      firstVisible(samples, det, notBefore, incident.start_unix);
    const delay = first ? first.t - incident.start_unix : null;
    results.push({ incident, det, first, early, delay, series });
    t.diagnostic(`${incident.type}${incident.service ? ` (${incident.service})` : ''}: ` +
      `${first ? `visible ${delay.toFixed(2)} s after its start` : 'never visible'} ` +
      `(start_unix − scheduled ${(incident.start_unix - incident.scheduled_start_unix).toFixed(3)} s); ` +
      `${det.sli}: baseline ${det.baseline.toPrecision(4)}, threshold ${det.threshold.toPrecision(4)}, ` +
      `${det.above ? 'highest' : 'lowest'} before the start ${worstBefore?.toPrecision(4)}, ` +
      `first across ${first ? first.value.toPrecision(4) : '-'}`);
  }
  for (const { incident, det, first, early, delay, series } of results) {
    const context = `${incident.type}: ${det.sli}, threshold ${det.threshold}; ` +
      `(seconds from start, value): ${JSON.stringify(series)}`;
    assert.deepEqual(early, [], `not visible before its start\n${context}`);
    assert.ok(first !== null, `visible after its start\n${context}`);
    assert.ok(delay >= 0 && delay <= BUCKET_SECONDS,
      `visible within ${BUCKET_SECONDS} s: ${delay}\n${context}`);
  }
});
