// Authentication and transport security on both OTLP ports: bearer tokens (inline and from a
// file), TLS with the real SDK exporters, and mTLS (no client certificate, or one from another
// CA, is refused).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  EXPORTERS, clientsDir, encodeTracesProto, grpc, grpcExport, makeSpans, makeTempDir, makeTestCerts,
  postTraces, sendSpansWithSdk, serverPool,
} from '../clients/lib.mjs';

// Distinctive so a leak into the log is unambiguous.
const TOKEN_A = 'tok-A-3f9c2e71d4b84a0f9e6b';
const TOKEN_B = 'tok-B-8a41d07c55e2493bb1c0';
const TOKEN_FILE = 'tok-F-c2d9b7e4016f4a3c8d55';
const WRONG = 'tok-WRONG-5e0f1a2b3c4d5e6f7a8b';

let scratch;
let certs;
const pool = serverPool();
const start = (opts) => pool.start(opts);
before(async () => {
  scratch = await makeTempDir('traceslo-it-security-');
  certs = makeTestCerts(scratch);
});
after(async () => {
  await pool.cleanupAll();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});
const body = (n = 1) => encodeTracesProto([{ service: 'security', spans: makeSpans(n) }]);

// Polls until the metric moved by `delta` since `m0`; returns the delta seen.
async function deltaOf(s, m0, name, labels, delta) {
  const base = m0.get(name, labels);
  return (await s.pollMetric(name, labels, (v) => v - base >= delta, { timeoutMs: delta === 0 ? 0 : 10_000 })) - base;
}

// Runs send_spans.mjs as a human would; resolves {code, summary, stderr}.
function sendSpansCli(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(clientsDir, 'send_spans.mjs'), ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let summary = null;
      try { summary = JSON.parse(stdout.trim().split('\n').at(-1)); } catch { /* left null */ }
      resolve({ code, summary, stdout, stderr });
    });
  });
}

test('bearer tokens: both configured tokens are accepted, a wrong or missing one is refused', async () => {
  const s = await start({ config: { otlp: { auth: { bearer_tokens: [TOKEN_A, TOKEN_B] } } }, logLevel: 'debug' });
  const m0 = await s.scrape();

  for (const [token, want] of [[undefined, 401], [WRONG, 401], [TOKEN_A, 200], [TOKEN_B, 200]]) {
    const r = await postTraces(s.tracesUrl, body(), { token });
    assert.equal(r.status, want, `HTTP with token ${token}`);
  }
  // Not the Bearer scheme at all.
  const basic = await postTraces(s.tracesUrl, body(), { headers: { Authorization: `Basic ${TOKEN_A}` } });
  assert.equal(basic.status, 401, 'Authorization: Basic <token>');

  for (const [token, want] of [[undefined, 'UNAUTHENTICATED'], [WRONG, 'UNAUTHENTICATED'], [TOKEN_A, 'OK'], [TOKEN_B, 'OK']]) {
    const g = await grpcExport(s.grpcAddress, body(), { token });
    assert.equal(g.codeName, want, `gRPC with token ${token}: ${g.details}`);
  }

  assert.equal(await deltaOf(s, m0, 'traceslo_otlp_requests_total', { transport: 'http', code: '401' }, 3), 3);
  assert.equal(await deltaOf(s, m0, 'traceslo_otlp_requests_total', { transport: 'grpc', code: 'UNAUTHENTICATED' }, 2), 2);
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', { transport: 'http' }, 2), 2);
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', { transport: 'grpc' }, 2), 2);

  // The real exporters with a token (in-process, and through the send_spans CLI).
  const m1 = await s.scrape();
  for (const exporter of EXPORTERS) {
    const summary = await sendSpansWithSdk({
      exporter, endpoint: exporter === 'grpc' ? s.grpcUrl : s.tracesUrl, spans: 100, token: TOKEN_B,
    });
    assert.equal(summary.exports_failed, 0, `${exporter}: ${summary.errors}`);
    assert.equal(summary.spans_exported, 100);
  }
  const cli = await sendSpansCli(['--exporter', 'proto', '--endpoint', s.tracesUrl, '--spans', '50', '--token', TOKEN_A, '--gzip']);
  assert.equal(cli.code, 0, `send_spans.mjs: ${cli.stdout}${cli.stderr}`);
  assert.equal(cli.summary?.spans_sent, 50);
  assert.equal(await deltaOf(s, m1, 'traceslo_spans_received_total', { transport: 'http' }, 250), 250);
  assert.equal(await deltaOf(s, m1, 'traceslo_spans_received_total', { transport: 'grpc' }, 100), 100);

  // A wrong token through the SDK: every export fails, nothing is counted as received.
  const m2 = await s.scrape();
  for (const exporter of EXPORTERS) {
    const summary = await sendSpansWithSdk({
      exporter, endpoint: exporter === 'grpc' ? s.grpcUrl : s.tracesUrl, spans: 10, token: WRONG, timeoutMillis: 3_000,
    });
    assert.equal(summary.exports_ok, 0, `${exporter} with a wrong token`);
    assert.ok(summary.exports_failed > 0);
  }
  assert.equal(await deltaOf(s, m2, 'traceslo_spans_received_total', {}, 0), 0);

  await s.stop('SIGTERM');
  const log = s.stderr();
  for (const secret of [TOKEN_A, TOKEN_B, WRONG]) {
    assert.ok(!log.includes(secret), `the token ${secret} appears in stderr:\n${log}`);
  }
});

