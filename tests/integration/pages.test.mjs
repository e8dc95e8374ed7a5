// The built-in pages in a real headless Chromium (Debian's `chromium`), against the real
// `traceslo serve` after real traffic from traceslo-loadgen with an error burst in payment: the
// SLO overview, the alerts page, the error signatures page and an exemplar trace of the firing
// alert. Each page's DOM, as Chromium built it, is compared with the JSON API fetched around it
// (the traffic goes on, so a comparison is retried until the API did not change meanwhile); every
// page is served with a strict Content-Security-Policy that lets its stylesheet apply and runs no
// script. Screenshots (phone and desktop) are written as test artifacts to
// $TRACESLO_TEST_ARTIFACTS or build/test-artifacts/pages/.
//
// Then the exemplar traces an alert links are on disk: after kill -9 and a restart on the same
// storage dir (an empty SLI store), the alert's exemplar trace still opens, with all its spans.
//
// Without Chromium the test fails (apt-get install chromium; scripts/setup.sh installs it).
// Windows are the alerting test's (shortWindowRules, SHORT_TIMING_CONFIG in tests/clients/lib.mjs).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  chromiumBin, chromiumDumpDom, chromiumScreenshot, errorBurstIncident, getJson, httpGet,
  makeRuleDir, pollUntil, repoRoot, rulesArgs, serverPool, SHORT_TIMING_CONFIG, SHORT_WINDOW_SLOS,
  shortWindowRules, startLoadgen, startWithExternalUrl,
} from '../clients/lib.mjs';

const pool = serverPool();
const loadgens = new Set();
after(async () => {
  for (const l of loadgens) l.stop();
  await pool.cleanupAll();
});

const SERVICE = 'payment';
// The exception the burst injects: one error signature. `sample` matches the message as sent.
const LEDGER = {
  type: 'LedgerWriteConflictError', message: 'ledger row {int} locked by txn {hex}',
  sample: /^ledger row \d+ locked by txn [0-9a-f]{16}$/,
};
const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const VIEWPORTS = { phone: { width: 390, height: 844 }, desktop: { width: 1280, height: 900 } };
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const ARTIFACTS = process.env.TRACESLO_TEST_ARTIFACTS
  ? path.resolve(process.env.TRACESLO_TEST_ARTIFACTS)
  : path.join(repoRoot, 'build', 'test-artifacts', 'pages');
// How long a DOM-against-API comparison is retried while the traffic changes the API.
const STABLE_MS = 20_000;

// ------------------------------------------------------------------------------------------
// The DOM as Chromium serialized it, read with string checks (no HTML parser dependency).

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
function decode(text) {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, e) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return ENTITIES[e.toLowerCase()] ?? whole;
  });
}

// The start tags <tag ...> in `html`: {attrs (values decoded), classes, start, end (after '>')}.
function startTags(html, tag) {
  const out = [];
  for (const m of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'gi'))) {
    const attrs = {};
    for (const a of m[1].matchAll(/([^\s="'/]+)(?:="([^"]*)")?/g)) attrs[a[1]] = decode(a[2] ?? '');
    out.push({ attrs, classes: (attrs.class ?? '').split(/\s+/).filter(Boolean), start: m.index, end: m.index + m[0].length });
  }
  return out;
}
// The elements <tag> having class `cls`, each with its inner HTML up to the first </tag> after it
// (for elements that hold no element of their own tag).
function elements(html, tag, cls) {
  return startTags(html, tag).filter((t) => t.classes.includes(cls)).map((t) => {
    const close = html.indexOf(`</${tag}>`, t.end);
    return { ...t, inner: html.slice(t.end, close < 0 ? html.length : close) };
  });
}
// The decoded text content of `html`.
const textOf = (html) => decode(html.replace(/<[^>]*>/g, ''));
// The text of the first <tag class="cls"> in `html`, or null.
function textOfFirst(html, tag, cls) {
  const [e] = elements(html, tag, cls);
  return e ? textOf(e.inner) : null;
}

// ------------------------------------------------------------------------------------------
// Pages.

let server;      // the first traceslo serve
let signature;   // the injected exception's signature id
let chromium;    // the binary

// GET `pathname` over HTTP: 200, HTML, a Content-Security-Policy that allows nothing but the
// page's own inline stylesheet (by its SHA-256), and no script in the markup. Returns the body.
async function fetchPage(pathname, base = server.webUrl) {
  const r = await httpGet(`${base}${pathname}`);
  const html = r.body.toString('utf8');
  assert.equal(r.status, 200, `GET ${pathname}: ${html.slice(0, 300)}`);
  assert.match(String(r.headers['content-type']), /^text\/html; charset=utf-8$/i, pathname);
  const csp = r.headers['content-security-policy'];
  assert.ok(csp, `GET ${pathname} has a Content-Security-Policy header: ${JSON.stringify(r.headers)}`);
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => {
    const [name, ...values] = d.split(/\s+/);
    return [name, values.join(' ')];
  }));
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]);
  assert.equal(styles.length, 1, `${pathname}: one inline stylesheet`);
  const hash = crypto.createHash('sha256').update(styles[0], 'utf8').digest('base64');
  assert.equal(directives['default-src'], "'none'", `${pathname}: ${csp}`);
  assert.equal(directives['style-src'], `'sha256-${hash}'`, `${pathname}: the policy allows the page's stylesheet: ${csp}`);
  assert.equal(directives['script-src'], undefined, `${pathname}: scripts fall under default-src 'none': ${csp}`);
  assert.ok(!/unsafe-|\*|data:|https?:/.test(csp), `${pathname}: nothing loads from elsewhere: ${csp}`);
  assert.ok(!/<script\b/i.test(html), `${pathname}: no script in the markup`);
  return html;
}

