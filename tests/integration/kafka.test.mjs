// Kafka mode against librdkafka's mock cluster (tests/tools: traceslo-kafka-mock, a process of
// its own on loopback). The recorded incident of data/replay goes to otlp_spans as the
// Collector's Kafka exporter writes it (traceslo-kafka-produce: one record per resource, scope
// and trace id, keyed by the trace id, FNV-1a partitioner, the request's time as the record's
// timestamp, then an empty record per partition `DRAIN_S` later). One `traceslo serve` in Kafka
// mode must then count what single-node mode counts on the same recording (`traceslo replay`, the
// same SLI engine on recorded time) and fire and resolve the same alerts at the same times; the
// per-operation totals must equal the counts taken from the recording's lines here. A restart
// must neither lose nor double anything. When the owner dies mid-incident, the next owner pages
// again what it had paged under the same notification ids (a receiver drops them) and resolves.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import {
  clientsDir, getJson, makeTempDir, pollUntil, repoRoot, runBinary, runTraceslo, startRecordingServer,
  startTraceslo, waitFor,
} from '../clients/lib.mjs';

import { countEntrySpans, fnv1aPartition, readSpans } from './kafka_counts.mjs';

const YAML = createRequire(path.join(clientsDir, 'package.json'))('yaml');

const dataDir = path.join(repoRoot, 'tests/integration/data/replay');
const fixture = path.join(dataDir, 'incident.jsonl');
const rulesGlob = path.join(dataDir, 'rules', '*.yaml');
const DRAIN_S = 120;

const mockBin = process.env.TRACESLO_KAFKA_MOCK_BIN;
const produceBin = process.env.TRACESLO_KAFKA_PRODUCE_BIN;

let scratch;
let bootstrap;
const servers = [];

const mocks = [];
const hooks = [];

// A mock cluster process of its own (traceslo-kafka-mock) with the two topics; its bootstrap.
async function startMock(name) {
  const bootstrapFile = path.join(scratch, `${name}.bootstrap`);
  const child = spawn(mockBin, ['--brokers', '1', '--topic', 'otlp_spans:4', '--topic', 'traceslo_deltas:2',
    '--topic', 'traceslo_state:2',
    '--bootstrap-file', bootstrapFile], { stdio: ['ignore', 'ignore', 'inherit'] });
  mocks.push(child);
  await waitFor(() => fs.existsSync(bootstrapFile) && fs.readFileSync(bootstrapFile, 'utf8').trim() !== '',
    { timeoutMs: 10_000, what: 'the mock cluster' });
  return { child, bootstrap: fs.readFileSync(bootstrapFile, 'utf8').trim().replace(/^bootstrap=/, '') };
}

before(async () => {
  scratch = await makeTempDir('traceslo-it-kafka-');
  ({ bootstrap } = await startMock('golden'));
});

