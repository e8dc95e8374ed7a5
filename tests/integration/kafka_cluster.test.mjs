// Kafka mode with several instances under load (shared/scaleout.md, "Layer 3": several
// `traceslo serve` processes over loopback against one traceslo-kafka-mock process). A recording
// of the loadgen shop (tens of thousands of spans, an error burst and a propagation break) flows
// into otlp_spans at a steady pace while the cluster changes under it: a second and a third
// instance join, one is killed with SIGKILL, one is stopped (SIGSTOP) for longer than the
// session timeout and continued (a zombie that still believes it owns its partitions), one stops
// gracefully (SIGTERM) and a fresh one joins. Stream time follows the records only
// (idle_partition_timeout 1h), so every epoch is a function of its partition's records and the
// design promises exact totals: per (service, operation) the requests and errors counted from
// the recording's lines, and per service the completed and partial traces, each read from the
// instance that owns the service's traceslo_deltas partition (FNV-1a of the service name,
// computed in kafka_counts.mjs).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, test } from 'node:test';

import { makeTempDir, repoRoot, runLoadgen, startTraceslo, waitFor } from '../clients/lib.mjs';

import {
  countEntrySpans, countRecords, countTraces, fnv1aPartition, readSpans,
} from './kafka_counts.mjs';

const rulesGlob = path.join(repoRoot, 'tests/integration/data/replay/rules', '*.yaml');
const SPANS_PARTITIONS = 6;
const DELTAS_PARTITIONS = 3;
const DRAIN_S = 120;
// How long the paced production runs: long enough that the crash below happens while records
// flow (the crashed instance's partitions then hold open traces, which the new owners replay),
// and about as long as the changes of membership take, so it does not lengthen the test.
const PRODUCTION_S = 60;
// The session timeout of every member, and how long the zombie is stopped at least: the fault's
// length, not a wait for behaviour.
const SESSION_TIMEOUT_MS = 6_000;
const STOPPED_MS = 9_000;

const mockBin = process.env.TRACESLO_KAFKA_MOCK_BIN;
const produceBin = process.env.TRACESLO_KAFKA_PRODUCE_BIN;
const keep = !!process.env.TRACESLO_IT_KEEP;

let scratch;
let bootstrap;
let corpus;
const children = [];  // the mock cluster and the producer
const servers = [];  // every traceslo started, as [name, server]
const live = new Map();  // name → server: the instances that are members now

// A child process of ours with its stdout and stderr collected; `done` resolves at its exit.
function spawnChild(bin, args) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { out.stdout += d; });
  child.stderr.on('data', (d) => { out.stderr += d; });
  out.done = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ ...out, code, signal }));
  });
  out.child = child;
  return out;
}

function kafkaConfig() {
  return {
    rules: { files: [rulesGlob] },
    kafka: {
      enabled: true,
      brokers: [bootstrap.split(',')[0]],
      encoding: 'otlp_json',
      allowed_lateness: '1s',
      idle_partition_timeout: '1h',  // stream time moves with the records only
      librdkafka: { 'session.timeout.ms': String(SESSION_TIMEOUT_MS), 'heartbeat.interval.ms': '500' },
    },
  };
}

async function startInstance(name) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir);
  const server = await startTraceslo({ config: kafkaConfig(), dir, otlp: false, timeoutMs: 30_000 });
  servers.push([name, server]);
  live.set(name, server);
  return server;
}

before(async () => {
  scratch = await makeTempDir('traceslo-it-kafka-cluster-');
  const bootstrapFile = path.join(scratch, 'mock.bootstrap');
  const mock = spawnChild(mockBin, ['--brokers', '1', '--topic', `otlp_spans:${SPANS_PARTITIONS}`,
    '--topic', `traceslo_deltas:${DELTAS_PARTITIONS}`, '--topic', `traceslo_state:${DELTAS_PARTITIONS}`,
    '--bootstrap-file', bootstrapFile]);
  await waitFor(() => fs.existsSync(bootstrapFile) && fs.readFileSync(bootstrapFile, 'utf8').trim() !== '',
    { timeoutMs: 10_000, what: 'the mock cluster' });
  bootstrap = fs.readFileSync(bootstrapFile, 'utf8').trim().replace(/^bootstrap=/, '');
  assert.equal(mock.child.exitCode, null, mock.stderr);

  // 90 s of the shop at 40 traces per second on simulated time (written at once, the same bytes
  // every run): half of checkout's requests fail from 30 s to 60 s, and from 20 s to 70 s 30 %
  // of inventory's entry spans lose their parent (partial traces).
  corpus = path.join(scratch, 'corpus.jsonl');
  const recorded = await runLoadgen(['--record', corpus, '--rate', '40', '--duration', '90s',
    '--spans-per-trace', '9', '--batch-size', '64', '--seed', '20251203',
    '--start-time', '2025-06-01T12:00:00Z',
    '--incident', 'error_burst:service=checkout,start=30s,duration=30s,ratio=0.5',
    '--incident', 'propagation_break:service=inventory,start=20s,duration=50s,ratio=0.3',
    '--quiet', '--report', '/dev/null'], { timeoutMs: 60_000 });
  assert.equal(recorded.code, 0, recorded.stderr);
});