// Chromium's DOM of `pathname`: no script, and no Content-Security-Policy violation on the
// console (the stylesheet applied).
async function loadInChromium(pathname, base = server.webUrl) {
  const { dom, console: messages } = await chromiumDumpDom(`${base}${pathname}`, { bin: chromium });
  assert.ok(!/<script\b/i.test(dom), `${pathname}: Chromium's DOM has no script`);
  const violations = messages.filter((l) => /Content[- ]Security[- ]Policy/i.test(l));
  assert.deepEqual(violations, [], `${pathname}: no CSP violation in Chromium's console`);
  assert.ok(/<nav\b/.test(dom) && /<\/html>/.test(dom), `${pathname}: a whole page\n${dom.slice(0, 500)}`);
  return dom;
}

// Screenshots of `pathname` on a phone and a desktop into ARTIFACTS/<name>-<viewport>.png, each
// a PNG of the window's size and more than 5 KB (not blank).
async function screenshots(name, pathname) {
  await fsp.mkdir(ARTIFACTS, { recursive: true });
  return Promise.all(Object.entries(VIEWPORTS).map(async ([viewport, size]) => {
    const file = path.join(ARTIFACTS, `${name}-${viewport}.png`);
    await fsp.rm(file, { force: true });
    await chromiumScreenshot(`${server.webUrl}${pathname}`, file, { ...size, bin: chromium });
    const png = await fsp.readFile(file);
    assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE), `${file} is a PNG`);
    assert.ok(png.length > 5 * 1024, `${file} has more than 5 KB (not blank): ${png.length} bytes`);
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [size.width, size.height],
      `${file} is ${size.width}×${size.height} px`);
    return file;
  }));
}

// Loads `pathname` in Chromium with the API read just before and just after, until both reads
// agree by `key` (the traffic goes on meanwhile). Returns {dom, api}.
async function domWithApi(pathname, readApi, key) {
  const seen = await pollUntil(async () => {
    const apiBefore = await readApi();
    const dom = await loadInChromium(pathname);
    const apiAfter = await readApi();
    return { dom, api: apiAfter, stable: JSON.stringify(key(apiBefore)) === JSON.stringify(key(apiAfter)) };
  }, (v) => v.stable, { timeoutMs: STABLE_MS, intervalMs: 0 });
  assert.ok(seen.stable, `${pathname}: the API did not hold still for a page load within ${STABLE_MS} ms`);
  return seen;
}

const alertsApi = () => getJson(`${server.webUrl}/api/v1/alerts`);
// The firing alert group of the injected signature, or undefined.
const ledgerGroup = (alerts) => alerts.groups.find((g) => g.labels.service === SERVICE &&
  g.alerts.some((a) => a.causes.some((c) => c.kind === 'signature' && c.title.startsWith(`${LEDGER.type}: `))));
// The exemplar trace ids that the group's causes of `sig` link, in order, without repeats.
const linkedTraces = (group, sig) => [...new Set((group?.alerts ?? []).flatMap((a) => a.causes)
  .filter((c) => c.kind === 'signature' && c.id === sig).flatMap((c) => c.traces.map((t) => t.traceId)))];

