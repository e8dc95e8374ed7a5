// The SLIs the binary computes from spans, checked against values this file computes from the
// spans it generated: request, error and latency SLIs of entry spans (real OpenTelemetry SDK
// over OTLP/gRPC, seeded traffic), trace-level SLIs of crafted trace shapes (partial traces,
// propagation breaks, async fan-out, late spans), error-trace attribution (root and origin),
// clock-skew clamping, the per-service operation cap, and `promtool check metrics` on the result.
//
// Every server runs with a short trace_idle_timeout and a 50 ms tick; the tests poll /metrics
// with a deadline and never sleep to wait for behaviour.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  SpanKind, StatusCode, emitTracesWithSdk, encodeTracesProto, nowNs, pollUntil,
  promtoolCheckMetrics, postTraces, randomHex, serverPool,
} from '../clients/lib.mjs';

const pool = serverPool();
const started = [];  // every server of this file, for the promtool test
after(() => pool.cleanupAll());

const FAST = { trace_idle_timeout: '500ms', trace_max_age: '2s', tick_interval: '50ms' };

async function start(pipeline = {}) {
  const server = await pool.start({ config: { pipeline: { ...FAST, ...pipeline } } });
  started.push(server);
  return server;
}

const MS = 1_000_000n;
const SECOND = 1_000_000_000n;
const HOUR = 3600n * SECOND;

// Upper bounds of traceslo_request_duration_seconds (the +Inf bucket is checked apart).
const CLASSIC_BOUNDS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15];
const QUANTILES = [['0.5', 50], ['0.95', 95], ['0.99', 99]];  // label, percent

// ------------------------------------------------------------------------------------------
// Helpers.

// mulberry32: a small seeded PRNG, uniform in [0, 1).
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Nearest-rank quantile of ascending BigInt samples: the sample of rank ceil(percent/100 * n),
// in integer arithmetic.
function nearestRank(sorted, percent) {
  const n = BigInt(sorted.length);
  const rank = (BigInt(percent) * n + 99n) / 100n;
  return sorted[Number(rank < 1n ? 1n : rank) - 1];
}

const seconds = (ns) => Number(ns) / 1e9;

// A span of the lib.mjs OTLP model, ending at `endNs` after `durationNs`.
function span({ service, traceId, spanId = randomHex(8), parent, name, kind, endNs, durationNs = 10n * MS,
  attributes, status }) {
  return {
    service, traceId, spanId, parentSpanId: parent, name, kind, startNs: endNs - durationNs, endNs,
    attributes: attributes ?? {}, status,
  };
}

// Posts spans (each with its `service`) as one OTLP/HTTP protobuf request; asserts 200 and no
// rejected span.
async function post(server, spans) {
  const byService = new Map();
  for (const s of spans) {
    if (!byService.has(s.service)) byService.set(s.service, []);
    byService.get(s.service).push(s);
  }
  const body = encodeTracesProto([...byService].map(([service, list]) => ({ service, spans: list })));
  const r = await postTraces(server.tracesUrl, body);
  assert.equal(r.status, 200, `POST /v1/traces: ${r.status} ${r.body.toString('utf8')}`);
  assert.equal(r.body.length, 0, 'no partial_success: every span accepted');
}

// Polls /metrics until observe(metrics) deep-equals `expected` or the deadline passes, then
// asserts equality (so a failure shows the diff of the last scrape).
async function expectMetrics(server, observe, expected, { timeoutMs = 10_000, message } = {}) {
  const isExpected = (v) => {
    try {
      assert.deepEqual(v, expected);
      return true;
    } catch {
      return false;
    }
  };
  const observed = await pollUntil(async () => observe(await server.scrape()), isExpected, { timeoutMs });
  assert.deepEqual(observed, expected, message);
  return observed;
}

