#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/common/span.h"

namespace traceslo::ingest {

// Why a single span was refused (the request as a whole was fine). Label values of
// traceslo_spans_rejected_total{reason}, together with the request-level reasons of
// RequestRejectReasonName.
enum class SpanRejectReason : uint8_t {
  kInvalidTraceId = 0,   // not 16 bytes, or all zero
  kInvalidSpanId,        // not 8 bytes, or all zero
  kInvalidParentSpanId,  // neither empty nor 8 bytes
  kEndBeforeStart,       // end_time_unix_nano < start_time_unix_nano
  kCount,
};
inline constexpr size_t kSpanRejectReasonCount = static_cast<size_t>(SpanRejectReason::kCount);
std::string_view SpanRejectReasonName(SpanRejectReason reason);

// What one decode did: spans kept, spans refused by reason, and the first refusal's message
// (for ExportTracePartialSuccess.error_message).
struct DecodeResult {
  uint32_t accepted = 0;
  std::array<uint32_t, kSpanRejectReasonCount> rejected{};
  std::string first_error;

  uint32_t TotalRejected() const {
    uint32_t total = 0;
    for (uint32_t n : rejected) total += n;
    return total;
  }
};

// Limits on one request, enforced by both decoders (exceeding one fails the whole request with
// InvalidArgument, a message naming the limit).
struct DecodeLimits {
  uint32_t max_spans = 1'000'000;    // spans per request
  uint32_t max_depth = 32;           // nesting of AnyValue arrays/kvlists
  uint32_t max_attributes = 10'000;  // attributes per span, resource or event
};

// Builds compact Spans from the fields of one OTLP span, in any order, for both the protobuf
// and the JSON decoder: maps the attributes SLIs need, the first exception event, validates ids
// and times, and either appends the span to `out` or counts its rejection.
// Borrowed `out` and `result` must outlive the builder. Owned by the decoding thread.
class SpanBuilder {
 public:
  SpanBuilder(SpanBatch& out, DecodeResult& result) : out_(out), result_(result) {}

  // Resource scope: call BeginResource, then SetServiceName if the resource has service.name.
  void BeginResource();
  void SetServiceName(std::string_view service_name);

  // One span: BeginSpan, any setters, EndSpan.
  void BeginSpan();
  void SetTraceId(std::string_view raw_bytes);
  void SetSpanId(std::string_view raw_bytes);
  void SetParentSpanId(std::string_view raw_bytes);
  // Ids as OTLP/JSON sends them: hex. Odd length or non-hex marks the id invalid.
  void SetTraceIdHex(std::string_view hex);
  void SetSpanIdHex(std::string_view hex);
  void SetParentSpanIdHex(std::string_view hex);
  void SetName(std::string_view name);
  void SetKind(int64_t kind);
  void SetTimes(uint64_t start_unix_nano, uint64_t end_unix_nano);
  void SetStartTime(uint64_t start_unix_nano);
  void SetEndTime(uint64_t end_unix_nano);
  void SetStatus(int64_t code, std::string_view message);
  void SetStatusCode(int64_t code);
  void SetStatusMessage(std::string_view message);
  // Span attributes; only the keys SLIs use are kept, the rest cost a comparison.
  void OnIntAttribute(std::string_view key, int64_t value);
  void OnStringAttribute(std::string_view key, std::string_view value);
  // Events: only the first event named "exception" is kept.
  void BeginEvent(std::string_view name);
  void OnEventStringAttribute(std::string_view key, std::string_view value);
  void EndEvent();
  // Validates and appends, or counts the rejection. `span_index` is the span's position in the
  // request (for the error message).
  void EndSpan(uint64_t span_index);

 private:
  enum class IdState : uint8_t { kUnset, kValid, kInvalid };
  void SetException(std::string_view key, std::string_view value);

  SpanBatch& out_;
  DecodeResult& result_;
  StrRef service_;
  bool service_set_ = false;
  StrRef unknown_service_;
  bool unknown_service_added_ = false;
  Span span_;
  IdState trace_id_ = IdState::kUnset;
  IdState span_id_ = IdState::kUnset;
  IdState parent_id_ = IdState::kUnset;
  bool in_exception_event_ = false;
  bool exception_seen_ = false;
  size_t span_arena_start_ = 0;  // arena size at BeginSpan: a rejected span gives its bytes back
};

}  // namespace traceslo::ingest
