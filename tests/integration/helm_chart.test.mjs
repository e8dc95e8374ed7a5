// The Helm chart in helm/traceslo, checked without a helm binary (Debian ships none, so CI runs
// neither `helm lint` nor `helm template`; with HELM_BIN set, the last three tests run both and
// compare helm's output with the rendering emulated here):
//   - yamllint (strict, the chart's .yamllint) on Chart.yaml, values.yaml, ci/ and files/;
//   - the templates, which are Go templates and not YAML: balanced {{ }} and if/range/with/define
//     ... end, every .Values path they read is in values.yaml and in values.schema.json, every
//     include names a template _helpers.tpl defines, every .Files path exists;
//   - values.schema.json (draft-07, with ajv): it accepts values.yaml and ci/*-values.yaml, types
//     every value, and refuses wrong types, unknown keys and the keys the chart owns;
//   - no drift: files/rules/ and files/dashboards/ are byte-identical copies of rules/*.yaml and
//     dashboards/*.json (scripts/sync-helm-files.sh refreshes them), `traceslo check` accepts the
//     rules, and the real binary starts (GET /-/ready) with files/traceslo.yaml and with the
//     configuration the chart renders for values.yaml and ci/*-values.yaml. That rendering
//     (files/traceslo.yaml, .Values.config merged over it, web.external_url from .Values) is
//     done here the way templates/_helpers.tpl does it with mergeOverwrite.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  clientsDir, httpGet, makeTempDir, repoRoot, runTraceslo, serverPool,
} from '../clients/lib.mjs';

const require = createRequire(path.join(clientsDir, 'package.json'));
const Ajv = require('ajv');
const YAML = require('yaml');

const chartDir = path.join(repoRoot, 'helm', 'traceslo');
const chartPath = (...parts) => path.join(chartDir, ...parts);
const read = (file) => fs.readFileSync(file, 'utf8');
const readYaml = (file) => YAML.parse(read(file), { uniqueKeys: true });
const listDir = (dir, ext) =>
  (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(ext)).sort() : []);
const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

const values = readYaml(chartPath('values.yaml'));
const schema = JSON.parse(read(chartPath('values.schema.json')));
const templateFiles = fs.readdirSync(chartPath('templates')).sort();
const templates = Object.fromEntries(
  templateFiles.map((f) => [f, read(chartPath('templates', f))]));
const ciValueFiles = listDir(chartPath('ci'), '-values.yaml');

// Helm's mergeOverwrite (and its coalescing of user values over values.yaml): maps merge key by
// key, anything else from `src` replaces.
function deepMerge(dst, src) {
  const out = structuredClone(dst);
  for (const [k, v] of Object.entries(src ?? {})) {
    out[k] = isMap(v) && isMap(out[k]) ? deepMerge(out[k], v) : structuredClone(v);
  }
  return out;
}

// What templates/_helpers.tpl's "traceslo.config" renders for `vals` (the coalesced values).
function renderConfig(vals) {
  const base = readYaml(chartPath('files', 'traceslo.yaml'));
  return deepMerge(deepMerge(base, vals.config), { web: { external_url: vals.externalUrl } });
}

// The rule files the rules ConfigMap holds for `vals`: name -> content.
function renderRules(vals) {
  const rules = {};
  if (vals.rules.examples) {
    for (const f of listDir(chartPath('files', 'rules'), '.yaml')) {
      rules[f] = read(chartPath('files', 'rules', f));
    }
  }
  return { ...rules, ...vals.rules.files };
}

const ajv = new Ajv({ strict: true, allowUnionTypes: true, allErrors: true });
let validate;

