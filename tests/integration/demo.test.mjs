// The demo as users run it: scripts/demo.sh starts `traceslo serve` with the example rules
// (rules/*.yaml) and traceslo-loadgen with one incident, an error burst in payment. The error
// cascades up through checkout and gateway, whose SLOs fire too, but their alerts name payment as
// where the error began and are held back: one injected cause is exactly one page, on the log
// receiver, whose trace_url opens the exemplar trace. Ctrl-C (SIGINT) stops the script and both
// of its children. The timing is shrunk by DEMO_CONFIG; the example rules' windows are as shipped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import {
  childProcesses, freePort, httpGet, loadgenBin, makeTempDir, parseLogfmt, pollUntil, processAlive,
  tracesloBin,
} from '../clients/lib.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const GROUP_WAIT_MS = 5_000;
const EVALUATION_MS = 1_000;
const PAGE_DEADLINE_MS = 90_000;
const STOP_DEADLINE_MS = 20_000;
const PAYMENT_GROUP = /^\{\}:\{service="payment",signature="([0-9a-f]{16})"\}$/;

let dir;
let demo;
after(async () => {
  // Whatever a failed assertion left running: the script's process group (it was started
  // detached, so the group is the script and its children).
  if (demo && demo.exitStatus === null) {
    try { process.kill(-demo.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    await demo.exited;
  }
  if (dir && !process.env.TRACESLO_IT_KEEP) await fsp.rm(dir, { recursive: true, force: true });
});

// Runs `bash scripts/demo.sh` from the repository root with `env` added to ours. Its stderr is
// kept line by line; records() are traceslo's log lines (logfmt, `ts=` first), parsed.
function startDemo(env) {
  const child = spawn('bash', ['scripts/demo.sh'], {
    cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const d = { child, env, lines: [], stdout: '', exitStatus: null };
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      d.lines.push(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => { d.stdout += chunk; });
  d.exited = new Promise((resolve) => child.on('close', (code, signal) => {
    if (pending) d.lines.push(pending);
    pending = '';
    d.exitStatus = { code, signal };
    resolve(d.exitStatus);
  }));
  d.records = () => d.lines.filter((l) => l.startsWith('ts=')).map(parseLogfmt);
  d.notifications = () => d.records().filter((r) => r.msg === 'notification');
  d.firingNotifications = () => d.notifications().filter((r) => r.status === 'firing');
  d.describe = (n = 60) => `bash scripts/demo.sh with ${JSON.stringify(env)}\n` +
    `exit: ${JSON.stringify(d.exitStatus)}\n--- stderr (last ${n} lines) ---\n${d.lines.slice(-n).join('\n')}`;
  return d;
}

async function getAlerts(webUrl) {
  const r = await httpGet(`${webUrl}/api/v1/alerts`, { timeoutMs: 5_000 });
  if (r.status !== 200) throw new Error(`GET /api/v1/alerts: ${r.status} ${r.body}`);
  return JSON.parse(r.body.toString('utf8'));
}

// The firing SLO alerts of checkout and gateway, from GET /api/v1/alerts.
function cascadeAlerts(alerts) {
  return alerts.groups.flatMap((g) => g.alerts.map((a) => ({ group: g.groupKey, groupNotified: g.notified, ...a })))
    .filter((a) => a.status === 'firing' && ['checkout', 'gateway'].includes(a.labels.service));
}

test('demo: one incident in payment is one page with a trace link; Ctrl-C stops everything', async () => {
  const started = Date.now();
  const bin = path.resolve(tracesloBin());
  const loadgen = path.resolve(loadgenBin());
  dir = await makeTempDir('traceslo-demo-');
  const [grpcPort, httpPort, webPort] = [await freePort(), await freePort(), await freePort()];
  const webUrl = `http://127.0.0.1:${webPort}`;
  const config = path.join(dir, 'demo.yaml');
  // The links in notifications must point at this web port; the rest shortens the timing.
  await fsp.writeFile(config, [
    `web: {external_url: "${webUrl}"}`,
    `alerting: {group_wait: ${GROUP_WAIT_MS / 1000}s}`,
    `rules: {evaluation_interval: ${EVALUATION_MS / 1000}s}`,
    'pipeline: {tick_interval: 200ms, trace_idle_timeout: 2s}',
    '',
  ].join('\n'));
  demo = startDemo({
    TRACESLO_BIN: bin,
    TRACESLO_LOADGEN_BIN: loadgen,
    DEMO_DATA_DIR: path.join(dir, 'var'),
    DEMO_GRPC: `127.0.0.1:${grpcPort}`,
    DEMO_HTTP: `127.0.0.1:${httpPort}`,
    DEMO_WEB: `127.0.0.1:${webPort}`,
    DEMO_INCIDENT_START: '5s',
    DEMO_INCIDENT_DURATION: '3m',  // still going when the test stops the demo
    DEMO_CONFIG: config,
  });

  // 1. The page: a firing notification for payment's error signature.
  await pollUntil(() => demo.firingNotifications(), (n) => n.length > 0 || demo.exitStatus !== null,
    { timeoutMs: PAGE_DEADLINE_MS, intervalMs: 100 });
  const [page] = demo.firingNotifications();
  assert.ok(page, `a firing msg=notification line within ${PAGE_DEADLINE_MS} ms\n${demo.describe()}`);
  const pagedAt = Date.now();
  assert.equal(page.receiver, 'log', demo.describe());
  const group = page.group.match(PAYMENT_GROUP);
  assert.ok(group, `the page is payment's group {}:{service="payment",signature="<16 hex>"}: ${
    JSON.stringify(page)}\n${demo.describe()}`);
  const signature = group[1];
  const link = page.trace_url?.match(/^(http:\/\/[^/]+)\/traces\/([0-9a-f]{32})$/);
  assert.ok(link, `trace_url is ${webUrl}/traces/<32 hex>: ${JSON.stringify(page)}`);
  assert.equal(link[1], webUrl, 'trace_url starts with web.external_url');
  const traceId = link[2];
  const traceRes = await httpGet(page.trace_url, { timeoutMs: 5_000 });
  const html = traceRes.body.toString('utf8');
  assert.equal(traceRes.status, 200, `GET ${page.trace_url}: ${traceRes.status}\n${html.slice(0, 500)}`);
  assert.match(String(traceRes.headers['content-type']), /^text\/html/);
  assert.ok(html.includes(traceId), `the trace page names trace ${traceId}`);
  assert.ok(html.includes('data-service="payment"'), 'the exemplar trace has payment spans');

  const paged = await pollUntil(() => getAlerts(webUrl),
    (a) => a.groups.some((g) => g.groupKey === page.group && g.notified), { timeoutMs: 5_000 });
  const paymentGroup = paged.groups.find((g) => g.groupKey === page.group);
  assert.ok(paymentGroup?.notified, `/api/v1/alerts shows ${page.group} notified: ${JSON.stringify(paged)}`);
  assert.ok(paymentGroup.alerts.some((a) => a.status === 'firing' && a.notified && a.labels.service === 'payment'
    && a.labels.signature === signature), `a notified firing payment alert: ${JSON.stringify(paymentGroup)}`);

  // The built-in pages show it: /alerts has the page's group with its signature and links the
  // exemplar traces of its causes (the first one opens); / shows a firing payment SLO.
  const alertsPage = await httpGet(`${webUrl}/alerts`, { timeoutMs: 5_000 });
  const alertsHtml = alertsPage.body.toString('utf8');
  assert.equal(alertsPage.status, 200, alertsHtml.slice(0, 300));
  assert.ok(alertsHtml.includes(`data-signature="${signature}"`),
    `/alerts shows the group of signature ${signature}`);
  const pageLinks = [...alertsHtml.matchAll(/<a class="trace" href="([^"]+)"/g)].map((m) => m[1]);
  const ownLinks = pageLinks.filter((href) => href.startsWith(`${webUrl}/traces/`));
  assert.ok(ownLinks.length > 0, `/alerts links exemplar traces under ${webUrl}/traces/: ${pageLinks}`);
  const linked = await httpGet(ownLinks[0], { timeoutMs: 5_000 });
  assert.equal(linked.status, 200, `GET ${ownLinks[0]} from /alerts`);
  const overview = (await httpGet(`${webUrl}/`, { timeoutMs: 5_000 })).body.toString('utf8');
  assert.match(overview, /<tr class="slo" data-service="payment" data-slo="[^"]+" data-state="firing">/,
    '/ shows a firing payment SLO');

  // 2. The cascade: checkout's and gateway's availability SLOs fire too (msg=alert lines) ...
  const firedAt = (service) => demo.records().findLast((r) => r.msg === 'alert' && r.service === service
    && r.slo === 'availability' && r.state === 'firing');
  await pollUntil(() => ['checkout', 'gateway'].map(firedAt),
    (fired) => fired.every(Boolean) || demo.exitStatus !== null, { timeoutMs: 30_000, intervalMs: 100 });
  for (const service of ['checkout', 'gateway']) {
    assert.ok(firedAt(service), `${service}'s availability alert fires (msg=alert state=firing)\n${demo.describe()}`);
  }
  // ... and had they not been held back, they would have been sent group_wait after they reached
  // the router (one evaluation after firing). Watch twice that long for a second page.
  const lastFired = Math.max(pagedAt, ...['checkout', 'gateway'].map((s) => Date.parse(firedAt(s).ts)));
  const watchUntil = lastFired + 2 * GROUP_WAIT_MS + 2 * EVALUATION_MS;
  while (Date.now() < watchUntil && demo.firingNotifications().length === 1 && demo.exitStatus === null) {
    await delay(100);
  }
  assert.equal(demo.exitStatus, null, `the demo is still running\n${demo.describe()}`);
  assert.equal(demo.firingNotifications().length, 1, `exactly one firing notification: ${
    JSON.stringify(demo.notifications(), null, 1)}\n${demo.describe()}`);

  const alerts = await getAlerts(webUrl);
  const held = cascadeAlerts(alerts);
  for (const service of ['checkout', 'gateway']) {
    assert.ok(held.some((a) => a.labels.service === service && a.labels.slo === 'availability'),
      `/api/v1/alerts has a firing ${service} availability alert: ${JSON.stringify(alerts)}`);
  }
  for (const a of held) {
    const what = `${a.labels.service} ${a.labels.slo} ${a.labels.severity} in ${a.group}: ${JSON.stringify(a)}`;
    assert.equal(a.inhibited, true, `held back: ${what}`);
    assert.equal(a.labels.cause_service, 'payment', `names payment as where the error began: ${what}`);
    assert.equal(a.labels.signature, signature, `payment's signature: ${what}`);
    assert.equal(a.notified, false, `not notified: ${what}`);
    assert.equal(a.groupNotified, false, `its group not notified: ${what}`);
  }

  // 3. Ctrl-C: the script stops both children and exits 0.
  const children = childProcesses(demo.child.pid);
  const server = children.find((c) => c.argv[0] === bin && c.argv[1] === 'serve');
  const traffic = children.find((c) => c.argv[0] === loadgen);
  assert.ok(server && traffic, `the script's children are traceslo serve and traceslo-loadgen: ${
    JSON.stringify(children)}`);
  demo.child.kill('SIGINT');
  const stopped = await pollUntil(() => demo.exitStatus, (s) => s !== null,
    { timeoutMs: STOP_DEADLINE_MS, intervalMs: 50 });
  assert.ok(stopped, `the demo exits within ${STOP_DEADLINE_MS} ms of SIGINT\n${demo.describe()}`);
  assert.deepEqual(stopped, { code: 0, signal: null }, demo.describe());
  assert.equal(demo.lines.filter((l) => l.trim()).at(-1), 'demo: stopped', demo.describe());
  for (const c of [server, traffic]) {
    assert.ok(!processAlive(c), `${c.argv[0]} (pid ${c.pid}) is gone after the demo stopped\n${demo.describe()}`);
  }
  assert.equal(demo.firingNotifications().length, 1, `still one page at the end\n${demo.describe()}`);
  console.log(`# demo: paged ${((pagedAt - started) / 1000).toFixed(1)} s after the start, ` +
    `signature ${signature}, ${held.length} held alerts, total ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
