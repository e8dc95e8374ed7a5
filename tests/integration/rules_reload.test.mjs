// Rule loading in `traceslo serve`: rules at start-up, hot reload through POST /-/reload and
// SIGHUP (all or nothing: a broken set keeps the running rules), the reload metrics, and the SLO
// metrics of the loaded rules. Runs the real binary.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';

import { httpRequest, makeTempDir, runTraceslo, serverPool, waitFor } from '../clients/lib.mjs';

const pool = serverPool();
after(() => pool.cleanupAll());

const availability = (service, objective) => `service: ${service}
slos:
  - name: availability
    objective: ${objective}
    sli: {errors: {}}
`;

async function rulesDir(files) {
  const dir = await makeTempDir('traceslo-rules-');
  for (const [name, text] of Object.entries(files)) await fsp.writeFile(path.join(dir, name), text);
  return dir;
}

const sloObjectives = async (server) => {
  const m = await server.scrape();
  return Object.fromEntries(m.series('traceslo_slo_objective_ratio')
    .map((s) => [`${s.labels.service}/${s.labels.slo}`, s.value]));
};

test('rules load at start-up and show as SLO metrics', async () => {
  const dir = await rulesDir({ 'checkout.yaml': availability('checkout', 99.9) });
  const server = await pool.start({
    args: ['--rules', path.join(dir, '*.yaml')],
    config: { rules: { evaluation_interval: '100ms' } },
  });
  // The first evaluation publishes the SLO's figures.
  await waitFor(async () => (await sloObjectives(server))['checkout/availability'] !== undefined,
    { what: 'traceslo_slo_objective_ratio' });
  assert.deepEqual(await sloObjectives(server), { 'checkout/availability': 0.999 });
  const m = await server.scrape();
  assert.equal(m.get('traceslo_rules_last_reload_successful'), 1);
  assert.equal(m.get('traceslo_rules_slos'), 1);
  // Default tiers for 30 d: windows 5m 30m 1h 2h 6h 1d 3d plus the compliance window.
  const windows = m.series('traceslo_slo_burn_rate', { service: 'checkout' }).map((s) => s.labels.window);
  assert.deepEqual(windows.sort(), ['1d', '1h', '2h', '30d', '30m', '3d', '5m', '6h']);
  assert.ok(server.logs().some((l) => l.msg === 'starting' && l.slos === '1'));
});

test('POST /-/reload swaps a good set and keeps the running rules on a broken one', async () => {
  const dir = await rulesDir({ 'checkout.yaml': availability('checkout', 99.9) });
  const server = await pool.start({
    args: ['--rules', path.join(dir, '*.yaml')],
    config: { rules: { evaluation_interval: '100ms' } },
  });
  await waitFor(async () => (await sloObjectives(server))['checkout/availability'] === 0.999,
    { what: 'first evaluation' });

  // A good change: a new objective and a second file.
  await fsp.writeFile(path.join(dir, 'checkout.yaml'), availability('checkout', 99.5));
  await fsp.writeFile(path.join(dir, 'payment.yaml'), availability('payment', 99.99));
  const ok = await httpRequest(`${server.webUrl}/-/reload`, { method: 'POST', body: '' });
  assert.equal(ok.status, 200, ok.body.toString());
  await waitFor(async () => {
    const o = await sloObjectives(server);
    return o['checkout/availability'] === 0.995 && o['payment/availability'] === 0.9999;
  }, { what: 'reloaded objectives' });
  const good = await server.scrape();
  assert.equal(good.get('traceslo_rules_last_reload_successful'), 1);
  assert.equal(good.get('traceslo_rules_slos'), 2);
  assert.equal(good.get('traceslo_rules_reloads_total', { result: 'success' }), 2);

  // A broken file: answered 400 with file:line:col, and the running rules stay.
  await fsp.writeFile(path.join(dir, 'payment.yaml'), 'service: payment\nslos:\n  - name: a\n    objective: 120\n    sli: {errors: {}}\n');
  const bad = await httpRequest(`${server.webUrl}/-/reload`, { method: 'POST', body: '' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.toString(), /payment\.yaml:4:16: .*objective/);
  const after = await server.scrape();
  assert.equal(after.get('traceslo_rules_last_reload_successful'), 0);
  assert.equal(after.get('traceslo_rules_reloads_total', { result: 'failure' }), 1);
  assert.equal(after.get('traceslo_rules_slos'), 2);
  const kept = await sloObjectives(server);
  assert.equal(kept['checkout/availability'], 0.995);
  assert.equal(kept['payment/availability'], 0.9999);
  // A success timestamp that did not move with the failure.
  assert.ok(after.get('traceslo_rules_last_reload_success_timestamp_seconds') > 1.7e9);
});

test('SIGHUP reloads the rules', async () => {
  const dir = await rulesDir({ 'checkout.yaml': availability('checkout', 99.9) });
  const server = await pool.start({
    args: ['--rules', path.join(dir, '*.yaml')],
    config: { rules: { evaluation_interval: '100ms' } },
  });
  await waitFor(async () => (await sloObjectives(server))['checkout/availability'] === 0.999,
    { what: 'first evaluation' });
  await fsp.writeFile(path.join(dir, 'checkout.yaml'), availability('checkout', 99.0));
  server.child.kill('SIGHUP');
  await waitFor(async () => (await sloObjectives(server))['checkout/availability'] === 0.99,
    { what: 'objective after SIGHUP' });
  assert.ok(server.logs().some((l) => l.msg === 'rules reloaded'));
});

test('serve refuses to start on broken rules, with the same messages as check', async () => {
  const dir = await rulesDir({ 'bad.yaml': 'service: x\nslos:\n  - name: a\n    objective: 0\n    sli: {errors: {}}\n' });
  const r = await runTraceslo(['serve', '--rules', path.join(dir, '*.yaml'),
    '--otlp.grpc-listen-address', '127.0.0.1:0', '--otlp.http-listen-address', '127.0.0.1:0',
    '--web.listen-address', '127.0.0.1:0', '--storage.path', path.join(dir, 'var')]);
  assert.notEqual(r.code, 0);
  const check = await runTraceslo(['check', path.join(dir, 'bad.yaml')]);
  assert.equal(check.code, 1);
  const line = check.stderr.split('\n').find((l) => l.includes('bad.yaml:'));
  assert.ok(line, check.stderr);
  assert.ok(r.stderr.includes(line), `serve's error has check's line:\n${r.stderr}`);
});
