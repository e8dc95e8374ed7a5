// Shared helpers for the integration tests in tests/integration and for send_spans.mjs:
// start the real traceslo binary on port 0 and read its listen addresses from its log, scrape
// and parse /metrics, poll with a deadline, hand-encode tiny OTLP requests (protobuf and JSON),
// decode google.rpc.Status / RetryInfo / ExportTraceServiceResponse, send raw OTLP over HTTP and
// gRPC, emit spans with the real OpenTelemetry JS SDK exporters, run traceslo-loadgen (error
// bursts against short rule windows), load pages in a real headless Chromium, and make TLS
// certificates with the openssl CLI.
//
// Everything that needs an npm package lives here, so the test files (outside this folder) only
// import this module. Install the packages with `npm ci` in tests/clients.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import util from 'node:util';
import zlib from 'node:zlib';

export const clientsDir = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(clientsDir, '..', '..');

async function need(spec) {
  try {
    const ns = await import(spec);
    return ns.default ?? ns;
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(`${spec} is not installed: run \`npm ci\` in ${clientsDir}`);
    }
    throw error;
  }
}

export const grpc = await need('@grpc/grpc-js');
const otelApi = await need('@opentelemetry/api');
const otelCore = await need('@opentelemetry/core');
const otelResources = await need('@opentelemetry/resources');
const sdkTraceBase = await need('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter: GrpcTraceExporter } = await need('@opentelemetry/exporter-trace-otlp-grpc');
const { OTLPTraceExporter: ProtoTraceExporter } = await need('@opentelemetry/exporter-trace-otlp-proto');
const { OTLPTraceExporter: JsonTraceExporter } = await need('@opentelemetry/exporter-trace-otlp-http');

export const TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
export const GRPC_CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]));
export const MiB = 1024 * 1024;

// ------------------------------------------------------------------------------------------
// Polling with a deadline.

// Calls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws, with the
// last value or error). Exceptions from `fn` count as "not yet".
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${util.inspect(last)}`);
    }
    await delay(intervalMs);
  }
}

// Like waitFor, but never throws: returns the last value of `fn` once `accept(value)` holds or
// the deadline passes, so the caller asserts on the real value (and gets a useful diff).
export async function pollUntil(fn, accept, { timeoutMs = 10_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value;
    try {
      value = await fn();
    } catch (error) {
      value = error;
    }
    if (!(value instanceof Error) && accept(value)) return value;
    if (Date.now() >= deadline) {
      if (value instanceof Error) throw value;
      return value;
    }
    await delay(intervalMs);
  }
}

// ------------------------------------------------------------------------------------------
// Logs: logfmt or JSON, one record per line.

// Parses one logfmt line (`ts=... level=info msg="a b" k=v`) into an object; values stay
// strings. Returns null for an empty line.
export function parseLogfmt(line) {
  const out = {};
  let i = 0;
  const n = line.length;
  let any = false;
  while (i < n) {
    while (i < n && line[i] === ' ') i++;
    if (i >= n) break;
    let key = '';
    while (i < n && line[i] !== '=' && line[i] !== ' ') key += line[i++];
    let value = '';
    if (line[i] === '=') {
      i++;
      if (line[i] === '"') {
        i++;
        while (i < n && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < n) {
            const c = line[i + 1];
            value += c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c;
            i += 2;
          } else {
            value += line[i++];
          }
        }
        i++;  // closing quote
      } else {
        while (i < n && line[i] !== ' ') value += line[i++];
      }
    }
    if (key) {
      out[key] = value;
      any = true;
    }
  }
  return any ? out : null;
}

// A log line as an object: JSON when it looks like JSON, logfmt otherwise.
export function parseLogLine(line) {
  const trimmed = line.trim();
  if (!trimmed) return null;
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return null;
    }
  }
  return parseLogfmt(trimmed);
}

// ------------------------------------------------------------------------------------------
// Prometheus text format.

function parseLabels(text) {
  const labels = {};
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ',' || text[i] === ' ')) i++;
    if (i >= text.length) break;
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`bad label set: {${text}}`);
    const name = text.slice(i, eq).trim();
    i = eq + 1;
    if (text[i] !== '"') throw new Error(`bad label value in {${text}}`);
    i++;
    let value = '';
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        const c = text[i + 1];
        value += c === 'n' ? '\n' : c;
        i += 2;
      } else {
        value += text[i++];
      }
    }
    i++;
    labels[name] = value;
  }
  return labels;
}

// Parses Prometheus text exposition 0.0.4 into [{name, labels, value}] (comments skipped).
export function parsePrometheusText(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let name;
    let labels = {};
    let rest;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      // The label block ends at the last '}' (label values may contain braces).
      const close = line.lastIndexOf('}');
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const valueText = rest.split(/\s+/)[0];
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    samples.push({ name, labels, value });
  }
  return samples;
}

// A parsed scrape. get() sums every series of `name` whose labels include `labels` (0 when
// there is none: prometheus-cpp only shows a labelled series once it was touched).
export class Metrics {
  constructor(text) {
    this.text = text;
    this.samples = parsePrometheusText(text);
  }
  series(name, labels = {}) {
    return this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }
  get(name, labels = {}) {
    return this.series(name, labels).reduce((sum, s) => sum + s.value, 0);
  }
  has(name) {
    return this.samples.some((s) => s.name === name);
  }
}

// Runs `promtool check metrics` on a scrape. Returns {status, output}.
export function promtoolCheckMetrics(text, promtool = process.env.PROMTOOL || 'promtool') {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`cannot run ${promtool}: ${r.error.message}`);
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// ------------------------------------------------------------------------------------------
// Raw HTTP.

// One HTTP(S) request on a fresh connection. Resolves {status, headers, body: Buffer} even when
// the server answers before reading the whole request body and then closes (413 on a large
// upload); rejects only when no response arrived at all.
export function httpRequest(url, {
  method = 'POST', headers = {}, body, ca, cert, key, timeoutMs = 15_000,
} = {}) {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let response = null;
    const chunks = [];
    let done = false;
    const finish = (truncated) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks), truncated });
    };
    const fail = (error) => {
      if (done) return;
      if (response) return finish(true);
      done = true;
      clearTimeout(timer);
      reject(error);
    };
    const timer = setTimeout(() => {
      fail(new Error(`${method} ${url}: no complete response within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    const opts = { method, headers: { ...headers }, agent: false };
    if (u.protocol === 'https:') {
      Object.assign(opts, { ca, cert, key });
      // No SNI for an IP literal (RFC 6066); the certificate is still checked against the IP.
      if (net.isIP(u.hostname.replace(/^\[|\]$/g, ''))) opts.servername = '';
    }
    if (body !== undefined && opts.headers['content-length'] === undefined &&
        opts.headers['Content-Length'] === undefined && opts.headers['transfer-encoding'] === undefined) {
      opts.headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = mod.request(u, opts, (res) => {
      response = res;
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => finish(false));
      res.on('error', () => finish(true));
      res.on('aborted', () => finish(true));
    });
    req.on('error', fail);
    if (body !== undefined) {
      // Write errors (EPIPE/ECONNRESET after an early answer) surface as 'error' above.
      req.end(body);
    } else {
      req.end();
    }
  });
}

