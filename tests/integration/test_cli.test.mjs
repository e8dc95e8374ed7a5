// `traceslo test`: the example rule tests in rules/tests/ pass (exit 0); a failing test prints
// FAIL with the file:line:col of the expectation and the expected and actual alerts (exit 1); a
// broken test file, or one whose rule files are broken, is reported as file:line:col: message on
// stderr and its tests do not run, while the other files' tests do (exit 2). Expected positions
// are found in the files' text here, and expected times are worked out here from the rules.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { makeTempDir, repoRoot, runTraceslo } from '../clients/lib.mjs';

let scratch;
before(async () => {
  scratch = await makeTempDir('traceslo-it-test-');
});
after(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const run = (args, opts = {}) =>
  runTraceslo(['test', ...args], { cwd: repoRoot, timeoutMs: 120_000, ...opts });
const lines = (text) => text.split('\n').filter((line) => line.length > 0);

// "file:line:col" of `token` on the only line of `file` that contains `lineText`.
function at(file, lineText, token = lineText) {
  const text = fs.readFileSync(file, 'utf8');
  const found = text.split('\n').flatMap((line, i) => (line.includes(lineText) ? [[line, i]] : []));
  assert.equal(found.length, 1, `${JSON.stringify(lineText)} on one line of ${file}`);
  const [line, index] = found[0];
  const column = line.indexOf(token);
  assert.ok(column >= 0, `${JSON.stringify(token)} in ${JSON.stringify(line)}`);
  return `${file}:${index + 1}:${column + 1}`;
}

function write(name, text) {
  const file = path.join(scratch, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

// rules/checkout.yaml, referred to from the scratch directory.
const checkoutRules = () => path.relative(scratch, path.join(repoRoot, 'rules', 'checkout.yaml'));

test('`traceslo test rules/tests/` passes on the example rules', async () => {
  const r = await run(['rules/tests/']);
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, '', 'no problems');
  assert.equal(r.code, 0, r.stdout);
  const out = lines(r.stdout);
  const summary = out.pop();
  const m = summary.match(/^tested (\d+) files, (\d+) tests: (\d+) passed, 0 failed$/);
  assert.ok(m, summary);
  assert.equal(Number(m[1]), 4, 'gateway, checkout, payment, inventory');
  assert.equal(Number(m[2]), out.length);
  assert.equal(Number(m[3]), out.length);
  assert.ok(out.length >= 4 * 3, 'an outage, low traffic and a recovery per file');
  for (const line of out) assert.match(line, /^PASS rules\/tests\/\w+\.test\.yaml: \S/);
});

test('`traceslo test` with no argument reads rules/tests/*.yaml', async () => {
  const byDefault = await run([]);
  const explicit = await run(['rules/tests/*.yaml']);
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.equal(byDefault.stdout, explicit.stdout);
});

test('a failing expectation: FAIL, its position, expected and got; exit 1', async () => {
  // availability of POST /checkout: 99.9 %, its page (renamed severity "critical") fires when the
  // error ratio over 1 h and 5 m is at least 14.4 × 0.1 % = 1.44 %. 100 orders per 10 s step for
  // 6 h, then all fail: at 6h + k × 10 s the 1 h window holds 359 complete steps, k failed.
  const history = 2160;
  let k = 1;
  while (k / 359 < 0.0144) k += 1;
  assert.equal(k, 6);
  const fires = `6h${k / 6}m`;           // 6h1m
  const before = `6h${(k - 1) * 10}s`;   // 6h50s
  const file = write('fail.test.yaml', `rule_files: [${checkoutRules()}]
tests:
  - name: pages when the arithmetic says
    input: [{service: checkout, operation: "POST /checkout", requests: "100x${history + 30}", errors: "0x${history} 100x30"}]
    expect:
      - {at: ${fires}, alerts: [{slo: availability, severity: critical}, {slo: availability, severity: ticket}]}
  - name: expects the page too early
    input: [{service: checkout, operation: "POST /checkout", requests: "100x${history + 30}", errors: "0x${history} 100x30"}]
    expect:
      - {at: 1h, alerts: []}
      - {at: ${before}, alerts: [{slo: availability, severity: critical, state: firing}]}
`);
  const r = await run([file]);
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 1);
  assert.deepEqual(lines(r.stdout), [
    `PASS ${file}: pages when the arithmetic says`,
    `FAIL ${file}: expects the page too early`,
    `  ${at(file, `at: ${before}`, '{at')}: at ${before}:`,
    '    expected: [{slo: availability, severity: critical, state: firing}]',
    // The ticket fires first with 6 h of history (its 6 h window needs 0.1 %: 3 failed steps).
    '    got:      [{slo: availability, severity: ticket, state: firing}]',
    'tested 1 file, 2 tests: 1 passed, 1 failed',
  ]);
});

test('broken files: every problem at file:line:col on stderr, the good files still run; exit 2', async () => {
  const good = write('broken/a_good.test.yaml', `rule_files: ../${checkoutRules()}
tests:
  - name: quiet
    input: [{service: checkout, operation: "POST /checkout", requests: "10x30"}]
    expect: [{at: 5m, alerts: []}]
`);
  const typos = write('broken/b_typos.test.yaml', `rule_files: ../${checkoutRules()}
evaluation_interval: 10sec
tests:
  - name: typos
    input:
      - {service: checkout, operation: "POST /checkout", requets: "100x6"}
      - {service: checkout, operation: "POST /checkout", requests: "100x6 5-2x4"}
    expect:
      - {at: 1m, alerts: [{slo: availabilty, severity: critical}]}
`);
  write('broken/rules/broken.yaml', 'service: broken\nslos:\n  - name: x\n    objectve: 99\n    sli: {errors: {}}\n');
  const brokenRules = write('broken/c_broken_rules.test.yaml', `rule_files: [rules/broken.yaml]
tests: [{name: never runs, expect: [{at: 10s, alerts: []}]}]
`);
  const dir = path.join(scratch, 'broken');
  const r = await run([dir, path.join(dir, 'no-such.test.yaml')]);
  const broken = path.join(dir, 'rules', 'broken.yaml');
  assert.equal(r.timedOut, false);
  assert.equal(r.signal, null);
  assert.equal(r.code, 2);
  assert.deepEqual(lines(r.stderr), [
    `${at(typos, '10sec')}: evaluation_interval: invalid duration "10sec": unknown unit "sec" ` +
      '(use ms, s, m, h, d)',
    `${at(typos, 'requets', '{')}: tests[0].input[0] needs one of requests, latencies or traces`,
    `${at(typos, 'requets')}: unknown key 'requets' in tests[0].input[0]; did you mean ` +
      "'requests'?",
    `${at(typos, '5-2x4')}: tests[0].input[1].requests: invalid term "5-2x4": goes below 0 (its ` +
      'last step would be -1)',
    // The rule file's own problems, as `traceslo check` shows them, then where the test names it.
    `${broken}:3:5: slos[0].objective is required`,
    `${broken}:4:5: unknown key 'objectve' in slos[0]; did you mean 'objective'?`,
    `${at(brokenRules, 'rule_files', '[')}: rule_files: 2 problems in the rule files (as ` +
      'traceslo check reports them); no test of this file ran',
    `${path.join(dir, 'no-such.test.yaml')}:1:1: cannot read: No such file or directory`,
  ]);
  assert.deepEqual(lines(r.stdout), [
    `PASS ${good}: quiet`,
    'tested 4 files, 1 test: 1 passed, 0 failed; 3 files with problems',
  ]);
});

test('a pattern that matches nothing is a problem too', async () => {
  const r = await run(['rules/tests/*.yml']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'rules/tests/*.yml:1:1: no files match this pattern\n');
  assert.equal(r.stdout, 'tested 0 files, 0 tests: 0 passed, 0 failed; 1 path problem\n');
});
