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
//     (files/traceslo.yaml, .Values.config merged over it, web.external_url and the kafka
//     section from .Values) is done here the way templates/_helpers.tpl does it with
//     mergeOverwrite;
//   - Kafka mode: .Values.kafka renders the configuration's kafka section (the emulation checked
//     against _helpers.tpl's mapping), replicas > 1 is refused without kafka.enabled, and, with
//     TRACESLO_KAFKA_MOCK_BIN (librdkafka's mock cluster, tests/tools), the real binary becomes
//     ready in Kafka mode with the configuration the chart renders, its OTLP ports closed.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  clientsDir, httpGet, makeTempDir, repoRoot, runTraceslo, serverPool, waitFor,
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

// The configuration's kafka section that templates/_helpers.tpl renders from `.Values.kafka`:
// camelCase values to snake_case keys, librdkafka only when it has properties.
function renderKafka(k) {
  const kafka = {
    enabled: true,
    brokers: k.brokers,
    encoding: k.encoding,
    topics: { spans: k.topics.spans, deltas: k.topics.deltas, state: k.topics.state },
    group_ids: { stage1: k.groupIds.stage1, stage2: k.groupIds.stage2 },
    epoch_length: k.epochLength,
    commit_interval: k.commitInterval,
    idle_partition_timeout: k.idlePartitionTimeout,
    allowed_lateness: k.allowedLateness,
    snapshot_interval: k.snapshotInterval,
  };
  if (Object.keys(k.librdkafka).length > 0) kafka.librdkafka = k.librdkafka;
  return structuredClone(kafka);
}