let scratch;
const pool = serverPool();
before(async () => {
  scratch = await makeTempDir('traceslo-it-helm-');
});
after(async () => {
  await pool.cleanupAll();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------
// Chart.yaml and yamllint.

test('Chart.yaml: apiVersion v2, appVersion is the project version in CMakeLists.txt', () => {
  const chart = readYaml(chartPath('Chart.yaml'));
  const cmake = read(path.join(repoRoot, 'CMakeLists.txt'));
  const version = cmake.match(/project\(traceslo\s+VERSION\s+([0-9.]+)/)?.[1];
  assert.ok(version, 'project(traceslo VERSION x.y.z) in CMakeLists.txt');
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'traceslo');
  assert.equal(chart.type, 'application');
  assert.equal(chart.appVersion, version);
  assert.match(chart.version, /^[0-9]+\.[0-9]+\.[0-9]+$/);
});

const yamllint = process.env.YAMLLINT || 'yamllint';
const runYamllint = (args) =>
  spawnSync(yamllint, ['-f', 'parsable', '-s', '-c', chartPath('.yamllint'), ...args],
    { encoding: 'utf8', timeout: 60_000 });

test('yamllint (strict, helm/traceslo/.yamllint) passes on Chart.yaml, values.yaml, ci/, files/', () => {
  const targets = ['Chart.yaml', 'values.yaml', 'ci', 'files', '.yamllint'].map((t) => chartPath(t));
  const r = runYamllint(targets);
  assert.equal(r.error, undefined, `${yamllint} could not run (apt-get install yamllint): ${r.error}`);
  assert.equal(r.status, 0, `yamllint:\n${r.stdout}${r.stderr}`);
  // Every plain YAML file of the chart was among the targets: only templates/ is left out.
  const yamlFiles = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) { if (p !== chartPath('templates')) walk(p); } else if (/\.ya?ml$/.test(e.name)) yamlFiles.push(p);
    }
  };
  walk(chartDir);
  for (const f of yamlFiles) {
    assert.ok(targets.some((t) => f === t || f.startsWith(`${t}${path.sep}`)), `${f} is linted`);
  }
});

test('yamllint with the chart config refuses a bad file (the lint can fail)', () => {
  const bad = path.join(scratch, 'bad.yaml');
  fs.writeFileSync(bad, 'image:\n  tag: a\n  tag: b\nflag: yes\nlist:\n    - 1\n');
  const r = runYamllint([bad]);
  assert.notEqual(r.status, 0, r.stdout);
  assert.match(r.stdout, /key-duplicates/);
  assert.match(r.stdout, /truthy/);
});

// ------------------------------------------------------------------------------------------
// Templates: structure, .Values paths, includes, .Files paths.

// The actions of a template: the text between each {{ and its }}, without trim markers.
function actions(file, text) {
  const out = [];
  let at = 0;
  for (;;) {
    const open = text.indexOf('{{', at);
    const close = text.indexOf('}}', at);
    if (open < 0) {
      assert.equal(close, -1, `${file}: "}}" without "{{" at offset ${close}`);
      return out;
    }
    assert.ok(close > open, `${file}: "}}" before "{{" at offset ${close}`);
    const next = text.indexOf('{{', open + 2);
    assert.ok(next < 0 || next > close, `${file}: "{{" at offset ${open} is not closed before the next "{{"`);
    out.push(text.slice(open + 2, close).replace(/^-\s*/, '').replace(/\s*-$/, '').trim());
    at = close + 2;
  }
}

test('templates: {{ }} balanced, every if/range/with/define closed by its end', () => {
  assert.ok(templateFiles.includes('_helpers.tpl'));
  for (const f of ['statefulset.yaml', 'service.yaml', 'configmap.yaml', 'servicemonitor.yaml',
    'dashboards.yaml', 'NOTES.txt']) {
    assert.ok(templateFiles.includes(f), `templates/${f}`);
  }
  for (const [file, text] of Object.entries(templates)) {
    const stack = [];
    for (const a of actions(file, text)) {
      if (a.startsWith('/*')) {
        assert.ok(a.endsWith('*/'), `${file}: unterminated comment {{${a}}}`);
        continue;
      }
      const word = a.match(/^(\w+)/)?.[1];
      if (['if', 'range', 'with', 'define', 'block'].includes(word)) stack.push(word);
      else if (word === 'else') assert.ok(stack.length > 0, `${file}: else outside a block`);
      else if (word === 'end') assert.ok(stack.pop(), `${file}: end without a block`);
    }
    assert.deepEqual(stack, [], `${file}: unclosed ${stack.join(', ')}`);
  }
});