export async function httpGet(url, opts = {}) {
  return httpRequest(url, { ...opts, method: 'GET' });
}

// POSTs an OTLP/HTTP traces body. `encoding`: 'proto' | 'json' sets Content-Type unless
// `contentType` is given; `gzip` compresses the body and sets Content-Encoding (pass
// `body` precompressed with `rawBody` instead to send it as is).
export async function postTraces(url, body, {
  encoding = 'proto', contentType, gzip = false, token, headers = {}, ...rest
} = {}) {
  const h = { ...headers };
  h['Content-Type'] = contentType ?? (encoding === 'json' ? 'application/json' : 'application/x-protobuf');
  if (token !== undefined) h.Authorization = `Bearer ${token}`;
  let payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  if (gzip) {
    payload = zlib.gzipSync(payload);
    h['Content-Encoding'] = 'gzip';
  }
  return httpRequest(url, { method: 'POST', headers: h, body: payload, ...rest });
}

// ------------------------------------------------------------------------------------------
// Protobuf, by hand (just what OTLP requests and error bodies need).

function varintBytes(value) {
  let n = BigInt(value);
  if (n < 0n) n = BigInt.asUintN(64, n);
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}
const fieldKey = (field, wireType) => varintBytes((field << 3) | wireType);

export const pb = {
  varint: (field, value) => Buffer.concat([fieldKey(field, 0), varintBytes(value)]),
  bytes: (field, value) => {
    const b = Buffer.isBuffer(value) ? value : Buffer.from(value);
    return Buffer.concat([fieldKey(field, 2), varintBytes(b.length), b]);
  },
  string: (field, s) => pb.bytes(field, Buffer.from(String(s), 'utf8')),
  fixed64: (field, value) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
    return Buffer.concat([fieldKey(field, 1), b]);
  },
  double: (field, value) => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    return Buffer.concat([fieldKey(field, 1), b]);
  },
  message: (field, ...parts) => pb.bytes(field, Buffer.concat(parts.flat())),
};

// Decodes one protobuf message into Map<field number, value[]>: varints as BigInt, fixed64 and
// fixed32 as Buffers, length-delimited as Buffers. Throws on malformed input.
export function pbDecode(buf) {
  const fields = new Map();
  let i = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const key = Number(readVarint());
    const field = key >>> 3;
    const wireType = key & 7;
    let value;
    if (wireType === 0) {
      value = readVarint();
    } else if (wireType === 1 || wireType === 5) {
      const len = wireType === 1 ? 8 : 4;
      if (i + len > buf.length) throw new Error('truncated fixed field');
      value = buf.subarray(i, i + len);
      i += len;
    } else if (wireType === 2) {
      const len = Number(readVarint());
      if (i + len > buf.length) throw new Error('truncated length-delimited field');
      value = buf.subarray(i, i + len);
      i += len;
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push(value);
  }
  return fields;
}
const first = (fields, n) => fields.get(n)?.at(-1);
const toInt64 = (v) => (v === undefined ? 0 : Number(BigInt.asIntN(64, v)));

// google.rpc.Status → {code, message, details: [{typeUrl, value}]}.
export function decodeRpcStatus(buf) {
  const f = pbDecode(buf);
  return {
    code: toInt64(first(f, 1)),
    message: first(f, 2)?.toString('utf8') ?? '',
    details: (f.get(3) ?? []).map((any) => {
      const a = pbDecode(any);
      return { typeUrl: first(a, 1)?.toString('utf8') ?? '', value: first(a, 2) ?? Buffer.alloc(0) };
    }),
  };
}

// google.rpc.RetryInfo → {retryDelayMs} (null when retry_delay is absent).
export function decodeRetryInfo(buf) {
  const f = pbDecode(buf);
  const d = first(f, 1);
  if (d === undefined) return { retryDelayMs: null };
  const dur = pbDecode(d);
  return { retryDelayMs: toInt64(first(dur, 1)) * 1000 + toInt64(first(dur, 2)) / 1e6 };
}

// ExportTraceServiceResponse → {partialSuccess: {rejectedSpans, errorMessage} | null}.
export function decodeExportResponse(buf) {
  const f = pbDecode(buf);
  const ps = first(f, 1);
  if (ps === undefined) return { partialSuccess: null };
  const p = pbDecode(ps);
  return {
    partialSuccess: {
      rejectedSpans: toInt64(first(p, 1)),
      errorMessage: first(p, 2)?.toString('utf8') ?? '',
    },
  };
}

// ------------------------------------------------------------------------------------------
// OTLP requests from a small model:
//   resourceSpans = [{service, attributes?, spans: [span...]}]
//   span = {traceId, spanId, parentSpanId?, name, kind, startNs, endNs,
//           attributes?, status?: {code, message}, events?: [{name, timeNs, attributes?}]}
// Ids are hex strings and are encoded as given (any length, so tests can make invalid ones).

export const SpanKind = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 };
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 };

export const randomHex = (bytes) => crypto.randomBytes(bytes).toString('hex');
export const nowNs = () => BigInt(Date.now()) * 1_000_000n;

// `count` valid root SERVER spans of one service, each in its own trace, ending now.
export function makeSpans(count, { name = 'GET /items', startNs, durationNs = 5_000_000n, attributes } = {}) {
  const spans = [];
  const end = nowNs();
  for (let i = 0; i < count; i++) {
    const s = startNs ?? end - durationNs;
    spans.push({
      traceId: randomHex(16), spanId: randomHex(8), name, kind: SpanKind.SERVER,
      startNs: s, endNs: s + durationNs,
      attributes: attributes ?? { 'http.request.method': 'GET', 'http.response.status_code': 200 },
    });
  }
  return spans;
}

function pbAnyValue(v) {
  if (typeof v === 'string') return pb.string(1, v);
  if (typeof v === 'boolean') return pb.varint(2, v ? 1 : 0);
  if (typeof v === 'bigint' || Number.isInteger(v)) return pb.varint(3, BigInt(v));
  return pb.double(4, v);
}
const pbKeyValues = (field, attrs = {}) =>
  Object.entries(attrs).map(([k, v]) => pb.message(field, pb.string(1, k), pb.message(2, pbAnyValue(v))));

function pbSpan(s) {
  const parts = [
    pb.bytes(1, Buffer.from(s.traceId ?? '', 'hex')),
    pb.bytes(2, Buffer.from(s.spanId ?? '', 'hex')),
  ];
  if (s.parentSpanId) parts.push(pb.bytes(4, Buffer.from(s.parentSpanId, 'hex')));
  parts.push(pb.string(5, s.name ?? 'span'));
  if (s.kind) parts.push(pb.varint(6, s.kind));
  parts.push(pb.fixed64(7, s.startNs), pb.fixed64(8, s.endNs));
  parts.push(...pbKeyValues(9, s.attributes));
  for (const e of s.events ?? []) {
    parts.push(pb.message(11, pb.fixed64(1, e.timeNs ?? s.endNs), pb.string(2, e.name), ...pbKeyValues(3, e.attributes)));
  }
  if (s.status) {
    const st = [];
    if (s.status.message) st.push(pb.string(2, s.status.message));
    if (s.status.code) st.push(pb.varint(3, s.status.code));
    parts.push(pb.message(15, ...st));
  }
  return pb.message(2, ...parts);  // ScopeSpans.spans
}

