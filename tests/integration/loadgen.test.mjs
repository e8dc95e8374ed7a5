// traceslo-loadgen against the real traceslo: over each protocol, the SLIs traceslo exports equal,
// exactly, what the generator's report says it should count (per (service, operation): requests
// and errors; per service: traces, partial traces, propagation breaks, error traces by role);
// the same with incidents; bad flags and failed deliveries are reported, never hidden.
//
// Every server runs with a short trace_idle_timeout and a 50 ms tick; the tests poll /metrics
// with a deadline and never sleep to wait for behaviour.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';

import { makeTempDir, pollUntil, runLoadgen, serverPool } from '../clients/lib.mjs';

const pool = serverPool();
after(() => pool.cleanupAll());

const FAST = { trace_idle_timeout: '500ms', trace_max_age: '2s', tick_interval: '50ms' };
const TOKEN = 'loadgen-integration-token';
const SERVICE_FIELDS = {
  traces: ['traceslo_traces_total', {}],
  partial_traces: ['traceslo_partial_traces_total', {}],
  propagation_breaks: ['traceslo_propagation_breaks_total', {}],
  error_traces_root: ['traceslo_error_traces_total', { role: 'root' }],
  error_traces_origin: ['traceslo_error_traces_total', { role: 'origin' }],
};

async function start() {
  return pool.start({ config: { pipeline: FAST, otlp: { auth: { bearer_tokens: [TOKEN] } } } });
}

// What the report says traceslo should export, in the shape observe() reads from /metrics.
function expectedFrom(report) {
  const operations = {};
  for (const [service, ops] of Object.entries(report.operations)) {
    for (const [operation, c] of Object.entries(ops)) {
      operations[`${service} ${operation}`] = { requests: c.requests, errors: c.errors };
    }
  }
  const services = {};
  for (const [service, c] of Object.entries(report.services)) {
    if (c.traces === 0) continue;  // never touched: traceslo has no series for it
    services[service] = Object.fromEntries(Object.keys(SERVICE_FIELDS).map((k) => [k, c[k]]));
  }
  return { operations, services };
}

// The same counters from a scrape: every (service, operation) series traceslo has, so a series
// the report does not know shows up in the diff.
function observe(m) {
  const operations = {};
  for (const s of m.series('traceslo_requests_total')) {
    const { service, operation } = s.labels;
    operations[`${service} ${operation}`] = {
      requests: s.value, errors: m.get('traceslo_request_errors_total', { service, operation }),
    };
  }
  const services = {};
  for (const s of m.series('traceslo_traces_total')) {
    const { service } = s.labels;
    services[service] = Object.fromEntries(Object.entries(SERVICE_FIELDS).map(
      ([k, [name, labels]]) => [k, m.get(name, { service, ...labels })]));
  }
  return { operations, services };
}

