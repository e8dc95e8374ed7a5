// What the Kafka integration tests expect, computed from a recording's lines (OTLP/JSON, one
// request per line) with the definitions of shared/design.md, independently of traceslo; and
// where a service's SLIs live (its traceslo_deltas partition). Not a test file: imported by
// kafka.test.mjs and kafka_cluster.test.mjs.

import fs from 'node:fs';

// FNV-1a 32-bit over the UTF-8 bytes, as Sarama's partitioner takes it: the hash as a signed
// int32, the remainder of its division (sign of the dividend), negated when negative.
export function fnv1aPartition(key, partitions) {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return Math.abs((hash | 0) % partitions);
}

// The spans of a recording (OTLP/JSON lines), each with its resource's service.name.
export function readSpans(file) {
  const spans = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    for (const rs of JSON.parse(line).resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === 'service.name').value.stringValue;
      for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ service, span });
    }
  }
  return spans;
}

// gRPC status codes that mean a server fault (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE, DATA_LOSS): errors by default (configuration.md, pipeline.errors).
const GRPC_SERVER_FAULTS = new Set([2, 4, 12, 13, 14, 15]);

// Per (service, operation): entry spans and their errors, with the definitions of
// shared/design.md: an entry span is a SERVER or CONSUMER span, or one whose parent is of another
// service or absent; an error has status ERROR, or status UNSET and, on a span that serves the
// request (not CLIENT or PRODUCER), an HTTP status >= 500 or a server-fault gRPC status.
export function countEntrySpans(spans) {
  const serviceOf = new Map(spans.map(({ service, span }) => [`${span.traceId}/${span.spanId}`, service]));
  const attribute = (span, keys) => {
    const a = (span.attributes ?? []).find((x) => keys.includes(x.key));
    return a ? Number(a.value.intValue ?? a.value.stringValue) : -1;
  };
  const counts = {};
  for (const { service, span } of spans) {
    const parent = span.parentSpanId ? serviceOf.get(`${span.traceId}/${span.parentSpanId}`) : undefined;
    const entry = span.kind === 2 || span.kind === 5 || parent === undefined || parent !== service;
    if (!entry) continue;
    const code = span.status?.code ?? 0;
    const serves = span.kind !== 3 && span.kind !== 4;
    const httpStatus = attribute(span, ['http.response.status_code', 'http.status_code']);
    const rpcStatus = attribute(span, ['rpc.grpc.status_code', 'rpc.response.status_code', 'rpc.status_code']);
    const error = code === 2 ||
      (code === 0 && serves && (httpStatus >= 500 || GRPC_SERVER_FAULTS.has(rpcStatus)));
    const key = `${service}|${span.name}`;
    counts[key] ??= { requests: 0, errors: 0 };
    counts[key].requests += 1;
    if (error) counts[key].errors += 1;
  }
  return counts;
}

// Per service: the traces that touch it, and the partial ones among them (shared/design.md: a
// trace with a span whose parent is not in the trace, or with no root; counted for every service
// the trace touches).
export function countTraces(spans) {
  const traces = new Map();
  for (const { service, span } of spans) {
    let trace = traces.get(span.traceId);
    if (!trace) traces.set(span.traceId, trace = { ids: new Set(), parents: [], services: new Set() });
    trace.ids.add(span.spanId);
    trace.parents.push(span.parentSpanId ?? '');
    trace.services.add(service);
  }
  const counts = {};
  for (const { ids, parents, services } of traces.values()) {
    const root = parents.some((p) => p === '');
    const orphan = parents.some((p) => p !== '' && !ids.has(p));
    for (const service of services) {
      counts[service] ??= { traces: 0, partial: 0 };
      counts[service].traces += 1;
      if (!root || orphan) counts[service].partial += 1;
    }
  }
  return counts;
}

// The records traceslo-kafka-produce makes of the recording: one per (resource, scope, trace id).
export function countRecords(file) {
  let records = 0;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    for (const rs of JSON.parse(line).resourceSpans) {
      for (const ss of rs.scopeSpans) records += new Set(ss.spans.map((s) => s.traceId.toLowerCase())).size;
    }
  }
  return records;
}
