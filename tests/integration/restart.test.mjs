// Durable state across a crash: `kill -9` of `traceslo serve` in the middle of an outage, then a
// new process on the same storage dir. The error budget continues from SQLite within what one
// flush interval of traffic can change, and the page that was firing is still firing, without
// firing again. Runs the real binary twice and the real traffic generator.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';

import { loadgenBin, makeTempDir, pollUntil, runLoadgen, serverPool } from '../clients/lib.mjs';

const pool = serverPool();
const children = new Set();
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await pool.cleanupAll();
});

const FLUSH_MS = 500;
const TICK_MS = 200;
const EVALUATION_MS = 500;
const config = {
  pipeline: { tick_interval: `${TICK_MS}ms`, trace_idle_timeout: '500ms', trace_max_age: '5s' },
  rules: { evaluation_interval: `${EVALUATION_MS}ms` },
  storage: { flush_interval: `${FLUSH_MS}ms` },
};
// 99 % over 1 h: a 1 % budget. The page tier needs 10× burn (10 % errors) over 1 m and 30 s.
// Not 10 s: a one-bucket window is only the current, still filling bucket, which holds fewer than
// min_events just after each 10 s boundary, so such an alert resolves and fires again there.
const RULES = `service: payment
slos:
  - name: availability
    objective: 99
    window: 1h
    sli: {errors: {}}
    alerting:
      page: {windows: [{long: 1m, short: 30s, burn_rate: 10}]}
      ticket: {enabled: false}
      min_events: 5
`;
const PAGE = { service: 'payment', slo: 'availability', severity: 'page', alert: 'slo' };
const BUDGET = { service: 'payment', slo: 'availability' };

test('kill -9 mid-outage: budget and firing page resume from disk, no second page', async (t) => {
  const dir = await makeTempDir('traceslo-restart-');
  await fsp.mkdir(path.join(dir, 'rules'));
  await fsp.writeFile(path.join(dir, 'rules', 'payment.yaml'), RULES);
  const args = ['--rules', path.join(dir, 'rules', '*.yaml')];
  const first = await pool.start({ dir, config, args });

  // Healthy traffic first, so the budget has a baseline to burn from.
  const healthy = await runLoadgen(['--endpoint', first.grpcAddress, '--rate', '40',
    '--duration', '3s', '--seed', '1', '--quiet', '--report', path.join(dir, 'healthy.json')]);
  assert.equal(healthy.code, 0, healthy.stderr);

  // Then an outage in payment, still going when the process is killed.
  const outage = spawn(loadgenBin(), ['--endpoint', first.grpcAddress, '--rate', '40',
    '--duration', '60s', '--seed', '2', '--quiet', '--max-retry-time', '0s',
    '--incident', 'error_burst:service=payment,ratio=0.6,start=0s,duration=60s',
    '--report', path.join(dir, 'outage.json')], { stdio: 'ignore' });
  children.add(outage);

  await first.pollMetric('traceslo_slo_alert_firing', PAGE, (v) => v === 1, { timeoutMs: 30_000 });
  // Watch the budget burn for a few seconds of outage: how fast it moves bounds what one flush
  // interval can lose.
  const samples = [];
  const watchUntil = Date.now() + 3_000;
  while (Date.now() < watchUntil) {
    const m = await first.scrape();
    samples.push({ at: Date.now(), budget: m.get('traceslo_slo_error_budget_remaining_ratio', BUDGET) });
    await delay(100);
  }
  const flushed = (await first.scrape()).get('traceslo_storage_flushes_total', { result: 'success' });
  assert.ok(flushed >= 3, `flushes before the kill: ${flushed}`);
  const last = samples[samples.length - 1];
  const firstSample = samples[0];
  const ratePerSecond = (firstSample.budget - last.budget) / ((last.at - firstSample.at) / 1000);
  assert.ok(ratePerSecond > 0, `the budget burns during the outage (${JSON.stringify(samples)})`);

  first.child.kill('SIGKILL');
  await new Promise((resolve) => (first.exitStatus ? resolve() : first.child.once('exit', resolve)));
  outage.kill('SIGKILL');
  children.delete(outage);

  const second = await pool.start({ dir, config, args });
  const restarted = await pollUntil(async () => second.scrape(),
    (m) => m.series('traceslo_slo_error_budget_remaining_ratio', BUDGET).length === 1,
    { timeoutMs: 10_000 });
  // No traffic reaches the new process: what it knows came from disk. It may miss what the last
  // flush did not write, and the last scrape of the old process may lag its final state by one
  // evaluation: both are at most flush + tick + evaluation intervals of burn (plus scheduling).
  const budget = restarted.get('traceslo_slo_error_budget_remaining_ratio', BUDGET);
  const tolerance = ratePerSecond * (FLUSH_MS + TICK_MS + EVALUATION_MS + 500) / 1000;
  t.diagnostic(`budget before the kill ${last.budget}, after the restart ${budget}, `
    + `burning ${ratePerSecond.toFixed(3)}/s, tolerance ${tolerance.toFixed(3)}`);
  assert.ok(Math.abs(budget - last.budget) <= tolerance,
    `budget after restart ${budget}, before ${last.budget}, tolerance ${tolerance}`);
  // Not restarted from a full budget, and not from zero traffic.
  assert.ok(budget < 0, `the outage spent more than the budget before the kill: ${budget}`);

  assert.equal(restarted.get('traceslo_slo_alert_firing', PAGE), 1, 'still firing');
  const transitions = second.logs().filter((l) => l.msg === 'alert');
  const refired = transitions.filter((l) => l.state === 'firing');
  assert.deepEqual(refired, [], `the page is not fired again; transitions after the restart: ${
    JSON.stringify(transitions)}; before the kill: ${
    JSON.stringify(first.logs().filter((l) => l.msg === 'alert'))}`);
  assert.ok(second.logs().some((l) => l.msg === 'storage opened' && Number(l.restored_series_minutes) > 0));
});
