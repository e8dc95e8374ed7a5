#include "services/ingest/span_builder.h"

#include <charconv>
#include <cstring>

#include "services/ingest/grpc_codes.h"

namespace traceslo::ingest {
namespace {

constexpr std::string_view kUnknownService = "unknown_service";

bool AllZero(const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `hex` into exactly `size` bytes; false on wrong length or a non-hex character.
bool DecodeHex(std::string_view hex, uint8_t* out, size_t size) {
  if (hex.size() != size * 2) return false;
  for (size_t i = 0; i < size; ++i) {
    int hi = HexDigit(hex[2 * i]);
    int lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

uint64_t LoadBigEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

bool ParseInt(std::string_view text, int64_t& value) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool IsHttpStatusKey(std::string_view key) {
  return key == "http.response.status_code" || key == "http.status_code";
}
bool IsRpcStatusKey(std::string_view key) {
  return key == "rpc.grpc.status_code" || key == "rpc.response.status_code" ||
         key == "rpc.status_code";
}

}  // namespace

std::string_view SpanRejectReasonName(SpanRejectReason reason) {
  switch (reason) {
    case SpanRejectReason::kInvalidTraceId:
      return "invalid_trace_id";
    case SpanRejectReason::kInvalidSpanId:
      return "invalid_span_id";
    case SpanRejectReason::kInvalidParentSpanId:
      return "invalid_parent_span_id";
    case SpanRejectReason::kEndBeforeStart:
      return "end_before_start";
    case SpanRejectReason::kCount:
      break;
  }
  return "unknown";
}

void SpanBuilder::BeginResource() { service_set_ = false; }

void SpanBuilder::SetServiceName(std::string_view service_name) {
  if (service_name.empty()) return;
  service_ = out_.Add(service_name, kMaxNameBytes);
  service_set_ = true;
}

void SpanBuilder::BeginSpan() {
  if (!service_set_) {
    // Once per builder, not once per resource without service.name.
    if (!unknown_service_added_) {
      unknown_service_ = out_.Add(kUnknownService, kMaxNameBytes);
      unknown_service_added_ = true;
    }
    service_ = unknown_service_;
    service_set_ = true;
  }
  span_ = Span{};
  span_.service = service_;
  span_arena_start_ = out_.strings.size();
  trace_id_ = span_id_ = parent_id_ = IdState::kUnset;
  in_exception_event_ = false;
  exception_seen_ = false;
}

void SpanBuilder::SetTraceId(std::string_view raw) {
  if (raw.size() != 16 || AllZero(reinterpret_cast<const uint8_t*>(raw.data()), 16)) {
    trace_id_ = IdState::kInvalid;
    return;
  }
  std::memcpy(span_.trace_id.data(), raw.data(), 16);
  trace_id_ = IdState::kValid;
}

void SpanBuilder::SetSpanId(std::string_view raw) {
  if (raw.size() != 8) {
    span_id_ = IdState::kInvalid;
    return;
  }
  span_.span_id = LoadBigEndian64(reinterpret_cast<const uint8_t*>(raw.data()));
  span_id_ = span_.span_id == 0 ? IdState::kInvalid : IdState::kValid;
}

void SpanBuilder::SetParentSpanId(std::string_view raw) {
  if (raw.empty()) {
    span_.parent_span_id = 0;
    parent_id_ = IdState::kValid;
    return;
  }
  if (raw.size() != 8) {
    parent_id_ = IdState::kInvalid;
    return;
  }
  span_.parent_span_id = LoadBigEndian64(reinterpret_cast<const uint8_t*>(raw.data()));
  parent_id_ = IdState::kValid;
}

void SpanBuilder::SetTraceIdHex(std::string_view hex) {
  uint8_t bytes[16];
  if (!DecodeHex(hex, bytes, 16)) {
    trace_id_ = IdState::kInvalid;
    return;
  }
  SetTraceId(std::string_view(reinterpret_cast<const char*>(bytes), 16));
}

void SpanBuilder::SetSpanIdHex(std::string_view hex) {
  uint8_t bytes[8];
  if (!DecodeHex(hex, bytes, 8)) {
    span_id_ = IdState::kInvalid;
    return;
  }
  SetSpanId(std::string_view(reinterpret_cast<const char*>(bytes), 8));
}

void SpanBuilder::SetParentSpanIdHex(std::string_view hex) {
  if (hex.empty()) {
    SetParentSpanId({});
    return;
  }
  uint8_t bytes[8];
  if (!DecodeHex(hex, bytes, 8)) {
    parent_id_ = IdState::kInvalid;
    return;
  }
  SetParentSpanId(std::string_view(reinterpret_cast<const char*>(bytes), 8));
}

void SpanBuilder::SetName(std::string_view name) { span_.name = out_.Add(name, kMaxNameBytes); }

void SpanBuilder::SetKind(int64_t kind) {
  span_.kind = kind >= 0 && kind <= 5 ? static_cast<SpanKind>(kind) : SpanKind::kUnspecified;
}

void SpanBuilder::SetTimes(uint64_t start_unix_nano, uint64_t end_unix_nano) {
  span_.start_unix_nano = start_unix_nano;
  span_.end_unix_nano = end_unix_nano;
}
void SpanBuilder::SetStartTime(uint64_t start_unix_nano) {
  span_.start_unix_nano = start_unix_nano;
}
void SpanBuilder::SetEndTime(uint64_t end_unix_nano) { span_.end_unix_nano = end_unix_nano; }

void SpanBuilder::SetStatus(int64_t code, std::string_view message) {
  SetStatusCode(code);
  SetStatusMessage(message);
}
void SpanBuilder::SetStatusCode(int64_t code) {
  span_.status = code == 1 ? StatusCode::kOk : code == 2 ? StatusCode::kError : StatusCode::kUnset;
}
void SpanBuilder::SetStatusMessage(std::string_view message) {
  if (!message.empty()) span_.status_message = out_.Add(message, kMaxMessageBytes);
}

void SpanBuilder::OnIntAttribute(std::string_view key, int64_t value) {
  if (IsHttpStatusKey(key)) {
    if (value > 0 && value < 1000) span_.http_status = static_cast<int32_t>(value);
  } else if (IsRpcStatusKey(key)) {
    if (value >= 0 && value <= 16) span_.rpc_status = static_cast<int32_t>(value);
  }
}

void SpanBuilder::OnStringAttribute(std::string_view key, std::string_view value) {
  if (IsHttpStatusKey(key) || IsRpcStatusKey(key)) {
    int64_t number = 0;
    if (ParseInt(value, number)) {
      OnIntAttribute(key, number);
    } else if (IsRpcStatusKey(key)) {
      int code = GrpcCodeFromName(value);
      if (code >= 0) span_.rpc_status = code;
    }
    return;
  }
  // Some instrumentations record the exception on the span itself; an event wins.
  if (!exception_seen_ && key.starts_with("exception.")) SetException(key, value);
}

void SpanBuilder::BeginEvent(std::string_view name) {
  in_exception_event_ = !exception_seen_ && name == "exception";
  if (in_exception_event_) {
    span_.exception_type = span_.exception_message = span_.exception_stacktrace = StrRef{};
  }
}

void SpanBuilder::OnEventStringAttribute(std::string_view key, std::string_view value) {
  if (in_exception_event_) SetException(key, value);
}

void SpanBuilder::EndEvent() {
  if (in_exception_event_) exception_seen_ = true;
  in_exception_event_ = false;
}

void SpanBuilder::SetException(std::string_view key, std::string_view value) {
  if (key == "exception.type") {
    span_.exception_type = out_.Add(value, kMaxMessageBytes);
  } else if (key == "exception.message") {
    span_.exception_message = out_.Add(value, kMaxMessageBytes);
  } else if (key == "exception.stacktrace") {
    span_.exception_stacktrace = out_.Add(value, kMaxStacktraceBytes);
  }
}

void SpanBuilder::EndSpan(uint64_t span_index) {
  SpanRejectReason reason = SpanRejectReason::kCount;
  const char* what = nullptr;
  if (trace_id_ != IdState::kValid) {
    reason = SpanRejectReason::kInvalidTraceId;
    what = "trace_id must be 16 bytes and not all zero";
  } else if (span_id_ != IdState::kValid) {
    reason = SpanRejectReason::kInvalidSpanId;
    what = "span_id must be 8 bytes and not all zero";
  } else if (parent_id_ == IdState::kInvalid) {
    reason = SpanRejectReason::kInvalidParentSpanId;
    what = "parent_span_id must be empty or 8 bytes";
  } else if (span_.end_unix_nano < span_.start_unix_nano) {
    reason = SpanRejectReason::kEndBeforeStart;
    what = "end_time_unix_nano is before start_time_unix_nano";
  }
  if (reason == SpanRejectReason::kCount) {
    out_.spans.push_back(span_);
    ++result_.accepted;
    return;
  }
  // Its strings are the arena's tail (the decoders call nothing else between BeginSpan and
  // EndSpan), so a refused span costs the queued batch nothing.
  out_.strings.resize(span_arena_start_);
  ++result_.rejected[static_cast<size_t>(reason)];
  if (result_.first_error.empty()) {
    result_.first_error = "span " + std::to_string(span_index) + ": " + what;
  }
}

}  // namespace traceslo::ingest