// The trace-level counters of `services`, as one object.
function traceCounters(m, services) {
  const out = {};
  for (const service of services) {
    out[service] = {
      traces: m.get('traceslo_traces_total', { service }),
      partial: m.get('traceslo_partial_traces_total', { service }),
      breaks: m.get('traceslo_propagation_breaks_total', { service }),
      error_root: m.get('traceslo_error_traces_total', { service, role: 'root' }),
      error_origin: m.get('traceslo_error_traces_total', { service, role: 'origin' }),
    };
  }
  return out;
}
const counters = (traces, partial = 0, breaks = 0, errorRoot = 0, errorOrigin = 0) =>
  ({ traces, partial, breaks, error_root: errorRoot, error_origin: errorOrigin });

// Classifies a generated trace by the definitions in docs/design.md: the services it touches,
// whether it is partial, which services broke propagation, and for an error trace the root
// service and the service of the deepest error span. spans: [{service, parent (index or
// undefined), error, remoteParent?}].
function classify(spans) {
  const touched = new Set(spans.map((s) => s.service));
  const orphans = spans.filter((s) => s.remoteParent);
  const roots = spans.filter((s) => s.parent === undefined && !s.remoteParent);
  const partial = orphans.length > 0 || roots.length === 0;
  const depth = (i) => (spans[i].parent === undefined ? 0 : 1 + depth(spans[i].parent));
  let origin = null;
  let deepest = -1;
  spans.forEach((s, i) => {
    if (!s.error) return;
    const d = depth(i);
    if (d > deepest) {
      deepest = d;
      origin = s.service;
    } else if (d === deepest && s.service !== origin) {
      throw new Error('generator bug: deepest error spans of two services tie');
    }
  });
  const root = (roots[0] ?? orphans[0]).service;
  return {
    touched, partial, breaks: new Set(orphans.map((s) => s.service)),
    errorRoot: origin === null ? null : root, errorOrigin: origin,
  };
}

// ------------------------------------------------------------------------------------------
// 1. Request, error and latency SLIs through the real SDK.

const SDK_SERVICES = {
  'sli-checkout': ['POST /checkout', 'GET /checkout/{id}'],
  'sli-cart': ['GET /cart', 'PUT /cart/items'],
  'sli-search': ['GET /search', 'GET /suggest', 'GET /search/facets'],
};
const DOWNSTREAM = { service: 'sli-auth', operation: 'POST /token' };

// How an entry span ends: [probability, attributes, status code, is it an error?]. Status OK is
// never an error; HTTP 4xx never is; gRPC NOT_FOUND (5) is not a server fault.
const OUTCOMES = [
  [0.06, { 'http.response.status_code': 500 }, StatusCode.ERROR, true],
  [0.06, { 'http.response.status_code': 503 }, StatusCode.UNSET, true],
  [0.03, { 'http.status_code': 502 }, StatusCode.UNSET, true],
  [0.03, { 'rpc.grpc.status_code': 14 }, StatusCode.UNSET, true],
  [0.02, { 'rpc.grpc.status_code': 13 }, StatusCode.UNSET, true],
  [0.06, { 'http.response.status_code': 404 }, StatusCode.UNSET, false],
  [0.03, { 'http.response.status_code': 500 }, StatusCode.OK, false],
  [0.03, { 'rpc.grpc.status_code': 5 }, StatusCode.UNSET, false],
  [1, { 'http.response.status_code': 200 }, StatusCode.UNSET, false],
];
// Durations exactly on a bucket bound (le is inclusive).
const BOUNDARY_NS = [2n * MS, 5n * MS, 10n * MS, 25n * MS, 100n * MS, 250n * MS, 1000n * MS];