// What templates/_helpers.tpl's "traceslo.config" renders for `vals` (the coalesced values).
function renderConfig(vals) {
  const base = readYaml(chartPath('files', 'traceslo.yaml'));
  const chartOwned = { web: { external_url: vals.externalUrl } };
  if (vals.kafka.enabled) chartOwned.kafka = renderKafka(vals.kafka);
  return deepMerge(deepMerge(base, vals.config), chartOwned);
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
  assert.match(sts, /\n  replicas: \{\{ \.Values\.replicas \}\}\n/);
  assert.equal(values.replicas, 1);
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
    [{ replicas: 2 }, '/kafka/enabled const'],
    [{ replicas: 0 }, '/replicas minimum'],
    [{ replica: 1 }, ' additionalProperties'],
    [{ config: { kafka: { enabled: true } } }, '/config additionalProperties'],
    [{ kafka: { enable: true } }, '/kafka additionalProperties'],
    [{ kafka: { group_ids: { stage1: 'a' } } }, '/kafka additionalProperties'],
    [{ kafka: { topics: { span: 'spans' } } }, '/kafka/topics additionalProperties'],
    [{ kafka: { topics: { spans: 'otlp spans' } } }, '/kafka/topics/spans pattern'],
    [{ kafka: { groupIds: { stage2: '..' } } }, '/kafka/groupIds/stage2 not'],
    [{ kafka: { enabled: true } }, '/kafka/brokers minItems'],
    [{ kafka: { enabled: 'true', brokers: ['kafka:9092'] } }, '/kafka/enabled type'],
    [{ kafka: { brokers: ['kafka-0'] } }, '/kafka/brokers/0 pattern'],
    [{ kafka: { brokers: ['a:9092,b:9092'] } }, '/kafka/brokers/0 pattern'],
    [{ kafka: { encoding: 'json' } }, '/kafka/encoding enum'],
    [{ kafka: { epochLength: '1' } }, '/kafka/epochLength pattern'],
    [{ kafka: { allowedLateness: 10 } }, '/kafka/allowedLateness type'],
    [{ kafka: { librdkafka: { 'group.id': 'mine' } } }, '/kafka/librdkafka propertyNames'],
    [{ kafka: { librdkafka: { 'bootstrap.servers': 'k:9092' } } }, '/kafka/librdkafka propertyNames'],
    [{ kafka: { librdkafka: { 'Session Timeout': '6000' } } }, '/kafka/librdkafka propertyNames'],
    [{ kafka: { librdkafka: { 'session.timeout.ms': 6000 } } }, '/kafka/librdkafka/session.timeout.ms type'],
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
// Kafka mode: .Values.kafka -> the configuration's kafka section; replicas.

// The worked example of helm/traceslo/README.md ("Kafka mode"): the yaml block that begins with
// "# kafka-values.yaml".
function kafkaExample() {
  const block = read(chartPath('README.md')).match(/```yaml\n(# kafka-values\.yaml[^\n]*\n[\s\S]*?)```/)?.[1];
  assert.ok(block, 'helm/traceslo/README.md: a ```yaml block beginning with "# kafka-values.yaml"');
  return YAML.parse(block, { uniqueKeys: true });
}

const KAFKA_CONFIG_KEYS = ['allowed_lateness', 'brokers', 'commit_interval', 'enabled', 'encoding',
  'epoch_length', 'group_ids', 'idle_partition_timeout', 'librdkafka', 'snapshot_interval', 'topics'];

test('kafka values render the kafka section into the ConfigMap (README example: 3 replicas, SASL)', () => {
  assert.equal(values.kafka.enabled, false);
  assert.equal(renderConfig(values).kafka, undefined, 'single-node mode: no kafka section');

  const example = kafkaExample();
  assert.equal(example.replicas, 3);
  const vals = deepMerge(values, example);
  assert.deepEqual(errorsOf(vals), [], 'the README example is valid');
  // The ConfigMap's traceslo.yaml, as text, parsed back.
  const text = YAML.stringify(renderConfig(vals));
  const config = YAML.parse(text, { uniqueKeys: true });
  assert.deepEqual(Object.keys(config.kafka).sort(), KAFKA_CONFIG_KEYS);
  assert.equal(config.kafka.enabled, true);
  assert.deepEqual(config.kafka.brokers, example.kafka.brokers);
  assert.deepEqual(config.kafka.topics, { spans: 'otlp_spans', deltas: 'traceslo_deltas', state: 'traceslo_state' });
  assert.deepEqual(config.kafka.group_ids, { stage1: 'traceslo-stage1', stage2: 'traceslo-stage2' });
  assert.equal(config.kafka.encoding, 'otlp_proto');
  assert.deepEqual(config.kafka.librdkafka, example.kafka.librdkafka);
  assert.deepEqual([config.kafka.epoch_length, config.kafka.commit_interval,
    config.kafka.idle_partition_timeout, config.kafka.allowed_lateness, config.kafka.snapshot_interval],
  ['1s', '1s', '10s', '10s', '60s']);
  // The rest is what the same values render in single-node mode.
  const { kafka: _, ...rest } = config;
  assert.deepEqual(rest, renderConfig(deepMerge(vals, { kafka: { enabled: false } })));
  // Secrets: each "${VAR}" comes from secretEnv, each file under /etc/traceslo/secrets/ from a
  // secretFiles mount.
  const vars = [...JSON.stringify(config.kafka).matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]);
  assert.ok(vars.length > 0, 'the example takes sasl.password from a Secret');
  for (const name of vars) assert.ok(vals.secretEnv.some((e) => e.name === name), `\${${name}} in secretEnv`);
  for (const [, secret] of JSON.stringify(config.kafka).matchAll(/\/etc\/traceslo\/secrets\/([^/"]+)\//g)) {
    assert.ok(vals.secretFiles.some((f) => f.secretName === secret), `${secret} in secretFiles`);
  }
  // No librdkafka properties: no librdkafka key.
  const plain = renderConfig(deepMerge(values, { kafka: { enabled: true, brokers: ['kafka:9092'] } }));
  assert.deepEqual(Object.keys(plain.kafka).sort(), KAFKA_CONFIG_KEYS.filter((k) => k !== 'librdkafka'));
});

test('the emulated kafka mapping is the one templates/_helpers.tpl writes', () => {
  const helpers = templates['_helpers.tpl'];
  // Each "config_key" .Values.kafka.valuePath pair of the template.
  const pairs = [...helpers.matchAll(/"([a-z0-9_]+)" \.Values\.kafka\.([A-Za-z0-9_.]+)/g)].map((m) => [m[1], m[2]]);
  assert.match(helpers, /\{\{- if \.Values\.kafka\.enabled -\}\}\n\{\{- \$kafka := dict "enabled" true /);
  assert.match(helpers, /\{\{- \$_ = set \$chartOwned "kafka" \$kafka -\}\}/);
  // The section's keys: the dict's and each `set $kafka "key"`.
  const dictLine = helpers.match(/\$kafka := dict (.*) -\}\}\n/)?.[1] ?? '';
  const topKeys = [...dictLine.matchAll(/"([a-z_]+)" (?:true|\.Values\.kafka\.[A-Za-z0-9_.]+)/g)].map((m) => m[1])
    .concat([...helpers.matchAll(/set \$kafka "([a-z_]+)"/g)].map((m) => m[1]));
  assert.deepEqual(topKeys.sort(), KAFKA_CONFIG_KEYS);
  // Every value under kafka (but enabled) is mapped, once.
  const leaves = [];
  const walk = (v, keys) => {
    if (isMap(v) && keys.at(-1) !== 'librdkafka') for (const [k, c] of Object.entries(v)) walk(c, [...keys, k]);
    else leaves.push(keys.join('.'));
  };
  walk(values.kafka, []);
  assert.deepEqual(pairs.map(([, p]) => p).sort(), leaves.filter((p) => p !== 'enabled').sort());
  // And the emulation puts each where the template does.
  const findPath = (node, want, keys = []) => {
    if (JSON.stringify(node) === JSON.stringify(want)) return keys;
    if (!isMap(node)) return null;
    for (const [k, c] of Object.entries(node)) {
      const found = findPath(c, want, [...keys, k]);
      if (found) return found;
    }
    return null;
  };
  for (const [configKey, valuePath] of pairs) {
    const marker = valuePath === 'librdkafka' ? { 'client.id': 'marker' } : `marker-${valuePath}`;
    const override = { enabled: true, brokers: ['kafka:9092'] };
    const keys = valuePath.split('.');
    keys.reduce((o, k, i) => (o[k] = i === keys.length - 1 ? marker : (o[k] ?? {})), override);
    const rendered = renderConfig(deepMerge(values, { kafka: override })).kafka;
    const at = findPath(rendered, marker);
    assert.ok(at, `${valuePath} is rendered`);
    assert.equal(at.at(-1), configKey, `.Values.kafka.${valuePath} -> kafka.${at.join('.')}`);
  }
});

test('replicas: more than 1 only with kafka.enabled (schema if/then, and the template fails)', () => {
  assert.deepEqual(errorsOf(deepMerge(values, { replicas: 1 })), []);
  const refused = errorsOf(deepMerge(values, { replicas: 2 }));
  assert.ok(refused.includes('/kafka/enabled const must be equal to constant'), JSON.stringify(refused));
  assert.ok(refused.includes(' if must match "then" schema'), JSON.stringify(refused));
  assert.deepEqual(errorsOf(deepMerge(values, { replicas: 3, kafka: { enabled: true, brokers: ['kafka:9092'] } })), []);
  // The template refuses it too, with the reason (Helm checks the schema first; the fail covers
  // a render without the schema).
  const sts = templates['statefulset.yaml'];
  assert.match(sts, /^\{\{- if and \(gt \(int \.Values\.replicas\) 1\) \(not \.Values\.kafka\.enabled\) -\}\}\n\{\{- fail "replicas: more than 1 needs kafka\.enabled=true \(in single-node mode each pod owns its own SQLite database[^"]*\)" -\}\}\n\{\{- end -\}\}\napiVersion: apps\/v1\n/);
  assert.match(templates['configmap.yaml'], /\{\{- if and \.Values\.kafka\.enabled \(not \.Values\.kafka\.brokers\) -\}\}\n\{\{- fail "kafka\.brokers: /);
  // Kafka mode: no OTLP port on the container or either Service; the readiness probe stays.
  const otlpGuard = /\{\{- if not \.Values\.kafka\.enabled \}\}\n\s+- name: otlp-grpc\n(?:.*\n){2,4}\s+- name: otlp-http\n(?:.*\n){2,4}\s+\{\{- end \}\}\n\s+- name: http\n/g;
  assert.equal([...sts.matchAll(otlpGuard)].length, 1, 'statefulset.yaml: the OTLP containerPorts only without kafka');
  assert.equal([...templates['service.yaml'].matchAll(otlpGuard)].length, 2, 'service.yaml: the OTLP ports only without kafka');
  assert.doesNotMatch(sts, /readinessProbe:\n\s+\{\{-? if/);
  assert.match(sts, /readinessProbe:\n\s+httpGet:\n\s+path: \/-\/ready\n/);
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
// override the chart's addresses and paths), waits for GET /-/ready, checks /-/healthy, runs
// `whileUp(server)`, then stops it with SIGTERM and expects exit 0. `otlp: false`: Kafka mode,
// no OTLP listener to wait for.
async function serveOnce(name, config, rules, env = process.env, { otlp = true, whileUp } = {}) {
  const dir = path.join(scratch, name);
  writeProjectedVolume(path.join(dir, 'rules'), rules);
  const check = await runTraceslo(['check', path.join(dir, 'rules')]);
  assert.equal(check.code, 0, `${name}: traceslo check:\n${check.stderr}`);
  const server = await pool.start({
    config, env, otlp, args: ['--rules', path.join(dir, 'rules', '*.yaml')], timeoutMs: 30_000,
  });
  const healthy = await httpGet(`${server.webUrl}/-/healthy`);
  assert.equal(healthy.status, 200);
  if (whileUp) await whileUp(server);
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

// Kafka mode against librdkafka's mock cluster (traceslo-kafka-mock, a process of its own): the
// configuration the chart renders for three replicas, its brokers replaced by the mock's.
const kafkaMockBin = process.env.TRACESLO_KAFKA_MOCK_BIN;
test('the real binary becomes ready in Kafka mode with the configuration the chart renders, OTLP closed',
  { skip: kafkaMockBin ? false : 'TRACESLO_KAFKA_MOCK_BIN is not set (traceslo-kafka-mock, tests/tools)' },
  async () => {
    const bootstrapFile = path.join(scratch, 'kafka-bootstrap');
    const mock = spawn(kafkaMockBin, ['--brokers', '1', '--topic', 'otlp_spans:4',
      '--topic', 'traceslo_deltas:2', '--topic', 'traceslo_state:2', '--bootstrap-file', bootstrapFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    const mockExit = new Promise((resolve) => mock.on('exit', resolve));
    try {
      await waitFor(() => fs.existsSync(bootstrapFile) && read(bootstrapFile).trim() !== '',
        { timeoutMs: 10_000, what: 'the mock cluster' });
      const brokers = read(bootstrapFile).trim().replace(/^bootstrap=/, '').split(',');
      const vals = deepMerge(values, {
        replicas: 3,
        kafka: {
          enabled: true,
          brokers,
          librdkafka: { 'client.id': '${KAFKA_CLIENT_ID}', 'session.timeout.ms': '6000', 'heartbeat.interval.ms': '500' },
        },
        secretEnv: [{ name: 'KAFKA_CLIENT_ID', secretName: 'kafka-client', key: 'id' }],
      });
      assert.deepEqual(errorsOf(vals), []);
      const config = renderConfig(vals);
      assert.equal(config.kafka.enabled, true);
      const env = { ...process.env, KAFKA_CLIENT_ID: 'traceslo-helm-test' };
      await serveOnce('kafka', JSON.stringify(config, null, 2), renderRules(vals), env, {
        otlp: false,
        whileUp: async (server) => {
          assert.deepEqual(Object.keys(server.listeners), ['web'], 'no OTLP listener in Kafka mode');
          assert.ok(server.logs().some((r) => r.msg === 'kafka mode'));
          await server.pollMetric('traceslo_kafka_owned_partitions', { stage: '1' }, (v) => v === 4);
          await server.pollMetric('traceslo_kafka_owned_partitions', { stage: '2' }, (v) => v === 2);
          // Stage 2's files, one per owned traceslo_deltas partition, under storage.path/kafka.
          await waitFor(() => ['stage2-p0.db', 'stage2-p1.db'].every((f) =>
            fs.existsSync(path.join(server.dir, 'var', 'kafka', f))), { what: 'stage2-p<N>.db' });
        },
      });
    } finally {
      mock.kill('SIGTERM');
      await mockExit;
    }
  });

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

test('helm template with the README Kafka example: replicas 3, the kafka section, no OTLP port', { skip: helmSkip }, () => {
  const file = path.join(scratch, 'kafka-values.yaml');
  fs.writeFileSync(file, YAML.stringify(kafkaExample()));
  const vals = deepMerge(values, kafkaExample());
  const { get } = helmTemplate(['-f', file]);
  assert.deepEqual(YAML.parse(get('ConfigMap', '-config').data['traceslo.yaml']), renderConfig(vals));
  const sts = get('StatefulSet');
  assert.equal(sts.spec.replicas, 3);
  assert.equal(sts.spec.volumeClaimTemplates.length, 1, 'a PVC per pod');
  const [container] = sts.spec.template.spec.containers;
  assert.deepEqual(container.ports.map((p) => [p.name, p.containerPort]), [['http', 8080]]);
  assert.deepEqual(container.readinessProbe.httpGet, { path: '/-/ready', port: 'http' });
  assert.deepEqual(container.securityContext, values.securityContext);
  assert.deepEqual(sts.spec.template.spec.securityContext, values.podSecurityContext);
  assert.deepEqual(container.env.map((e) => e.name), vals.secretEnv.map((e) => e.name));
  for (const suffix of ['', '-headless']) {
    assert.deepEqual(get('Service', suffix).spec.ports.map((p) => p.name), ['http'], `Service${suffix}`);
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
    [['--set', 'replicas=2'], /kafka\.enabled/],
    [['--set', 'kafka.enabled=true'], /kafka\.brokers/],
    [['--set', 'kafka.enabled=true', '--set', 'kafka.brokers={k:9092}', '--set', 'kafka.librdkafka.group\\.id=x'], /librdkafka/],
    [['--set', 'config.storage.path=/data'], /config\.storage/],
    [['--set', 'rules.examples=false'], /no rule file/],
  ]) {
    const r = helm(['template', 'rel', chartDir, ...args]);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message);
  }
});
