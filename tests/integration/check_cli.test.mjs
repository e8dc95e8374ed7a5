// `traceslo check`: the example rules in rules/ are clean (exit 0), and a directory of broken
// rule files (tests/integration/data/bad_rules) reports every problem of every file on stderr as
// file:line:col: message, sorted by file and position, with a summary on stdout and exit 1.
// Each expected position is found in the file's text here, so it points at the offending token.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { makeTempDir, repoRoot, runTraceslo } from '../clients/lib.mjs';

const badDir = 'tests/integration/data/bad_rules';
let scratch;
before(async () => {
  scratch = await makeTempDir('traceslo-it-check-');
});
after(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const check = (args, opts = {}) => runTraceslo(['check', ...args], { cwd: repoRoot, ...opts });
const lines = (text) => text.split('\n').filter((line) => line.length > 0);

// "file:line:col" of `token` on the line of `file` that contains `lineText` (the only one, or
// the `nth` of `count` such lines).
function at(file, lineText, token = lineText, { nth = 0, count = 1 } = {}) {
  const text = fs.readFileSync(path.join(repoRoot, badDir, file), 'utf8');
  const found = text.split('\n')
    .flatMap((line, i) => (line.includes(lineText) ? [[line, i]] : []));
  assert.equal(found.length, count, `${JSON.stringify(lineText)} on ${count} line(s) of ${file}`);
  const [line, index] = found[nth];
  const column = line.indexOf(token, line.indexOf(lineText));
  assert.ok(column >= 0, `${JSON.stringify(token)} in ${JSON.stringify(line)}`);
  return `${badDir}/${file}:${index + 1}:${column + 1}`;
}

test('`traceslo check rules/` passes on the example rules', async () => {
  const r = await check(['rules/']);
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, '', 'no problems');
  assert.equal(r.code, 0);
  const m = r.stdout.trim().match(/^checked (\d+) files, (\d+) SLOs: 0 errors$/);
  assert.ok(m, r.stdout);
  assert.ok(Number(m[1]) >= 3 && Number(m[2]) >= Number(m[1]), r.stdout);
});

test('`traceslo check` with no argument reads rules/*.yaml', async () => {
  const byDefault = await check([]);
  const explicit = await check(['rules/*.yaml']);
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.equal(byDefault.stdout, explicit.stdout);
  assert.match(byDefault.stdout, /^checked \d+ files, \d+ SLOs: 0 errors\n$/);
});

