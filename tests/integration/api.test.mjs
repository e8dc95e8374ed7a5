// The JSON API and the pages over the wire, against the real binary: every endpoint, bad bodies
// (400 with a message), unknown ids (404), wrong methods (405), the bearer token (401), and
// untrusted text (HTML and script in service, span names, exception types and messages) coming
// back unchanged in JSON and escaped in HTML. The counts of traceslo_api_requests_total follow.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  encodeTracesProto, httpRequest, nowNs, pollUntil, postTraces, randomHex, repoRoot, serverPool,
  SHORT_TIMING_CONFIG, SpanKind, StatusCode,
} from '../clients/lib.mjs';

const TOKEN = 'api-test-token';
const EVIL_SERVICE = 'svc<script>alert(1)</script>';
const EVIL_OPERATION = 'GET /items/<img src=x onerror=alert(2)>';
const EVIL_TYPE = 'Evil<b>Exception</b>';
const EVIL_MESSAGE = 'failed: "</textarea><script>alert(3)</script>" & \'quoted\'';

const pool = serverPool();
let s;
let traceId;

const api = (path, opts = {}) => httpRequest(`${s.webUrl}${path}`, { method: 'GET', ...opts });
const json = (r) => JSON.parse(r.body.toString('utf8'));
const authorized = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
const post = (path, body, headers = authorized) =>
  api(path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

// The text of an HTML page with the character references AppendEscaped writes undone.
const decodeHtml = (html) => html
  .replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d)))
  .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCharCode(parseInt(h, 16)))
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'")
  .replace(/&amp;/g, '&');

// No tag or attribute of the untrusted text survived into the markup.
function assertEscaped(html, what) {
  assert.ok(!html.includes('<script'), `${what}: no <script> in the markup`);
  assert.ok(!html.includes('<img'), `${what}: no <img> in the markup`);
  assert.ok(!html.includes('<b>Exception'), `${what}: no <b> from the exception type`);
  assert.ok(!html.includes('</textarea>'), `${what}: the message cannot close an element`);
}

before(async () => {
  s = await pool.start({
    config: { ...SHORT_TIMING_CONFIG, web: { api_token: TOKEN } },
    args: ['--rules', path.join(repoRoot, 'rules', '*.yaml')],  // whatever ctest's directory
  });
  // One error trace: a SERVER span of the evil service with an exception event, and a child.
  traceId = randomHex(16);
  const end = nowNs();
  const root = randomHex(8);
  const body = encodeTracesProto([{
    service: EVIL_SERVICE,
    spans: [
      {
        traceId, spanId: root, name: EVIL_OPERATION, kind: SpanKind.SERVER,
        startNs: end - 20_000_000n, endNs: end,
        attributes: { 'http.request.method': 'GET', 'http.response.status_code': 500 },
        status: { code: StatusCode.ERROR, message: EVIL_MESSAGE },
        events: [{ name: 'exception', attributes: { 'exception.type': EVIL_TYPE, 'exception.message': EVIL_MESSAGE } }],
      },
      {
        traceId, spanId: randomHex(8), parentSpanId: root, name: 'db <query>', kind: SpanKind.CLIENT,
        startNs: end - 15_000_000n, endNs: end - 5_000_000n,
      },
    ],
  }]);
  const r = await postTraces(s.tracesUrl, body);
  assert.equal(r.status, 200, r.body.toString());
  // The signature is counted at once; the trace completes (trace_idle_timeout 500 ms) and
  // becomes its signature's exemplar.
  await pollUntil(() => api('/api/v1/signatures').then(json),
    (v) => v.signatures?.some((sig) => sig.traces.some((t) => t.traceId === traceId)),
    { timeoutMs: 15_000, intervalMs: 100 });
  await pollUntil(() => api(`/api/v1/traces/${traceId}`), (r) => r.status === 200,
    { timeoutMs: 15_000, intervalMs: 100 });
});
after(() => pool.cleanupAll());

test('GET /api/v1/signatures and /signatures: the untrusted texts as sent in JSON, escaped in HTML', async () => {
  const r = await api('/api/v1/signatures');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const sig = json(r).signatures.find((x) => x.service === EVIL_SERVICE);
  assert.ok(sig, JSON.stringify(json(r)));
  assert.equal(sig.operation, EVIL_OPERATION);
  assert.equal(sig.exceptionType, EVIL_TYPE);
  assert.equal(sig.sampleMessage, EVIL_MESSAGE);
  assert.equal(sig.count, 1, 'one error entry span was sent');
  assert.match(sig.id, /^[0-9a-f]{16}$/);

  const page = await api('/signatures');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
  const html = page.body.toString('utf8');
  assertEscaped(html, '/signatures');
  assert.ok(html.includes(`data-signature="${sig.id}"`));
  const text = decodeHtml(html);
  for (const t of [EVIL_SERVICE, EVIL_OPERATION, EVIL_TYPE, EVIL_MESSAGE]) {
    assert.ok(text.includes(t), `/signatures shows ${t}`);
  }
});

