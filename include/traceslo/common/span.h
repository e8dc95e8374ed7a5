#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo {

// A slice of a SpanBatch's string arena. Offsets stay valid when the arena grows.
struct StrRef {
  uint32_t offset = 0;
  uint32_t size = 0;
};

enum class SpanKind : uint8_t {
  kUnspecified = 0,
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};

enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

using TraceId = std::array<uint8_t, 16>;

// 32 lower-case hex digits, as OTLP/JSON, trace backends and our URLs write trace ids.
std::string TraceIdHex(const TraceId& trace_id);
// The id of 32 hex digits (either case); nullopt for anything else and for the all-zero id.
std::optional<TraceId> ParseTraceIdHex(std::string_view hex);

// The compact span that ingest hands to the pipeline: only what SLIs, error signatures and
// exemplar traces need. Ids are never all-zero (ingest rejects such spans).
struct Span {
  TraceId trace_id{};
  uint64_t span_id = 0;         // the 8 id bytes read big-endian
  uint64_t parent_span_id = 0;  // 0: no parent (a root span)
  uint64_t start_unix_nano = 0;
  uint64_t end_unix_nano = 0;  // >= start_unix_nano
  StrRef service;              // resource service.name, "unknown_service" when absent
  StrRef name;                 // span name, the operation
  StrRef status_message;
  StrRef exception_type;  // from the first "exception" event (or exception.* attributes)
  StrRef exception_message;
  StrRef exception_stacktrace;  // truncated to kMaxStacktraceBytes
  int32_t http_status = 0;      // http.response.status_code / http.status_code; 0 when absent
  int32_t rpc_status = -1;      // rpc.grpc.status_code / rpc.response.status_code /
                                // rpc.status_code; -1 when absent
  SpanKind kind = SpanKind::kUnspecified;
  StatusCode status = StatusCode::kUnset;
};

// Per-string caps applied by the decoders (longer values are truncated, not rejected).
inline constexpr uint32_t kMaxNameBytes = 256;      // service and span names
inline constexpr uint32_t kMaxMessageBytes = 1024;  // status and exception messages/types
inline constexpr uint32_t kMaxStacktraceBytes = 2048;

// Spans plus the arena their strings live in. Owned by one thread at a time.
struct SpanBatch {
  std::string strings;
  std::vector<Span> spans;

  std::string_view Str(StrRef ref) const {
    return std::string_view(strings).substr(ref.offset, ref.size);
  }
  // Appends `value` (truncated to `max_bytes`) to the arena.
  StrRef Add(std::string_view value, uint32_t max_bytes) {
    if (value.size() > max_bytes) value = value.substr(0, max_bytes);
    StrRef ref{static_cast<uint32_t>(strings.size()), static_cast<uint32_t>(value.size())};
    strings.append(value);
    return ref;
  }
  void Clear() {
    strings.clear();
    spans.clear();
  }
};

}  // namespace traceslo