after(async () => {
  for (const server of servers) await server.cleanup();
  for (const child of mocks) child.kill('SIGTERM');
  for (const hook of hooks) await hook.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

// `idle`: kafka.idle_partition_timeout. The first run keeps stream time where the records put it
// (1h); the restarted one lets idle partitions follow the clock (1s).
function kafkaConfig(idle, brokers = bootstrap) {
  return {
    rules: { files: [rulesGlob] },
    kafka: {
      enabled: true,
      brokers: [brokers.split(',')[0]],
      encoding: 'otlp_json',
      allowed_lateness: '1s',
      idle_partition_timeout: idle,
      librdkafka: { 'session.timeout.ms': '6000', 'heartbeat.interval.ms': '500' },
    },
  };
}

// The alert transitions as [time, service, slo, severity, from, to], in order.
const transitionsOfReplay = (timeline) => timeline
  .map((t) => [t.time, t.service, t.slo, t.severity, t.from, t.to])
  .sort((a, b) => a.join().localeCompare(b.join()));
const transitionsOfApi = (recent) => recent
  .map((t) => [t.at, t.service, t.slo, t.severity, t.from, t.to])
  .sort((a, b) => a.join().localeCompare(b.join()));

test('one Kafka-mode instance counts and alerts as single-node mode, and a restart changes nothing', async () => {
  const replayed = await runTraceslo(['replay', '--spans', fixture, '--rules', path.join(dataDir, 'rules'),
    '--format', 'json', '--drain', `${DRAIN_S}s`], { cwd: repoRoot, timeoutMs: 60_000 });
  assert.equal(replayed.code, 0, replayed.stderr);
  const single = JSON.parse(replayed.stdout);
  assert.ok(single.timeline.length >= 2, 'the recording fires and resolves alerts');

  const lastMs = await produceTo(bootstrap, fixture, DRAIN_S);
  const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);

  const dir = path.join(scratch, 'instance');
  fs.mkdirSync(dir);
  // Pages go to a recording webhook: their causes link exemplar traces.
  const hook = await startRecordingServer();
  hooks.push(hook);
  let server = await startTraceslo({ config: withHook(kafkaConfig('1h'), hook), dir, otlp: false, timeoutMs: 30_000 });
  servers.push(server);
  // Everything consumed and final through the drain record's epoch, less allowed_lateness.
  await server.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1,
    { timeoutMs: 60_000 });

  // Per-operation totals: the recording's own counts, as single-node mode's.
  const counts = countEntrySpans(readSpans(fixture));
  const metrics = await server.scrape();
  for (const [key, want] of Object.entries(counts)) {
    const [service, operation] = key.split('|');
    assert.equal(metrics.get('traceslo_requests_total', { service, operation }), want.requests, key);
    assert.equal(metrics.get('traceslo_request_errors_total', { service, operation }), want.errors, key);
  }
  assert.equal(metrics.get('traceslo_kafka_spans_total', { outcome: 'ok' }), single.summary.spans);
  assert.equal(metrics.get('traceslo_kafka_records_total', { stage: '2', outcome: 'refused_config' }), 0);
  // traceslo's own alerting rules for Kafka mode select only series this instance exports: every
  // selector, with each value of its label matchers (alternatives of =~ one by one).
  const alertRules = YAML.parse(fs.readFileSync(path.join(repoRoot, 'dashboards', 'traceslo-kafka-alerts.yaml'), 'utf8'));
  const exprs = alertRules.groups.flatMap((g) => g.rules.map((r) => r.expr)).join('\n');
  const selectors = [...exprs.matchAll(/(traceslo_[a-z0-9_]+)(?:\{([^}]*)\})?/g)];
  assert.ok(selectors.length >= 6, 'the rules file has selectors');
  for (const [, name, matchers = ''] of selectors) {
    let choices = [{}];
    for (const m of matchers.matchAll(/([a-z_]+)\s*(=~|=)\s*"([^"]*)"/g)) {
      const values = m[2] === '=~' ? m[3].split('|') : [m[3]];
      choices = choices.flatMap((c) => values.map((v) => ({ ...c, [m[1]]: v })));
    }
    for (const labels of choices) {
      assert.ok(metrics.series(name, labels).length > 0, `${name} ${JSON.stringify(labels)} on /metrics`);
    }
  }

  // The SLO windows at the end, and every alert transition, as single-node mode's.
  const slosOf = async (s) => {
    const body = await getJson(`${s.webUrl}/api/v1/slos`);
    return Object.fromEntries(body.slos.map((slo) => [`${slo.service}/${slo.slo}`,
      slo.windows.map((w) => [w.window, w.total, w.bad])]));
  };
  const singleSlos = Object.fromEntries(single.summary.slos.map((slo) => [`${slo.service}/${slo.slo}`,
    slo.windows.map((w) => [w.window, w.total, w.bad])]));
  const alertsOf = async (s) => transitionsOfApi((await getJson(`${s.webUrl}/api/v1/alerts`)).recent);
  const want = transitionsOfReplay(single.timeline);
  const got = await pollUntil(() => alertsOf(server), (t) => t.length >= want.length, { timeoutMs: 30_000 });
  // The same transitions at the same evaluations. Kafka mode evaluates time t once every source
  // partition is final through t, when the store may hold spans that ended in t's own 10 s
  // bucket; it hides that bucket (as single-node mode, evaluating t live, has next to nothing of
  // it yet), so the windows are the same.
  const key = ([, ...rest]) => rest.join('|');
  assert.deepEqual(got.map(key).sort(), want.map(key).sort(), JSON.stringify({ got, want }));
  for (const [at, ...rest] of got) {
    const match = want.find((w) => key(w) === rest.join('|'));
    assert.equal(Date.parse(at), Date.parse(match[0]), `${rest.join(' ')}: ${at} vs ${match[0]}`);
  }
  assert.deepEqual(await slosOf(server), singleSlos);

  // Exemplar traces travel from stage 1 to stage 2: each service's pages link traces of their
  // causes, and every link opens on the instance with the trace's spans as the recording has
  // them (span ids, parents, services, operations, errors).
  const firing = await pollUntil(async () => hook.requests.filter((r) => r.body?.status === 'firing'),
    (f) => new Set(f.map((r) => r.body.commonLabels.service)).size >= 2, { timeoutMs: 30_000 });
  const spansOfTrace = new Map();
  for (const { service, span } of readSpans(fixture)) {
    if (!spansOfTrace.has(span.traceId)) spansOfTrace.set(span.traceId, []);
    spansOfTrace.get(span.traceId).push([span.spanId, span.parentSpanId ?? '', service, span.name,
      span.status?.code === 2]);
  }
  const linkedBy = new Map();  // service → trace ids its pages link
  for (const r of firing) {
    for (const cause of r.body.traceslo.causes) {
      for (const e of cause.exemplars) {
        const service = r.body.commonLabels.service;
        if (!linkedBy.has(service)) linkedBy.set(service, new Set());
        linkedBy.get(service).add(e.traceId);
      }
    }
  }
  assert.deepEqual([...linkedBy.keys()].sort(), [...new Set(firing.map((r) => r.body.commonLabels.service))].sort(),
    `every paged service's pages link traces: ${JSON.stringify(firing.map((r) => r.body.traceslo.causes))}`);
  for (const ids of linkedBy.values()) {
    for (const id of ids) {
      const trace = await getJson(`${server.webUrl}/api/v1/traces/${id}`);
      assert.equal(trace.trace_id, id);
      const want = spansOfTrace.get(id);
      assert.ok(want, `trace ${id} is in the recording`);
      const got = trace.spans.map((sp) => [sp.span_id, sp.parent_span_id ?? '', sp.service, sp.operation]);
      assert.deepEqual(got.sort(), want.map((x) => x.slice(0, 4)).sort(), `trace ${id}`);
      // An error span of the recording (status ERROR) is an error span on the page.
      for (const [spanId, , , , error] of want) {
        if (error) assert.equal(trace.spans.find((sp) => sp.span_id === spanId).error, true, `${id}/${spanId}`);
      }
    }
  }

  // A restart: stage 2 restores from its partition files, stage 1 resumes from its commits.
  assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
  // Counted from before the start: the instance seals epochs while it starts (restores, joins).
  const restartedAt = Date.now();
  server = await startTraceslo({ config: withHook(kafkaConfig('1s'), hook), dir, otlp: false, timeoutMs: 30_000 });
  servers.push(server);
  await server.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1,
    { timeoutMs: 60_000 });
  // Idle partitions resume from where the last owner sealed and follow the clock from there: a
  // few epochs each, not the years between the recording and now.
  const epochs = await server.pollMetric('traceslo_kafka_epochs_total', { outcome: 'published' },
    (v) => v >= 4, { timeoutMs: 30_000 });
  const elapsedS = (Date.now() - restartedAt) / 1000;
  assert.ok(epochs <= 4 * (elapsedS + 2), `${epochs} epochs published in ${elapsedS} s`);
  const again = await server.scrape();
  for (const [key, want2] of Object.entries(counts)) {
    const [service, operation] = key.split('|');
    assert.equal(again.get('traceslo_requests_total', { service, operation }), want2.requests, `after restart ${key}`);
  }
  // A graceful stop committed every published epoch: none is published (or applied) again, so
  // stage 2 sees no duplicate (it only applies the new, empty epochs of idle partitions).
  assert.equal(again.get('traceslo_kafka_records_total', { stage: '2', outcome: 'duplicate' }), 0);
  assert.equal(again.get('traceslo_kafka_epochs_total', { outcome: 'suppressed' }), 0);
  // Evaluation resumes where it stopped: no transition is repeated.
  assert.deepEqual(await alertsOf(server), got);
  const after = await server.scrape();
  assert.equal(after.get('traceslo_kafka_delivery_errors_total'), 0);
  assert.equal(after.get('traceslo_kafka_clamped_timestamps_total'), 0);
  assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, 'a graceful stop');
});

