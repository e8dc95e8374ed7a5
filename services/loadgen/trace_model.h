#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::loadgen {

// OTLP's numbering, so the encoders write the values as they are.
enum class SpanKind : uint8_t {
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};
enum class SpanStatus : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

struct Attribute {
  std::string_view key;  // always a string literal
  std::string string_value;
  int64_t int_value = 0;
  bool is_int = false;
};

// The "exception" span event (exception.type, exception.message, exception.stacktrace).
struct ExceptionEvent {
  std::string type;
  std::string message;
  std::string stacktrace;
};

// One generated span. Times are microseconds relative to the trace's first span start; the
// trace's anchor turns them into unix nanoseconds, so every time in a trace is a whole number of
// microseconds apart from every other (exact comparisons after traceslo's microsecond offsets).
struct GeneratedSpan {
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;  // 0: root
  uint8_t service = 0;          // index into kServiceNames
  SpanKind kind = SpanKind::kInternal;
  std::string_view name;  // the operation; always a string literal
  int64_t start_us = 0;
  int64_t end_us = 0;  // >= start_us
  SpanStatus status = SpanStatus::kUnset;
  std::string status_message;
  int32_t http_status = 0;  // written as http.response.status_code when > 0
  int32_t rpc_status = -1;  // written as rpc.grpc.status_code when >= 0
  std::vector<Attribute> attributes;
  std::optional<ExceptionEvent> exception;
  bool orphaned = false;  // a propagation_break replaced its parent with one never sent
};

using TraceIdBytes = std::array<uint8_t, 16>;

struct GeneratedTrace {
  uint64_t index = 0;  // 0, 1, 2, ... in generation order
  TraceIdBytes trace_id{};
  int64_t anchor_unix_nano = 0;      // unix time of relative time 0
  std::vector<GeneratedSpan> spans;  // parents before children (async consumers included)
  bool dropped = false;              // a traffic_drop incident: generated, never sent

  int64_t StartUnixNano(const GeneratedSpan& span) const {
    return anchor_unix_nano + span.start_us * 1000;
  }
  int64_t EndUnixNano(const GeneratedSpan& span) const {
    return anchor_unix_nano + span.end_us * 1000;
  }
  int64_t EndUs() const {
    int64_t end = 0;
    for (const GeneratedSpan& span : spans) end = span.end_us > end ? span.end_us : end;
    return end;
  }
};

}  // namespace traceslo::loadgen
