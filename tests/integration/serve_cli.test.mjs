// The command line and the process lifecycle: `version`, bad flags, bad config files with a
// file:line:col location, SIGTERM draining every queued span, and JSON logs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  encodeTracesJson, encodeTracesProto, grpcExport, makeSpans, makeTempDir, parseLogfmt, postTraces,
  runTraceslo, serverPool,
} from '../clients/lib.mjs';

let scratch;
const pool = serverPool();
const start = (opts) => pool.start(opts);
before(async () => {
  scratch = await makeTempDir('traceslo-it-cli-');
});
after(async () => {
  await pool.cleanupAll();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});
// serve flags that keep a wrongly started process off the default ports and out of ./var.
const safeServeFlags = () => [
  '--otlp.grpc-listen-address', '127.0.0.1:0', '--otlp.http-listen-address', '127.0.0.1:0',
  '--web.listen-address', '127.0.0.1:0', '--storage.path', path.join(scratch, 'var'),
];

test('`traceslo version` prints "traceslo <version>" and exits 0', async () => {
  const r = await runTraceslo(['version']);
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.split('\n')[0], /^traceslo \S+/);
});

test('the version printed matches traceslo_build_info{version}', async () => {
  const r = await runTraceslo(['version']);
  const s = await start();
  const [info] = (await s.scrape()).series('traceslo_build_info');
  assert.ok(info, 'traceslo_build_info is exported');
  assert.ok(r.stdout.split('\n')[0].split(/\s+/).includes(info.labels.version),
    `"${r.stdout.trim()}" vs traceslo_build_info{version="${info.labels.version}"}`);
});

test('an unknown flag or subcommand exits non-zero with a message', async () => {
  const flag = await runTraceslo(['serve', ...safeServeFlags(), '--no-such-flag']);
  assert.equal(flag.timedOut, false, 'exits instead of serving');
  assert.equal(flag.signal, null);
  assert.notEqual(flag.code, 0);
  assert.match(flag.stderr, /no-such-flag/, 'the message names the flag');

  assert.equal(flag.code, 2, 'usage errors exit 2');

  const sub = await runTraceslo(['frobnicate']);
  assert.equal(sub.timedOut, false);
  assert.equal(sub.signal, null);
  assert.equal(sub.code, 2, sub.stderr);
  assert.match(sub.stderr, /unknown command 'frobnicate'/, 'the message names the command');

  const none = await runTraceslo([]);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /subcommand is required/);
});

// Writes `text` as a config file and runs serve with it; returns the run and the file path.
async function serveWithConfig(name, text) {
  const file = path.join(scratch, name);
  fs.writeFileSync(file, text);
  return { file, r: await runTraceslo(['serve', ...safeServeFlags(), '--config.file', file]) };
}
// 1-based line and column of the first `needle` at or after line `lineNo`.
function locate(text, needle) {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const col = lines[i].indexOf(needle);
    if (col >= 0) return `${i + 1}:${col + 1}`;
  }
  throw new Error(`${needle} not in config`);
}

test('a config value of the wrong type: exit 1 with file:line:col of the value', async () => {
  const text = '# traceslo test config\npipeline: {shards: two}\n';
  const { file, r } = await serveWithConfig('bad-type.yaml', text);
  assert.equal(r.timedOut, false);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(locate(text, 'two'), '2:20');
  assert.ok(r.stderr.includes(`${file}:2:20:`), `stderr should contain "${file}:2:20:":\n${r.stderr}`);
});

test('an unknown key: exit 1 with file:line:col of the key', async () => {
  const text = 'log:\n  level: info\npipelin:\n  shards: 2\n';
  const { file, r } = await serveWithConfig('unknown-key.yaml', text);
  assert.equal(r.code, 1, r.stderr);
  const where = locate(text, 'pipelin');
  assert.ok(r.stderr.includes(`${file}:${where}:`), `stderr should contain "${file}:${where}:":\n${r.stderr}`);
});

test('YAML that does not parse: exit 1 with a file:line:col location', async () => {
  const { file, r } = await serveWithConfig('syntax.yaml', 'pipeline: {shards: 2\nlog: {level: info}\n');
  assert.equal(r.code, 1, r.stderr);
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(r.stderr, new RegExp(`${escaped}:\\d+:\\d+:`));
});