test('a broker outage while spans flow delays them and loses nothing', async () => {
  const { child: outageMock, bootstrap: outageBootstrap } = await startMock('outage');
  const dir = path.join(scratch, 'outage');
  fs.mkdirSync(dir);
  const server = await startTraceslo({ config: kafkaConfig('1h', outageBootstrap), dir, otlp: false,
    timeoutMs: 30_000 });
  servers.push(server);
  // Every broker down, the recording produced meanwhile (the producer waits for them), and back
  // after 3 s: the outage's length is the fault injected, not a wait for behaviour.
  outageMock.kill('SIGUSR1');
  const producing = runBinary(produceBin, ['--bootstrap', outageBootstrap, '--topic', 'otlp_spans',
    '--input', fixture, '--drain-seconds', String(DRAIN_S)], { timeoutMs: 120_000 });
  await new Promise((resolve) => { setTimeout(resolve, 3_000); });
  outageMock.kill('SIGUSR2');
  const produced = await producing;
  assert.equal(produced.code, 0, produced.stderr);
  const lastMs = Number(/last_ms=(\d+)/.exec(produced.stdout)[1]);
  const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);
  await server.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1,
    { timeoutMs: 90_000 });
  const metrics = await server.scrape();
  for (const [key, want] of Object.entries(countEntrySpans(readSpans(fixture)))) {
    const [service, operation] = key.split('|');
    assert.equal(metrics.get('traceslo_requests_total', { service, operation }), want.requests, key);
    assert.equal(metrics.get('traceslo_request_errors_total', { service, operation }), want.errors, key);
  }
  assert.equal(metrics.get('traceslo_kafka_delivery_errors_total'), 0);
  assert.equal(metrics.get('traceslo_kafka_records_total', { stage: '2', outcome: 'duplicate' }), 0);
  assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
});