test('GET /traces/{id} and /api/v1/traces/{id}: the trace, escaped; bad and unknown ids', async () => {
  const r = await api(`/api/v1/traces/${traceId}`);
  assert.equal(r.status, 200, r.body.toString());
  const t = json(r);
  assert.equal(t.trace_id, traceId);
  const names = t.spans.map((sp) => sp.operation).sort();
  assert.deepEqual(names, [EVIL_OPERATION, 'db <query>'].sort());
  const errorSpan = t.spans.find((sp) => sp.error);
  assert.equal(errorSpan.service, EVIL_SERVICE);
  assert.equal(errorSpan.error_signature.exception_type, EVIL_TYPE);

  const page = await api(`/traces/${traceId}`);
  assert.equal(page.status, 200);
  const html = page.body.toString('utf8');
  assertEscaped(html, '/traces/{id}');
  assert.ok(/class="span error/.test(html), 'the error span is marked');
  assert.ok(decodeHtml(html).includes(EVIL_TYPE), 'the exception type is shown');

  assert.equal((await api('/api/v1/traces/00000000000000000000000000000001')).status, 404);
  assert.equal((await api('/traces/00000000000000000000000000000001')).status, 404);
  const bad = await api('/api/v1/traces/not-a-trace-id');
  assert.equal(bad.status, 400);
  assert.match(json(bad).error, /32 hex/);
  const badPage = await api('/traces/%3Cscript%3E');
  assert.equal(badPage.status, 400);
  assertEscaped(badPage.body.toString('utf8'), 'the bad-id page');
  assert.equal((await api(`/api/v1/traces/${traceId}`, { method: 'DELETE' })).status, 405);
});

test('GET /api/v1/slos, /api/v1/alerts and the pages / and /alerts answer', async () => {
  // The example rules (rules/*.yaml) are loaded: the page has a row per SLO the
  // JSON lists.
  const slos = await api('/api/v1/slos');
  assert.equal(slos.status, 200);
  const listed = json(slos).slos;
  assert.ok(listed.length > 0, 'the example rules have SLOs');
  const overview = await api('/');
  assert.equal(overview.status, 200);
  const html = overview.body.toString('utf8');
  const rows = [...html.matchAll(/<tr class="slo" data-service="([^"]*)" data-slo="([^"]*)"/g)]
    .map((m) => `${decodeHtml(m[1])}/${decodeHtml(m[2])}`).sort();
  assert.deepEqual(rows, listed.map((x) => `${x.service}/${x.slo}`).sort());
  const alerts = await api('/api/v1/alerts');
  assert.equal(alerts.status, 200);
  assert.deepEqual(json(alerts).groups, []);
  assert.equal((await api('/alerts')).status, 200);
  assert.equal((await api('/', { method: 'POST', body: '' })).status, 405);
  assert.equal((await api('/api/v1/slos', { method: 'PUT', body: '{}' })).status, 405);
});

test('silences: token, bad bodies, create, list, expire; ack of an unknown alert', async () => {
  const silence = {
    matchers: [{ name: 'service', value: EVIL_SERVICE, isEqual: true }],
    duration: '1h', createdBy: 'api test', comment: '<b>maintenance</b>',
  };
  // The token.
  assert.equal((await post('/api/v1/silences', silence, { 'Content-Type': 'application/json' })).status, 401);
  assert.equal((await post('/api/v1/silences', silence,
    { Authorization: 'Bearer wrong', 'Content-Type': 'application/json' })).status, 401);
  // Bad bodies: 400 with a message each.
  for (const [body, what] of [
    ['{not json', 'malformed JSON'],
    ['[]', 'not an object'],
    [{ ...silence, matchers: [] }, 'no matchers'],
    [{ ...silence, matchers: [{ name: 'service' }] }, 'a matcher without a value'],
    [{ ...silence, duration: 'forever' }, 'a bad duration'],
    [{ ...silence, endsAt: 'yesterday', duration: undefined }, 'a bad endsAt'],
  ]) {
    const r = await post('/api/v1/silences', body);
    assert.equal(r.status, 400, `${what}: ${r.body}`);
    assert.ok(json(r).error.length > 0, `${what}: a message`);
  }
  const tooLarge = await post('/api/v1/silences', `{"comment":"${'x'.repeat(2 * 1024 * 1024)}"}`);
  assert.ok([400, 413].includes(tooLarge.status), `2 MiB body: ${tooLarge.status}`);

  const created = await post('/api/v1/silences', silence);
  assert.equal(created.status, 200, created.body.toString());
  const id = json(created).silenceID ?? json(created).id;
  assert.ok(id, `the new silence's id: ${created.body}`);
  const list = json(await api('/api/v1/silences'));
  const listed = (Array.isArray(list) ? list : list.silences).find((x) => x.id === id);
  assert.ok(listed, `GET /api/v1/silences lists ${id}: ${JSON.stringify(list)}`);
  assert.equal(listed.comment, silence.comment, 'the comment comes back as sent');
  const page = (await api('/alerts')).body.toString('utf8');
  assert.ok(page.includes(`data-silence-id="${id}"`), '/alerts shows the silence');
  assert.ok(!page.includes('<b>maintenance'), 'its comment escaped');

  assert.equal((await api('/api/v1/silences/no-such-silence', { method: 'DELETE', headers: authorized })).status, 404);
  assert.equal((await api(`/api/v1/silences/${id}`, { method: 'DELETE' })).status, 401);
  assert.equal((await api(`/api/v1/silences/${id}`, { method: 'DELETE', headers: authorized })).status, 200);

  const ack = await post('/api/v1/alerts/0123456789abcdef/ack', '');
  assert.equal(ack.status, 404, ack.body.toString());
  assert.ok(json(ack).error.length > 0);
  assert.equal((await api('/api/v1/alerts/0123456789abcdef/ack', { method: 'GET' })).status, 405);
});

test('traceslo_api_requests_total counts the answers by endpoint and code', async () => {
  const before = await s.scrape();
  const n = (m, endpoint, code) => m.get('traceslo_api_requests_total', { endpoint, code: String(code) }) ?? 0;
  await api('/api/v1/traces/zz');
  await api('/api/v1/traces/zz');
  await post('/api/v1/silences', '{', { 'Content-Type': 'application/json' });
  const m = await s.scrape();
  assert.equal(n(m, 'trace', 400) - n(before, 'trace', 400), 2);
  assert.equal(n(m, 'silences', 401) - n(before, 'silences', 401), 1);
});