// The schema node for `keys` (following $ref into definitions), or null.
function schemaAt(keys) {
  let node = schema;
  for (const k of keys) {
    while (node?.$ref) node = schema.definitions[node.$ref.split('/').pop()];
    node = node?.properties?.[k] ?? null;
    if (!node) return null;
  }
  return node;
}

test('templates: every .Values path is in values.yaml and in values.schema.json', () => {
  const used = new Set();
  for (const text of Object.values(templates)) {
    for (const m of text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)) used.add(m[1].slice(1));
  }
  assert.ok(used.size >= 30, `found ${used.size} .Values paths`);
  for (const p of used) {
    const keys = p.split('.');
    let v = values;
    for (const k of keys) {
      assert.ok(isMap(v) && k in v, `.Values.${p} is used in templates but missing from values.yaml`);
      v = v[k];
    }
    assert.ok(schemaAt(keys), `.Values.${p} is used in templates but missing from values.schema.json`);
  }
  // And the other way: each top-level value is read by some template.
  for (const k of Object.keys(values)) {
    assert.ok([...used].some((p) => p === k || p.startsWith(`${k}.`)), `values.yaml: ${k} is never used`);
  }
});

test('templates: every include names a defined template, every define is used', () => {
  const defined = new Set([...templates['_helpers.tpl'].matchAll(/define\s+"([^"]+)"/g)].map((m) => m[1]));
  assert.ok(defined.has('traceslo.fullname') && defined.has('traceslo.config'));
  const used = new Set();
  for (const [file, text] of Object.entries(templates)) {
    for (const m of text.matchAll(/\b(?:include|template)\s+"([^"]+)"/g)) {
      assert.ok(defined.has(m[1]), `${file}: include "${m[1]}" is not defined in _helpers.tpl`);
      used.add(m[1]);
    }
    if (file !== '_helpers.tpl') assert.doesNotMatch(text, /define\s+"/, `${file}: define belongs in _helpers.tpl`);
  }
  for (const name of defined) assert.ok(used.has(name), `"${name}" is defined but never used`);
});

test('templates: the files they read exist (.Files.Get, .Files.Glob)', () => {
  let globs = 0;
  for (const [file, text] of Object.entries(templates)) {
    for (const m of text.matchAll(/\.Files\.Get\s+"([^"]+)"/g)) {
      assert.ok(fs.existsSync(chartPath(m[1])), `${file}: .Files.Get "${m[1]}": no such file in the chart`);
    }
    for (const m of text.matchAll(/\.Files\.Glob\s+"([^"]+)"/g)) {
      globs += 1;
      const { dir, base } = path.parse(m[1]);
      assert.match(base, /^\*\.[a-z]+$/, `${file}: glob ${m[1]}`);
      if (dir === 'files/rules') {
        assert.ok(listDir(chartPath(dir), base.slice(1)).length > 0, `${file}: ${m[1]} matches nothing`);
      }
    }
  }
  assert.ok(globs >= 2);
});