// The request time of a recording line as traceslo-kafka-produce stamps it: its latest span end.
function lineTimeMs(line) {
  let latest = 0n;
  for (const rs of JSON.parse(line).resourceSpans) {
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        const end = BigInt(span.endTimeUnixNano);
        if (end > latest) latest = end;
      }
    }
  }
  return Number(latest / 1_000_000n);
}

// `config` with its pages sent to `hook` (a recording server) at once (group_wait 0s);
// `delivery`: alerting.delivery settings.
function withHook(config, hook, delivery) {
  return {
    ...config,
    alerting: {
      group_wait: '0s', group_interval: '10s', repeat_interval: '1h',
      default_receiver: 'hook',
      receivers: [{ name: 'hook', webhook: { url: `${hook.url}/hook` } }],
      ...(delivery ? { delivery } : {}),
    },
  };
}

// The recording split at `cutMs` (its lines by their request time) into two files of the
// scratch directory: [up to cutMs, after it].
function splitRecording(name, cutMs) {
  const lines = fs.readFileSync(fixture, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const first = path.join(scratch, `${name}-1.jsonl`);
  const second = path.join(scratch, `${name}-2.jsonl`);
  fs.writeFileSync(first, lines.filter((l) => lineTimeMs(l) <= cutMs).join('\n') + '\n');
  fs.writeFileSync(second, lines.filter((l) => lineTimeMs(l) > cutMs).join('\n') + '\n');
  return [first, second];
}

// Writes a recording to otlp_spans of `brokers` as the Collector would (traceslo-kafka-produce),
// then an empty record per partition `drain` seconds later; `extra`: more flags. Returns the
// last record's time (unix ms).
async function produceTo(brokers, input, drain, extra = []) {
  const produced = await runBinary(produceBin, ['--bootstrap', brokers, '--topic', 'otlp_spans',
    '--input', input, '--drain-seconds', String(drain), ...extra], { timeoutMs: 60_000 });
  assert.equal(produced.code, 0, produced.stderr);
  return Number(/last_ms=(\d+)/.exec(produced.stdout)[1]);
}

// A stage-2 owner dies mid-incident (kill -9 after it paged); a fresh instance takes every
// partition over, restores each from the traceslo_state changelog (the owner's last snapshots),
// reads traceslo_deltas on from their checkpoints, derives the alert states again and carries on: each transition reaches the receiver under one notification id (the new owner's
// repeat of a page the old owner sent has the same id), and every page is resolved.
test('a stage-2 owner killed mid-incident: the next owner pages under the same ids and resolves', async () => {
  const { bootstrap: handoffBootstrap } = await startMock('handoff');
  const hook = await startRecordingServer();
  // Part one ends after both services fired (12:01:20 and 12:01:30 in `traceslo replay`) and
  // before either resolved (12:02:00).
  const [first, second] = splitRecording('handoff', Date.parse('2025-06-01T12:01:45Z'));
  const base = kafkaConfig('1h', handoffBootstrap);
  const config = withHook({ ...base, kafka: { ...base.kafka, snapshot_interval: '1s' } }, hook);
  const produce = (input, drain) => produceTo(handoffBootstrap, input, drain);
  const services = (requests) => new Set(requests.map((r) => r.body?.commonLabels?.service));
  try {
    // Part one, with every partition stamped at its end (drain 0): the first owner evaluates
    // through it and pages both services.
    await produce(first, 0);
    const dirA = path.join(scratch, 'handoff-a');
    fs.mkdirSync(dirA);
    const a = await startTraceslo({ config, dir: dirA, otlp: false, timeoutMs: 30_000 });
    servers.push(a);
    await hook.waitFor((requests) => services(requests).has('checkout') && services(requests).has('gateway'),
      { timeoutMs: 60_000 });
    const pagedByA = hook.requests.length;
    // Snapshots with data are out and delivered (the first two, a second after the start, were
    // of empty files); a later one may still be on its way at the kill (a snapshot cut short).
    const stateOf = async (s) => Object.fromEntries((await s.scrape()).samples
      .filter((x) => x.name.startsWith('traceslo_kafka_state_'))
      .map((x) => [`${x.name}${JSON.stringify(x.labels)}`, x.value]));
    // Both services' firing alerts are in the changelog too (their episodes).
    await pollUntil(() => stateOf(a), (m) => m['traceslo_kafka_state_records_queued_total{}'] > 2 &&
      m['traceslo_kafka_state_records_written_total{}'] === m['traceslo_kafka_state_records_queued_total{}'] &&
      m['traceslo_kafka_state_alerts_total{"outcome":"written"}'] >= 2,
    { timeoutMs: 30_000 });
    assert.deepEqual(await a.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });

    // The next owner: another data directory (no partition file), all of both groups.
    const dirB = path.join(scratch, 'handoff-b');
    fs.mkdirSync(dirB);
    const b = await startTraceslo({ config, dir: dirB, otlp: false, timeoutMs: 30_000 });
    servers.push(b);
    const lastMs = await produce(second, DRAIN_S);
    const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);
    await b.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1, { timeoutMs: 60_000 });
    assert.equal(await b.metric('traceslo_kafka_state_restores_total', { outcome: 'restored' }), 2,
      `both partitions restored from the changelog: ${JSON.stringify(await stateOf(b))}`);
    assert.equal(await b.metric('traceslo_kafka_state_restores_total', { outcome: 'failed' }), 0);
    assert.equal(await b.metric('traceslo_kafka_state_records_read_total', { outcome: 'invalid' }), 0);
    assert.ok(await b.metric('traceslo_kafka_state_alerts_total', { outcome: 'handed_over' }) >= 2,
      'the firing alerts were handed over');
    // A transition is what a notification says: its group, firing or resolved, and the state
    // of each of its alerts. Each reaches the receiver under one id, and one id never stands for
    // two transitions; every group ends resolved.
    const transitionOf = (r) => JSON.stringify([r.body.groupKey, r.body.status,
      r.body.alerts.map((x) => [x.labels.slo, x.labels.severity, x.status, x.startsAt]).sort()]);
    const idOf = (r) => r.headers['x-traceslo-notification-id'];
    const lastOf = () => {
      const last = new Map();
      for (const r of hook.requests) last.set(r.body.groupKey, r.body.status);
      return last;
    };
    await pollUntil(async () => lastOf(), (m) => m.size >= 4 && [...m.values()].every((v) => v === 'resolved'),
      { timeoutMs: 30_000 });
    const summary = JSON.stringify(hook.requests.map((r) => [idOf(r), transitionOf(r)]));
    const idsOf = new Map();
    const transitionsOf = new Map();
    for (const r of hook.requests) {
      if (!idsOf.has(transitionOf(r))) idsOf.set(transitionOf(r), new Set());
      idsOf.get(transitionOf(r)).add(idOf(r));
      if (!transitionsOf.has(idOf(r))) transitionsOf.set(idOf(r), new Set());
      transitionsOf.get(idOf(r)).add(transitionOf(r));
    }
    for (const [transition, ids] of idsOf) assert.equal(ids.size, 1, `${transition}: ${summary}`);
    for (const [id, transitions] of transitionsOf) assert.equal(transitions.size, 1, `${id}: ${summary}`);
    assert.ok([...lastOf().values()].every((v) => v === 'resolved'), summary);
    // The new owner did page again what the old one had paged (it derived the same states), and
    // under the old owner's ids.
    const ofA = hook.requests.slice(0, pagedByA);
    for (const r of ofA) {
      assert.equal(hook.requests.filter((x) => idOf(x) === idOf(r)).length, 2, `${idOf(r)} again: ${summary}`);
    }
    assert.deepEqual(await b.stop('SIGTERM'), { code: 0, signal: null });
  } finally {
    await hook.close();
  }
});