function deepEqual(a, b) {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

// Polls /metrics until the counters equal the report's, or until traceslo settled (no live
// trace, and traceslo_traces_total unchanged for over a second, twice the idle timeout), or the
// deadline passes; then asserts equality, so a failure shows the diff of the last scrape.
async function expectReportedCounts(server, report, { timeoutMs = 20_000 } = {}) {
  const expected = expectedFrom(report);
  let lastTotal = -1;
  let stableSince = Date.now();
  const settled = await pollUntil(async () => {
    const m = await server.scrape();
    const total = m.get('traceslo_traces_total');
    if (total !== lastTotal) {
      lastTotal = total;
      stableSince = Date.now();
    }
    return {
      counts: observe(m), live: m.get('traceslo_live_traces'), stableMs: Date.now() - stableSince, m,
    };
  }, (v) => deepEqual(v.counts, expected) || (v.live === 0 && v.stableMs > 1_000),
  { timeoutMs, intervalMs: 100 });
  assert.deepEqual(settled.counts, expected, 'traceslo\'s SLIs equal the loadgen report');
  assert.equal(settled.m.get('traceslo_late_spans_total'), 0, 'no late spans');
  assert.equal(settled.m.get('traceslo_traces_evicted_total'), 0, 'no evictions');
  return settled.m;
}

function assertDelivered(run) {
  assert.equal(run.code, 0, `exit code\n${run.stderr}`);
  assert.ok(run.report, `a JSON report on stdout\n${run.stdout}`);
  const r = run.report;
  assert.equal(r.exact, true);
  assert.equal(r.spans.failed, 0);
  assert.equal(r.spans.rejected, 0);
  assert.equal(r.spans.acknowledged, r.spans.sent);
  assert.equal(r.traces.acknowledged, r.traces.sent);
  assert.equal(r.requests.failed, 0);
  return r;
}

const PROTOCOLS = [
  { protocol: 'grpc', address: (s) => s.grpcAddress, transport: 'grpc', extra: [] },
  { protocol: 'http/protobuf', address: (s) => s.httpAddress, transport: 'http', extra: [] },
  { protocol: 'http/json', address: (s) => s.httpAddress, transport: 'http', extra: ['--gzip'] },
];

for (const [i, p] of PROTOCOLS.entries()) {
  test(`${p.protocol}: traceslo's SLIs equal the report exactly`, async () => {
    const server = await start();
    const run = await runLoadgen([
      '--endpoint', p.address(server), '--protocol', p.protocol, '--traces', '150', '--rate', '300',
      '--batch-size', '256', '--seed', String(100 + i), '--header', `Authorization=Bearer ${TOKEN}`,
      ...p.extra,
    ]);
    const report = assertDelivered(run);
    assert.equal(report.protocol, p.protocol);
    assert.equal(report.traces.generated, 150);
    assert.ok(report.spans.sent > 150 * 5, `spans sent: ${report.spans.sent}`);
    assert.match(run.stderr, /traceslo-loadgen: .* done/, 'a final progress line on stderr');
    const m = await expectReportedCounts(server, report);
    assert.equal(m.get('traceslo_spans_received_total', { transport: p.transport }),
      report.spans.acknowledged, 'every acknowledged span was received once');
  });
}

test('incidents: error bursts, a propagation break and a traffic drop, counted exactly', async () => {
  const server = await start();
  const dir = await makeTempDir('traceslo-loadgen-it-');
  const scenario = path.join(dir, 'scenario.yaml');
  await fsp.writeFile(scenario, [
    'description: payment fails and inventory loses its trace context',
    'incidents:',
    '  - type: error_burst',
    '    service: payment',
    '    ratio: 0.5',
    '    exception_type: CardDeclinedException',
    '    message: "card {int} declined after {int} ms"',
    '  - {type: propagation_break, service: inventory, ratio: 0.3}',
    '',
  ].join('\n'));
  const run = await runLoadgen([
    '--endpoint', server.grpcAddress, '--traces', '300', '--rate', '300', '--seed', '7',
    '--header', `authorization=Bearer ${TOKEN}`, '--scenario', scenario,
    '--incident', 'error_burst:service=email,ratio=0.3',
    '--incident', 'traffic_drop:ratio=0.2,start=200ms,duration=300ms',
    '--incident', 'latency_regression:service=database,factor=2',
  ]);
  const report = assertDelivered(run);
  assert.equal(report.incidents.length, 5);
  assert.equal(report.incidents[0].origin, `${scenario}:3:5`);
  assert.equal(report.incidents[3].type, 'traffic_drop');
  assert.ok(report.incidents[3].start_unix >= report.start_unix, 'window start in unix time');
  assert.ok(report.incidents[3].end_unix > report.incidents[3].start_unix, 'window end');
  assert.equal(report.incidents[3].traces, 90, 'traces scheduled in [200 ms, 500 ms) at 300/s');
  assert.ok(report.traces.dropped > 0 && report.traces.dropped < 90, `dropped ${report.traces.dropped}`);
  assert.equal(report.traces.sent + report.traces.dropped, 300);
  assert.ok(report.services.payment.error_traces_origin > 0, 'payment errors originate there');
  assert.ok(report.services.gateway.error_traces_root > 0, '... rooted at the gateway');
  assert.ok(report.services.email.error_traces_origin > 0, 'async consumer errors');
  assert.ok(report.services.inventory.propagation_breaks > 0, 'inventory broke propagation');
  assert.ok(report.services.gateway.partial_traces > 0, 'partial traces count everywhere');
  assert.ok(report.operations.payment['payment.Payment/Charge'].errors > 0);
  await expectReportedCounts(server, report);
  await fsp.rm(dir, { recursive: true, force: true });
});

test('bad flags: one line on stderr, exit code 2, no traffic', async () => {
  const cases = [
    [['--rate', 'fast'], 'traceslo-loadgen: --rate must be a number of traces per second, greater ' +
      'than 0 and at most 1000000, got \'fast\''],
    [['--protocol', 'http'], 'traceslo-loadgen: --protocol must be grpc, http/protobuf or http/json, ' +
      'got \'http\''],
    [['--incident', 'error_burst:service=payment,ratio=2'], 'traceslo-loadgen: --incident ' +
      '\'error_burst:service=payment,ratio=2\': ratio must be between 0 and 1, got \'2\''],
    [['--nope'], 'traceslo-loadgen: The following argument was not expected: --nope (see --help)'],
  ];
  for (const [args, message] of cases) {
    const run = await runLoadgen(args, { timeoutMs: 15_000 });
    assert.equal(run.code, 2, `exit code of ${args.join(' ')}`);
    assert.equal(run.stderr, `${message}\n`);
    assert.equal(run.stdout, '');
  }
  const dir = await makeTempDir('traceslo-loadgen-it-');
  const scenario = path.join(dir, 'bad.yaml');
  await fsp.writeFile(scenario, 'incidents:\n  - type: error_burst\n    service: payment\n    ratio: 1.5\n');
  const run = await runLoadgen(['--scenario', scenario]);
  assert.equal(run.code, 2);
  assert.equal(run.stderr,
    `traceslo-loadgen: --scenario: ${scenario}:4:12: ratio must be between 0 and 1, got '1.5'\n`);
  await fsp.rm(dir, { recursive: true, force: true });
});

// A port nobody listens on.
async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('failed deliveries are counted and exit 1: refused connections, a wrong token', async () => {
  const port = await closedPort();
  const refused = await runLoadgen([
    '--endpoint', `127.0.0.1:${port}`, '--protocol', 'http/protobuf', '--traces', '3',
    '--rate', '100', '--max-retry-time', '500ms', '--quiet', '--seed', '1',
  ]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(refused.report.exact, false);
  assert.equal(refused.report.spans.failed, refused.report.spans.sent);
  assert.equal(refused.report.spans.acknowledged, 0);
  assert.ok(refused.report.requests.failures.network >= 2, 'the first try and its retries');
  assert.match(refused.stderr, /export failed \(network\): connect 127\.0\.0\.1:\d+: Connection refused/);

  const server = await start();
  for (const [protocol, address, reason] of [
    ['grpc', server.grpcAddress, 'grpc_UNAUTHENTICATED'],
    ['http/json', server.httpAddress, 'http_401'],
  ]) {
    const run = await runLoadgen([
      '--endpoint', address, '--protocol', protocol, '--traces', '20', '--rate', '200',
      '--batch-size', '100', '--header', 'authorization=Bearer wrong', '--quiet', '--seed', '2',
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.report.spans.acknowledged, 0);
    assert.equal(run.report.spans.failed, run.report.spans.sent);
    assert.equal(run.report.requests.retries, 0, 'a refusal for good is not retried');
    assert.equal(run.report.requests.failures[reason], run.report.requests.sent, protocol);
  }
  const m = await server.scrape();
  assert.equal(m.get('traceslo_spans_received_total'), 0);
});