test('templates: ports, mounts and the config file agree with files/traceslo.yaml', () => {
  const base = readYaml(chartPath('files', 'traceslo.yaml'));
  const sts = templates['statefulset.yaml'];
  const mountOf = (name) => sts.match(new RegExp(`- name: ${name}\\n\\s+mountPath: (\\S+)`))?.[1];
  const port = (address) => address.split(':').pop();
  assert.equal(base.otlp.grpc.listen_address, '0.0.0.0:4317');
  assert.equal(base.otlp.http.listen_address, '0.0.0.0:4318');
  assert.equal(base.web.listen_address, '0.0.0.0:8080');
  for (const [name, address] of [['otlp-grpc', base.otlp.grpc.listen_address],
    ['otlp-http', base.otlp.http.listen_address], ['http', base.web.listen_address]]) {
    assert.match(sts, new RegExp(`- name: ${name}\\n\\s+containerPort: ${port(address)}\\n`), `containerPort ${name}`);
    assert.match(templates['service.yaml'], new RegExp(`- name: ${name}\\n\\s+port: .*\\n\\s+targetPort: ${name}\\n`));
  }
  assert.match(templates['service.yaml'], /- name: otlp-grpc\n(?:.*\n){3}\s+appProtocol: grpc\n/);
  assert.equal(mountOf('data'), base.storage.path);
  assert.deepEqual(base.rules.files, [`${mountOf('rules')}/*.yaml`]);
  assert.equal(mountOf('tmp'), '/tmp');
  assert.match(sts, new RegExp(`- --config\\.file=${mountOf('config')}/traceslo\\.yaml\\n`));
  assert.match(sts, /path: \/-\/healthy\n\s+port: http\n/);
  assert.match(sts, /path: \/-\/ready\n\s+port: http\n/);
  assert.match(sts, /checksum\/config: \{\{ include \(print \$\.Template\.BasePath "\/configmap\.yaml"\) \. \| sha256sum \}\}/);
  assert.match(sts, /mountPath: \/etc\/traceslo\/secrets\/\{\{ \.secretName \}\}/);
  assert.match(sts, /replicas: 1\n/);
  assert.match(sts, /volumeClaimTemplates:/);
  // The restricted security context, from values.yaml.
  assert.deepEqual(values.podSecurityContext, {
    runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532,
    fsGroupChangePolicy: 'OnRootMismatch', seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(values.securityContext, {
    allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  });
  // Off by default: the ServiceMonitor, dashboards and the Grafana data source.
  assert.equal(values.serviceMonitor.enabled, false);
  assert.equal(values.dashboards.enabled, false);
  assert.equal(values.grafanaDatasource.enabled, false);
  assert.match(templates['servicemonitor.yaml'], /^\{\{- if \.Values\.serviceMonitor\.enabled \}\}\napiVersion: monitoring\.coreos\.com\/v1\nkind: ServiceMonitor\n/);
  assert.match(templates['dashboards.yaml'], /grafana_dashboard: "1"/);
  assert.match(templates['grafana-datasource.yaml'], /\/traces\/\$\$\{__value\.raw\}/);
});

// ------------------------------------------------------------------------------------------
// values.schema.json.

test('values.schema.json is draft-07 and compiles in strict mode', () => {
  assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  validate = ajv.compile(schema);
});

const errorsOf = (doc) => {
  validate ??= ajv.compile(schema);
  return validate(doc) ? [] : validate.errors.map((e) => `${e.instancePath} ${e.keyword} ${e.message}`);
};

test('values.yaml and ci/*-values.yaml (over values.yaml, as Helm coalesces them) are valid', () => {
  assert.deepEqual(errorsOf(values), []);
  assert.ok(ciValueFiles.length > 0, 'ci/*-values.yaml');
  for (const f of ciValueFiles) {
    assert.deepEqual(errorsOf(deepMerge(values, readYaml(chartPath('ci', f)))), [], `ci/${f}`);
  }
});

test('values.schema.json types every value of values.yaml; objects refuse unknown keys', () => {
  // Objects whose keys are Kubernetes' or the user's: label/annotation maps and the like.
  const open = new Set(['global', 'affinity', 'tolerations[]', 'config.alerting.routes[].match']);
  const resolve = (node) => (node?.$ref ? resolve(schema.definitions[node.$ref.split('/').pop()]) : node);
  const walk = (node, where) => {
    node = resolve(node);
    assert.ok(node && (node.type || node.oneOf), `${where || '(root)'} has no type in values.schema.json`);
    if (node.type === 'object' && !open.has(where)) {
      assert.ok('additionalProperties' in node, `${where || '(root)'}: additionalProperties is not set`);
    }
    for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, where ? `${where}.${k}` : k);
    if (isMap(node.additionalProperties)) walk(node.additionalProperties, `${where}{}`);
    if (node.items) walk(node.items, `${where}[]`);
    for (const [name, def] of Object.entries(node.definitions ?? {})) walk(def, `#${name}`);
  };
  walk(schema, '');
  const walkValues = (v, keys) => {
    const node = resolve(schemaAt(keys));
    assert.ok(node?.type || node?.oneOf, `values.yaml ${keys.join('.')}: not typed in the schema`);
    if (isMap(v)) for (const [k, child] of Object.entries(v)) walkValues(child, [...keys, k]);
  };
  for (const [k, v] of Object.entries(values)) walkValues(v, [k]);
});

test('values.schema.json refuses wrong types, unknown keys and chart-owned config keys', () => {
  const cases = [
    [{ service: { ports: { http: '8080' } } }, '/service/ports/http type'],
    [{ replicas: 2 }, ' additionalProperties'],
    [{ persistence: { sizee: '1Gi' } }, '/persistence additionalProperties'],
    [{ persistence: { enabled: 'yes' } }, '/persistence/enabled type'],
    [{ image: { pullPolicy: 'Sometimes' } }, '/image/pullPolicy enum'],
    [{ externalUrl: 'traceslo.example.com' }, '/externalUrl pattern'],
    [{ config: { web: { listen_address: '0.0.0.0:9090' } } }, '/config/web additionalProperties'],
    [{ config: { web: { external_url: 'http://x' } } }, '/config/web additionalProperties'],
    [{ config: { storage: { path: '/data' } } }, '/config/storage additionalProperties'],
    [{ config: { rules: { files: ['x.yaml'] } } }, '/config/rules additionalProperties'],
    [{ config: { otlp: { grpc: { listen_address: ':4317' } } } }, '/config/otlp additionalProperties'],
    [{ config: { pipeline: { shard: 2 } } }, '/config/pipeline additionalProperties'],
    [{ config: { pipeline: { shards: 'two' } } }, '/config/pipeline/shards type'],
    [{ config: { rules: { evaluation_interval: '10' } } }, '/config/rules/evaluation_interval pattern'],
    [{ config: { alerting: { receivers: [{ name: 'x', slack: { url: 'u' }, log: {} }] } } },
      '/config/alerting/receivers/0 maxProperties'],
    [{ rules: { files: { 'checkout.yml': 'service: x' } } }, '/rules/files pattern'],
    [{ secretEnv: [{ name: 'SLACK URL', secretName: 's', key: 'k' }] }, '/secretEnv/0/name pattern'],
    [{ secretEnv: [{ name: 'SLACK_URL', secretName: 's' }] }, '/secretEnv/0 required'],
    [{ secretFiles: [{ secretName: 's', mountPath: '/x' }] }, '/secretFiles/0 additionalProperties'],
    [{ resources: { limits: { memroy: '1Gi' } } }, '/resources/limits additionalProperties'],
    [{ serviceMonitor: { interval: 30 } }, '/serviceMonitor/interval type'],
    [{ grafanaDatasource: { enabled: true } }, '/grafanaDatasource/prometheusUrl pattern'],
  ];
  for (const [override, expected] of cases) {
    const errors = errorsOf(deepMerge(values, override));
    assert.ok(errors.some((e) => e.startsWith(expected)),
      `${JSON.stringify(override)}: expected "${expected}", got ${JSON.stringify(errors)}`);
  }
});

// ------------------------------------------------------------------------------------------
// No drift from the repository, and the real binary accepts what the chart ships.

function assertSameFiles(srcDir, copyDir, ext) {
  const originals = listDir(srcDir, ext);
  const copies = listDir(copyDir, ext);
  const rel = (d) => path.relative(repoRoot, d);
  assert.deepEqual(copies, originals,
    `${rel(copyDir)} must hold exactly ${rel(srcDir)}/*${ext}: run scripts/sync-helm-files.sh`);
  for (const f of originals) {
    assert.ok(fs.readFileSync(path.join(copyDir, f)).equals(fs.readFileSync(path.join(srcDir, f))),
      `${rel(copyDir)}/${f} differs from ${rel(srcDir)}/${f}: run scripts/sync-helm-files.sh`);
  }
  return originals;
}

test('files/rules/ holds exactly rules/*.yaml, byte for byte', () => {
  const files = assertSameFiles(path.join(repoRoot, 'rules'), chartPath('files', 'rules'), '.yaml');
  assert.ok(files.length > 0);
});

test('files/dashboards/ holds exactly dashboards/*.json, byte for byte, each valid JSON', () => {
  const files = assertSameFiles(path.join(repoRoot, 'dashboards'), chartPath('files', 'dashboards'), '.json');
  for (const f of files) {
    assert.doesNotThrow(() => JSON.parse(read(chartPath('files', 'dashboards', f))), f);
    const name = path.basename(f, '.json').replace(/^traceslo-/, '').toLowerCase().replace(/[_.]/g, '-');
    assert.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${f}: not usable in a ConfigMap name`);
  }
});

test('`traceslo check` accepts the rule files the chart ships', async () => {
  const count = listDir(chartPath('files', 'rules'), '.yaml').length;
  const r = await runTraceslo(['check', chartPath('files', 'rules')]);
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, '', 'no problems');
  assert.equal(r.code, 0);
  assert.match(r.stdout, new RegExp(`^checked ${count} files, \\d+ SLOs: 0 errors\\n$`));
});

// Writes `files` (name -> content) into `dir` the way the kubelet projects a ConfigMap or Secret
// volume: the files live in a timestamped directory, `..data` links to it, and each name is a
// symbolic link through `..data` (so `*.yaml` globs and the *_file keys read symbolic links).
function writeProjectedVolume(dir, files) {
  const stamp = '..2026_01_01_00_00_00.000000001';
  fs.mkdirSync(path.join(dir, stamp), { recursive: true });
  for (const [f, content] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, stamp, f), content);
    fs.symlinkSync(path.join('..data', f), path.join(dir, f));
  }
  fs.symlinkSync(stamp, path.join(dir, '..data'));
}

// Starts `traceslo serve` with `config` and the rule files `rules` (name -> content, laid out
// like the rules ConfigMap volume), every port 0 and storage in a fresh directory (the flags
// override the chart's addresses and paths), waits for GET /-/ready, checks /-/healthy, then
// stops it with SIGTERM and expects exit 0.
async function serveOnce(name, config, rules, env = process.env) {
  const dir = path.join(scratch, name);
  writeProjectedVolume(path.join(dir, 'rules'), rules);
  const check = await runTraceslo(['check', path.join(dir, 'rules')]);
  assert.equal(check.code, 0, `${name}: traceslo check:\n${check.stderr}`);
  const server = await pool.start({
    config, env, args: ['--rules', path.join(dir, 'rules', '*.yaml')], timeoutMs: 30_000,
  });
  const healthy = await httpGet(`${server.webUrl}/-/healthy`);
  assert.equal(healthy.status, 200);
  const status = await server.stop('SIGTERM');
  assert.deepEqual(status, { code: 0, signal: null }, server.stderrTail());
  return server;
}

test('the real binary starts with files/traceslo.yaml as it is', async () => {
  const server = await serveOnce('base', read(chartPath('files', 'traceslo.yaml')),
    renderRules(values));
  assert.ok(server.logs().some((r) => r.msg === 'ready'));
});

test('the real binary starts with the configuration the chart renders for values.yaml', async () => {
  const config = renderConfig(values);
  assert.equal(config.web.external_url, values.externalUrl);
  await serveOnce('defaults', JSON.stringify(config, null, 2), renderRules(values));
});

// ci/*-values.yaml: each "${VAR}" must come from secretEnv and each *_file under
// /etc/traceslo/secrets/ from a secretFiles mount. Here the variables get stand-in values and
// the secret files are made under the scratch directory, which replaces /etc/traceslo/secrets.
for (const f of ciValueFiles) {
  test(`the real binary starts with the configuration the chart renders for ci/${f}`, async () => {
    const vals = deepMerge(values, readYaml(chartPath('ci', f)));
    const secretsDir = path.join(scratch, `secrets-${f}`);
    const text = JSON.stringify(renderConfig(vals), null, 2);
    const env = { ...process.env };
    for (const [, name] of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)) {
      assert.ok(vals.secretEnv.some((e) => e.name === name), `ci/${f}: \${${name}} is not in secretEnv`);
    }
    for (const e of vals.secretEnv) env[e.name] = `https://hooks.example.com/${e.secretName}/${e.key}`;
    const mounted = new Set(vals.secretFiles.map((s) => s.secretName));
    const secrets = {};
    for (const [, secret, key] of text.matchAll(/"\/etc\/traceslo\/secrets\/([^/"]+)\/([^/"]+)"/g)) {
      assert.ok(mounted.has(secret), `ci/${f}: Secret ${secret} is read but not in secretFiles`);
      secrets[secret] ??= {};
      secrets[secret][key] = `stand-in-${secret}-${key}-0123456789abcdef\n`;
    }
    for (const [secret, files] of Object.entries(secrets)) {
      writeProjectedVolume(path.join(secretsDir, secret), files);
    }
    const config = text.replaceAll('"/etc/traceslo/secrets/', `"${secretsDir}/`);
    assert.doesNotMatch(config, /\/etc\/traceslo\/secrets/);
    await serveOnce(`ci-${f}`, config, renderRules(vals), env);
  });
}

// ------------------------------------------------------------------------------------------
// With a helm binary (HELM_BIN, e.g. a Helm 3 from elsewhere; skipped without one): `helm lint
// --strict`, and `helm template`, whose ConfigMaps must hold exactly what the emulation above
// started the binary with.

const helmBin = process.env.HELM_BIN;
const helmSkip = helmBin ? false : 'HELM_BIN is not set (no helm binary on this machine)';
const helm = (args) => spawnSync(helmBin, args, { encoding: 'utf8', timeout: 60_000 });
const valueArgs = (f) => (f ? ['-f', chartPath('ci', f)] : []);

function helmTemplate(args) {
  const r = helm(['template', 'rel', chartDir, '--namespace', 'obs', ...args]);
  assert.equal(r.status, 0, `helm template ${args.join(' ')}:\n${r.stderr}`);
  const docs = YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean);
  const get = (kind, suffix = '') =>
    docs.find((d) => d.kind === kind && d.metadata.name === `rel-traceslo${suffix}`);
  return { docs, get };
}