describe('pages in a real headless Chromium', () => {
  before(async () => {
    chromium = chromiumBin();
    assert.ok(chromium, 'Chromium is not installed: apt-get install chromium (scripts/setup.sh installs it), '
      + `or TRACESLO_CHROMIUM_BIN (${process.env.TRACESLO_CHROMIUM_BIN ?? 'unset'}) is not an executable`);
    const dir = await makeRuleDir('traceslo-pages-', { [`${SERVICE}.yaml`]: shortWindowRules(SERVICE) });
    server = await startWithExternalUrl(pool, { dir, config: SHORT_TIMING_CONFIG, args: rulesArgs(dir) });
    for (const [seed, rate, incidents] of [[11, 20, []], [12, 30, [errorBurstIncident(SERVICE, LEDGER, 0.5)]]]) {
      const l = startLoadgen(server.grpcAddress, { rate, seed, duration: '120s', incidents });
      loadgens.add(l);
    }
    // Both SLOs of payment fire, in one group for the injected signature, whose causes link
    // exemplar traces.
    const ready = await pollUntil(async () => ({
      slos: (await getJson(`${server.webUrl}/api/v1/slos`)).slos.filter((s) => s.service === SERVICE),
      group: ledgerGroup(await alertsApi()),
    }), (v) => v.slos.length === SHORT_WINDOW_SLOS.length && v.slos.every((s) => s.state === 'firing')
      && v.group?.alerts.length === SHORT_WINDOW_SLOS.length && v.group.alerts.every((a) => a.status === 'firing')
      && linkedTraces(v.group, v.group.labels.signature).length > 0,
    { timeoutMs: 30_000, intervalMs: 200 });
    assert.ok(ready.group && linkedTraces(ready.group, ready.group.labels.signature).length > 0,
      `payment's SLOs fire for ${LEDGER.type} with exemplar traces: ${JSON.stringify(ready)}\n${server.stderrTail(30)}`);
    signature = ready.group.labels.signature;
    assert.match(signature, HEX16);
  });

  test('/ shows each SLO in the state /api/v1/slos reports; payment\'s burning SLOs fire', async () => {
    const html = await fetchPage('/');
    assert.ok(html.includes('class="slo"'), 'rows in the served markup');
    const [{ dom, api }] = await Promise.all([
      domWithApi('/', () => getJson(`${server.webUrl}/api/v1/slos`),
        (j) => j.slos.map((s) => [s.service, s.slo, s.state])),
      screenshots('overview', '/'),
    ]);
    const rows = startTags(dom, 'tr').filter((t) => t.classes.includes('slo'));
    const fromDom = rows.map((r) => [r.attrs['data-service'], r.attrs['data-slo'], r.attrs['data-state']]);
    const fromApi = api.slos.map((s) => [s.service, s.slo, s.state]);
    assert.deepEqual(fromDom, fromApi, 'one row per SLO, in the API\'s order and state');
    for (const slo of SHORT_WINDOW_SLOS) {
      assert.deepEqual(fromDom.find(([svc, name]) => svc === SERVICE && name === slo), [SERVICE, slo, 'firing'],
        `${SERVICE} ${slo} burns: ${JSON.stringify(fromDom)}`);
    }
  });

  test('/alerts shows the injected signature\'s group, its firing alerts and exemplar links that open',
    async () => {
      await fetchPage('/alerts');
      const groupOf = (alerts) => alerts.groups.find((g) => g.labels.signature === signature);
      const [{ dom, api }] = await Promise.all([
        domWithApi('/alerts', alertsApi, (j) => {
          const g = groupOf(j);
          return g && [g.groupKey, g.alerts.map((a) => [a.fingerprint, a.status])];
        }),
        screenshots('alerts', '/alerts'),
      ]);
      const group = groupOf(api);
      assert.ok(group, `/api/v1/alerts has the group of ${signature}: ${JSON.stringify(api.groups)}`);
      const sections = elements(dom, 'section', 'group').filter((s) => s.attrs['data-signature'] === signature);
      assert.equal(sections.length, 1, `one section.group[data-signature=${signature}]`);
      const [section] = sections;
      assert.equal(section.attrs['data-group-key'], group.groupKey);
      const alerts = startTags(section.inner, 'li').filter((t) => t.classes.includes('alert'));
      assert.deepEqual(alerts.map((a) => [a.attrs['data-fingerprint'], a.attrs['data-state']]).sort(),
        group.alerts.map((a) => [a.fingerprint, a.status]).sort(), 'li.alert per alert of the group, in its state');
      assert.ok(alerts.length === SHORT_WINDOW_SLOS.length && alerts.every((a) => a.attrs['data-state'] === 'firing'));
      const titles = elements(section.inner, 'b', 'cause-title').map((b) => textOf(b.inner));
      assert.ok(titles.length > 0 && titles.every((t) => t.startsWith(`${LEDGER.type}: `)),
        `the causes name the injected exception: ${JSON.stringify(titles)}`);

      const links = startTags(section.inner, 'a').filter((t) => t.classes.includes('trace')).map((a) => a.attrs.href);
      assert.ok(links.length > 0, 'a.trace links to exemplar traces');
      const ids = [...new Set(links.map((href) => {
        const m = href.match(/^(.*)\/traces\/([0-9a-f]{32})$/);
        assert.ok(m && m[1] === server.webUrl, `${href} is ${server.webUrl}/traces/<32 hex>`);
        return m[2];
      }))];
      // Each linked trace opens and holds an error span of the signature.
      for (const id of ids) {
        const trace = await getJson(`${server.webUrl}/api/v1/traces/${id}`);
        assert.ok(trace.spans.some((s) => s.error_signature?.id === signature),
          `linked trace ${id} has a span of ${signature}`);
      }
    });

  test('/signatures shows the injected exception\'s signature with its type and message', async () => {
    await fetchPage('/signatures');
    const [{ dom, api }] = await Promise.all([
      domWithApi('/signatures', () => getJson(`${server.webUrl}/api/v1/signatures`),
        (j) => j.signatures.map((s) => s.id).sort()),
      screenshots('signatures', '/signatures'),
    ]);
    const rows = elements(dom, 'tr', 'signature');
    assert.deepEqual(rows.map((r) => r.attrs['data-signature']).sort(), api.signatures.map((s) => s.id).sort(),
      'one row per signature of /api/v1/signatures');
    for (const r of rows) assert.match(r.attrs['data-signature'], HEX16);
    const listed = api.signatures.find((s) => s.id === signature);
    assert.deepEqual({ service: listed?.service, type: listed?.exceptionType }, { service: SERVICE, type: LEDGER.type },
      JSON.stringify(listed));
    const row = rows.find((r) => r.attrs['data-signature'] === signature);
    assert.equal(row.attrs['data-service'], SERVICE);
    assert.equal(textOfFirst(row.inner, 'b', 'exc-type'), LEDGER.type);
    assert.match(textOfFirst(row.inner, 'span', 'exc-message') ?? '', LEDGER.sample);
    assert.equal(textOfFirst(row.inner, 'span', 'op'), listed.operation);
  });

  test('/traces/{id} of the alert\'s exemplar shows its spans, the error marker and the exception',
    async () => {
      const [traceId] = linkedTraces(ledgerGroup(await alertsApi()), signature);
      assert.match(traceId ?? '', HEX32, 'the alert links an exemplar trace');
      const pathname = `/traces/${traceId}`;
      await fetchPage(pathname);
      const [dom] = await Promise.all([loadInChromium(pathname), screenshots('trace', pathname)]);
      const trace = await getJson(`${server.webUrl}/api/v1/traces/${traceId}`);
      checkTraceDom(dom, trace, traceId);
    });

  test('kill -9 and a restart on the same storage: the alert\'s exemplar trace still opens, all spans',
    async () => {
      for (const l of loadgens) l.stop();
      await Promise.all([...loadgens].map((l) => l.exited));
      const group = ledgerGroup(await alertsApi());
      const [traceId] = linkedTraces(group, signature);
      assert.match(traceId ?? '', HEX32, `the alert still links an exemplar: ${JSON.stringify(group)}`);
      const before = await getJson(`${server.webUrl}/api/v1/traces/${traceId}`);
      // The evaluation that links a trace to an alert also writes it to SQLite (and every later
      // one while the alert links it): wait for a write after the link was read.
      const w0 = (await server.scrape()).get('traceslo_exemplar_store_writes_total');
      const stored = await pollUntil(async () => {
        const m = await server.scrape();
        return { traces: m.get('traceslo_exemplar_store_traces'), writes: m.get('traceslo_exemplar_store_writes_total') };
      }, (v) => v.traces >= 1 && v.writes > w0, { timeoutMs: 10_000, intervalMs: 100 });
      assert.ok(stored.traces >= 1 && stored.writes > w0, `exemplar traces written: ${JSON.stringify({ w0, ...stored })}`);

      server.child.kill('SIGKILL');
      await server.exit;
      const second = await pool.start({ dir: server.dir, config: SHORT_TIMING_CONFIG, args: rulesArgs(server.dir) });
      assert.ok((await second.scrape()).get('traceslo_exemplar_store_traces') >= 1, 'kept traces loaded from SQLite');
      const pathname = `/traces/${traceId}`;
      const html = await fetchPage(pathname, second.webUrl);
      assert.ok(html.includes(traceId));
      const afterRestart = await getJson(`${second.webUrl}/api/v1/traces/${traceId}`);
      assert.equal(afterRestart.spans.length, before.spans.length, 'the same span count as before the kill');
      assert.deepEqual(afterRestart.spans.map((s) => [s.span_id, s.operation, s.error]),
        before.spans.map((s) => [s.span_id, s.operation, s.error]), 'the same spans');
      const { dom } = await chromiumDumpDom(`${second.webUrl}${pathname}`, { bin: chromium });
      checkTraceDom(dom, afterRestart, traceId);
    });
});