// Seeded traffic: each trace has a SERVER root in one of SDK_SERVICES with 0–2 INTERNAL
// children, and sometimes a CLIENT call to sli-auth whose SERVER span is sli-auth's entry span.
// Returns the traces for emitTracesWithSdk, the entry spans and the trace classes.
function generateSdkTraffic({ seed, traces: count, endNs }) {
  const random = prng(seed);
  const pick = (list) => list[Math.floor(random() * list.length)];
  const services = Object.keys(SDK_SERVICES);
  const duration = () => {
    if (random() < 0.03) return pick(BOUNDARY_NS);
    // Log-normal around 40 ms (Box–Muller), clamped to [1 ms, 2 s].
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const ms = Math.min(2000, Math.max(1, Math.exp(Math.log(40) + 1.4 * z)));
    return BigInt(Math.round(ms * 1e6));
  };
  const outcome = () => {
    let u = random();
    for (const o of OUTCOMES) {
      if (u < o[0]) return o;
      u -= o[0];
    }
    return OUTCOMES.at(-1);
  };

  const traces = [];
  const entries = [];  // {service, operation, durationNs, error}
  const classes = [];
  for (let t = 0; t < count; t++) {
    const service = pick(services);
    const operation = pick(SDK_SERVICES[service]);
    const rootEnd = endNs - BigInt(Math.floor(random() * 3000)) * MS;
    const rootDuration = duration();
    const rootStart = rootEnd - rootDuration;
    const outcomeOf = outcome();
    const [, attributes, code, error] = outcomeOf;
    const spans = [{
      service, name: operation, kind: SpanKind.SERVER, startNs: rootStart, endNs: rootEnd,
      attributes: { 'http.request.method': 'GET', ...attributes }, status: { code },
    }];
    const model = [{ service, parent: undefined, error }];
    entries.push({
      service, operation, durationNs: rootDuration, error, outcome: OUTCOMES.indexOf(outcomeOf),
    });

    const children = Math.floor(random() * 3);
    for (let c = 0; c < children; c++) {
      const d = rootDuration * BigInt(Math.floor(random() * 900)) / 1000n;
      const failed = random() < 0.1;
      spans.push({
        service, name: c === 0 ? 'db.query' : 'render', kind: SpanKind.INTERNAL,
        startNs: rootStart, endNs: rootStart + d, parent: 0,
        status: { code: failed ? StatusCode.ERROR : StatusCode.UNSET },
      });
      model.push({ service, parent: 0, error: failed });
    }
    if (random() < 0.3) {
      // CLIENT span (never an error: its HTTP status is the callee's answer) and the callee's
      // SERVER span, its entry span, parented across services.
      const client = spans.length;
      const d = rootDuration * BigInt(300 + Math.floor(random() * 600)) / 1000n;
      const downDuration = d < MS ? MS : d;
      const downOutcome = outcome();
      const [, downAttributes, downCode, downError] = downOutcome;
      const status = downAttributes['http.response.status_code'] ?? 200;
      spans.push({
        service, name: `POST ${DOWNSTREAM.operation.split(' ')[1]}`, kind: SpanKind.CLIENT,
        startNs: rootStart, endNs: rootStart + downDuration, parent: 0,
        attributes: { 'http.response.status_code': status },
      });
      model.push({ service, parent: 0, error: false });
      spans.push({
        service: DOWNSTREAM.service, name: DOWNSTREAM.operation, kind: SpanKind.SERVER,
        startNs: rootStart, endNs: rootStart + downDuration, parent: client,
        attributes: downAttributes, status: { code: downCode },
      });
      model.push({ service: DOWNSTREAM.service, parent: client, error: downError });
      entries.push({
        ...DOWNSTREAM, durationNs: downDuration, error: downError, outcome: OUTCOMES.indexOf(downOutcome),
      });
    }
    traces.push(spans);
    classes.push(classify(model));
  }
  return { traces, entries, classes };
}

let sdkServer;