// ExportTraceServiceRequest as protobuf bytes.
export function encodeTracesProto(resourceSpans) {
  return Buffer.concat(resourceSpans.map((rs) => pb.message(1,
    pb.message(1, ...pbKeyValues(1, { 'service.name': rs.service, ...rs.attributes })),
    pb.message(2, pb.message(1, pb.string(1, 'traceslo-tests'), pb.string(2, '1.0.0')), ...rs.spans.map(pbSpan)))));
}

function jsonAnyValue(v) {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'bigint' || Number.isInteger(v)) return { intValue: String(v) };
  return { doubleValue: v };
}
const jsonKeyValues = (attrs = {}) => Object.entries(attrs).map(([key, v]) => ({ key, value: jsonAnyValue(v) }));

// ExportTraceServiceRequest as OTLP/JSON text (hex ids, integer enums, 64-bit ints as strings).
export function encodeTracesJson(resourceSpans) {
  return JSON.stringify({
    resourceSpans: resourceSpans.map((rs) => ({
      resource: { attributes: jsonKeyValues({ 'service.name': rs.service, ...rs.attributes }) },
      scopeSpans: [{
        scope: { name: 'traceslo-tests', version: '1.0.0' },
        spans: rs.spans.map((s) => {
          const o = { traceId: s.traceId ?? '', spanId: s.spanId ?? '' };
          if (s.parentSpanId) o.parentSpanId = s.parentSpanId;
          o.name = s.name ?? 'span';
          if (s.kind) o.kind = s.kind;
          o.startTimeUnixNano = String(s.startNs);
          o.endTimeUnixNano = String(s.endNs);
          o.attributes = jsonKeyValues(s.attributes);
          if (s.events?.length) {
            o.events = s.events.map((e) => ({
              timeUnixNano: String(e.timeNs ?? s.endNs), name: e.name, attributes: jsonKeyValues(e.attributes),
            }));
          }
          if (s.status) o.status = { ...(s.status.code ? { code: s.status.code } : {}), ...(s.status.message ? { message: s.status.message } : {}) };
          return o;
        }),
      }],
    })),
  });
}

// ------------------------------------------------------------------------------------------
// Raw gRPC: the Export method with passthrough (Buffer) serializers.

// Calls Export with `body` (protobuf bytes). Resolves (never rejects) with
// {code, codeName, details, response: Buffer|null, statusDetails: google.rpc.Status|null}.
export function grpcExport(address, body, { token, metadata = {}, credentials, timeoutMs = 15_000, channelOptions = {} } = {}) {
  const client = new grpc.Client(address, credentials ?? grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...channelOptions,
  });
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(TRACE_EXPORT_PATH, (b) => b, (b) => b, body, md,
      { deadline: Date.now() + timeoutMs }, (error, response) => {
        client.close();
        if (!error) {
          resolve({ code: grpc.status.OK, codeName: 'OK', details: '', response, statusDetails: null });
          return;
        }
        let statusDetails = null;
        const bin = error.metadata?.get('grpc-status-details-bin') ?? [];
        if (bin.length) statusDetails = decodeRpcStatus(Buffer.from(bin[0]));
        resolve({
          code: error.code, codeName: GRPC_CODE_NAMES[error.code] ?? String(error.code),
          details: error.details ?? '', response: null, statusDetails,
        });
      });
  });
}

// Export over HTTP/2 without grpc-js, for messages grpc-js would not let us shape: `frame` is the
// raw gRPC message payload, sent with the compressed flag when `compressed`, and
// `grpc-encoding: gzip`. Resolves {grpcStatus, grpcMessage, httpStatus}.
export function grpcRawHttp2(address, frame, { compressed = false, timeoutMs = 15_000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no gRPC answer within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    const headers = {
      ':method': 'POST', ':path': TRACE_EXPORT_PATH, 'content-type': 'application/grpc', te: 'trailers',
    };
    if (compressed) headers['grpc-encoding'] = 'gzip';
    const req = session.request(headers);
    let httpStatus = 0;
    let head = {};
    req.on('response', (h) => {
      httpStatus = h[':status'];
      head = h;
    });
    let trailers = {};
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', () => {});
    const done = () => {
      clearTimeout(timer);
      session.close();
      const t = { ...head, ...trailers };
      resolve({
        httpStatus,
        grpcStatus: t['grpc-status'] === undefined ? null : Number(t['grpc-status']),
        grpcMessage: t['grpc-message'] ? decodeURIComponent(t['grpc-message']) : '',
      });
    };
    req.on('end', done);
    req.on('close', done);
    req.on('error', () => {});
    const prefix = Buffer.alloc(5);
    prefix[0] = compressed ? 1 : 0;
    prefix.writeUInt32BE(frame.length, 1);
    req.end(Buffer.concat([prefix, frame]));
  });
}

// ------------------------------------------------------------------------------------------
// Processes.

