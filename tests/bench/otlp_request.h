#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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

// The OTLP/JSON encoding of the same request: lowerCamelCase names, hex ids, enums as integers,
// 64-bit integers as decimal strings. Empty if `proto_bytes` does not parse.
std::string OtlpProtoToJson(std::string_view proto_bytes);

}  // namespace traceslo::bench