after(async () => {
  for (const [name, server] of servers) {
    server.child.kill('SIGCONT');  // a stopped one, if the test failed meanwhile
    if (keep) fs.writeFileSync(path.join(scratch, `${name}.log`), `${server.stderr()}\n`);
    await server.cleanup();
  }
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  if (scratch && !keep) fs.rmSync(scratch, { recursive: true, force: true });
});

const sum = (values) => values.reduce((a, b) => a + b, 0);

// Who owns what, from every live instance's /metrics.
async function assignment() {
  const scrapes = await Promise.all([...live].map(async ([name, s]) => [name, await s.scrape()]));
  const view = { stage1: {}, stage2: {}, owners: {} };
  for (const [name, m] of scrapes) {
    view.stage1[name] = m.get('traceslo_kafka_owned_partitions', { stage: '1' });
    view.stage2[name] = m.get('traceslo_kafka_owned_partitions', { stage: '2' });
    for (const s of m.series('traceslo_kafka_deltas_partition_owned')) {
      if (s.value === 1) (view.owners[s.labels.partition] ??= []).push(name);
    }
  }
  view.owners = Object.fromEntries(Object.entries(view.owners).sort(([a], [b]) => Number(a) - Number(b)));
  return view;
}

// Complete: every otlp_spans partition owned once over the live instances, every deltas
// partition by exactly one of them (and by the gauge of the one whose count says so); balanced
// (cooperative-sticky spreads partitions evenly over members of one subscription), so every live
// instance has joined and taken its share.
function complete(view) {
  const s1 = Object.values(view.stage1);
  const s2 = Object.values(view.stage2);
  const balanced = (counts) => Math.max(...counts) - Math.min(...counts) <= 1;
  const owners = Object.entries(view.owners);
  return sum(s1) === SPANS_PARTITIONS && sum(s2) === DELTAS_PARTITIONS && balanced(s1) && balanced(s2) &&
    owners.length === DELTAS_PARTITIONS && owners.every(([p, names]) =>
      Number(p) >= 0 && Number(p) < DELTAS_PARTITIONS && names.length === 1) &&
    Object.entries(view.stage2).every(([name, n]) => owners.filter(([, names]) => names[0] === name).length === n);
}

// Polls until the assignment over the live instances is complete and the same on two
// consecutive polls.
async function waitStable(what) {
  let previous = '';
  let last;
  try {
    return await waitFor(async () => {
      last = await assignment();
      const key = complete(last) ? JSON.stringify(last) : '';
      const stable = key !== '' && key === previous;
      previous = key;
      return stable && last;
    }, { timeoutMs: 60_000, intervalMs: 500, what: `a stable, complete assignment ${what}` });
  } catch (error) {
    error.message += `; last assignment: ${JSON.stringify(last)}`;
    throw error;
  }
}

async function sumOf(names, metric, labels = {}) {
  const scrapes = await Promise.all(names.map((name) => live.get(name).scrape()));
  return sum(scrapes.map((m) => m.get(metric, labels)));
}

