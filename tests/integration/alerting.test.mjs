// Alerting end to end: real `traceslo serve`, real traffic from traceslo-loadgen with error bursts
// in payment, and real receivers on 127.0.0.1 — a Node HTTP server playing the webhook (and
// PagerDuty's Events API), and a real Alertmanager 0.25. Burning SLOs become one notification
// per error signature, naming the exception that was injected and linking exemplar traces that
// open; a receiver that is down gets everything, in order, once it is back; a kill -9 with
// notifications in the outbox loses none of them.
//
// Windows are shrunk as in restart.test.mjs: 99 % over 1 h, paged at 10× burn over 1 m and 30 s,
// 5 events at least; evaluation every 500 ms. The three scenarios run concurrently (each has
// its own processes and ports); every wait polls a condition with a deadline, and the windows in
// which nothing may arrive are polls that expect no change.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import {
  alertmanagerBin, errorBurstIncident, httpGet, makeRuleDir, pollUntil, rulesArgs, serverPool,
  SHORT_TIMING_CONFIG, SHORT_WINDOW_SLOS, shortWindowRules, startAlertmanager,
  startLoadgen as startLoadgenIn, startRecordingServer, startWithExternalUrl,
} from '../clients/lib.mjs';

const pool = serverPool();
const children = new Set();
const closers = [];
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const close of closers) await close().catch(() => {});
  await pool.cleanupAll();
});

// Retries come fast, so a receiver that is back gets its backlog within seconds.
const DELIVERY = { timeout: '2s', initial_backoff: '200ms', max_backoff: '1s' };

// Two SLOs of payment that the same errors burn: its entry spans' errors, and the traces whose
// error began in payment. Objective 99 over 1 h (a 1 % budget); 10× burn over 1 m and 30 s pages.
const RULES = shortWindowRules('payment');
const SLOS = SHORT_WINDOW_SLOS;

// The exceptions the bursts inject; each is one error signature. `sample` matches the message
// as sent (the loadgen fills {int} and {hex} per error).
const CARD = {
  type: 'CardDeclinedException', message: 'card {int} declined by issuer {hex}',
  sample: /^card \d+ declined by issuer [0-9a-f]{16}$/,
};
const FRAUD = {
  type: 'FraudCheckTimeoutError', message: 'fraud check timed out after {int} ms',
  sample: /^fraud check timed out after \d+ ms$/,
};
const burstFlag = (e, ratio) => errorBurstIncident('payment', e, ratio);

const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const ZERO_TIME = '0001-01-01T00:00:00Z';

let seeds = 1000;
// traceslo-loadgen in the background, until killed (or `duration` ends); its own seed each time.
function startLoadgen(server, { rate, duration = '170s', incidents = [] }) {
  const loadgen = startLoadgenIn(server.grpcAddress, { rate, duration, incidents, seed: seeds++ });
  children.add(loadgen.child);
  return {
    stop() {
      loadgen.stop();
      children.delete(loadgen.child);
    },
  };
}

// `traceslo serve` on `dir` (the same dir again after a kill: the same storage), its web port
// chosen up front so web.external_url is its real address and the notifications' links open.
async function startServer(dir, alerting) {
  return startWithExternalUrl(pool, {
    dir, config: { ...SHORT_TIMING_CONFIG, alerting }, args: rulesArgs(dir),
  });
}

async function ruleDir(prefix) {
  return makeRuleDir(prefix, { 'payment.yaml': RULES });
}

async function recordingServer(opts) {
  const s = await startRecordingServer(opts);
  closers.push(() => s.close());
  return s;
}

async function openGroups(server) {
  const r = await httpGet(`${server.webUrl}/api/v1/alerts`);
  assert.equal(r.status, 200, r.body.toString());
  return JSON.parse(r.body.toString()).groups;
}

// What a test needs to read in a failure message: one line per request.
function describeRequests(requests) {
  return requests.map((r) => {
    const b = r.body ?? {};
    if (b.event_action) {
      return `${r.path} ${r.status} ${b.event_action} ${b.dedup_key?.slice(0, 12)} ` +
        `seq=${b.payload?.custom_details?.sequence ?? '-'}`;
    }
    return `${r.path} ${r.status} ${b.status} seq=${b.traceslo?.sequence} id=${b.traceslo?.notificationId} ` +
      `${b.groupKey} alerts=${(b.alerts ?? []).map((a) => `${a.labels?.slo}:${a.status}`).join(',')}`;
  }).join('\n');
}