test('helm lint --strict passes with values.yaml and each ci/*-values.yaml', { skip: helmSkip }, () => {
  for (const f of [null, ...ciValueFiles]) {
    const r = helm(['lint', '--strict', chartDir, ...valueArgs(f)]);
    assert.equal(r.status, 0, `helm lint ${f ?? ''}:\n${r.stdout}${r.stderr}`);
  }
});

test('helm template renders what the emulation started the binary with', { skip: helmSkip }, () => {
  for (const f of [null, ...ciValueFiles]) {
    const vals = f ? deepMerge(values, readYaml(chartPath('ci', f))) : values;
    const { docs, get } = helmTemplate(valueArgs(f));
    assert.deepEqual(YAML.parse(get('ConfigMap', '-config').data['traceslo.yaml']), renderConfig(vals));
    assert.deepEqual(get('ConfigMap', '-rules').data, renderRules(vals), 'rule files byte for byte');

    const sts = get('StatefulSet');
    assert.equal(sts.spec.replicas, 1);
    const pod = sts.spec.template;
    assert.match(pod.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);
    assert.deepEqual(pod.spec.securityContext, values.podSecurityContext);
    const [container] = pod.spec.containers;
    assert.deepEqual(container.securityContext, values.securityContext);
    assert.deepEqual(container.args, ['serve', '--config.file=/etc/traceslo/config/traceslo.yaml']);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/-/healthy', port: 'http' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/-/ready', port: 'http' });
    assert.deepEqual(container.ports.map((p) => [p.name, p.containerPort]),
      [['otlp-grpc', 4317], ['otlp-http', 4318], ['http', 8080]]);
    assert.deepEqual(container.env ?? [], vals.secretEnv.map((e) => ({
      name: e.name, valueFrom: { secretKeyRef: { name: e.secretName, key: e.key } },
    })));
    const mounts = Object.fromEntries(container.volumeMounts.map((m) => [m.mountPath, m.name]));
    for (const s of vals.secretFiles) assert.ok(mounts[`/etc/traceslo/secrets/${s.secretName}`], s.secretName);
    assert.equal(mounts['/tmp'], 'tmp');
    assert.equal(mounts['/var/lib/traceslo'], 'data');
    const claims = sts.spec.volumeClaimTemplates ?? [];
    assert.equal(claims.length, vals.persistence.enabled ? 1 : 0);
    if (!vals.persistence.enabled) assert.ok(pod.spec.volumes.some((v) => v.name === 'data' && v.emptyDir));

    const svc = get('Service');
    assert.deepEqual(svc.spec.ports.map((p) => [p.name, p.port, p.appProtocol]),
      [['otlp-grpc', 4317, 'grpc'], ['otlp-http', 4318, 'http'], ['http', 8080, 'http']]);

    const monitors = docs.filter((d) => d.kind === 'ServiceMonitor');
    assert.equal(monitors.length, vals.serviceMonitor.enabled ? 1 : 0);
    const dashboards = docs.filter((d) => d.metadata.labels?.grafana_dashboard === '1');
    const dashboardFiles = listDir(chartPath('files', 'dashboards'), '.json');
    assert.equal(dashboards.length, vals.dashboards.enabled ? dashboardFiles.length : 0);
    for (const d of dashboards) {
      const [[file, content]] = Object.entries(d.data);
      assert.equal(content, read(chartPath('files', 'dashboards', file)), file);
    }
    const datasource = docs.find((d) => d.metadata.labels?.grafana_datasource === '1');
    assert.equal(!!datasource, vals.grafanaDatasource.enabled);
    if (datasource) {
      const provisioning = YAML.parse(datasource.data['traceslo-datasource.yaml']);
      assert.deepEqual(provisioning.datasources[0].jsonData.exemplarTraceIdDestinations[0], {
        name: vals.grafanaDatasource.exemplarTraceIdLabel,
        url: `${vals.externalUrl}/traces/$\${__value.raw}`,
        urlDisplayLabel: 'traceslo trace page',
      });
    }
  }
});

test('helm template: checksum/config follows the ConfigMaps; bad values are refused', { skip: helmSkip }, () => {
  const checksum = (args) =>
    helmTemplate(args).get('StatefulSet').spec.template.metadata.annotations['checksum/config'];
  const base = checksum([]);
  assert.equal(checksum(['--set', 'service.type=NodePort']), base);
  assert.notEqual(checksum(['--set', 'externalUrl=https://slo.example.com']), base);
  assert.notEqual(checksum(['--set-string', 'rules.files.extra\\.yaml=service: x']), base);
  for (const [args, message] of [
    [['--set', 'replicas=2'], /replicas/],
    [['--set', 'config.storage.path=/data'], /config\.storage/],
    [['--set', 'rules.examples=false'], /no rule file/],
  ]) {
    const r = helm(['template', 'rel', chartDir, ...args]);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message);
  }
});