const liveChildren = new Set();
process.on('exit', () => {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function tracesloBin() {
  return process.env.TRACESLO_BIN || path.join(repoRoot, 'build', 'bin', 'traceslo');
}

export async function makeTempDir(prefix = 'traceslo-it-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

// Runs the binary to completion (for `version`, bad flags, bad config). Never hangs past
// `timeoutMs`: the process is killed and `timedOut` set.
export function runTraceslo(args, { timeoutMs = 15_000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(tracesloBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); liveChildren.delete(child); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// The traffic generator (services/loadgen), as ctest passes it or from build/bin.
export function loadgenBin() {
  return process.env.TRACESLO_LOADGEN_BIN || path.join(repoRoot, 'build', 'bin', 'traceslo-loadgen');
}

// Runs `bin` to completion; like runTraceslo for any binary. Never hangs past `timeoutMs`: the
// process is killed and `timedOut` set.
export function runBinary(bin, args, { timeoutMs = 15_000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); liveChildren.delete(child); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// Runs traceslo-loadgen with `args` to completion. Resolves {code, signal, stdout, stderr,
// timedOut, report}: `report` is the parsed JSON report when it went to stdout (the default),
// else null.
export async function runLoadgen(args, { timeoutMs = 60_000, cwd } = {}) {
  const result = await runBinary(loadgenBin(), args, { timeoutMs, cwd });
  let report = null;
  try {
    if (result.stdout.trim()) report = JSON.parse(result.stdout);
  } catch {
    report = null;
  }
  return { ...result, report };
}

// Peak resident set (VmHWM) of a live process, in bytes.
export function peakRssBytes(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

// The live children of `pid` (Linux /proc): [{pid, starttime, state, argv}]. `starttime` (clock
// ticks since boot) tells a process from a later one that reuses its pid; see processAlive.
export function childProcesses(pid) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = procStat(Number(entry));
    if (!info || info.ppid !== pid) continue;
    let argv = [];
    try {
      argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch { /* gone meanwhile */ }
    out.push({ pid: info.pid, starttime: info.starttime, state: info.state, argv });
  }
  return out;
}

// Whether the process `{pid, starttime}` (from childProcesses) still exists and is not a zombie.
export function processAlive({ pid, starttime }) {
  const info = procStat(pid);
  return !!info && info.starttime === starttime && info.state !== 'Z';
}

// /proc/<pid>/stat as {pid, state, ppid, starttime}, or null when there is no such process. The
// command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
function procStat(pid) {
  let text;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pid, state: fields[0], ppid: Number(fields[1]), starttime: fields[19] };
}

// A running `traceslo serve`.
export class TracesloServer {
  constructor(child, dir, { tls }) {
    this.child = child;
    this.pid = child.pid;
    this.dir = dir;
    this.tls = tls;  // {ca, cert, key} client material for the OTLP ports, or null
    this.lines = [];
    this.listeners = {};
    this.exit = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        liveChildren.delete(child);
        this.exitStatus = { code, signal };
        resolve({ code, signal });
      });
    });
  }
  get scheme() { return this.tls ? 'https' : 'http'; }
  get grpcAddress() { return this.listeners.otlp_grpc; }
  get httpAddress() { return this.listeners.otlp_http; }
  get webAddress() { return this.listeners.web; }
  get webUrl() { return `http://${this.webAddress}`; }
  get tracesUrl() { return `${this.scheme}://${this.httpAddress}/v1/traces`; }
  get grpcUrl() { return `${this.scheme}://${this.grpcAddress}`; }
  stderr() { return this.lines.join('\n'); }
  logs() { return this.lines.map(parseLogLine).filter(Boolean); }
  stderrTail(n = 40) { return this.lines.slice(-n).join('\n'); }

  async scrape() {
    const r = await httpGet(`${this.webUrl}/metrics`);
    if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.body}`);
    return new Metrics(r.body.toString('utf8'));
  }
  async metric(name, labels = {}) {
    return (await this.scrape()).get(name, labels);
  }
  // Polls the metric until `accept(value)` or the deadline; returns the last value.
  async pollMetric(name, labels, accept, opts = {}) {
    return pollUntil(() => this.metric(name, labels), accept, opts);
  }
  async debug(action) {
    return httpRequest(`${this.webUrl}/-/debug/pipeline/${action}`, { method: 'POST', body: '' });
  }
  // Sends `signal` and waits for the exit; SIGKILL after `timeoutMs`.
  async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
    if (this.exitStatus) return this.exitStatus;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const status = await this.exit;
    clearTimeout(timer);
    return status;
  }
  async cleanup() {
    await this.stop('SIGKILL', 5_000).catch(() => {});
    if (!process.env.TRACESLO_IT_KEEP) await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

// The servers one test file starts: `start` as startTraceslo, `cleanupAll` for its after() hook.
export function serverPool() {
  const servers = [];
  return {
    async start(opts) {
      const s = await startTraceslo(opts);
      servers.push(s);
      return s;
    },
    cleanupAll() { return Promise.all(servers.map((s) => s.cleanup())); },
  };
}

// Starts `traceslo serve` with every port 0 and a fresh storage dir, waits until it logged its
// three listeners and msg=ready, then until GET /-/ready answers 200.
//   config: YAML text, or an object (written as JSON, which is YAML); relative `*_file` values
//           are the caller's business (use absolute paths).
//   tls: client material {ca, cert?, key?} for the OTLP ports when the config enables TLS.
//   webListenAddress: the web port's address (default port 0), for a test that must know it
//           before the start (web.external_url); see freePort().
// Set TRACESLO_IT_VERBOSE=1 to copy the server's stderr to ours.
export async function startTraceslo({
  config, args = [], debugEndpoints = false, logFormat, logLevel, tls = null, dir, timeoutMs = 20_000, env,
  webListenAddress = '127.0.0.1:0',
  otlp = true,  // false: Kafka mode, no OTLP listeners to wait for
} = {}) {
  const ownDir = dir === undefined;  // a caller's dir (a restart on old data) survives a failed start
  dir ??= await makeTempDir();
  const argv = [
    'serve',
    '--otlp.grpc-listen-address', '127.0.0.1:0',
    '--otlp.http-listen-address', '127.0.0.1:0',
    '--web.listen-address', webListenAddress,
    '--storage.path', path.join(dir, 'var'),
  ];
  if (config !== undefined) {
    const file = path.join(dir, 'traceslo.yaml');
    await fsp.writeFile(file, typeof config === 'string' ? config : `${JSON.stringify(config, null, 2)}\n`);
    argv.push('--config.file', file);
  }
  if (debugEndpoints) argv.push('--debug.endpoints');
  if (logFormat) argv.push('--log.format', logFormat);
  if (logLevel) argv.push('--log.level', logLevel);
  argv.push(...args);

  const child = spawn(tracesloBin(), argv, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
  liveChildren.add(child);
  const server = new TracesloServer(child, dir, { tls });
  server.argv = argv;
  const verbose = !!process.env.TRACESLO_IT_VERBOSE;
  let ready = false;
  let pending = '';
  const onLine = (line) => {
    server.lines.push(line);
    if (verbose) process.stderr.write(`[traceslo ${child.pid}] ${line}\n`);
    const rec = parseLogLine(line);
    if (!rec) return;
    if (rec.msg === 'listening' && rec.listener && rec.address) server.listeners[rec.listener] = rec.address;
    if (rec.msg === 'ready') ready = true;
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  child.stderr.on('end', () => { if (pending) onLine(pending); pending = ''; });
  let spawnError = null;
  child.on('error', (e) => { spawnError = e; });

  const describe = () => `${tracesloBin()} ${argv.join(' ')}\n--- stderr ---\n${server.stderrTail(60)}`;
  try {
    const deadline = Date.now() + timeoutMs;
    const alive = () => {
      if (spawnError) throw spawnError;
      if (server.exitStatus) throw new Error(`traceslo exited early: ${JSON.stringify(server.exitStatus)}`);
      if (Date.now() >= deadline) throw new Error(`not ready within ${timeoutMs} ms`);
    };
    while (!(ready && (!otlp || (server.grpcAddress && server.httpAddress)) && server.webAddress)) {
      alive();
      await delay(20);
    }
    for (;;) {
      alive();
      const r = await httpGet(`${server.webUrl}/-/ready`, { timeoutMs: 2_000 }).catch(() => null);
      if (r?.status === 200) break;
      await delay(20);
    }
  } catch (error) {
    if (ownDir) await server.cleanup();
    else await server.stop('SIGKILL', 5_000).catch(() => {});
    throw new Error(`traceslo did not become ready (listening lines for otlp_grpc, otlp_http, web, msg=ready, ` +
      `then GET /-/ready == 200): ${error.message}\n${describe()}`);
  }
  return server;
}

// ------------------------------------------------------------------------------------------
// Alert scenarios (alerting.test.mjs, pages.test.mjs): short rule windows, a server whose links
// open, traceslo-loadgen with error bursts in the background.

// The timing alert scenarios shrink: spans counted within a tick of 200 ms, a trace closed 500 ms
// after its last span, rules evaluated and SQLite written every 500 ms.
export const SHORT_TIMING_CONFIG = Object.freeze({
  pipeline: Object.freeze({ tick_interval: '200ms', trace_idle_timeout: '500ms', trace_max_age: '5s' }),
  rules: Object.freeze({ evaluation_interval: '500ms' }),
  storage: Object.freeze({ flush_interval: '500ms' }),
});

// The SLOs of shortWindowRules(): the service's entry spans' errors, and the traces whose error
// began in the service.
export const SHORT_WINDOW_SLOS = Object.freeze(['errors', 'error_traces']);

// A rule file for `service` with the two SHORT_WINDOW_SLOS, which the same errors burn: objective
// 99 over 1 h (a 1 % budget), paged at 10× burn over 1 m and 30 s, 5 events at least, no ticket.
// Not a shorter short window: a one-bucket window is only the current, still filling bucket (see
// restart.test.mjs).
export function shortWindowRules(service) {
  const alerting = `    alerting:
      page: {windows: [{long: 1m, short: 30s, burn_rate: 10}]}
      ticket: {enabled: false}
      min_events: 5
`;
  return `service: ${service}
slos:
  - name: errors
    objective: 99
    window: 1h
    sli: {errors: {}}
${alerting}  - name: error_traces
    objective: 99
    window: 1h
    sli: {error_traces: {role: origin}}
${alerting}`;
}

// A fresh temp dir (name starts with `prefix`) holding rules/<name> for each entry of `files`
// ({name: YAML text}); start the server with rulesArgs(dir).
export async function makeRuleDir(prefix, files) {
  const dir = await makeTempDir(prefix);
  await fsp.mkdir(path.join(dir, 'rules'));
  for (const [name, text] of Object.entries(files)) await fsp.writeFile(path.join(dir, 'rules', name), text);
  return dir;
}
export const rulesArgs = (dir) => ['--rules', path.join(dir, 'rules', '*.yaml')];

// `traceslo serve` through `pool` (a serverPool) on `dir` (the same dir again after a kill: the
// same storage), its web port chosen up front so web.external_url is its real address and the
// links in notifications and on pages open. Another port when the chosen one was taken meanwhile
// (up to `attempts` starts).
export async function startWithExternalUrl(pool, { dir, config = {}, args = [], attempts = 3 }) {
  let lastError;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const webPort = await freePort();
    try {
      return await pool.start({
        dir,
        config: { ...config, web: { ...config.web, external_url: `http://127.0.0.1:${webPort}` } },
        args,
        webListenAddress: `127.0.0.1:${webPort}`,
      });
    } catch (error) {
      lastError = error;  // the free port was taken meanwhile: another one
    }
  }
  throw lastError;
}