// The trace page's DOM against its JSON: a row per span with its operation, service and error
// marker; error spans with their exception; a waterfall bar per row; the injected exception on a
// payment span.
function checkTraceDom(dom, trace, traceId) {
  assert.equal(trace.trace_id, traceId);
  assert.equal(textOf(dom.match(/<code id="trace-id">([\s\S]*?)<\/code>/)?.[1] ?? ''), traceId,
    'the page names the trace');
  const rows = elements(dom, 'li', 'span');
  assert.equal(rows.length, trace.spans.length, `a row per span (${trace.spans.length})`);
  const [summary] = startTags(dom, 'p').filter((t) => t.attrs.id === 'summary');
  assert.equal(Number(summary?.attrs['data-spans']), trace.summary.spans);
  assert.equal(Number(summary?.attrs['data-errors']), trace.summary.errors);
  const byId = new Map(rows.map((r) => [r.attrs['data-span-id'], r]));
  for (const span of trace.spans) {
    const row = byId.get(span.span_id);
    assert.ok(row, `a row for span ${span.span_id} (${span.operation})`);
    assert.equal(textOfFirst(row.inner, 'span', 'op'), span.operation, span.span_id);
    assert.equal(row.attrs['data-service'], span.service, span.span_id);
    assert.equal(row.classes.includes('error'), span.error, `${span.span_id} ${span.operation}: class "span error" iff an error`);
    if (span.error) assert.ok(row.inner.includes('class="flag err"'), `${span.operation}: the error flag`);
    const [svg] = startTags(row.inner, 'svg').filter((t) => t.classes.includes('bar'));
    const [bar] = svg ? startTags(row.inner.slice(svg.end), 'rect') : [];
    const [x, width] = [bar?.attrs.x, bar?.attrs.width].map((v) => Number.parseFloat(v));
    assert.ok(bar && /^c\d+$/.test(bar.attrs.class) && x >= 0 && width >= 0 && x + width <= 100.001,
      `${span.operation}: a waterfall bar in svg.bar: ${JSON.stringify(bar?.attrs)}`);
    if (span.error_signature?.exception_type) {
      assert.equal(textOfFirst(row.inner, 'b', 'exc-type'), span.error_signature.exception_type, span.operation);
      assert.equal(textOfFirst(row.inner, 'span', 'exc-message'), span.error_signature.message, span.operation);
    }
  }
  const injected = trace.spans.filter((s) => s.service === SERVICE && s.error_signature?.id === signature);
  assert.ok(injected.length > 0, `a payment span of ${signature}: ${JSON.stringify(trace.spans.filter((s) => s.error))}`);
  for (const span of injected) {
    assert.equal(span.error_signature.exception_type, LEDGER.type);
    const row = byId.get(span.span_id);
    assert.deepEqual(row.classes.slice(0, 2), ['span', 'error'], `${span.operation}: li class="span error"`);
    assert.equal(textOfFirst(row.inner, 'b', 'exc-type'), LEDGER.type);
    assert.match(textOfFirst(row.inner, 'span', 'exc-message') ?? '', LEDGER.sample);
  }
}