const answered = (requests) => requests.filter((r) => r.status === 200);
const withStatus = (requests, status) => requests.filter((r) => r.body?.status === status);

// Standard Webhooks: v1,base64(HMAC-SHA256(key, id.timestamp.body)), key = base64 after whsec_.
function checkSignature(request, secret) {
  const id = request.headers['webhook-id'];
  const timestamp = request.headers['webhook-timestamp'];
  assert.ok(id && timestamp, `signed headers present: ${JSON.stringify(request.headers)}`);
  assert.ok(Math.abs(Number(timestamp) - request.at / 1000) < 30, `timestamp ${timestamp} is now`);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = `v1,${crypto.createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), request.raw])).digest('base64')}`;
  assert.ok(request.headers['webhook-signature'].split(' ').includes(expected),
    `webhook-signature ${request.headers['webhook-signature']} includes ${expected}`);
}

// Per group key, the requests answered 200, in arrival order: the sequences strictly increase
// (a repeat of the same id — a duplicate — is allowed at most once and only right after the
// first), start at 1 on a fresh storage dir and have no gap, every notification but the last
// fires, and the last resolves. Returns Map(groupKey → [distinct notifications in order]).
function checkGroupOrder(requests, { maxDuplicates = 0 } = {}) {
  const byGroup = new Map();
  for (const r of answered(requests)) {
    if (!byGroup.has(r.body.groupKey)) byGroup.set(r.body.groupKey, []);
    byGroup.get(r.body.groupKey).push(r);
  }
  const out = new Map();
  for (const [key, list] of byGroup) {
    const distinct = [];
    const copies = new Map();
    for (const r of list) {
      const id = r.body.traceslo.notificationId;
      copies.set(id, (copies.get(id) ?? 0) + 1);
      if (distinct.at(-1)?.body.traceslo.notificationId === id) continue;
      distinct.push(r);
    }
    for (const [id, n] of copies) {
      assert.ok(n <= 1 + maxDuplicates, `${key}: ${id} delivered ${n} times\n${describeRequests(requests)}`);
    }
    const sequences = distinct.map((r) => r.body.traceslo.sequence);
    assert.deepEqual(sequences, sequences.map((_, i) => i + 1),
      `${key}: delivered in sequence order from 1 without gaps\n${describeRequests(requests)}`);
    assert.deepEqual(distinct.map((r) => r.body.status),
      [...distinct.slice(0, -1).map(() => 'firing'), 'resolved'],
      `${key}: firing, then one resolved last\n${describeRequests(requests)}`);
    out.set(key, distinct);
  }
  return out;
}