// Two instances against one mock cluster (config's brokers), started one after the other and
// waited for until the assignment is stable: each owns one deltas partition and the spans
// partitions are split. Returns [the owner of deltas partition 1, the other].
async function startPair(name, config) {
  const start = async (which) => {
    const dir = path.join(scratch, `${name}-${which}`);
    fs.mkdirSync(dir);
    const s = await startTraceslo({ config, dir, otlp: false, timeoutMs: 30_000 });
    servers.push(s);
    return s;
  };
  const instances = [await start('a'), await start('b')];
  let previous = '';
  await waitFor(async () => {
    const scrapes = await Promise.all(instances.map((s) => s.scrape()));
    const owned = scrapes.map((m) => [m.get('traceslo_kafka_owned_partitions', { stage: '1' }),
      m.get('traceslo_kafka_deltas_partition_owned', { partition: '1' })]);
    const key = JSON.stringify(owned);
    const ok = owned[0][0] + owned[1][0] === 4 && owned[0][1] + owned[1][1] === 1 &&
      scrapes.every((m) => m.get('traceslo_kafka_owned_partitions', { stage: '2' }) === 1);
    const stable = ok && key === previous;
    previous = ok ? key : '';
    return stable;
  }, { timeoutMs: 60_000, intervalMs: 500, what: 'a stable assignment of both instances' });
  const ownsOne = async (s) => (await s.scrape()).get('traceslo_kafka_deltas_partition_owned', { partition: '1' }) === 1;
  return (await ownsOne(instances[0])) ? instances : [instances[1], instances[0]];
}

