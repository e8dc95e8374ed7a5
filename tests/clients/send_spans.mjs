#!/usr/bin/env node
// Sends N spans to an OTLP endpoint with a real OpenTelemetry JS SDK exporter and prints a JSON
// summary: {spans_sent, exports_ok, exports_failed, ...}. Exit status 0 when every export
// succeeded and every span was exported, 1 otherwise, 2 on bad usage.
//
//   node tests/clients/send_spans.mjs --exporter grpc|proto|http --endpoint URL --spans N
//        [--services K] [--error-ratio R] [--token T] [--gzip]
//        [--ca FILE] [--cert FILE --key FILE] [--batch-size B] [--timeout-ms MS]
//
// --endpoint: grpc takes http(s)://host:port; proto and http take the OTLP/HTTP URL
// (/v1/traces is added when the URL has no path). https:// or --ca turns TLS on.

import fs from 'node:fs';
import { parseArgs } from 'node:util';

import { EXPORTERS, sendSpansWithSdk } from './lib.mjs';

const usage = `usage: send_spans.mjs --exporter ${EXPORTERS.join('|')} --endpoint URL --spans N
       [--services K] [--error-ratio R] [--token T] [--gzip] [--ca FILE] [--cert FILE --key FILE]
       [--batch-size B] [--timeout-ms MS]`;

function fail(message) {
  process.stderr.write(`send_spans: ${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      exporter: { type: 'string' },
      endpoint: { type: 'string' },
      spans: { type: 'string' },
      services: { type: 'string', default: '3' },
      'error-ratio': { type: 'string', default: '0.1' },
      token: { type: 'string' },
      gzip: { type: 'boolean', default: false },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'batch-size': { type: 'string', default: '128' },
      'timeout-ms': { type: 'string', default: '10000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  fail(error.message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const intArg = (name, min) => {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min) fail(`--${name} must be an integer >= ${min}`);
  return v;
};
if (!EXPORTERS.includes(values.exporter)) fail(`--exporter must be one of ${EXPORTERS.join(', ')}`);
if (!values.endpoint) fail('--endpoint is required');
if (values.spans === undefined) fail('--spans is required');
const errorRatio = Number(values['error-ratio']);
if (!(errorRatio >= 0 && errorRatio <= 1)) fail('--error-ratio must be between 0 and 1');
if (!!values.cert !== !!values.key) fail('--cert and --key go together');

const readPem = (file) => {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    return fail(`cannot read ${file}: ${error.message}`);
  }
};
let tls;
if (values.ca || values.cert || values.endpoint.startsWith('https://')) {
  tls = {};
  if (values.ca) tls.ca = readPem(values.ca);
  if (values.cert) {
    tls.cert = readPem(values.cert);
    tls.key = readPem(values.key);
  }
}

const summary = await sendSpansWithSdk({
  exporter: values.exporter,
  endpoint: values.endpoint,
  spans: intArg('spans', 0),
  services: intArg('services', 1),
  errorRatio,
  token: values.token,
  gzip: values.gzip,
  tls,
  batchSize: intArg('batch-size', 1),
  timeoutMillis: intArg('timeout-ms', 1),
});
process.stdout.write(`${JSON.stringify(summary)}\n`);
const ok = summary.exports_failed === 0 && summary.spans_exported === summary.spans_sent;
// Exit through the event loop: the exporters were shut down, so nothing keeps it alive.
process.exitCode = ok ? 0 : 1;