test('SDK over gRPC: exact requests, errors and histogram per operation; quantiles within 1 %', async (t) => {
  // A longer idle timeout: the SDK exports each service's spans on its own schedule, and the
  // exact trace counts checked here must not depend on that schedule.
  const server = await start({ trace_idle_timeout: '2s', trace_max_age: '10s', shards: 2 });
  sdkServer = server;
  const { traces, entries, classes } = generateSdkTraffic({ seed: 20240601, traces: 900, endNs: nowNs() });
  const spanCount = traces.reduce((n, tr) => n + tr.length, 0);
  assert.ok(spanCount >= 2000, `enough spans (${spanCount})`);
  // The seed exercises every outcome and durations exactly on bucket bounds.
  assert.equal(new Set(entries.map((e) => e.outcome)).size, OUTCOMES.length, 'every outcome generated');
  assert.ok(entries.filter((e) => BOUNDARY_NS.includes(e.durationNs)).length >= 10, 'durations on bucket bounds');

  const summary = await emitTracesWithSdk({ exporter: 'grpc', endpoint: server.grpcUrl, traces });
  t.diagnostic(JSON.stringify({ ...summary, ids: undefined, entries: entries.length }));
  assert.deepEqual({ failed: summary.exports_failed, errors: summary.errors }, { failed: 0, errors: [] });
  assert.equal(summary.spans_exported, spanCount);

  // Expected per-series counters and histograms, and per-service latency samples.
  const series = new Map();  // "service\0operation" → {requests, errors, durations}
  const latencies = new Map();  // service → [durationNs]
  for (const e of entries) {
    const key = `${e.service}\0${e.operation}`;
    if (!series.has(key)) {
      series.set(key, { service: e.service, operation: e.operation, requests: 0, errors: 0, durations: [] });
    }
    const s = series.get(key);
    s.requests++;
    s.errors += e.error ? 1 : 0;
    s.durations.push(e.durationNs);
    if (!latencies.has(e.service)) latencies.set(e.service, []);
    latencies.get(e.service).push(e.durationNs);
  }
  const expectedCounts = {};
  for (const s of series.values()) {
    expectedCounts[`${s.service} ${s.operation}`] = { requests: s.requests, errors: s.errors };
  }
  const observeCounts = (m) => {
    const out = {};
    for (const sample of m.series('traceslo_requests_total')) {
      const { service, operation } = sample.labels;
      if (!service.startsWith('sli-')) continue;
      out[`${service} ${operation}`] = {
        requests: sample.value,
        errors: m.get('traceslo_request_errors_total', { service, operation }),
      };
    }
    return out;
  };
  await expectMetrics(server, observeCounts, expectedCounts, {
    message: 'traceslo_requests_total / traceslo_request_errors_total per (service, operation)',
  });
  assert.ok(Object.values(expectedCounts).every((c) => c.errors > 0), 'every series has some errors');

  const m = await server.scrape();
  for (const s of series.values()) {
    const labels = { service: s.service, operation: s.operation };
    const what = `traceslo_request_duration_seconds{service="${s.service}",operation="${s.operation}"}`;
    assert.equal(m.get('traceslo_request_duration_seconds_count', labels), s.requests, `${what} _count`);
    const sum = s.durations.reduce((a, d) => a + seconds(d), 0);
    const gotSum = m.get('traceslo_request_duration_seconds_sum', labels);
    assert.ok(Math.abs(gotSum - sum) <= 1e-6 * sum, `${what} _sum: got ${gotSum}, want ${sum}`);
    const buckets = m.series('traceslo_request_duration_seconds_bucket', labels);
    const got = Object.fromEntries(buckets.map((b) => [b.labels.le, b.value]));
    const want = {};
    for (const bound of CLASSIC_BOUNDS) {
      const boundNs = BigInt(Math.round(bound * 1e9));
      want[String(bound)] = s.durations.filter((d) => d <= boundNs).length;
    }
    want['+Inf'] = s.requests;
    assert.deepEqual(got, want, `${what} cumulative buckets`);
  }

  let worst = 0;
  for (const [service, samples] of latencies) {
    samples.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const window of ['1h', '5m']) {
      for (const [quantile, percent] of QUANTILES) {
        const want = seconds(nearestRank(samples, percent));
        const labels = { service, quantile, window };
        const series1 = m.series('traceslo_latency_seconds', labels);
        assert.equal(series1.length, 1, `one traceslo_latency_seconds${JSON.stringify(labels)}`);
        const got = series1[0].value;
        worst = Math.max(worst, Math.abs(got - want) / want);
        assert.ok(Math.abs(got - want) <= 0.01 * want,
          `traceslo_latency_seconds${JSON.stringify(labels)}: got ${got}, want ${want} ±1 % ` +
          `(nearest rank of ${samples.length} samples)`);
      }
    }
  }

  t.diagnostic(`worst relative quantile error: ${(worst * 100).toFixed(5)} %`);

  // Trace-level SLIs of the same traffic, once every trace completed.
  const expectedTraces = {};
  const bump = (service, field) => {
    expectedTraces[service] ??= counters(0);
    expectedTraces[service][field]++;
  };
  for (const c of classes) {
    for (const service of c.touched) bump(service, 'traces');
    if (c.errorRoot) bump(c.errorRoot, 'error_root');
    if (c.errorOrigin) bump(c.errorOrigin, 'error_origin');
  }
  await expectMetrics(server, (mm) => traceCounters(mm, Object.keys(expectedTraces)), expectedTraces, {
    timeoutMs: 15_000, message: 'trace-level SLIs per service (no partial traces, no breaks)',
  });
  const done = await server.scrape();
  assert.equal(done.get('traceslo_live_traces'), 0, 'traceslo_live_traces');
  assert.equal(done.get('traceslo_late_spans_total'), 0, 'traceslo_late_spans_total');
  assert.equal(done.get('traceslo_clock_skew_spans_total'), 0, 'traceslo_clock_skew_spans_total');
});