// The outbox handoff: two instances, the recorded incident's services all on deltas partition 1.
// Its owner's receiver is down: it queues every page and resolve of the incident, writes them
// to the traceslo_state changelog with its snapshots, and is killed (kill -9). The other
// instance, which evaluated its own partition through the end of the recording already, takes
// partition 1 over: it derives the past hour again silently (the incident is over, so it would
// send nothing of its own), is handed the dead owner's queued notifications, and delivers them
// once the receiver is back, under their ids; its snapshots then mark them delivered.
test('a stage-2 owner killed with undelivered notifications: the survivor delivers them', async () => {
  const { bootstrap: outboxBootstrap } = await startMock('outbox');
  const hook = await startRecordingServer({ status: 503 });
  hooks.push(hook);
  const base = kafkaConfig('1h', outboxBootstrap);
  const config = withHook({ ...base, kafka: { ...base.kafka, snapshot_interval: '1s' } }, hook,
    { initial_backoff: '50ms', max_backoff: '200ms' });
  for (const service of ['checkout', 'gateway']) assert.equal(fnv1aPartition(service, 2), 1, service);
  const [owner, survivor] = await startPair('outbox', config);
  const instances = [owner, survivor];

  const endS = Math.floor((await produceTo(outboxBootstrap, fixture, DRAIN_S) + DRAIN_S * 1000) / 1000);
  for (const s of instances) {
    await s.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1, { timeoutMs: 60_000 });
  }
  // Every group fired and resolved (none open), all of it queued, and the changelog holds every
  // queued notification.
  await pollUntil(async () => getJson(`${owner.webUrl}/api/v1/alerts`),
    (body) => body.groups.length === 0 && body.recent.length > 0, { timeoutMs: 30_000 });
  const queue = async (s) => (await s.scrape()).get('traceslo_notification_queue_length', { receiver: 'hook' });
  const written = async (s) => (await s.scrape()).get('traceslo_kafka_state_outbox_total', { outcome: 'written' });
  const [queued] = await pollUntil(async () => [await queue(owner), await written(owner)],
    ([q, out]) => q >= 4 && out === q, { timeoutMs: 30_000 });
  assert.equal(await queue(survivor), 0, 'the survivor has nothing of its own to send');
  assert.ok(hook.requests.length > 0 && hook.requests.every((r) => r.status === 503), 'nothing delivered yet');
  const idOf = (r) => r.headers['x-traceslo-notification-id'];
  const tried = new Set(hook.requests.map(idOf));
  assert.deepEqual(await owner.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });

  hook.status = 200;
  assert.equal(await survivor.pollMetric('traceslo_kafka_state_outbox_total', { outcome: 'handed_over' },
    (v) => v >= queued, { timeoutMs: 60_000 }), queued);
  const delivered = () => hook.requests.filter((r) => r.status === 200);
  await pollUntil(async () => new Set(delivered().map(idOf)).size, (n) => n >= queued, { timeoutMs: 30_000 });
  const summary = JSON.stringify(hook.requests.map((r) => [r.status, idOf(r), r.body?.groupKey, r.body?.status]));
  const ids = delivered().map(idOf);
  assert.equal(new Set(ids).size, queued, `the dead owner's queued notifications, no more: ${summary}`);
  assert.equal(ids.length, queued, `each delivered once: ${summary}`);
  for (const id of tried) assert.ok(ids.includes(id), `${id}, tried by the owner, delivered: ${summary}`);
  const last = new Map();
  for (const r of delivered()) last.set(r.body.groupKey, r.body.status);
  assert.ok(last.size >= 2 && [...last.values()].every((v) => v === 'resolved'),
    `every group's last notification resolves it: ${summary}`);
  // The survivor's snapshots mark them delivered (tombstones): a later owner is handed none.
  await survivor.pollMetric('traceslo_kafka_state_outbox_total', { outcome: 'finished' }, (v) => v >= queued,
    { timeoutMs: 30_000 });
  assert.deepEqual(await survivor.stop('SIGTERM'), { code: 0, signal: null });
});

