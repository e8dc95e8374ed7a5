// `traceslo replay`: the recorded incident in tests/integration/data/replay (README.md there has
// the loadgen command that wrote it) replays to the same stdout twice in a row; its alert fires
// and resolves at times that follow from the incident schedule and the rule windows (worked out
// here, not copied from the output); bad lines are reported as FILE:LINE, counted and skipped;
// the exit codes; and a fresh recording made by traceslo-loadgen --record replays the same way.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { makeTempDir, repoRoot, runLoadgen, runTraceslo } from '../clients/lib.mjs';

const dataDir = 'tests/integration/data/replay';
const fixture = `${dataDir}/incident.jsonl`;
const rules = `${dataDir}/rules`;

// The recording's schedule, from the loadgen command line in data/replay/README.md.
const START = Date.parse('2025-06-01T12:00:00Z');
const INCIDENT_START = START + 60_000;         // start=60s
const INCIDENT_END = INCIDENT_START + 50_000;   // duration=50s
const DURATION = '150s';
const INCIDENT = 'error_burst:service=checkout,start=60s,duration=50s,' +
  'exception_type=PaymentGatewayTimeout,message="upstream {hex} timed out after {int} ms"';
// checkout/availability in data/replay/rules/checkout.yaml: page at 50 % errors over 1m and 20s.
const LONG = 60_000;
const SHORT = 20_000;
const EVALUATION = 10_000;  // rules.evaluation_interval (default); SLI buckets are 10 s too

