#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::bench {

// The shape of a realistic export request, as an OpenTelemetry SDK's batch processor sends it:
// a few resources (service.name plus the usual SDK/host attributes), one instrumentation scope
// each, spans grouped into traces of `spans_per_trace`, about ten attributes per span
// (http.response.status_code among them) and every `exception_every`-th span an error with an
// "exception" event carrying a stack trace. Deterministic for a given seed.
struct RequestShape {
  uint32_t resources = 4;
  uint32_t spans_per_resource = 128;
  uint32_t spans_per_trace = 8;
  uint32_t exception_every = 16;
  uint64_t seed = 42;

  uint32_t spans() const { return resources * spans_per_resource; }
};

// The request as protobuf bytes (an ExportTraceServiceRequest).
std::string MakeOtlpProtoRequest(const RequestShape& shape);

// Service-mesh traffic for the SLI engine benchmarks, as a Collector forwards it: `traces` traces
// of kSpansPerTrace spans, one resource per service present (service.name plus the usual
// SDK/host attributes), each resource's spans in end-time order (as SDKs export them: children
// before their parent). Every trace has one SERVER root in a service A and children of mixed
// kinds (INTERNAL, CLIENT, SERVER, PRODUCER) over 2 services (half the traces) or 3; services
// are drawn from `services`, each with kOperationsPerService operation names. Durations are
// log-normal (the root's median `root_median_ms`, `sigma`), every child nested inside its parent.
// Each span is an error with probability `error_rate`: status ERROR, HTTP 500 where it has an
// HTTP status, and an "exception" event whose message carries numbers (ids, addresses, times).
// Root spans end spread over [sent_unix_nano - window_nanos, sent_unix_nano]; no span ends
// later. Deterministic for a given seed.
struct MeshShape {
  static constexpr uint32_t kSpansPerTrace = 8;
  static constexpr uint32_t kOperationsPerService = 10;
  uint32_t traces = 64;
  uint32_t services = 20;
  double error_rate = 0.02;
  double root_median_ms = 50;
  double sigma = 1.0;
  uint64_t sent_unix_nano = 1'700'000'000'000'000'000ull;
  uint64_t window_nanos = 20'000'000;
  uint64_t seed = 42;

  uint32_t spans() const { return traces * kSpansPerTrace; }
};

// The service names mesh requests with `services` services use (MeshShape::services).
std::vector<std::string> MeshServiceNames(uint32_t services);

// The mesh request as protobuf bytes (an ExportTraceServiceRequest).
std::string MakeMeshOtlpProtoRequest(const MeshShape& shape);

// Where each span's trace id and times sit in a request's protobuf bytes, so that a client can
// send the same request again with new trace ids and current times without encoding it again.
struct SpanFieldOffsets {
  std::vector<size_t> trace_ids;    // 16 bytes each
  std::vector<size_t> start_times;  // fixed64, little-endian
  std::vector<size_t> end_times;
};
// Empty if `proto_bytes` is not a well-formed ExportTraceServiceRequest.
SpanFieldOffsets FindSpanFields(std::string_view proto_bytes);

// Writes into `request` (a copy of `original`, same size) each span's trace id with its first 8
// bytes replaced by `trace_salt` (the last 8, which pick the shard, are kept; traces stay
// distinct within the request) and its start and end times moved by `shift_nanos` from those of
// `original`. Only the fields at `offsets` are written.
void RestampRequest(std::string_view original, const SpanFieldOffsets& offsets, uint64_t trace_salt,
                    int64_t shift_nanos, std::string& request);

// The OTLP/JSON encoding of the same request: lowerCamelCase names, hex ids, enums as integers,
// 64-bit integers as decimal strings. Empty if `proto_bytes` does not parse.
std::string OtlpProtoToJson(std::string_view proto_bytes);

}  // namespace traceslo::bench