// ------------------------------------------------------------------------------------------
// 2. Crafted trace shapes.

test('trace shapes: missing root, orphan in the middle, async fan-out → exact partial and breaks', async () => {
  const server = await start({ shards: 2 });
  const end = nowNs();

  // Missing root, through the SDK: shape-front's SERVER span has a parent that is never sent;
  // its CLIENT call reaches shape-back's SERVER span.
  const lost = { traceId: randomHex(16), spanId: randomHex(8) };
  const sdkSpan = (service, name, kind, parent, fromMs, toMs) =>
    ({ service, name, kind, parent, startNs: end - BigInt(fromMs) * MS, endNs: end - BigInt(toMs) * MS });
  const sdk = await emitTracesWithSdk({
    exporter: 'grpc', endpoint: server.grpcUrl, traces: [[
      sdkSpan('shape-front', 'GET /home', SpanKind.SERVER, lost, 50, 0),
      sdkSpan('shape-front', 'GET /api', SpanKind.CLIENT, 0, 40, 10),
      sdkSpan('shape-back', 'GET /api', SpanKind.SERVER, 1, 35, 15),
    ]],
  });
  assert.equal(sdk.spans_exported, 3, JSON.stringify(sdk.errors));
  assert.equal(sdk.ids[0][0].traceId, lost.traceId, 'the SDK kept the remote parent\'s trace id');

  // Orphan in the middle: shape-a → (shape-b, never sent) → shape-c.
  const mid = randomHex(16);
  const a = span({
    service: 'shape-a', traceId: mid, name: 'GET /a', kind: SpanKind.SERVER, endNs: end, durationNs: 30n * MS,
  });
  const c = span({
    service: 'shape-c', traceId: mid, parent: randomHex(8), name: 'GET /c', kind: SpanKind.SERVER,
    endNs: end - 5n * MS,
  });
  const cChild = span({
    service: 'shape-c', traceId: mid, parent: c.spanId, name: 'SELECT', kind: SpanKind.CLIENT,
    endNs: end - 6n * MS, durationNs: 2n * MS,
  });

  // Async fan-out: shape-p's PRODUCER root first; shape-q's and shape-r's CONSUMER spans in a
  // later request, before the idle timeout.
  const fan = randomHex(16);
  const producer = span({
    service: 'shape-p', traceId: fan, name: 'orders publish', kind: SpanKind.PRODUCER,
    endNs: end - 30n * MS, durationNs: MS,
  });
  const consumer = (service, name) => span({
    service, traceId: fan, parent: producer.spanId, name, kind: SpanKind.CONSUMER,
    endNs: end - 5n * MS, durationNs: 20n * MS,
  });
  await post(server, [a, producer]);
  await post(server, [c, cChild]);
  await post(server, [consumer('shape-q', 'orders process'), consumer('shape-r', 'orders audit')]);

  const services = [
    'shape-front', 'shape-back', 'shape-a', 'shape-b', 'shape-c', 'shape-p', 'shape-q', 'shape-r',
  ];
  await expectMetrics(server, (m) => traceCounters(m, services), {
    'shape-front': counters(1, 1, 1),  // its entry span lost its parent: the break
    'shape-back': counters(1, 1, 0),   // partial trace, but its parent arrived
    'shape-a': counters(1, 1, 0),
    'shape-b': counters(0),            // never seen
    'shape-c': counters(1, 1, 1),
    'shape-p': counters(1),            // complete fan-out
    'shape-q': counters(1),
    'shape-r': counters(1),
  });
  // Every entry span counted once: SERVER/CONSUMER spans, and the PRODUCER root (no parent).
  const m = await server.scrape();
  const requests = Object.fromEntries(
    services.map((service) => [service, m.get('traceslo_requests_total', { service })]));
  assert.deepEqual(requests, {
    'shape-front': 1, 'shape-back': 1, 'shape-a': 1, 'shape-b': 0, 'shape-c': 1,
    'shape-p': 1, 'shape-q': 1, 'shape-r': 1,
  }, 'traceslo_requests_total per service');
  assert.equal(m.get('traceslo_live_traces'), 0);
  assert.equal(m.get('traceslo_late_spans_total'), 0);
});