let scratch;
before(async () => {
  scratch = await makeTempDir('traceslo-it-replay-');
});
after(() => {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const replay = (args) => runTraceslo(['replay', ...args], { cwd: repoRoot, timeoutMs: 60_000 });

// What a recording holds, counted here from its lines: requests and spans.
function countRecording(file) {
  const lines = fs.readFileSync(path.resolve(repoRoot, file), 'utf8').split('\n')
    .filter((line) => line.trim() !== '');
  let spans = 0;
  for (const line of lines) {
    for (const rs of JSON.parse(line).resourceSpans) {
      for (const ss of rs.scopeSpans) spans += ss.spans.length;
    }
  }
  return { requests: lines.length, spans };
}

// The checkout/availability page alert fires once and resolves once, when the schedule says:
// - Errors exist only in spans ending at or after INCIDENT_START, and the evaluation at a time t
//   runs before the spans ending at t are replayed, so the first evaluation that can see an
//   error is INCIDENT_START + one evaluation interval.
// - An evaluation at t reads the window's 10 s buckets ending with t's own (still empty) one:
//   the 1m window holds spans ending in [t - 50s, t). From INCIDENT_START + 50s on it holds only
//   incident traffic, in which every checkout request fails (ratio 1): by then it has fired.
// - From INCIDENT_END + 10s the 20s window holds only traffic after the incident (0 % errors),
//   so it has resolved by INCIDENT_END + SHORT at the latest; before INCIDENT_END it held only
//   failing requests, so it cannot resolve before the incident ends.
function checkCheckoutAlert(timeline) {
  const checkout = timeline.filter((t) => t.service === 'checkout' && t.slo === 'availability');
  assert.deepEqual(checkout.map((t) => [t.severity, t.from, t.to]),
    [['page', 'inactive', 'firing'], ['page', 'firing', 'resolved']], JSON.stringify(checkout));
  const [fired, resolved] = checkout.map((t) => Date.parse(t.time));
  assert.equal(fired % EVALUATION, 0, 'on the evaluation grid');
  assert.ok(fired >= INCIDENT_START + EVALUATION, `fired ${checkout[0].time} too early`);
  assert.ok(fired <= INCIDENT_START + LONG - EVALUATION, `fired ${checkout[0].time} too late`);
  assert.ok(resolved > INCIDENT_END, `resolved ${checkout[1].time} before the incident ended`);
  assert.ok(resolved <= INCIDENT_END + SHORT, `resolved ${checkout[1].time} too late`);
  assert.equal(checkout[1].in_drain, false, 'resolved within the recording');

  // While firing, both windows burn at least at the tier's rate; the signatures are the
  // incident's exception (numbers and hex masked), on checkout's own operations.
  assert.equal(checkout[0].threshold_burn_rate, 5);
  assert.ok(checkout[0].burn_rate_long >= 5 && checkout[0].burn_rate_short >= 5);
  assert.ok(checkout[1].burn_rate_short < 5, 'resolved: the short window burns under 5');
  assert.ok(checkout[0].signatures.length >= 1);
  for (const s of checkout[0].signatures) {
    assert.equal(s.exception_type, 'PaymentGatewayTimeout');
    assert.match(s.message, /^upstream \S+ timed out after \S+ ms$/);
    assert.doesNotMatch(s.message, /[0-9]/, 'numbers and hex masked');
    assert.ok(['POST /checkout', 'GET /cart'].includes(s.operation), s.operation);
    assert.match(s.id, /^[0-9a-f]{16}$/);
    assert.ok(s.count >= 1);
  }
  const counts = checkout[0].signatures.map((s) => s.count);
  assert.deepEqual(counts, [...counts].sort((a, b) => b - a), 'by count, highest first');
  return { fired, resolved };
}

test('replay of the recorded incident prints the same bytes twice in a row', async () => {
  const one = await replay(['--rules', rules, '--spans', fixture]);
  const two = await replay(['--rules', rules, '--spans', fixture]);
  assert.equal(one.timedOut, false);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stderr, '', 'no progress line when stderr is not a terminal');
  assert.equal(two.code, 0, two.stderr);
  assert.equal(two.stdout, one.stdout);
  const jsonOne = await replay(['--rules', rules, '--spans', fixture, '--format', 'json']);
  const jsonTwo = await replay(['--rules', rules, '--spans', fixture, '--format', 'json']);
  assert.equal(jsonOne.code, 0, jsonOne.stderr);
  assert.equal(jsonTwo.stdout, jsonOne.stdout);

  // The text and the JSON tell the same timeline.
  const timeline = JSON.parse(jsonOne.stdout).timeline;
  const textLines = one.stdout.split('\n').filter((line) => /^\d{4}-\d\d-\d\dT/.test(line));
  assert.equal(textLines.length, timeline.length);
  timeline.forEach((t, i) => {
    assert.ok(textLines[i].startsWith(`${t.time}  ${t.service}/${t.slo}  ${t.severity}  ` +
      `${t.from} -> ${t.to}  `), textLines[i]);
  });
});

test('the alert fires and resolves when the incident schedule says', async () => {
  const r = await replay(['--rules', rules, '--spans', fixture, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const { timeline, summary } = JSON.parse(r.stdout);
  checkCheckoutAlert(timeline);
  for (let i = 1; i < timeline.length; i++) {
    const a = timeline[i - 1];
    const b = timeline[i];
    assert.ok(a.unix_nano < b.unix_nano ||
      (a.unix_nano === b.unix_nano && `${a.service}/${a.slo}` <= `${b.service}/${b.slo}`),
    'time order, then service and SLO');
  }

  // The summary counts what the file holds.
  const expected = countRecording(fixture);
  assert.equal(summary.requests, expected.requests);
  assert.equal(summary.spans, expected.spans);
  assert.equal(summary.bad_lines, 0);
  assert.equal(summary.spans_refused, 0);
  assert.equal(summary.alerts_fired, timeline.filter((t) => t.to === 'firing').length);
  assert.equal(summary.alerts_resolved, timeline.filter((t) => t.to === 'resolved').length);
  assert.equal(summary.alerts_firing_at_end, 0);
  assert.equal(summary.clock_skew_spans, 0, 'recorded time: no span is out of the clock');
  // The replay starts at the first request's latest span end (the first trace, due at START)
  // and ends a drain after the last one: trace i is due i / rate after the start, and the latest
  // span of a trace ends when it is due.
  const traces = Math.floor(150 * 0.5);
  assert.equal(summary.first_unix_nano, START * 1e6);
  assert.equal(summary.last_unix_nano, (START + ((traces - 1) / 0.5) * 1000) * 1e6);
  assert.equal(summary.end_unix_nano, summary.last_unix_nano + 120_000 * 1e6, 'default drain 2m');
  const checkout = summary.slos.find((s) => s.service === 'checkout');
  assert.equal(checkout.objective_ratio, 0.9);
  const compliance = checkout.windows.at(-1);
  assert.equal(compliance.window, '1h');
  assert.ok(compliance.bad > 0 && compliance.bad < compliance.total);
});

test('bad lines: FILE:LINE on stderr, counted, skipped; exit 1 unless --allow-bad-lines', async () => {
  const lines = fs.readFileSync(path.join(repoRoot, fixture), 'utf8').split('\n');
  lines.splice(2, 0, '{"resourceSpans": [');                 // line 3: cut short
  lines.splice(5, 0, '{"resourceLogs": []}');                // line 6: the wrong kind of export
  const file = path.join(scratch, 'with-bad-lines.jsonl');
  fs.writeFileSync(file, lines.join('\n'));

  const r = await replay(['--rules', rules, '--spans', file]);
  assert.equal(r.code, 1);
  const stderr = r.stderr.split('\n').filter((line) => line !== '');
  assert.match(stderr[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: malformed JSON`));
  assert.equal(stderr[1], `${file}:6: request: no resourceSpans: not an OTLP trace export ` +
    'request (a metrics or logs export?)');
  assert.equal(stderr[2], 'traceslo replay: 2 bad lines skipped (exit 1; --allow-bad-lines to ' +
    'accept them)');
  assert.match(r.stdout, /^ {2}requests: 75, bad lines skipped: 2$/m);

  // The rest replays as if the bad lines were not there.
  const clean = await replay(['--rules', rules, '--spans', fixture]);
  const timeline = (text) => text.slice(0, text.indexOf('\nsummary:'));
  assert.equal(timeline(r.stdout), timeline(clean.stdout));

  const allowed = await replay(['--rules', rules, '--spans', file, '--allow-bad-lines']);
  assert.equal(allowed.code, 0);
  assert.equal(allowed.stdout, r.stdout);
});

test('exit 2: rule problems at file:line:col, unreadable input, bad flags', async () => {
  const badRules = path.join(scratch, 'bad-rules');
  fs.mkdirSync(badRules, { recursive: true });
  fs.writeFileSync(path.join(badRules, 'checkout.yaml'),
    'service: checkout\nslos:\n  - name: availability\n    objective: 100\n    sli: {errors: {}}\n');
  const r = await replay(['--rules', badRules, '--spans', fixture]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`^${path.join(badRules, 'checkout.yaml')}:4:16: ` +
    'slos\\[0\\]\\.objective must be a percentage', 'm'));
  assert.equal(r.stdout, '');

  const missing = await replay(['--rules', rules, '--spans', path.join(scratch, 'nope.jsonl')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--spans: .*nope\.jsonl: No such file or directory/);

  for (const [args, message] of [
    [['--format', 'yaml'], /--format must be text or json/],
    [['--spans-format', 'avro'], /--spans-format must be json or proto/],
    [['--drain', 'soon'], /--drain: /],
    [['--max-gap', '0s'], /--max-gap must be a duration greater than 0/],
    [['--max-line-bytes', 'lots'], /--max-line-bytes must be a byte size/],
  ]) {
    const bad = await replay(['--rules', rules, '--spans', fixture, ...args]);
    assert.equal(bad.code, 2, args.join(' '));
    assert.match(bad.stderr, message);
  }
  const noSpans = await replay(['--rules', rules]);
  assert.notEqual(noSpans.code, 0);
  assert.match(noSpans.stderr, /--spans is required/);
});

test('a protobuf recording (length-prefixed) fails loudly when the framing is lost', async () => {
  const file = path.join(scratch, 'not-protobuf.pb');
  fs.writeFileSync(file, fs.readFileSync(path.join(repoRoot, fixture)).subarray(0, 200));
  const r = await replay(['--rules', rules, '--spans', file, '--spans-format', 'proto']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: record 1 ` +
    'at byte 0: length prefix of \\d+ bytes is more than'));
  assert.match(r.stdout, /input: .* \(length-prefixed protobuf\), not read to its end/);
});

test('end to end: traceslo-loadgen --record, then replay', async () => {
  const file = path.join(scratch, 'recorded.jsonl');
  const record = await runLoadgen(['--record', file, '--rate', '0.5', '--duration', DURATION,
    '--spans-per-trace', '9', '--seed', '7', '--start-time', '2025-06-01T12:00:00Z',
    '--incident', INCIDENT, '--quiet']);
  assert.equal(record.code, 0, record.stderr);
  assert.equal(record.report.endpoint, '', 'record only: nothing sent');
  assert.equal(record.report.elapsed_seconds, 150, 'on simulated time');
  const counted = countRecording(file);
  assert.equal(counted.requests, record.report.requests.sent);
  assert.equal(counted.spans, record.report.spans.sent);

  const r = await replay(['--rules', rules, '--spans', file, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const { timeline, summary } = JSON.parse(r.stdout);
  checkCheckoutAlert(timeline);
  assert.equal(summary.spans, record.report.spans.sent);
  const twice = await replay(['--rules', rules, '--spans', file, '--format', 'json']);
  assert.equal(twice.stdout, r.stdout);
});