test('bearer_tokens_file: tokens are read from the file (comments and blank lines ignored)', async () => {
  const file = path.join(scratch, 'tokens');
  fs.writeFileSync(file, `# OTLP tokens, one a line\n\n${TOKEN_FILE}\n`, { mode: 0o600 });
  const s = await start({ config: { otlp: { auth: { bearer_tokens_file: file } } }, logLevel: 'debug' });
  const m0 = await s.scrape();
  assert.equal((await postTraces(s.tracesUrl, body(), { token: TOKEN_FILE })).status, 200);
  assert.equal((await postTraces(s.tracesUrl, body(), { token: TOKEN_A })).status, 401);
  assert.equal((await postTraces(s.tracesUrl, body(), { token: '# OTLP tokens, one a line' })).status, 401,
    'a comment line is not a token');
  assert.equal((await grpcExport(s.grpcAddress, body(), { token: TOKEN_FILE })).codeName, 'OK');
  assert.equal((await grpcExport(s.grpcAddress, body())).codeName, 'UNAUTHENTICATED');
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', {}, 2), 2);
  await s.stop('SIGTERM');
  assert.ok(!s.stderr().includes(TOKEN_FILE), 'the token from the file appears in stderr');
});

test('TLS: the SDK exporters deliver over TLS; plain text is refused', async () => {
  const s = await start({
    config: { otlp: { tls: { cert_file: certs.serverCertFile, key_file: certs.serverKeyFile } } },
    tls: { ca: certs.caCert },
  });
  assert.equal(s.scheme, 'https');
  const m0 = await s.scrape();
  for (const exporter of EXPORTERS) {
    const summary = await sendSpansWithSdk({
      exporter, endpoint: exporter === 'grpc' ? s.grpcUrl : s.tracesUrl, spans: 100, tls: { ca: certs.caCert },
    });
    assert.equal(summary.exports_failed, 0, `${exporter} over TLS: ${summary.errors}`);
    assert.equal(summary.spans_exported, 100);
  }
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', { transport: 'http' }, 200), 200);
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', { transport: 'grpc' }, 100), 100);

  // Plain text to a TLS port.
  const plain = await postTraces(`http://${s.httpAddress}/v1/traces`, body(), { timeoutMs: 5_000 })
    .then((r) => r.status, (e) => e.code ?? e.message);
  assert.notEqual(plain, 200, 'plain HTTP to the TLS port');
  const g = await grpcExport(s.grpcAddress, body(), { timeoutMs: 5_000 });
  assert.notEqual(g.codeName, 'OK', 'plain-text gRPC to the TLS port');
  // A client that does not trust the server's CA.
  const untrusted = await postTraces(s.tracesUrl, body(), { ca: certs.rogueCaCert, timeoutMs: 5_000 })
    .then((r) => r.status, (e) => e.code ?? e.message);
  assert.notEqual(untrusted, 200);
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', {}, 300), 300, 'refused ones not counted');
});