test('a span of an already completed trace counts as late, not as another trace', async () => {
  // One shard: spans are processed in arrival order, so once a later trace completed, any trace
  // the late span could have opened would have completed too.
  const server = await start({ shards: 1 });
  const end = nowNs();
  const traceId = randomHex(16);
  const root = span({
    service: 'late-front', traceId, name: 'GET /x', kind: SpanKind.SERVER, endNs: end, durationNs: 40n * MS,
  });
  await post(server, [root]);
  await expectMetrics(server, (m) => ({ ...traceCounters(m, ['late-front']), live: m.get('traceslo_live_traces') }),
    { 'late-front': counters(1), live: 0 }, { message: 'the first trace completed' });

  await post(server, [span({
    service: 'late-back', traceId, parent: root.spanId, name: 'GET /y', kind: SpanKind.SERVER,
    endNs: end - 5n * MS, durationNs: 20n * MS,
  })]);
  await expectMetrics(server, (m) => ({
    late: m.get('traceslo_late_spans_total'),
    requests: m.get('traceslo_requests_total', { service: 'late-back' }),
    live: m.get('traceslo_live_traces'),
  }), { late: 1, requests: 1, live: 0 }, { message: 'late span counted; its request SLI still counts' });

  // A later trace completing is the barrier: the late span opened no trace of its own.
  await post(server, [span({
    service: 'late-sentinel', traceId: randomHex(16), name: 'GET /z', kind: SpanKind.SERVER, endNs: nowNs(),
  })]);
  await expectMetrics(server, (m) => traceCounters(m, ['late-sentinel', 'late-front', 'late-back']), {
    'late-sentinel': counters(1), 'late-front': counters(1), 'late-back': counters(0),
  });
  const m = await server.scrape();
  assert.equal(m.get('traceslo_late_spans_total'), 1);
  assert.equal(m.get('traceslo_traces_total'), 2, 'traceslo_traces_total over all services');
});

// ------------------------------------------------------------------------------------------
// 3. Error attribution.