// An --incident of traceslo-loadgen: an error burst in `service` failing a `ratio` share of its
// spans with `exception` {type, message}; the loadgen fills {int} and {hex} in the message per
// error.
export const errorBurstIncident = (service, exception, ratio) =>
  `error_burst:service=${service},ratio=${ratio},exception_type=${exception.type},message=${exception.message}`;

// traceslo-loadgen sending to `endpoint` (OTLP/gRPC host:port) in the background until stop()
// (SIGKILL) or until `duration` ends: no retries (a killed server is not waited for), no report,
// no progress lines. `incidents`: --incident values (errorBurstIncident). Returns
// {child, exited, stop()}.
export function startLoadgen(endpoint, { rate, duration = '170s', seed, incidents = [] }) {
  const args = ['--endpoint', endpoint, '--rate', String(rate), '--duration', duration];
  if (seed !== undefined) args.push('--seed', String(seed));
  args.push('--quiet', '--max-retry-time', '0s', '--report', '/dev/null');
  for (const i of incidents) args.push('--incident', i);
  const child = spawn(loadgenBin(), args, { stdio: 'ignore' });
  liveChildren.add(child);
  const exited = new Promise((resolve) => child.on('close', (code, signal) => {
    liveChildren.delete(child);
    resolve({ code, signal });
  }));
  return { child, exited, stop() { child.kill('SIGKILL'); } };
}

// GET `url` and its JSON body; throws unless the status is 200.
export async function getJson(url, { timeoutMs = 5_000 } = {}) {
  const r = await httpGet(url, { timeoutMs });
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
  return JSON.parse(r.body.toString('utf8'));
}

// ------------------------------------------------------------------------------------------
// A real headless Chromium (Debian's `chromium`) for the server-rendered pages.

// Chromium's binary, or null when it is not installed. TRACESLO_CHROMIUM_BIN, when set, is the
// only candidate.
export function chromiumBin() {
  const candidates = process.env.TRACESLO_CHROMIUM_BIN
    ? [process.env.TRACESLO_CHROMIUM_BIN]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
      .flatMap((dir) => [path.join(dir, 'chromium'), path.join(dir, 'chromium-browser')]);
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch { /* next */ }
  }
  return null;
}

// What headless Chromium needs on these machines (root, no GPU, no network but 127.0.0.1).
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Runs Chromium once on `url` with `flags` and a fresh profile dir (removed afterwards).
// Throws, with its stderr, when it cannot start, exits non-zero or outlives `timeoutMs`.
async function runChromium(url, flags, { bin = chromiumBin(), timeoutMs = 30_000 } = {}) {
  if (!bin) throw new Error('Chromium is not installed: apt-get install chromium (scripts/setup.sh does)');
  const profile = await makeTempDir('traceslo-chromium-');
  try {
    const r = await runBinary(bin, [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...flags, url], { timeoutMs });
    if (r.timedOut || r.code !== 0) {
      throw new Error(`${bin} ${flags.join(' ')} ${url}: ${r.timedOut ? `killed after ${timeoutMs} ms` : `exit ${r.code} ${r.signal ?? ''}`}\n` +
        `--- stderr ---\n${r.stderr.split('\n').slice(-20).join('\n')}`);
    }
    return r;
  } finally {
    await fsp.rm(profile, { recursive: true, force: true }).catch(() => {});
  }
}

// Loads `url` and resolves {dom, console}: the DOM as Chromium built it (--dump-dom, serialized
// HTML) and the page's console messages (Content-Security-Policy violations among them), as
// Chromium logged them. Options: {bin, timeoutMs}.
export async function chromiumDumpDom(url, opts = {}) {
  const r = await runChromium(url, ['--enable-logging=stderr', '--v=0', '--dump-dom'], opts);
  if (!r.stdout.includes('<html')) throw new Error(`chromium --dump-dom ${url}: no document on stdout\n${r.stderr}`);
  return { dom: r.stdout, console: r.stderr.split('\n').filter((l) => l.includes(':CONSOLE')) };
}

// A PNG screenshot of `url` in a `width`×`height` window, written to `file`. Options: {bin,
// timeoutMs}.
export async function chromiumScreenshot(url, file, { width, height, ...opts }) {
  await runChromium(url, [`--screenshot=${file}`, `--window-size=${width},${height}`, '--hide-scrollbars'], opts);
  return file;
}

// ------------------------------------------------------------------------------------------
// TLS material, made with the openssl CLI.

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

function makeCa(dir, name) {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

function makeLeaf(dir, name, ca, ext) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-days', '2', '-out', `${name}.crt`, '-extfile', `${name}.ext`], dir);
}

