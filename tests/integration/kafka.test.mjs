// Kafka mode against librdkafka's mock cluster (tests/tools: traceslo-kafka-mock, a process of
// its own on loopback). The recorded incident of data/replay goes to otlp_spans as the
// Collector's Kafka exporter writes it (traceslo-kafka-produce: one record per resource, scope
// and trace id, keyed by the trace id, FNV-1a partitioner, the request's time as the record's
// timestamp, then an empty record per partition `DRAIN_S` later). One `traceslo serve` in Kafka
// mode must then count what single-node mode counts on the same recording (`traceslo replay`, the
// same SLI engine on recorded time) and fire and resolve the same alerts at the same times; the
// per-operation totals must equal the counts taken from the recording's lines here. A restart
// must neither lose nor double anything.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  getJson, makeTempDir, pollUntil, repoRoot, runBinary, runTraceslo, startTraceslo, waitFor,
} from '../clients/lib.mjs';

const dataDir = path.join(repoRoot, 'tests/integration/data/replay');
const fixture = path.join(dataDir, 'incident.jsonl');
const rulesGlob = path.join(dataDir, 'rules', '*.yaml');
const DRAIN_S = 120;
const EVALUATION_MS = 10_000;

const mockBin = process.env.TRACESLO_KAFKA_MOCK_BIN;
const produceBin = process.env.TRACESLO_KAFKA_PRODUCE_BIN;

let scratch;
let bootstrap;
const servers = [];

const mocks = [];

// A mock cluster process of its own (traceslo-kafka-mock) with the two topics; its bootstrap.
async function startMock(name) {
  const bootstrapFile = path.join(scratch, `${name}.bootstrap`);
  const child = spawn(mockBin, ['--brokers', '1', '--topic', 'otlp_spans:4', '--topic', 'traceslo_deltas:2',
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
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

// Per (service, operation): entry spans and their errors, counted from the recording's lines with
// the definitions of shared/design.md (SERVER or CONSUMER spans, or a parent of another service
// or none; an error is status ERROR or an HTTP status >= 500 on a span with status UNSET).
function countEntrySpans(file) {
  const spans = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    for (const rs of JSON.parse(line).resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === 'service.name').value.stringValue;
      for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ service, span });
    }
  }
  const serviceOf = new Map(spans.map(({ service, span }) => [`${span.traceId}/${span.spanId}`, service]));
  const counts = {};
  for (const { service, span } of spans) {
    const parent = span.parentSpanId ? serviceOf.get(`${span.traceId}/${span.parentSpanId}`) : undefined;
    const entry = span.kind === 2 || span.kind === 5 || parent === undefined || parent !== service;
    if (!entry) continue;
    const status = (span.attributes ?? []).find((a) =>
      a.key === 'http.response.status_code' || a.key === 'http.status_code');
    const code = span.status?.code ?? 0;
    const httpStatus = status ? Number(status.value.intValue ?? status.value.stringValue) : 0;
    const error = code === 2 || (code === 0 && httpStatus >= 500);
    const key = `${service}|${span.name}`;
    counts[key] ??= { requests: 0, errors: 0 };
    counts[key].requests += 1;
    if (error) counts[key].errors += 1;
  }
  return counts;
}

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

  const produced = await runBinary(produceBin, ['--bootstrap', bootstrap, '--topic', 'otlp_spans',
    '--input', fixture, '--drain-seconds', String(DRAIN_S)], { timeoutMs: 60_000 });
  assert.equal(produced.code, 0, produced.stderr);
  const lastMs = Number(/last_ms=(\d+)/.exec(produced.stdout)[1]);
  const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);

  const dir = path.join(scratch, 'instance');
  fs.mkdirSync(dir);
  let server = await startTraceslo({ config: kafkaConfig('1h'), dir, otlp: false, timeoutMs: 30_000 });
  servers.push(server);
  // Everything consumed and final through the drain record's epoch, less allowed_lateness.
  await server.pollMetric('traceslo_kafka_final_through_seconds', {}, (v) => v >= endS - 1,
    { timeoutMs: 60_000 });

  // Per-operation totals: the recording's own counts, as single-node mode's.
  const counts = countEntrySpans(fixture);
  const metrics = await server.scrape();
  for (const [key, want] of Object.entries(counts)) {
    const [service, operation] = key.split('|');
    assert.equal(metrics.get('traceslo_requests_total', { service, operation }), want.requests, key);
    assert.equal(metrics.get('traceslo_request_errors_total', { service, operation }), want.errors, key);
  }
  assert.equal(metrics.get('traceslo_kafka_spans_total', { outcome: 'ok' }), single.summary.spans);
  assert.equal(metrics.get('traceslo_kafka_records_total', { stage: '2', outcome: 'refused_config' }), 0);

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
  // The same transitions; each at the same evaluation as single-node mode's or one before it.
  // Kafka mode evaluates time t once every source partition is final through t, and by then the
  // SLI store may hold spans that ended after t in t's own 10 s bucket (a catch-up applies many
  // epochs at once); single-node mode evaluates t live, before those spans arrive.
  const key = ([, ...rest]) => rest.join('|');
  assert.deepEqual(got.map(key).sort(), want.map(key).sort(), JSON.stringify({ got, want }));
  for (const [at, ...rest] of got) {
    const match = want.find((w) => key(w) === rest.join('|'));
    const delta = Date.parse(match[0]) - Date.parse(at);
    assert.ok(delta === 0 || delta === EVALUATION_MS, `${rest.join(' ')}: ${at} vs ${match[0]}`);
  }
  assert.deepEqual(await slosOf(server), singleSlos);

  // A restart: stage 2 restores from its partition files, stage 1 resumes from its commits.
  assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
  server = await startTraceslo({ config: kafkaConfig('1s'), dir, otlp: false, timeoutMs: 30_000 });
  servers.push(server);
  const restartedAt = Date.now();
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
  for (const [key, want] of Object.entries(countEntrySpans(fixture))) {
    const [service, operation] = key.split('|');
    assert.equal(metrics.get('traceslo_requests_total', { service, operation }), want.requests, key);
    assert.equal(metrics.get('traceslo_request_errors_total', { service, operation }), want.errors, key);
  }
  assert.equal(metrics.get('traceslo_kafka_delivery_errors_total'), 0);
  assert.equal(metrics.get('traceslo_kafka_records_total', { stage: '2', outcome: 'duplicate' }), 0);
  assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null });
});