describe('alerting end to end', { concurrency: true }, () => {
  test('two signatures burning two SLOs: one page per signature, links open, one resolve each; '
    + 'Alertmanager shows them', async (t) => {
    const amBin = alertmanagerBin();
    if (!amBin) {
      t.skip('no Alertmanager binary (apt-get install prometheus-alertmanager)');
      return;
    }
    const GROUP_WAIT_MS = 12_000;
    const GROUP_INTERVAL_MS = 5_000;
    const dir = await ruleDir('traceslo-alerting-a-');
    const am = await startAlertmanager({ dir: path.join(dir, 'alertmanager'), bin: amBin });
    closers.push(() => am.stop());
    const hook = await recordingServer();
    const secret = `whsec_${crypto.randomBytes(24).toString('base64')}`;
    const server = await startServer(dir, {
      group_wait: `${GROUP_WAIT_MS}ms`,
      group_interval: `${GROUP_INTERVAL_MS}ms`,
      repeat_interval: '1h',
      routes: [
        { match: { service: 'payment' }, receiver: 'hook', continue: true },
        { match: { service: 'payment' }, receiver: 'am' },
      ],
      receivers: [
        { name: 'hook', webhook: { url: `${hook.url}/hook`, hmac_secret: secret, headers: { 'X-Team': 'sre' } } },
        { name: 'am', alertmanager: { url: am.url } },
      ],
      delivery: DELIVERY,
    });
    const external = `http://${server.webAddress}`;

    const background = startLoadgen(server, { rate: 20 });
    // Two concurrent bursts in payment, each failing about 30 % of its charges (the second
    // applies to what the first left): two signatures of about equal weight.
    const bursts = startLoadgen(server, { rate: 30, incidents: [burstFlag(CARD, 0.3), burstFlag(FRAUD, 0.43)] });
    try {
      // Both groups' first notifications, after group_wait.
      const firstTwo = await hook.waitFor((rs) => withStatus(rs, 'firing').length >= 2, { timeoutMs: 60_000 });
      const firing = withStatus(firstTwo, 'firing');
      assert.equal(firing.length, 2,
        `two firing notifications\n${describeRequests(hook.requests)}\n${server.stderrTail(30)}`);
      const lastFirstAt = Math.max(...firing.map((r) => r.at));

      // Nothing more while the bursts go on for 2 × group_interval (repeat_interval is 1 h).
      const quiet = await hook.waitFor((rs) => rs.length > 2,
        { timeoutMs: 2 * GROUP_INTERVAL_MS + 1_000 - (Date.now() - lastFirstAt), intervalMs: 100 });
      assert.equal(quiet.length, 2, `no further notification while firing\n${describeRequests(quiet)}`);
      const during = await server.scrape();
      for (const slo of SLOS) {
        assert.equal(during.get('traceslo_slo_alert_firing', { service: 'payment', slo, severity: 'page' }), 1,
          `${slo} still fires at the end of the quiet window`);
        assert.equal(during.get('traceslo_alerts', { service: 'payment', slo, severity: 'page', state: 'firing' }), 1,
          `traceslo_alerts shows ${slo} firing`);
      }

      // Each notification: Alertmanager's v4 payload for one signature, both SLOs in it.
      const signatureOf = new Map();  // exception type → signature
      for (const r of firing) {
        const b = r.body;
        assert.equal(r.method, 'POST');
        assert.match(r.headers['content-type'], /^application\/json/);
        assert.equal(r.headers['x-team'], 'sre', 'configured headers are sent');
        assert.match(b.traceslo.notificationId, /^[\x21-\x7e]{1,128}$/);
        assert.equal(r.headers['x-traceslo-notification-id'], b.traceslo.notificationId);
        assert.equal(r.headers['webhook-id'], b.traceslo.notificationId);
        checkSignature(r, secret);
        assert.equal(b.version, '4');
        assert.equal(b.receiver, 'hook');
        assert.equal(b.status, 'firing');
        assert.equal(b.externalURL, external);
        assert.equal(b.traceslo.sequence, 1, 'the first notification of a new group');
        const sig = b.groupLabels.signature;
        assert.match(sig, HEX16);
        assert.deepEqual(b.groupLabels, { service: 'payment', signature: sig });
        assert.equal(b.groupKey, `{}:{service="payment",signature="${sig}"}`);
        assert.equal(b.truncatedAlerts, 0);
        assert.deepEqual(b.alerts.map((a) => a.labels.slo).sort(), [...SLOS].sort(),
          `both SLOs' alerts in the group's first notification: ${JSON.stringify(b.alerts.map((a) => a.labels))}`);
        for (const a of b.alerts) {
          assert.equal(a.status, 'firing');
          assert.equal(a.endsAt, ZERO_TIME);
          assert.match(a.fingerprint, HEX16);
          assert.equal(a.generatorURL, `${external}/alerts`);
          assert.deepEqual({ ...a.labels, slo: undefined }, {
            alertname: 'SloBurnRate', service: 'payment', severity: 'page', signature: sig, slo: undefined,
          });
        }
        assert.deepEqual(b.commonLabels, {
          alertname: 'SloBurnRate', service: 'payment', severity: 'page', signature: sig,
        });

        // The cause is this signature, named after the exception that was injected.
        const causes = b.traceslo.causes.filter((c) => c.kind === 'signature');
        assert.deepEqual(causes.map((c) => c.signature), [sig],
          `the group's causes name its signature only: ${JSON.stringify(b.traceslo.causes)}`);
        const cause = causes[0];
        const injected = [CARD, FRAUD].find((e) => cause.title.startsWith(`${e.type}: `));
        assert.ok(injected, `the cause's title names an injected exception: ${cause.title}`);
        assert.match(cause.sampleMessage, injected.sample);
        assert.ok(!signatureOf.has(injected.type), `one group per exception: ${JSON.stringify(b.traceslo.causes)}`);
        signatureOf.set(injected.type, sig);
        assert.ok(cause.count > 0 && cause.share > 0 && cause.share <= 1, JSON.stringify(cause));

        // Exemplar traces, linked on traceslo's own page; each opens.
        assert.ok(cause.exemplars.length >= 1, `exemplars: ${JSON.stringify(cause)}`);
        for (const e of cause.exemplars) {
          assert.match(e.traceId, HEX32);
          assert.equal(e.url, `${external}/traces/${e.traceId}`);
          const page = await httpGet(e.url);
          assert.equal(page.status, 200, `GET ${e.url}: ${page.body.toString().slice(0, 300)}`);
          assert.match(page.headers['content-type'], /^text\/html/);
          assert.ok(page.body.toString().includes(e.traceId), `the page names trace ${e.traceId}`);
          const api = await httpGet(`${external}/api/v1/traces/${e.traceId}`);
          assert.equal(api.status, 200, api.body.toString());
          assert.equal(JSON.parse(api.body.toString()).trace_id, e.traceId);
        }
      }
      assert.notEqual(signatureOf.get(CARD.type), signatureOf.get(FRAUD.type));
      const sigs = [...signatureOf.values()].sort();

      // The same alerts in a real Alertmanager, with the fingerprints the webhook showed.
      const fingerprints = firing.flatMap((r) => r.body.alerts.map((a) => a.fingerprint)).sort();
      const listed = await pollUntil(async () => {
        const r = await httpGet(`${am.url}/api/v2/alerts`);
        return JSON.parse(r.body.toString()).filter((a) => a.labels.service === 'payment');
      }, (alerts) => alerts.length >= 4, { timeoutMs: 15_000, intervalMs: 200 });
      assert.deepEqual(listed.map((a) => a.fingerprint).sort(), fingerprints,
        `Alertmanager lists the 4 alerts: ${JSON.stringify(listed.map((a) => a.labels))}`);
      assert.deepEqual([...new Set(listed.map((a) => a.labels.signature))].sort(), sigs);
      for (const a of listed) {
        assert.equal(a.status.state, 'active');
        assert.equal(a.labels.alertname, 'SloBurnRate');
        assert.ok(SLOS.includes(a.labels.slo), JSON.stringify(a.labels));
        assert.match(a.annotations.traceslo_trace_url ?? '', new RegExp(`^${external}/traces/[0-9a-f]{32}$`));
      }

      // The bursts end; each group resolves once.
      bursts.stop();
      const resolvedTwo = await hook.waitFor((rs) => withStatus(rs, 'resolved').length >= 2, { timeoutMs: 75_000 });
      const lastResolvedAt = Math.max(...withStatus(resolvedTwo, 'resolved').map((r) => r.at));
      const all = await hook.waitFor((rs) => rs.length > 4,
        { timeoutMs: GROUP_INTERVAL_MS + 1_000 - (Date.now() - lastResolvedAt), intervalMs: 100 });
      assert.equal(all.length, 4, `two firing, two resolved, nothing else\n${describeRequests(all)}`);
      t.diagnostic(`webhook:\n${describeRequests(all)}`);
      const groups = checkGroupOrder(all);
      assert.deepEqual([...groups.values()].map((l) => l.length), [2, 2]);
      for (const [key, [fired, resolved]] of groups) {
        const b = resolved.body;
        assert.equal(b.traceslo.sequence, 2, key);
        assert.notEqual(b.traceslo.notificationId, fired.body.traceslo.notificationId);
        assert.equal(resolved.headers['x-traceslo-notification-id'], b.traceslo.notificationId);
        checkSignature(resolved, secret);
        assert.deepEqual(b.alerts.map((a) => a.fingerprint).sort(),
          fired.body.alerts.map((a) => a.fingerprint).sort(), 'the alerts that fired resolve');
        for (const a of b.alerts) {
          assert.equal(a.status, 'resolved');
          assert.notEqual(a.endsAt, ZERO_TIME);
          assert.ok(Date.parse(a.endsAt) >= Date.parse(a.startsAt), JSON.stringify(a));
        }
      }

      // Alertmanager got the resolutions too: nothing of payment is active there any more.
      const remaining = await pollUntil(async () => {
        const r = await httpGet(`${am.url}/api/v2/alerts`);
        return JSON.parse(r.body.toString()).filter((a) => a.labels.service === 'payment');
      }, (alerts) => alerts.length === 0, { timeoutMs: 10_000, intervalMs: 200 });
      assert.deepEqual(remaining.map((a) => a.labels), [], 'resolved in Alertmanager');

      const m = await server.scrape();
      assert.equal(m.get('traceslo_notifications_total', { receiver: 'hook', outcome: 'delivered' }), 4);
      assert.ok(m.get('traceslo_notifications_total', { receiver: 'am', outcome: 'delivered' }) >= 4);
      for (const receiver of ['hook', 'am']) {
        for (const outcome of ['failed', 'expired', 'dropped', 'superseded']) {
          assert.equal(m.get('traceslo_notifications_total', { receiver, outcome }), 0, `${receiver} ${outcome}`);
        }
        assert.equal(m.get('traceslo_notification_queue_length', { receiver }), 0, receiver);
      }
      assert.equal(m.get('traceslo_notification_delivery_seconds_count', { receiver: 'hook' }), 4);
    } finally {
      bursts.stop();
      background.stop();
    }
  });

  test('receiver down while the alert fires and resolves, then back: everything arrives, in order',
    async (t) => {
      const dir = await ruleDir('traceslo-alerting-b-');
      const hook = await recordingServer({ status: 503 });
      const server = await startServer(dir, {
        group_wait: '1s', group_interval: '2s', repeat_interval: '1h',
        default_receiver: 'hook',
        receivers: [{ name: 'hook', webhook: { url: `${hook.url}/hook` } }],
        delivery: DELIVERY,
      });
      const background = startLoadgen(server, { rate: 20 });
      const burst = startLoadgen(server, { rate: 30, incidents: [burstFlag(CARD, 0.5)] });
      try {
        const PAGE = { service: 'payment', slo: 'errors', severity: 'page' };
        assert.equal(await server.pollMetric('traceslo_slo_alert_firing', PAGE, (v) => v === 1,
          { timeoutMs: 30_000 }), 1, `the page fires\n${server.stderrTail(30)}`);
        // Both SLOs' alerts notified (attempted and refused), then the burst ends.
        const notified = await pollUntil(() => openGroups(server),
          (gs) => gs.length > 0 && gs.every((g) => g.notified && g.alerts.length === 2 && g.alerts.every((a) => a.notified)),
          { timeoutMs: 20_000, intervalMs: 200 });
        assert.ok(notified.length > 0, JSON.stringify(notified));
        burst.stop();
        // Resolved, and the resolved notification is in the outbox: the router forgets a group
        // once its resolved notification was accepted.
        const closed = await pollUntil(async () => ({
          groups: await openGroups(server),
          firing: (await server.scrape()).get('traceslo_slo_alert_firing', { service: 'payment' }),
        }), (v) => v.groups.length === 0 && v.firing === 0, { timeoutMs: 75_000, intervalMs: 250 });
        assert.deepEqual(closed, { groups: [], firing: 0 }, server.stderrTail(30));
        const down = await server.scrape();
        assert.ok(down.get('traceslo_notifications_total', { receiver: 'hook', outcome: 'retried' }) > 0);
        assert.equal(down.get('traceslo_notifications_total', { receiver: 'hook', outcome: 'delivered' }), 0);
        const queued = down.get('traceslo_notification_queue_length', { receiver: 'hook' });
        assert.ok(queued >= 2, `firing and resolved notifications wait in the outbox: ${queued}`);
        assert.ok(hook.requests.length > 0 && hook.requests.every((r) => r.status === 503));
        const refusedIds = new Set(hook.requests.map((r) => r.body.traceslo.notificationId));

        // Back up.
        hook.status = 200;
        const final = await hook.waitFor((rs) => {
          const ok = answered(rs);
          const keys = new Set(rs.map((r) => r.body.groupKey));
          return [...keys].every((k) => ok.some((r) => r.body.groupKey === k && r.body.status === 'resolved'));
        }, { timeoutMs: 30_000 });
        const drained = await server.pollMetric('traceslo_notification_queue_length', { receiver: 'hook' },
          (v) => v === 0, { timeoutMs: 10_000 });
        assert.equal(drained, 0, 'the outbox is empty');
        t.diagnostic(`webhook (${final.filter((r) => r.status === 503).length} refused attempts):\n${
          describeRequests(answered(final))}`);
        const groups = checkGroupOrder(final);
        assert.ok(groups.size >= 1);
        const delivered = [...groups.values()].flat();
        const deliveredIds = new Set(delivered.map((r) => r.body.traceslo.notificationId));
        for (const id of refusedIds) assert.ok(deliveredIds.has(id), `${id}, refused while down, arrives`);
        assert.ok(delivered.length >= 2 * groups.size, 'at least a firing and a resolved per group');

        // While the receiver was down, only each group's first notification was tried: the later
        // ones waited for it (a resolve never overtakes its trigger).
        for (const [key, list] of groups) {
          const attempts = final.filter((r) => r.body.groupKey === key);
          let delivering = 1;
          for (const r of attempts) {
            assert.equal(r.body.traceslo.sequence, delivering,
              `${key}: attempts follow the sequence, each after the previous was delivered\n${describeRequests(attempts)}`);
            if (r.status === 200) delivering++;
          }
          assert.equal(delivering, list.length + 1);
        }
        const m = await server.scrape();
        assert.equal(m.get('traceslo_notifications_total', { receiver: 'hook', outcome: 'delivered' }), delivered.length);
        assert.equal(m.get('traceslo_notifications_total', { receiver: 'hook', outcome: 'retried' }),
          final.filter((r) => r.status === 503).length, 'every refused attempt counted as retried');
        for (const outcome of ['failed', 'expired', 'dropped', 'superseded']) {
          assert.equal(m.get('traceslo_notifications_total', { receiver: 'hook', outcome }), 0, outcome);
        }
      } finally {
        burst.stop();
        background.stop();
      }
    });

  test('kill -9 with notifications pending: after the restart all arrive, none twice more than once, '
    + 'no PagerDuty trigger after its resolve', async (t) => {
    const dir = await ruleDir('traceslo-alerting-c-');
    const peer = await recordingServer({ status: 503 });
    const alerting = {
      group_wait: '1s', group_interval: '2s', repeat_interval: '1h',
      routes: [
        { match: { service: 'payment' }, receiver: 'hook', continue: true },
        { match: { service: 'payment' }, receiver: 'pd' },
      ],
      receivers: [
        { name: 'hook', webhook: { url: `${peer.url}/hook` } },
        { name: 'pd', pagerduty: { routing_key: 'R0UT1NGKEY', url: `${peer.url}/pd` } },
      ],
      delivery: DELIVERY,
    };
    const first = await startServer(dir, alerting);
    let background = startLoadgen(first, { rate: 20 });
    const burst = startLoadgen(first, { rate: 30, incidents: [burstFlag(CARD, 0.5)] });
    let second;
    try {
      // Every alert notified, so every notification is in the outbox, refused by both receivers.
      const groups = await pollUntil(() => openGroups(first),
        (gs) => gs.length >= 2 && gs.every((g) => g.notified && g.alerts.length === 2 && g.alerts.every((a) => a.notified)),
        { timeoutMs: 40_000, intervalMs: 200 });
      assert.ok(groups.length >= 2 && groups.every((g) => g.notified), JSON.stringify(groups));
      const seen = await peer.waitFor((rs) => ['/hook', '/pd'].every((p) => rs.some((r) => r.path === p)),
        { timeoutMs: 10_000 });
      assert.ok(['/hook', '/pd'].every((p) => seen.some((r) => r.path === p)), describeRequests(seen));
      const before = await first.scrape();
      for (const receiver of ['hook', 'pd']) {
        assert.ok(before.get('traceslo_notification_queue_length', { receiver }) >= 1, `${receiver} has pending`);
        assert.equal(before.get('traceslo_notifications_total', { receiver, outcome: 'delivered' }), 0);
      }

      // The last notification each group sent before the kill: what must arrive after it.
      const sentBefore = new Map((await openGroups(first)).filter((g) => g.receiver === 'hook')
        .map((g) => [g.groupKey, g.sequence]));
      first.child.kill('SIGKILL');
      await first.exit;
      burst.stop();
      background.stop();
      const beforeKill = peer.requests.length;
      const hookIdsBefore = new Set(peer.to('/hook').map((r) => r.body.traceslo.notificationId));

      second = await startServer(dir, alerting);
      const restored = await second.scrape();
      for (const receiver of ['hook', 'pd']) {
        assert.ok(restored.get('traceslo_notification_queue_length', { receiver }) >= 1,
          `${receiver}'s pending notifications are loaded from the outbox`);
      }
      peer.status = 200;
      // Healthy traffic only: the alerts resolve once their short window has seen it.
      background = startLoadgen(second, { rate: 40 });
      const final = await peer.waitFor((rs) => {
        const keys = new Set(rs.filter((r) => r.path === '/hook').map((r) => r.body.groupKey));
        const pdKeys = new Set(rs.filter((r) => r.path === '/pd').map((r) => r.body.dedup_key));
        return keys.size > 0 && [...keys].every((k) => answered(rs).some((r) => r.body.groupKey === k && r.body.status === 'resolved'))
          && pdKeys.size > 0 && [...pdKeys].every((k) => answered(rs).some((r) => r.body.dedup_key === k && r.body.event_action === 'resolve'));
      }, { timeoutMs: 90_000, intervalMs: 100 });
      t.diagnostic(`answered after the restart:\n${describeRequests(answered(final))}`);
      const hook = final.filter((r) => r.path === '/hook');
      const pd = final.filter((r) => r.path === '/pd');
      const summary = `\n${describeRequests(final)}\n--- second ---\n${second.stderrTail(30)}`;
      assert.ok(answered(hook).some((r) => r.body.status === 'resolved'), summary);

      // Webhook: every notification refused before the kill arrives after it; at most one
      // duplicate per id; per group in order, firing before resolved, no gap (nothing lost).
      const byGroup = checkGroupOrder(hook, { maxDuplicates: 1 });
      const deliveredIds = new Set(answered(hook).map((r) => r.body.traceslo.notificationId));
      for (const id of hookIdsBefore) assert.ok(deliveredIds.has(id), `${id} (pending at the kill) arrives${summary}`);
      for (const r of hook) assert.equal(r.headers['x-traceslo-notification-id'], r.body.traceslo.notificationId);
      // The restart fired nothing again: the firing notifications are those sent before the kill,
      // and the resolve comes next.
      assert.deepEqual([...byGroup.keys()].sort(), [...sentBefore.keys()].sort(), summary);
      for (const [key, list] of byGroup) {
        assert.equal(list.length, sentBefore.get(key) + 1,
          `${key}: the ${sentBefore.get(key)} firing notification(s) from before the kill, then the resolve${summary}`);
      }

      // PagerDuty: one incident per group (dedup_key = SHA-256 of the group key), triggered and
      // then resolved; no trigger arrives after its resolve, not even a retried one.
      const keys = new Map([...byGroup.keys()].map((k) => [crypto.createHash('sha256').update(k).digest('hex'), k]));
      const pdKeys = new Set(pd.map((r) => r.body.dedup_key));
      assert.deepEqual([...pdKeys].sort(), [...keys.keys()].sort(), `a PagerDuty incident per group${summary}`);
      for (const key of pdKeys) {
        const events = pd.filter((r) => r.body.dedup_key === key);
        const resolvedAt = events.findIndex((r) => r.body.event_action === 'resolve');
        assert.ok(resolvedAt > 0, `${key}: trigger before resolve${summary}`);
        assert.deepEqual(events.slice(resolvedAt + 1).filter((r) => r.body.event_action === 'trigger'), [],
          `${key}: no trigger after the resolve${summary}`);
        assert.ok(answered(events).some((r) => r.body.event_action === 'trigger'), `${key}: a trigger delivered`);
        for (const r of events) {
          assert.equal(r.body.routing_key, 'R0UT1NGKEY');
          if (r.body.event_action === 'trigger') {
            assert.equal(r.body.payload.severity, 'critical');
            assert.equal(r.body.payload.custom_details.group_key, keys.get(key));
          }
        }
      }
      assert.ok(final.length > beforeKill);

      const m = await pollUntil(() => second.scrape(),
        (s) => ['hook', 'pd'].every((receiver) => s.get('traceslo_notification_queue_length', { receiver }) === 0),
        { timeoutMs: 10_000 });
      for (const receiver of ['hook', 'pd']) {
        assert.equal(m.get('traceslo_notification_queue_length', { receiver }), 0, `${receiver}: outbox drained`);
        for (const outcome of ['failed', 'expired', 'dropped']) {
          assert.equal(m.get('traceslo_notifications_total', { receiver, outcome }), 0, `${receiver} ${outcome}`);
        }
      }
    } finally {
      burst.stop();
      background.stop();
    }
  });
});