// Writes into `dir`: ca.crt/key, server.crt/key (SAN 127.0.0.1, localhost), client.crt/key
// (signed by ca), and rogue-ca + rogue-client.crt/key (a client cert from another CA). Returns
// the file paths and their PEM contents.
export function makeTestCerts(dir) {
  makeCa(dir, 'ca');
  makeCa(dir, 'rogue-ca');
  makeLeaf(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  makeLeaf(dir, 'client', 'ca', 'extendedKeyUsage=clientAuth');
  makeLeaf(dir, 'rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth');
  const out = { dir };
  for (const name of ['ca', 'server', 'client', 'rogue-ca', 'rogue-client']) {
    for (const kind of ['crt', 'key']) {
      const file = path.join(dir, `${name}.${kind}`);
      const key = `${name.replace(/-(\w)/g, (_, c) => c.toUpperCase())}${kind === 'crt' ? 'Cert' : 'Key'}`;
      out[`${key}File`] = file;
      out[key] = fs.readFileSync(file);
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Gzip bomb: `totalBytes` of zeros, gzip level 9, streamed (never held in memory).

export async function writeGzipBomb(file, totalBytes = 1024 * MiB) {
  const chunk = Buffer.alloc(MiB);
  async function* zeros() {
    for (let left = totalBytes; left > 0; left -= chunk.length) {
      yield left >= chunk.length ? chunk : chunk.subarray(0, left);
    }
  }
  await pipeline(Readable.from(zeros()), zlib.createGzip({ level: 9 }), fs.createWriteStream(file));
  return fs.statSync(file).size;
}

// ------------------------------------------------------------------------------------------
// The real OpenTelemetry JS SDK.

export const EXPORTERS = ['grpc', 'proto', 'http'];

function tracesEndpoint(url) {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces';
  return u.toString();
}

// Builds an SDK exporter. kind: 'grpc' (exporter-trace-otlp-grpc), 'proto'
// (exporter-trace-otlp-proto, HTTP), 'http' (exporter-trace-otlp-http, JSON). `endpoint`: for
// grpc, http(s)://host:port; for the HTTP ones, a URL (path /v1/traces added when missing).
// tls: {ca, cert?, key?} PEM buffers.
export function makeExporter(kind, { endpoint, token, gzip = false, tls, timeoutMillis = 10_000 } = {}) {
  const compression = gzip ? 'gzip' : 'none';
  if (kind === 'grpc') {
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
    const credentials = tls
      ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null)
      : undefined;
    const url = endpoint.includes('://') ? endpoint : `${tls ? 'https' : 'http'}://${endpoint}`;
    return new GrpcTraceExporter({ url, metadata, credentials, compression, timeoutMillis });
  }
  const Exporter = kind === 'proto' ? ProtoTraceExporter : kind === 'http' ? JsonTraceExporter : null;
  if (!Exporter) throw new Error(`unknown exporter ${kind} (want one of ${EXPORTERS.join(', ')})`);
  const headers = token !== undefined ? { Authorization: `Bearer ${token}` } : {};
  const httpAgentOptions = { keepAlive: true };
  if (tls) Object.assign(httpAgentOptions, tls.ca ? { ca: tls.ca } : {}, tls.cert ? { cert: tls.cert, key: tls.key } : {});
  const url = tracesEndpoint(endpoint.includes('://') ? endpoint : `${tls ? 'https' : 'http'}://${endpoint}`);
  if (net.isIP(new URL(url).hostname.replace(/^\[|\]$/g, ''))) httpAgentOptions.servername = '';
  return new Exporter({ url, headers, compression, httpAgentOptions, timeoutMillis });
}

// Wraps exporter.export so every result is counted: {exportsOk, exportsFailed, spansOk, errors}.
function instrumentExporter(exporter, stats) {
  const original = exporter.export.bind(exporter);
  exporter.export = (spans, resultCallback) => original(spans, (result) => {
    if (result.code === otelCore.ExportResultCode.SUCCESS) {
      stats.exportsOk++;
      stats.spansOk += spans.length;
    } else {
      stats.exportsFailed++;
      stats.spansFailed += spans.length;
      if (stats.errors.length < 5) stats.errors.push(String(result.error?.message ?? result.error ?? 'failed'));
    }
    resultCallback(result);
  });
  return exporter;
}

const ERROR_MESSAGES = [
  'connection refused by inventory-db at 10.0.3.17:5432',
  'timeout after 2500ms calling payments',
  'order 8f14e45f-ceea-467f-a0e6-7b1a4c3e9d10 not found',
];

// Emits exactly `spans` spans through the real SDK with one BasicTracerProvider (and resource)
// per service, a BatchSpanProcessor per provider, and the chosen exporter; then forceFlush and
// shutdown. Traces have 1–4 spans (SERVER root, CLIENT/INTERNAL children, and a SERVER span of
// the next service parented across services). A span is an error (status ERROR, exception
// event, HTTP 500) for an exact `errorRatio` share. Returns a summary:
//   {spans_sent, exports_ok, exports_failed, spans_exported, spans_failed, errors}
export async function sendSpansWithSdk({
  exporter: kind, endpoint, spans: total, services = 3, errorRatio = 0.1, token, gzip = false, tls,
  batchSize = 128, timeoutMillis = 10_000,
}) {
  const { trace, context, SpanKind: ApiKind, SpanStatusCode } = otelApi;
  const stats = { exportsOk: 0, exportsFailed: 0, spansOk: 0, spansFailed: 0, errors: [] };
  const providers = [];
  const tracers = [];
  for (let i = 0; i < services; i++) {
    const exporter = instrumentExporter(makeExporter(kind, { endpoint, token, gzip, tls, timeoutMillis }), stats);
    const processor = new sdkTraceBase.BatchSpanProcessor(exporter, {
      maxQueueSize: Math.max(2048, total + 1),
      maxExportBatchSize: batchSize,
      scheduledDelayMillis: 100,
      exportTimeoutMillis: timeoutMillis + 5_000,
    });
    const provider = new sdkTraceBase.BasicTracerProvider({
      resource: otelResources.resourceFromAttributes({
        'service.name': `sdk-${kind}-svc-${i}`,
        'service.version': '1.4.2',
        'deployment.environment.name': 'integration-test',
      }),
      spanProcessors: [processor],
    });
    providers.push(provider);
    tracers.push(provider.getTracer('traceslo-send-spans', '1.0.0'));
  }

  let made = 0;
  let errorsMade = 0;
  // Error decisions spread evenly and exactly: span k is an error iff floor((k+1)r) > floor(kr).
  const nextIsError = () => {
    const k = made;
    return Math.floor((k + 1) * errorRatio) > Math.floor(k * errorRatio);
  };
  const finish = (span, { server = false } = {}) => {
    if (nextIsError()) {
      const message = ERROR_MESSAGES[errorsMade % ERROR_MESSAGES.length];
      span.recordException(Object.assign(new Error(message), { name: 'UpstreamError' }));
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      if (server) span.setAttribute('http.response.status_code', 500);
      errorsMade++;
    } else if (server) {
      span.setAttribute('http.response.status_code', 200);
    }
    span.end();
    made++;
  };

  for (let t = 0; made < total; t++) {
    const size = Math.min(total - made, 1 + (t % 4));
    const svc = t % services;
    const tracer = tracers[svc];
    const root = tracer.startSpan(`GET /api/items/{id}`, {
      kind: ApiKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'http.route': '/api/items/{id}', 'url.scheme': 'http' },
    }, context.active());
    const rootCtx = trace.setSpan(context.active(), root);
    const children = [];
    if (size >= 2) {
      children.push(() => {
        const db = tracer.startSpan('SELECT items', {
          kind: ApiKind.CLIENT, attributes: { 'db.system.name': 'postgresql', 'db.operation.name': 'SELECT' },
        }, rootCtx);
        finish(db);
      });
    }
    if (size >= 3) {
      children.push(() => {
        const call = tracer.startSpan('POST /pricing', { kind: ApiKind.CLIENT }, rootCtx);
        if (size >= 4) {
          // The downstream service's SERVER span, parented across services.
          const downstream = tracers[(svc + 1) % services].startSpan('POST /pricing', {
            kind: ApiKind.SERVER, attributes: { 'http.request.method': 'POST', 'http.route': '/pricing' },
          }, trace.setSpan(context.active(), call));
          finish(downstream, { server: true });
        }
        finish(call);
      });
    }
    for (const child of children) child();
    finish(root, { server: true });
  }

  // forceFlush rejects when an export failed; the failure is already counted by the wrapper.
  await Promise.allSettled(providers.map((p) => p.forceFlush()));
  await Promise.allSettled(providers.map((p) => p.shutdown()));
  return {
    spans_sent: made,
    error_spans: errorsMade,
    exports_ok: stats.exportsOk,
    exports_failed: stats.exportsFailed,
    spans_exported: stats.spansOk,
    spans_failed: stats.spansFailed,
    errors: stats.errors,
  };
}

// Emits exactly the spans described by `traces` through the real SDK: one BasicTracerProvider
// (resource service.name) with a BatchSpanProcessor and a `kind` exporter per service, then
// forceFlush and shutdown. Times are explicit, so the test knows every duration to the
// nanosecond.
//   traces: [[span, ...], ...]; span = {service, name, kind (OTLP SpanKind: 1 INTERNAL ..
//     5 CONSUMER), startNs, endNs (BigInt unix nanos), attributes?, status?: {code (OTLP
//     StatusCode), message?}, parent?}. `parent` is the index of an earlier span of the same
//     trace, or {traceId, spanId} (hex) of a span that is never sent; absent: a root span.
//     Spans start and end in array order, so a parent reaches its exporter before its children.
// Returns {spans_sent, exports_ok, exports_failed, spans_exported, spans_failed, errors,
//   ids: [[{traceId, spanId}, ...], ...]} (ids as the SDK generated them, per trace and span).
export async function emitTracesWithSdk({
  exporter: kind, endpoint, traces, token, gzip = false, tls, batchSize = 512, timeoutMillis = 10_000,
}) {
  const { trace, ROOT_CONTEXT, TraceFlags } = otelApi;
  const stats = { exportsOk: 0, exportsFailed: 0, spansOk: 0, spansFailed: 0, errors: [] };
  const total = traces.reduce((n, t) => n + t.length, 0);
  const providers = new Map();  // service → {provider, tracer}
  const tracerOf = (service) => {
    if (!providers.has(service)) {
      const exporter = instrumentExporter(makeExporter(kind, { endpoint, token, gzip, tls, timeoutMillis }), stats);
      const processor = new sdkTraceBase.BatchSpanProcessor(exporter, {
        maxQueueSize: Math.max(2048, total + 1),
        maxExportBatchSize: batchSize,
        scheduledDelayMillis: 50,
        exportTimeoutMillis: timeoutMillis + 5_000,
      });
      const provider = new sdkTraceBase.BasicTracerProvider({
        resource: otelResources.resourceFromAttributes({ 'service.name': service }),
        spanProcessors: [processor],
      });
      providers.set(service, { provider, tracer: provider.getTracer('traceslo-tests', '1.0.0') });
    }
    return providers.get(service).tracer;
  };
  const hrTimeOf = (ns) => {
    const n = BigInt(ns);
    return [Number(n / 1_000_000_000n), Number(n % 1_000_000_000n)];
  };

  let made = 0;
  const ids = [];
  for (const spec of traces) {
    const spans = [];
    for (const s of spec) {
      let parentContext = ROOT_CONTEXT;
      if (typeof s.parent === 'number') {
        if (!(s.parent >= 0 && s.parent < spans.length)) throw new Error(`parent ${s.parent} is not an earlier span`);
        parentContext = trace.setSpan(ROOT_CONTEXT, spans[s.parent]);
      } else if (s.parent) {
        parentContext = trace.setSpanContext(ROOT_CONTEXT, {
          traceId: s.parent.traceId, spanId: s.parent.spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true,
        });
      }
      // The API's SpanKind is the OTLP one minus 1; status codes are the same numbers.
      spans.push(tracerOf(s.service).startSpan(s.name, {
        kind: s.kind - 1, startTime: hrTimeOf(s.startNs), attributes: s.attributes ?? {},
      }, parentContext));
    }
    spec.forEach((s, i) => {
      if (s.status?.code) spans[i].setStatus({ code: s.status.code, message: s.status.message });
      spans[i].end(hrTimeOf(s.endNs));
      made++;
    });
    ids.push(spans.map((span) => ({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId })));
  }

  const all = [...providers.values()].map((p) => p.provider);
  await Promise.allSettled(all.map((p) => p.forceFlush()));
  await Promise.allSettled(all.map((p) => p.shutdown()));
  return {
    spans_sent: made,
    exports_ok: stats.exportsOk,
    exports_failed: stats.exportsFailed,
    spans_exported: stats.spansOk,
    spans_failed: stats.spansFailed,
    errors: stats.errors,
    ids,
  };
}

// ------------------------------------------------------------------------------------------
// Peers of the alerting tests: a recording HTTP receiver and a real Alertmanager.

// A TCP port that was free on `host` a moment ago (bound to port 0, then closed), for a process
// whose address must be known before it starts. Another process may take it in between; the
// window is short.
export async function freePort(host = '127.0.0.1') {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// An HTTP server on 127.0.0.1, port 0, that records every request it gets and answers each with
// the current `status` (settable at any time: 503 to play a receiver that is down, 200 again to
// bring it back). `requests` holds {method, path, headers, raw (Buffer), body (parsed JSON or
// null), status (what was answered), at (Date.now())} in arrival order; the request is recorded
// before it is answered. `waitFor(accept)` polls the recorded requests until accept(requests)
// holds or the deadline passes, and returns them.
export async function startRecordingServer({ status = 200 } = {}) {
  const requests = [];
  const state = { status };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        body = null;
      }
      const answer = state.status;
      requests.push({
        method: req.method, path: req.url, headers: req.headers, raw, body, status: answer, at: Date.now(),
      });
      res.writeHead(answer, { 'Content-Type': 'text/plain' });
      res.end(answer < 300 ? 'ok\n' : 'unavailable\n');
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    get status() { return state.status; },
    set status(value) { state.status = value; },
    // The requests to `pathname` (exact, without the query), in arrival order.
    to(pathname) { return requests.filter((r) => r.path.split('?')[0] === pathname); },
    async waitFor(accept, opts = {}) { return pollUntil(() => requests, accept, opts); },
    close() {
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// Alertmanager's binary (Debian's prometheus-alertmanager names it so; upstream: alertmanager),
// or null when neither is installed. TRACESLO_ALERTMANAGER_BIN overrides.
export function alertmanagerBin() {
  return findExecutable([process.env.TRACESLO_ALERTMANAGER_BIN, '/usr/bin/prometheus-alertmanager',
    '/usr/local/bin/alertmanager', '/usr/bin/alertmanager'], ['prometheus-alertmanager', 'alertmanager']);
}

// The first of `candidates` (paths; empty ones skipped), then of `names` in PATH, that is
// executable; null when none is.
function findExecutable(candidates, names) {
  const all = [...candidates];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of names) all.push(path.join(dir, name));
  }
  for (const c of all) {
    if (!c) continue;
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch { /* next */ }
  }
  return null;
}

// Spawns a daemon (Alertmanager, Prometheus) that serves GET /-/ready at `url` and waits until
// it answers 200, or it exits, or `timeoutMs`. Returns {ok: true, child, stop(), stderr()}, or
// {ok: false, detail} after stopping it.
async function spawnUntilReady(bin, argv, url, { timeoutMs }) {
  const child = spawn(bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  liveChildren.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => {
    liveChildren.delete(child);
    resolve({ code, signal });
  }));
  let status = null;
  exited.then((s) => { status = s; });
  const stop = async () => {
    if (status) return status;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const s = await exited;
    clearTimeout(timer);
    return s;
  };
  const ready = await pollUntil(async () => {
    if (status) return { exited: status };
    const r = await httpGet(`${url}/-/ready`, { timeoutMs: 2_000 });
    return { status: r.status };
  }, (v) => v.exited || v.status === 200, { timeoutMs, intervalMs: 100 }).catch((e) => ({ error: e.message }));
  if (ready.status !== 200) {
    await stop();
    return { ok: false, detail: `${JSON.stringify(ready)}\n${stderr}` };
  }
  return { ok: true, child, stop, stderr: () => stderr };
}

// Starts a real Alertmanager on 127.0.0.1 (clustering off) with a configuration that routes
// everything to a receiver without integrations, its storage under `dir`, and waits until
// GET /-/ready answers 200. Returns {url, child, stop()}. Throws when it does not get ready.
export async function startAlertmanager({ dir, bin = alertmanagerBin(), timeoutMs = 30_000 } = {}) {
  if (!bin) throw new Error('no Alertmanager binary (apt-get install prometheus-alertmanager)');
  await fsp.mkdir(path.join(dir, 'data'), { recursive: true });
  const config = path.join(dir, 'alertmanager.yml');
  await fsp.writeFile(config, 'route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const daemon = await spawnUntilReady(bin, [
    `--config.file=${config}`, `--storage.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn',
  ], url, { timeoutMs });
  if (!daemon.ok) throw new Error(`Alertmanager (${bin}) did not become ready on ${url}: ${daemon.detail}`);
  return { url, child: daemon.child, stop: daemon.stop, stderr: daemon.stderr };
}

// ------------------------------------------------------------------------------------------
// A real Prometheus (Debian's `prometheus` 2.42) scraping traceslo, for the dashboard and
// generated-rules tests.

// Prometheus's binary, or null when it is not installed. TRACESLO_PROMETHEUS_BIN overrides.
export function prometheusBin() {
  return findExecutable([process.env.TRACESLO_PROMETHEUS_BIN, '/usr/bin/prometheus'], ['prometheus']);
}

// promtool as ctest passes it (PROMTOOL), else Debian's, else from PATH.
export function promtoolBin() {
  if (process.env.PROMTOOL) return process.env.PROMTOOL;
  try {
    fs.accessSync('/usr/bin/promtool', fs.constants.X_OK);
    return '/usr/bin/promtool';
  } catch {
    return 'promtool';
  }
}

// Starts a real Prometheus on 127.0.0.1 (a free port; another one when it was taken meanwhile)
// with its TSDB under `dir`, scraping `targets` (host:port, /metrics) as job `job` every
// `scrapeInterval`, evaluating `ruleFiles` every `evaluationInterval`, with `features`
// (--enable-feature). Waits until GET /-/ready answers 200. Returns {url, child, stop(),
// stderr(), api(endpoint, params), query(expr, time?), queryRange(expr, start, end, step)}:
// api() GETs /api/v1/<endpoint> and returns `data`, throwing unless the status is success.
export async function startPrometheus({
  dir, targets, job = 'traceslo', scrapeInterval = '1s', evaluationInterval = '1s', ruleFiles = [],
  features = ['exemplar-storage'], bin = prometheusBin(), timeoutMs = 30_000, attempts = 3,
}) {
  if (!bin) throw new Error('no Prometheus binary (apt-get install prometheus)');
  await fsp.mkdir(dir, { recursive: true });
  const config = path.join(dir, 'prometheus.yml');
  const yaml = {
    global: { scrape_interval: scrapeInterval, scrape_timeout: scrapeInterval, evaluation_interval: evaluationInterval },
    rule_files: ruleFiles,
    scrape_configs: [{ job_name: job, static_configs: [{ targets }] }],
  };
  await fsp.writeFile(config, `${JSON.stringify(yaml, null, 2)}\n`);  // JSON is YAML
  let lastError;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = await freePort();
    const data = path.join(dir, `data-${attempt}`);
    const argv = [
      `--config.file=${config}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn', ...(features.length ? [`--enable-feature=${features.join(',')}`] : []),
    ];
    const url = `http://127.0.0.1:${port}`;
    const daemon = await spawnUntilReady(bin, argv, url, { timeoutMs });
    if (!daemon.ok) {
      lastError = new Error(`Prometheus (${bin} ${argv.join(' ')}) did not become ready on ${url}: ` +
        daemon.detail);
      continue;  // most likely the free port was taken meanwhile
    }
    const { child, stop, stderr } = daemon;
    const api = async (endpoint, params = {}) => {
      const r = await httpGet(`${url}/api/v1/${endpoint}?${new URLSearchParams(params)}`, { timeoutMs: 10_000 });
      let body;
      try {
        body = JSON.parse(r.body.toString('utf8'));
      } catch {
        throw new Error(`GET /api/v1/${endpoint}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
      }
      if (body.status !== 'success') {
        throw new Error(`GET /api/v1/${endpoint} ${JSON.stringify(params)}: ${r.status} ${body.errorType}: ${body.error}`);
      }
      return body.data;
    };
    return {
      url, child, stop, stderr, api,
      query: (expr, time) => api('query', time === undefined ? { query: expr } : { query: expr, time: String(time) }),
      queryRange: (expr, start, end, step) =>
        api('query_range', { query: expr, start: String(start), end: String(end), step: String(step) }),
    };
  }
  throw lastError;
}