test('broken files: every problem at its file:line:col, sorted by file, exit 1', async () => {
  const r = await check([badDir]);
  assert.equal(r.timedOut, false);
  assert.equal(r.signal, null);
  assert.equal(r.code, 1);
  const firstName = at('objectives.yaml', 'name: availability', 'availability', { count: 2 });
  const secondName =
    at('objectives.yaml', 'name: availability', 'availability', { nth: 1, count: 2 });
  const expected = [
    `${at('inventory.yaml', 'service: checkout', 'checkout')}: service "checkout" is already ` +
      `defined in ${at('checkout.yaml', 'service: checkout', 'checkout')} (one service per rule ` +
      'file)',
    `${at('objectives.yaml', 'objective: 100', '100')}: slos[0].objective must be a percentage ` +
      'between 0 and 100 (exclusive), got 100',
    `${secondName}: slos[1].name: duplicate SLO name "availability" (first defined at ` +
      `${firstName.split(':').slice(1).join(':')})`,
    `${at('objectives.yaml', 'objective: 99.99999', '99.99999')}: slos[1].objective 99.99999% ` +
      'over 30d leaves an error budget of 0.2592s of full outage, less than the 10s evaluation ' +
      'resolution; lower the objective or lengthen the window',
    `${at('objectives.yaml', 'burn_rate: 14.4', '14.4')}: ` +
      'slos[2].alerting.page.windows[0].burn_rate 14.4 can never fire with objective 90%: it ' +
      'needs an error ratio of 144% (14.4 × the 10% error budget), and at most 100% of events ' +
      'can fail',
    `${at('objectives.yaml', 'objective: 80', '80')}: slos[3].objective 80% leaves a 20% error ` +
      'budget: the default page tier (14.4× over 1h/5m) needs an error ratio of 288% and can ' +
      'never fire (nor can 1 more default tier); set alerting.page.windows with lower burn ' +
      'rates, or alerting.page.enabled: false',
    `${at('sli.yaml', '{errors: {}, latency', 'latency')}: slos[0].sli names 2 kinds (errors, ` +
      'latency); an SLO has exactly one SLI: write one SLO per kind',
    `${at('sli.yaml', 'sli: {}', '{}')}: slos[1].sli must name one kind: errors, latency, ` +
      'error_traces, partial_traces, latency_quantile',
    `${at('sli.yaml', 'threshold: 0ms', '0ms')}: slos[2].sli.latency.threshold must be greater ` +
      'than 0, got "0ms"',
    `${at('sli.yaml', 'quantile: 99', '99')}: slos[3].sli.latency_quantile.quantile must be ` +
      'between 0 and 1 (exclusive), got 99 (write 0.99 for the 99th percentile)',
    // The flow mapping is never closed: yaml-cpp notices at the end of the file (line 6).
    `${badDir}/syntax.yaml:6:1: invalid YAML: end of map flow not found`,
    `${at('typos.yaml', '- name: delivery', 'name')}: slos[0].objective is required`,
    `${at('typos.yaml', 'objectve')}: unknown key 'objectve' in slos[0]; did you mean 'objective'?`,
    `${at('typos.yaml', 'window: 30days', '30days')}: slos[0].window: invalid duration ` +
      '"30days": unknown unit "days" (use ms, s, m, h, d)',
    `${at('typos.yaml', 'min_events: twenty', 'twenty')}: slos[0].alerting.min_events must be an ` +
      'integer between 0 and 1000000000, got "twenty"',
    `${at('typos.yaml', 'anotations')}: unknown key 'anotations' in slos[0].alerting; did you ` +
      "mean 'annotations'?",
    `${at('windows.yaml', 'short: 1h', '1h, burn')}: slos[0].alerting.page.windows[0].short ` +
      'window 1h must be shorter than the long window 1h',
    `${at('windows.yaml', 'short: 45s', '45s')}: slos[0].alerting.page.windows[1].short must be ` +
      'a multiple of 10s (the SLI bucket), got 45s',
    `${at('windows.yaml', 'long: 14d', '14d')}: slos[0].alerting.ticket.windows[0].long window ` +
      '14d is longer than the compliance window 7d (slos[0].window)',
  ];
  assert.deepEqual(lines(r.stderr), expected);
  assert.equal(r.stdout, `checked 7 files, 12 SLOs: ${expected.length} errors\n`);
  // The syntax error really is at the end: the file has 5 lines.
  const syntax = fs.readFileSync(path.join(repoRoot, badDir, 'syntax.yaml'), 'utf8');
  assert.equal(lines(syntax).length, 5);
});

test('missing files and patterns that match nothing are errors', async () => {
  const empty = path.join(scratch, 'empty');
  fs.mkdirSync(empty);
  const r = await check(['rules/', 'no-such-file.yaml', 'rules/*.yml', empty]);
  assert.equal(r.code, 1);
  assert.deepEqual(lines(r.stderr).sort(), [
    `${empty}:1:1: no rule files (*.yaml, *.yml) in this directory`,
    'no-such-file.yaml:1:1: cannot read: No such file or directory',
    'rules/*.yml:1:1: no files match this pattern',
  ].sort());
  // The good files were still checked.
  assert.match(r.stdout, /^checked \d+ files, \d+ SLOs: 3 errors\n$/);
});

test('good and bad files together: the bad ones fail the check', async () => {
  const bad = path.join(scratch, 'extra.yaml');
  const slo = '  - {name: a, objective: 99.9, sli: {errors: {}}, ' +
    'alerting: {page: {windows: [{long: 5m, short: 1h, burn_rate: 2}]}}}';
  fs.writeFileSync(bad, `service: extra\nslos:\n${slo}\n`);
  const r = await check(['rules/', bad]);
  assert.equal(r.code, 1);
  const column = slo.indexOf('short: 1h') + 'short: '.length + 1;
  assert.deepEqual(lines(r.stderr), [
    `${bad}:3:${column}: slos[0].alerting.page.windows[0].short window 1h must be shorter than ` +
      'the long window 5m',
  ]);
  assert.match(r.stdout, /: 1 error\n$/);
});