// Alert episodes through the changelog: evaluations every 50 ms, so a takeover derives only the
// last 18 s (360 evaluations) again. The owner of the incident's partition pages both services
// and is killed (kill -9) 25 s after checkout's alert fired; the other instance takes the
// partition over. Derived over 18 s alone, checkout's alert would fire since the first derived
// evaluation: a new episode, and a second page under a new id. With the changelog's firing
// alerts it keeps the dead owner's episode: its page repeats under the same id (a receiver drops
// it), and every group resolves under the episode it was paged in.
test('a takeover later than the derivation window keeps the alert episodes of the dead owner', async () => {
  const { bootstrap: episodeBootstrap } = await startMock('episode');
  const hook = await startRecordingServer();
  hooks.push(hook);
  const base = kafkaConfig('1h', episodeBootstrap);
  const config = withHook({
    ...base,
    rules: { ...base.rules, evaluation_interval: '50ms' },
    kafka: { ...base.kafka, snapshot_interval: '1s' },
  }, hook);
  const cut = Date.parse('2025-06-01T12:01:45Z');
  const [first, second] = splitRecording('episode', cut);
  const produce = (input, drain, pace = []) => produceTo(episodeBootstrap, input, drain, pace);
  const [owner, survivor] = await startPair('episode', config);
  await produce(first, 0);
  const services = (requests) => new Set(requests.map((r) => r.body?.commonLabels?.service));
  await hook.waitFor((requests) => services(requests).has('checkout') && services(requests).has('gateway'),
    { timeoutMs: 60_000 });
  // The episodes are in the changelog (both services' page alerts, at least).
  await owner.pollMetric('traceslo_kafka_state_alerts_total', { outcome: 'written' }, (v) => v >= 2,
    { timeoutMs: 30_000 });
  const pagedByOwner = hook.requests.length;
  const firedAt = Math.min(...hook.requests.map((r) => Date.parse(r.body.alerts[0].startsAt)));
  assert.ok(cut - firedAt > 18_000, `the first episode began ${cut - firedAt} ms before the cut: older than the derivation`);
  assert.deepEqual(await owner.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });

  assert.ok(await survivor.pollMetric('traceslo_kafka_state_alerts_total', { outcome: 'handed_over' },
    (v) => v >= 2, { timeoutMs: 60_000 }) >= 2);
  // Paced, so stream time moves less than the 18 s an evaluation round catches up at most
  // (a longer jump skips evaluations, resolves included).
  const lastMs = await produce(second, DRAIN_S, ['--records-per-second', '4']);
  const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);
  await survivor.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1, { timeoutMs: 60_000 });
  const lastOf = () => {
    const last = new Map();
    for (const r of hook.requests) last.set(r.body.groupKey, r.body.status);
    return last;
  };
  await pollUntil(async () => lastOf(), (m) => m.size >= 2 && [...m.values()].every((v) => v === 'resolved'),
    { timeoutMs: 30_000 });
  const idOf = (r) => r.headers['x-traceslo-notification-id'];
  const transitionOf = (r) => JSON.stringify([r.body.groupKey, r.body.status,
    r.body.alerts.map((x) => [x.labels.slo, x.labels.severity, x.status, x.startsAt]).sort()]);
  const summary = JSON.stringify(hook.requests.map((r) => [idOf(r), transitionOf(r)]));
  // Checkout's groups (their episode began before the derived 18 s): the survivor's pages of
  // them repeat the owner's, under the owner's ids, so a receiver drops them. (Gateway's episode
  // began within the derivation, so it is derived anyway; the router's sequence within an
  // episode is not handed over, so the survivor's first page of a group may carry the id of the
  // owner's first page though the group's alerts changed since: docs/kafka.md.)
  const byOwner = hook.requests.slice(0, pagedByOwner);
  const bySurvivor = hook.requests.slice(pagedByOwner);
  const checkoutGroups = new Set(byOwner.filter((r) => r.body.commonLabels.service === 'checkout')
    .map((r) => r.body.groupKey));
  assert.ok(checkoutGroups.size >= 1, summary);
  for (const r of bySurvivor.filter((x) => checkoutGroups.has(x.body.groupKey) && x.body.status === 'firing')) {
    const ids = byOwner.filter((x) => x.body.groupKey === r.body.groupKey).map(idOf);
    assert.ok(ids.includes(idOf(r)), `${r.body.groupKey}: the survivor's page has the owner's id: ${summary}`);
  }
  assert.ok(bySurvivor.some((x) => checkoutGroups.has(x.body.groupKey) && x.body.status === 'firing'),
    `the survivor paged checkout's groups again (same ids): ${summary}`);
  // Every group the owner paged is resolved under the episode it paged (the same startsAt).
  for (const r of hook.requests.slice(0, pagedByOwner)) {
    const resolved = hook.requests.find((x) => x.body.groupKey === r.body.groupKey && x.body.status === 'resolved');
    assert.ok(resolved, `${r.body.groupKey} resolved: ${summary}`);
    assert.deepEqual(resolved.body.alerts.map((x) => x.startsAt).sort(), r.body.alerts.map((x) => x.startsAt).sort(),
      `${r.body.groupKey}: the same episode: ${summary}`);
  }
  assert.deepEqual(await survivor.stop('SIGTERM'), { code: 0, signal: null });
});