test('error traces: role="root" for the root service, role="origin" for the deepest error', async () => {
  const server = await start();
  const end = nowNs();
  // One trace as a chain: each span is the child of the one before it, 1 ms shorter on each side.
  const chain = (rows) => {
    const traceId = randomHex(16);
    const spans = [];
    rows.forEach(([service, name, kind, extra], i) => spans.push(span({
      service, traceId, parent: spans[i - 1]?.spanId, name, kind, endNs: end - BigInt(i) * MS,
      durationNs: BigInt(100 - 2 * i) * MS, ...extra,
    })));
    return spans;
  };
  const failed = { status: { code: StatusCode.ERROR } };
  const http = (code) => ({ attributes: { 'http.response.status_code': code } });
  const spans = [
    // err-a → err-b → err-c, each calling the next; all three fail, the deepest failure is
    // err-c's INTERNAL span. err-b's failing CLIENT span is deeper than err-b's entry but not
    // the deepest.
    ...chain([
      ['err-a', 'GET /a', SpanKind.SERVER, failed],
      ['err-a', 'GET /b', SpanKind.CLIENT, http(503)],  // a CLIENT's HTTP status: not an error
      ['err-b', 'GET /b', SpanKind.SERVER, http(503)],
      ['err-b', 'GET /c', SpanKind.CLIENT, failed],
      ['err-c', 'GET /c', SpanKind.SERVER, { attributes: { 'rpc.grpc.status_code': 13 } }],
      ['err-c', 'charge', SpanKind.INTERNAL, { status: { code: StatusCode.ERROR, message: 'card declined' } }],
    ]),
    // mid-a → mid-b → mid-c where only mid-b fails: mid-a is still the root of an error trace.
    ...chain([
      ['mid-a', 'GET /a', SpanKind.SERVER, http(200)],
      ['mid-b', 'GET /b', SpanKind.SERVER, failed],
      ['mid-c', 'GET /c', SpanKind.SERVER, http(404)],
    ]),
  ];
  // Children first, as exporters often send them.
  await post(server, spans.reverse());

  const services = ['err-a', 'err-b', 'err-c', 'mid-a', 'mid-b', 'mid-c'];
  await expectMetrics(server, (m) => traceCounters(m, services), {
    'err-a': counters(1, 0, 0, 1, 0),
    'err-b': counters(1, 0, 0, 0, 0),
    'err-c': counters(1, 0, 0, 0, 1),
    'mid-a': counters(1, 0, 0, 1, 0),
    'mid-b': counters(1, 0, 0, 0, 1),
    'mid-c': counters(1, 0, 0, 0, 0),
  });
  const m = await server.scrape();
  const errors = Object.fromEntries(services.map((service) => [service, [
    m.get('traceslo_requests_total', { service }), m.get('traceslo_request_errors_total', { service }),
  ]]));
  assert.deepEqual(errors, {
    'err-a': [1, 1], 'err-b': [1, 1], 'err-c': [1, 1], 'mid-a': [1, 0], 'mid-b': [1, 1], 'mid-c': [1, 0],
  }, '[requests, errors] per service: only entry spans count, CLIENT/INTERNAL spans do not');
});

// ------------------------------------------------------------------------------------------
// 4. Clock skew.

test('end times 1 h in the future and 1 h in the past are clamped, counted, and still requests', async () => {
  const server = await start();
  const end = nowNs();
  const op = { service: 'skew', name: 'GET /skew', kind: SpanKind.SERVER };
  await post(server, [
    span({ ...op, traceId: randomHex(16), endNs: end + HOUR, durationNs: 10n * MS }),
    span({ ...op, traceId: randomHex(16), endNs: end - HOUR, durationNs: 20n * MS }),
    span({ ...op, traceId: randomHex(16), endNs: end, durationNs: 30n * MS }),  // not skewed
  ]);
  await expectMetrics(server, (m) => ({
    skewed: m.get('traceslo_clock_skew_spans_total'),
    requests: m.get('traceslo_requests_total', { service: 'skew', operation: 'GET /skew' }),
    histogram: m.get('traceslo_request_duration_seconds_count', { service: 'skew', operation: 'GET /skew' }),
    ...traceCounters(m, ['skew']),
  }), { skewed: 2, requests: 3, histogram: 3, skew: counters(3) });
});