test('instances join, crash, stall and leave under load, and every count stays exact', async (t) => {
  const begun = Date.now();
  const since = () => `${((Date.now() - begun) / 1000).toFixed(1)} s`;
  const spans = readSpans(corpus);
  const entries = countEntrySpans(spans);
  const traces = countTraces(spans);
  const records = countRecords(corpus);
  assert.ok(spans.length >= 20_000, `${spans.length} spans in the recording`);
  assert.ok(Object.values(traces).some((c) => c.partial > 0), 'the recording has partial traces');
  assert.ok(Object.values(entries).some((c) => c.errors > 0), 'the recording has errors');
  assert.equal(fnv1aPartition('kafka', 2 ** 31 - 1), 0x0d33c4e1 % (2 ** 31 - 1),
    'FNV-1a golden vector (librdkafka rdfnv1a.c: "kafka" → 0x0d33c4e1)');
  const services = Object.keys(traces).sort();
  const partitionOf = Object.fromEntries(services.map((s) => [s, fnv1aPartition(s, DELTAS_PARTITIONS)]));
  assert.equal(new Set(Object.values(partitionOf)).size, DELTAS_PARTITIONS,
    `every deltas partition carries a service: ${JSON.stringify(partitionOf)}`);

  // 1. One instance, then the recording at a steady pace.
  await startInstance('a');
  const perSecond = Math.ceil(records / PRODUCTION_S);
  const producer = spawnChild(produceBin, ['--bootstrap', bootstrap, '--topic', 'otlp_spans',
    '--input', corpus, '--drain-seconds', String(DRAIN_S), '--records-per-second', String(perSecond)]);
  let produced = null;
  producer.done.then((r) => { produced = r; });
  t.diagnostic(`${spans.length} spans, ${records} records at ${perSecond}/s`);

  // 2. Scale 1 → 2 → 3 while records flow.
  await startInstance('b');
  await waitStable('over a and b');
  t.diagnostic(`${since()}: a and b share the partitions`);
  await startInstance('c');
  let view = await waitStable('over a, b and c');
  t.diagnostic(`${since()}: a, b and c share the partitions ${JSON.stringify(view)}`);

  // 3. SIGKILL one instance that owns otlp_spans partitions, while records still flow: the new
  // owners of its partitions resume from its last commit and replay the traces open there.
  assert.ok(produced === null, `the recording is still being produced when b is killed (${since()})`);
  assert.ok(view.stage1.b > 0);
  const survivors = ['a', 'c'];
  const replayedBefore = await sumOf(survivors, 'traceslo_kafka_replayed_spans_total');
  const killed = live.get('b');
  live.delete('b');
  killed.child.kill('SIGKILL');
  assert.deepEqual(await killed.exit, { code: null, signal: 'SIGKILL' });
  view = await waitStable('over a and c after b was killed');
  t.diagnostic(`${since()}: b killed; ${JSON.stringify(view)}`);
  const replayedAfterCrash = await waitFor(async () => {
    const replayed = await sumOf(survivors, 'traceslo_kafka_replayed_spans_total');
    return replayed > replayedBefore && replayed;
  }, { timeoutMs: 30_000, what: "the new owners of b's partitions replaying from its last commit" });
  t.diagnostic(`replayed spans on a and c: ${replayedBefore} before the crash, ${replayedAfterCrash} after`);

  // 4. A zombie: c stopped for longer than the session timeout, and until a owns everything (the
  // group has expelled c), then continued. It still believes it owns its partitions until its
  // next heartbeat fails; what it publishes meanwhile stage 2 drops as duplicates.
  assert.ok(view.stage1.c > 0 && view.stage2.c > 0, JSON.stringify(view));
  const zombie = live.get('c');
  const lostBefore = {
    stage1: (await zombie.scrape()).get('traceslo_kafka_rebalances_total', { stage: '1', event: 'lost' }),
    stage2: (await zombie.scrape()).get('traceslo_kafka_rebalances_total', { stage: '2', event: 'lost' }),
  };
  zombie.child.kill('SIGSTOP');
  const stoppedAt = Date.now();
  live.delete('c');
  await delay(STOPPED_MS);
  await waitStable('over a while c is stopped');
  zombie.child.kill('SIGCONT');
  live.set('c', zombie);
  t.diagnostic(`${since()}: c stopped for ${Date.now() - stoppedAt} ms`);
  view = await waitStable('over a and c after c continued');
  t.diagnostic(`${since()}: c back; ${JSON.stringify(view)}`);
  const zombieMetrics = await zombie.scrape();
  assert.ok(zombieMetrics.get('traceslo_kafka_rebalances_total', { stage: '1', event: 'lost' }) > lostBefore.stage1,
    'c lost its otlp_spans partitions');
  assert.ok(zombieMetrics.get('traceslo_kafka_rebalances_total', { stage: '2', event: 'lost' }) > lostBefore.stage2,
    'c lost its traceslo_deltas partitions');

  // 5. A graceful stop, and a fresh instance.
  const leaving = live.get('a');
  live.delete('a');
  assert.deepEqual(await leaving.stop('SIGTERM'), { code: 0, signal: null }, 'a graceful stop exits 0');
  await startInstance('d');
  view = await waitStable('over c and d');
  t.diagnostic(`${since()}: a stopped, d joined; ${JSON.stringify(view)}`);

  // 6. Everything produced, and every deltas partition's owner final through the drain records'
  // epoch, less allowed_lateness.
  const done = await producer.done;
  assert.equal(done.code, 0, done.stderr);
  const lastMs = Number(/last_ms=(\d+)/.exec(done.stdout)[1]);
  const endS = Math.floor((lastMs + DRAIN_S * 1000) / 1000);
  await waitFor(async () => {
    for (const server of live.values()) {
      const m = await server.scrape();
      if (m.get('traceslo_kafka_owned_partitions', { stage: '2' }) === 0) continue;
      if (!(m.get('traceslo_kafka_final_through_seconds') >= endS - 1)) return false;
    }
    return true;
  }, { timeoutMs: 60_000, intervalMs: 250, what: `every owner final through ${endS - 1}` });
  t.diagnostic(`${since()}: final through ${endS - 1}`);

  // 7. Each service's counts on the owner of its deltas partition: exactly the recording's.
  view = await assignment();
  assert.ok(complete(view), JSON.stringify(view));
  const scrapes = new Map(await Promise.all([...live].map(async ([name, s]) => [name, await s.scrape()])));
  const ownerOf = (service) => {
    const names = view.owners[partitionOf[service]];
    assert.equal(names?.length, 1, `one owner of partition ${partitionOf[service]}: ${JSON.stringify(view)}`);
    return names[0];
  };
  for (const [key, want] of Object.entries(entries)) {
    const [service, operation] = key.split('|');
    const m = scrapes.get(ownerOf(service));
    assert.equal(m.get('traceslo_requests_total', { service, operation }), want.requests,
      `requests of ${key} on ${ownerOf(service)}`);
    assert.equal(m.get('traceslo_request_errors_total', { service, operation }), want.errors,
      `errors of ${key} on ${ownerOf(service)}`);
  }
  for (const [service, want] of Object.entries(traces)) {
    const m = scrapes.get(ownerOf(service));
    assert.equal(m.get('traceslo_traces_total', { service }), want.traces, `traces of ${service}`);
    assert.equal(m.get('traceslo_partial_traces_total', { service }), want.partial,
      `partial traces of ${service}`);
  }
  // d only ever owned the deltas partitions it owns now (it never gave one up): it has seen the
  // services of those partitions and no other, so the partition function here is the product's.
  const fresh = scrapes.get('d');
  if (fresh.get('traceslo_kafka_rebalances_total', { stage: '2', event: 'revoked' }) === 0 &&
      fresh.get('traceslo_kafka_rebalances_total', { stage: '2', event: 'lost' }) === 0) {
    const owned = new Set(fresh.series('traceslo_kafka_deltas_partition_owned').map((s) => Number(s.labels.partition)));
    const seen = [...new Set(fresh.series('traceslo_requests_total').map((s) => s.labels.service))].sort();
    assert.deepEqual(seen, services.filter((s) => owned.has(partitionOf[s])), `services on d, owning ${[...owned]}`);
  }

  // The faults happened and were absorbed: moved partitions were replayed from their commits,
  // their already published epochs suppressed or dropped as duplicates; nothing refused.
  const total = (metric, labels) => sum([...scrapes.values()].map((m) => m.get(metric, labels)));
  const figures = {
    replayed: total('traceslo_kafka_replayed_spans_total'),
    suppressed: total('traceslo_kafka_epochs_total', { outcome: 'suppressed' }),
    duplicates: total('traceslo_kafka_records_total', { stage: '2', outcome: 'duplicate' }),
    assigned1: total('traceslo_kafka_rebalances_total', { stage: '1', event: 'assigned' }),
    revoked1: total('traceslo_kafka_rebalances_total', { stage: '1', event: 'revoked' }),
  };
  t.diagnostic(`on c and d: ${JSON.stringify(figures)}; ${since()} in all`);
  assert.ok(figures.suppressed + figures.duplicates > 0, JSON.stringify(figures));
  for (const [name, m] of scrapes) {
    assert.ok(m.get('traceslo_kafka_rebalances_total', { stage: '1', event: 'assigned' }) > 0, name);
    assert.equal(m.get('traceslo_kafka_records_total', { stage: '2', outcome: 'refused_config' }), 0, name);
    assert.equal(m.get('traceslo_kafka_records_total', { stage: '2', outcome: 'refused_invalid' }), 0, name);
    assert.equal(m.get('traceslo_kafka_delivery_errors_total'), 0, name);
    assert.equal(m.get('traceslo_kafka_clamped_timestamps_total'), 0, name);
  }
  for (const [name, server] of live) {
    assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, `${name} stops gracefully`);
  }
});