test('SIGTERM drains every queued span, logs msg=stopped and exits 0', async () => {
  const s = await start({ debugEndpoints: true });
  assert.equal((await s.debug('pause')).status, 200, 'POST /-/debug/pipeline/pause');
  let sent = 0;
  for (let i = 0; i < 4; i++) {
    const r = await postTraces(s.tracesUrl, encodeTracesProto([{ service: 'drain-proto', spans: makeSpans(50) }]));
    assert.equal(r.status, 200);
    sent += 50;
  }
  const j = await postTraces(s.tracesUrl, encodeTracesJson([{ service: 'drain-json', spans: makeSpans(40) }]),
    { encoding: 'json' });
  assert.equal(j.status, 200);
  sent += 40;
  for (let i = 0; i < 2; i++) {
    const g = await grpcExport(s.grpcAddress, encodeTracesProto([{ service: 'drain-grpc', spans: makeSpans(30) }]));
    assert.equal(g.codeName, 'OK', g.details);
    sent += 30;
  }
  const m = await s.scrape();
  assert.equal(m.get('traceslo_spans_received_total'), sent);
  assert.equal(m.get('traceslo_pipeline_spans_processed_total'), 0, 'nothing processed while paused');
  assert.equal(m.get('traceslo_pipeline_queue_spans'), sent, 'every span waits in a queue');

  const status = await s.stop('SIGTERM');
  assert.deepEqual(status, { code: 0, signal: null }, `exit status\n${s.stderrTail()}`);
  const stopped = s.logs().filter((rec) => rec.msg === 'stopped');
  assert.equal(stopped.length, 1, `one msg=stopped line\n${s.stderrTail()}`);
  assert.equal(Number(stopped[0].spans_processed), sent, `spans_processed in: ${JSON.stringify(stopped[0])}`);
});

test('SIGTERM under load: every span answered 200 is processed, idle connections do not hold it up', async () => {
  const s = await start({});
  // An idle keep-alive connection must not delay the exit by the grace period.
  const idle = net.connect({ host: '127.0.0.1', port: Number(s.httpAddress.split(':').pop()) });
  await new Promise((resolve, reject) => { idle.once('connect', resolve); idle.once('error', reject); });
  let acked = 0;
  let stopping = false;
  const senders = [0, 1, 2, 3].map(async () => {
    while (!stopping || acked === 0) {
      let r;
      try {
        r = await postTraces(s.tracesUrl, encodeTracesProto([{ service: 'sigterm-load', spans: makeSpans(20) }]));
      } catch {
        return;  // connection refused or closed: the server is going away
      }
      if (r.status === 200) acked += 20;
      else if (stopping) return;
    }
  });
  await s.pollMetric('traceslo_spans_received_total', { transport: 'http' }, (v) => v >= 200);
  stopping = true;
  const started = Date.now();
  const status = await s.stop('SIGTERM');
  await Promise.all(senders);
  idle.destroy();
  assert.deepEqual(status, { code: 0, signal: null }, `exit status\n${s.stderrTail()}`);
  assert.ok(Date.now() - started < 4_000,
    `exit took ${Date.now() - started} ms (grace is 5 s)\n${s.stderrTail()}`);
  const stopped = s.logs().filter((rec) => rec.msg === 'stopped');
  assert.equal(stopped.length, 1, s.stderrTail());
  // Safety: nothing answered 200 is lost. A request can be processed and still miss its
  // response when the connection closes under it (at most one in flight per sender).
  const processed = Number(stopped[0].spans_processed);
  assert.ok(processed >= acked, `processed ${processed} < answered 200 ${acked}`);
  assert.ok(processed - acked <= 4 * 20, `processed ${processed}, answered 200 ${acked}`);
});

test('--log.format json: every stderr line is a JSON object', async () => {
  const s = await start({ logFormat: 'json' });
  const r = await postTraces(s.tracesUrl, encodeTracesProto([{ service: 'json-logs', spans: makeSpans(5) }]));
  assert.equal(r.status, 200);
  const status = await s.stop('SIGTERM');
  assert.deepEqual(status, { code: 0, signal: null });
  const lines = s.lines.filter((l) => l.trim());
  assert.ok(lines.length >= 5, 'listening ×3, ready, stopped');
  for (const line of lines) {
    let rec;
    assert.doesNotThrow(() => { rec = JSON.parse(line); }, `not JSON: ${line}`);
    assert.equal(typeof rec, 'object', line);
    assert.ok(rec !== null && !Array.isArray(rec), line);
    assert.ok(typeof rec.level === 'string' && typeof rec.msg === 'string', `level and msg fields: ${line}`);
  }
  const recs = lines.map((l) => JSON.parse(l));
  const listening = recs.filter((rec) => rec.msg === 'listening').map((rec) => rec.listener).sort();
  assert.deepEqual(listening, ['otlp_grpc', 'otlp_http', 'web']);
  assert.ok(recs.some((rec) => rec.msg === 'ready'));
  assert.ok(recs.some((rec) => rec.msg === 'stopped'));
});

test('log.format json from the config file; the default format is logfmt', async () => {
  const fromConfig = await start({ config: { log: { format: 'json' } } });
  assert.doesNotThrow(() => JSON.parse(fromConfig.lines[0]), `first line: ${fromConfig.lines[0]}`);

  const plain = await start();
  const first = plain.lines.find((l) => l.trim());
  assert.ok(!first.trim().startsWith('{'), `logfmt by default: ${first}`);
  assert.ok(parseLogfmt(first).level, `logfmt line with level=: ${first}`);
});