// ------------------------------------------------------------------------------------------
// 5. Operation cap.

test('max_operations_per_service: 2 → two own series, the rest under operation="other"', async () => {
  const server = await start({ max_operations_per_service: 2 });
  const end = nowNs();
  const spansOf = (name, n, failures = 0) => Array.from({ length: n }, (_, i) => span({
    service: 'capped', traceId: randomHex(16), name, kind: SpanKind.SERVER, endNs: end,
    status: { code: i < failures ? StatusCode.ERROR : StatusCode.UNSET },
  }));
  const counts = { 'GET /a': [3, 1], 'GET /b': [5, 0], 'GET /c': [7, 2], 'GET /d': [11, 3] };
  const observe = (m) => Object.fromEntries(m.series('traceslo_requests_total', { service: 'capped' })
    .map((s) => [s.labels.operation, [s.value, m.get('traceslo_request_errors_total', s.labels)]]));

  // The first two operations in, and registered, before the others arrive.
  await post(server, [...spansOf('GET /a', ...counts['GET /a']), ...spansOf('GET /b', ...counts['GET /b'])]);
  await expectMetrics(server, observe, { 'GET /a': counts['GET /a'], 'GET /b': counts['GET /b'] });
  await post(server, [...spansOf('GET /c', ...counts['GET /c']), ...spansOf('GET /d', ...counts['GET /d'])]);
  const other = [counts['GET /c'][0] + counts['GET /d'][0], counts['GET /c'][1] + counts['GET /d'][1]];
  await expectMetrics(server, observe, { 'GET /a': counts['GET /a'], 'GET /b': counts['GET /b'], other });

  const m = await server.scrape();
  assert.ok(m.get('traceslo_series_overflow_total', { kind: 'operation' }) > 0,
    'traceslo_series_overflow_total{kind="operation"} > 0');
  assert.equal(m.get('traceslo_series_overflow_total', { kind: 'service' }), 0);
  assert.equal(m.get('traceslo_request_duration_seconds_count', { service: 'capped', operation: 'other' }),
    other[0]);
});

// ------------------------------------------------------------------------------------------
// 6. The exposition after all of the above.

const SLI_FAMILIES = [
  'traceslo_requests_total', 'traceslo_request_errors_total', 'traceslo_request_duration_seconds_bucket',
  'traceslo_latency_seconds', 'traceslo_traces_total', 'traceslo_error_traces_total',
  'traceslo_partial_traces_total', 'traceslo_propagation_breaks_total', 'traceslo_live_traces',
  'traceslo_traces_evicted_total', 'traceslo_late_spans_total', 'traceslo_clock_skew_spans_total',
  'traceslo_series_overflow_total',
];

test('/metrics after SLI traffic passes promtool check metrics', async () => {
  assert.ok(started.length >= 2, 'the servers of the tests above are running');
  assert.ok(sdkServer, 'the SDK traffic test started its server');
  for (const server of started) {
    // Trace-level families appear once a trace of that server completed (trace_idle_timeout
    // after its last span): on a loaded machine that can be after the tests above finished.
    const m = await pollUntil(() => server.scrape(), (s) => SLI_FAMILIES.every((n) => s.has(n)),
      { timeoutMs: 30_000 });
    for (const name of SLI_FAMILIES) assert.ok(m.has(name), `${name} is exported`);
    const { status, output } = promtoolCheckMetrics(m.text);
    const problems = [...new Set(output.split('\n').filter(Boolean))];
    assert.deepEqual(problems, [], `promtool check metrics printed problems (deduplicated):\n${problems.join('\n')}`);
    assert.equal(status, 0, `promtool check metrics exit status\n${output}`);
  }
});