test('mTLS: a client certificate signed by client_ca_file is required', async () => {
  const s = await start({
    config: {
      otlp: {
        tls: {
          cert_file: certs.serverCertFile, key_file: certs.serverKeyFile, client_ca_file: certs.caCertFile,
        },
      },
    },
    tls: { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey },
  });
  const m0 = await s.scrape();
  const httpStatus = (opts) => postTraces(s.tracesUrl, body(), { timeoutMs: 5_000, ...opts })
    .then((r) => r.status, (e) => e.code ?? e.message);
  const grpcCode = async (key, cert) => (await grpcExport(s.grpcAddress, body(), {
    credentials: grpc.credentials.createSsl(certs.caCert, key ?? null, cert ?? null), timeoutMs: 5_000,
  })).codeName;

  assert.notEqual(await httpStatus({ ca: certs.caCert }), 200, 'HTTP without a client certificate');
  assert.notEqual(await httpStatus({ ca: certs.caCert, cert: certs.rogueClientCert, key: certs.rogueClientKey }), 200,
    'HTTP with a client certificate from another CA');
  assert.notEqual(await grpcCode(), 'OK', 'gRPC without a client certificate');
  assert.notEqual(await grpcCode(certs.rogueClientKey, certs.rogueClientCert), 'OK',
    'gRPC with a client certificate from another CA');
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', {}, 0), 0, 'nothing received from refused clients');

  assert.equal(await httpStatus({ ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey }), 200);
  assert.equal(await grpcCode(certs.clientKey, certs.clientCert), 'OK');
  const tls = { ca: certs.caCert, cert: certs.clientCert, key: certs.clientKey };
  for (const exporter of EXPORTERS) {
    const summary = await sendSpansWithSdk({
      exporter, endpoint: exporter === 'grpc' ? s.grpcUrl : s.tracesUrl, spans: 100, tls,
    });
    assert.equal(summary.exports_failed, 0, `${exporter} with a client certificate: ${summary.errors}`);
    assert.equal(summary.spans_exported, 100);
  }
  assert.equal(await deltaOf(s, m0, 'traceslo_spans_received_total', {}, 302), 302);
});

// A TCP connection that resolves `closed` when the server closes it (or after `timeoutMs`).
function openTcp(address) {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => {
      const closed = new Promise((done) => socket.once('close', () => done(true)));
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

async function closedWithin(conn, ms) {
  let timer;
  const timeout = new Promise((done) => { timer = setTimeout(() => done(false), ms); });
  const result = await Promise.race([conn.closed, timeout]);
  clearTimeout(timer);
  return result;
}

test('otlp.max_connections caps open connections on both OTLP ports; refusals are counted', async () => {
  const s = await start({ config: { otlp: { max_connections: 2 } } });
  for (const [transport, address] of [['grpc', s.grpcAddress], ['http', s.httpAddress]]) {
    const held = [await openTcp(address), await openTcp(address)];
    // The server holds both before the third arrives.
    const open = await s.pollMetric('traceslo_otlp_connections', { transport }, (v) => v === 2);
    assert.equal(open, 2, `${transport}: open connections`);
    const third = await openTcp(address);
    assert.ok(await closedWithin(third, 5_000), `${transport}: a third connection was not closed`);
    const refused = await s.pollMetric('traceslo_otlp_connections_refused_total', { transport }, (v) => v === 1);
    assert.equal(refused, 1, `${transport}: refused counter`);
    for (const c of held) assert.equal(await closedWithin(c, 0), false, `${transport}: a held connection was closed`);
    // The server still holds both (a client-side check alone could miss a close in flight).
    assert.equal(await s.metric('traceslo_otlp_connections', { transport }), 2, `${transport}: held connections`);
    for (const c of held) c.socket.destroy();
    await s.pollMetric('traceslo_otlp_connections', { transport }, (v) => v === 0);
  }
  // With the connections gone, exporters get through again on both ports.
  const r = await postTraces(s.tracesUrl, body(2));
  assert.equal(r.status, 200);
  const g = await grpcExport(s.grpcAddress, body(2));
  assert.equal(g.codeName, 'OK', g.details);
});
