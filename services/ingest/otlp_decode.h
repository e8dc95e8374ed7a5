#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "services/ingest/span_builder.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {

// Decoders of an ExportTraceServiceRequest. Both append the valid spans to `out` and count the
// refused ones in `result`. A body that is not a well-formed request (or breaks `limits`) returns
// InvalidArgument with a message saying where; `out` is then restored to its size before the
// call. Never throw, never read past `body`. Pure functions, safe on any thread.

// Protobuf binary wire format, scanned in place (no protobuf message is materialised).
absl::Status DecodeOtlpProto(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                             DecodeResult& result);

// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): lowerCamelCase
// or original field names, hex ids, enums as integers, 64-bit integers as strings or numbers,
// unknown fields ignored.
absl::Status DecodeOtlpJson(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                            DecodeResult& result);

}  // namespace traceslo::ingest
