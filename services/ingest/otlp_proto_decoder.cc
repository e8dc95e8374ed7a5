// DecodeOtlpProto: a scanner over the protobuf wire format of an ExportTraceServiceRequest.
// Nothing is materialised: every string handed to SpanBuilder is a view into `body`, and the only
// allocations are SpanBuilder's appends to the batch.
//
// Wire-format rules are libprotobuf's:
// - fields may come in any order and repeat; the last value of a scalar wins, repeated
//   occurrences of a message field merge (resource attributes accumulate, the last
//   service.name wins);
// - a known field number with an unexpected wire type is an unknown field and is skipped;
// - unknown fields of wire types varint, fixed64, length-delimited and fixed32 are skipped;
// - field number 0, tags beyond 32 bits, varints longer than 10 bytes, lengths past the
//   enclosing message and wire types 6 and 7 are malformed.
// Where we differ: groups (wire types 3 and 4, deprecated and never used by OTLP) are malformed;
// proto3 strings are not checked for UTF-8; InstrumentationScope and Span.Link are skipped
// whole (only their length is checked).

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"

namespace traceslo::ingest {
namespace {

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

constexpr uint32_t MakeTag(uint32_t field, WireType type) { return field << 3 | type; }

// Tags of the fields we read, named Message_field.
// ExportTraceServiceRequest
constexpr uint32_t kRequestResourceSpans = MakeTag(1, kLengthDelimited);
// ResourceSpans
constexpr uint32_t kResourceSpansResource = MakeTag(1, kLengthDelimited);
constexpr uint32_t kResourceSpansScopeSpans = MakeTag(2, kLengthDelimited);
// Resource
constexpr uint32_t kResourceAttributes = MakeTag(1, kLengthDelimited);
// ScopeSpans
constexpr uint32_t kScopeSpansSpans = MakeTag(2, kLengthDelimited);
// Span
constexpr uint32_t kSpanTraceId = MakeTag(1, kLengthDelimited);
constexpr uint32_t kSpanSpanId = MakeTag(2, kLengthDelimited);
constexpr uint32_t kSpanParentSpanId = MakeTag(4, kLengthDelimited);
constexpr uint32_t kSpanName = MakeTag(5, kLengthDelimited);
constexpr uint32_t kSpanKind = MakeTag(6, kVarint);
constexpr uint32_t kSpanStartTime = MakeTag(7, kFixed64);
constexpr uint32_t kSpanEndTime = MakeTag(8, kFixed64);
constexpr uint32_t kSpanAttributes = MakeTag(9, kLengthDelimited);
constexpr uint32_t kSpanEvents = MakeTag(11, kLengthDelimited);
constexpr uint32_t kSpanStatus = MakeTag(15, kLengthDelimited);
// Span.Event
constexpr uint32_t kEventName = MakeTag(2, kLengthDelimited);
constexpr uint32_t kEventAttributes = MakeTag(3, kLengthDelimited);
// Status
constexpr uint32_t kStatusMessage = MakeTag(2, kLengthDelimited);
constexpr uint32_t kStatusCode = MakeTag(3, kVarint);
// KeyValue, KeyValueList, ArrayValue
constexpr uint32_t kKeyValueKey = MakeTag(1, kLengthDelimited);
constexpr uint32_t kKeyValueValue = MakeTag(2, kLengthDelimited);
constexpr uint32_t kKeyValueListValues = MakeTag(1, kLengthDelimited);
constexpr uint32_t kArrayValueValues = MakeTag(1, kLengthDelimited);
// AnyValue
constexpr uint32_t kAnyString = MakeTag(1, kLengthDelimited);
constexpr uint32_t kAnyBool = MakeTag(2, kVarint);
constexpr uint32_t kAnyInt = MakeTag(3, kVarint);
constexpr uint32_t kAnyDouble = MakeTag(4, kFixed64);
constexpr uint32_t kAnyArray = MakeTag(5, kLengthDelimited);
constexpr uint32_t kAnyKvList = MakeTag(6, kLengthDelimited);
constexpr uint32_t kAnyBytes = MakeTag(7, kLengthDelimited);

constexpr std::string_view kServiceNameKey = "service.name";

// Nesting of AnyValue arrays/kvlists is recursion here; whatever `max_depth` says, the stack
// never goes deeper than this (libprotobuf's default recursion limit).
constexpr uint32_t kMaxSupportedDepth = 100;

// One field as read off the wire: its tag and its payload.
struct Field {
  const char* start = nullptr;  // first byte of the tag, for error messages
  uint32_t tag = 0;
  uint64_t number = 0;     // varint, fixed64 and fixed32 payloads
  std::string_view bytes;  // length-delimited payload, a view into the body
};

// The remaining bytes of one message: [pos, end).
struct Cursor {
  explicit Cursor(std::string_view message)
      : pos(message.data()), end(message.data() + message.size()) {}
  bool AtEnd() const { return pos >= end; }
  const char* pos;
  const char* end;
};

// A decoded AnyValue, as far as attributes need it.
struct AttributeValue {
  enum class Kind : uint8_t { kNone, kString, kInt, kOther };
  Kind kind = Kind::kNone;
  int64_t int_value = 0;
  std::string_view string_value;
};

struct Attribute {
  std::string_view key;
  AttributeValue value;
};

enum class VarintResult : uint8_t { kOk, kTruncated, kTooLong };

// Reads a base-128 varint of at most 10 bytes at `p`, advancing `p`. Bits beyond 64 are dropped,
// as libprotobuf does.
inline VarintResult ReadVarint(const char*& p, const char* end, uint64_t& value) {
  if (p < end && static_cast<uint8_t>(*p) < 0x80) [[likely]] {
    value = static_cast<uint8_t>(*p++);
    return VarintResult::kOk;
  }
  uint64_t result = 0;
  for (uint32_t shift = 0; shift < 70; shift += 7) {
    if (p >= end) return VarintResult::kTruncated;
    uint8_t byte = static_cast<uint8_t>(*p++);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) {
      value = result;
      return VarintResult::kOk;
    }
  }
  return VarintResult::kTooLong;
}

inline uint64_t LoadLittleEndian64(const char* p) {
  uint64_t value;
  std::memcpy(&value, p, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap64(value);
  return value;
}

inline uint32_t LoadLittleEndian32(const char* p) {
  uint32_t value;
  std::memcpy(&value, p, sizeof(value));
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap32(value);
  return value;
}

// Scans one request. Every Parse*/Decode* method returns false after recording the reason in
// `error_`; the caller then rolls the batch back.
class ProtoRequestDecoder {
 public:
  ProtoRequestDecoder(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                      DecodeResult& result, ResourceCache* resources)
      : body_(body),
        limits_(limits),
        resources_(resources),
        max_spans_(limits.max_spans),
        max_depth_(limits.max_depth < kMaxSupportedDepth ? limits.max_depth : kMaxSupportedDepth),
        max_attributes_(limits.max_attributes),
        builder_(out, result) {}

  bool DecodeRequest();
  std::string TakeError() { return std::move(error_); }

 private:
  bool NextField(Cursor& cursor, Field& field);
  bool DecodeResourceSpans(std::string_view message);
  // ParseResource through resources_ (when set).
  bool ParseResourceCached(std::string_view message, std::string_view& service_name,
                           bool& has_service_name);
  bool ParseResource(std::string_view message, std::string_view& service_name,
                     bool& has_service_name);
  bool DecodeScopeSpans(std::string_view message);
  bool DecodeSpan(std::string_view message);
  bool DecodeEvent(std::string_view message);
  bool DecodeStatus(std::string_view message);
  bool ParseKeyValue(std::string_view message, uint32_t depth, Attribute& attribute);
  bool ParseAnyValue(std::string_view message, uint32_t depth, AttributeValue& value);
  bool ParseArrayValue(std::string_view message, uint32_t depth);
  bool ParseKeyValueList(std::string_view message, uint32_t depth);

  enum class FieldError : uint8_t {
    kTruncatedTag,
    kOverlongTag,
    kBadFieldNumber,   // value: the field number
    kTruncatedVarint,  // value: the field number, and so on
    kOverlongVarint,
    kFixed64PastEnd,
    kFixed32PastEnd,
    kTruncatedLength,
    kOverlongLength,
    kLengthPastEnd,
    kGroup,            // value: the whole tag
    kInvalidWireType,  // value: the whole tag
  };
  [[gnu::cold, gnu::noinline]] bool FailField(const char* at, FieldError error, uint64_t value);
  [[gnu::cold, gnu::noinline]] bool FailLimit(std::string what);
  [[gnu::cold, gnu::noinline]] bool FailDepth(std::string_view message);
  size_t Offset(const char* at) const { return static_cast<size_t>(at - body_.data()); }

  const std::string_view body_;
  const DecodeLimits limits_;
  ResourceCache* const resources_;
  const uint32_t max_spans_;
  const uint32_t max_depth_;
  const uint32_t max_attributes_;
  SpanBuilder builder_;
  uint64_t span_index_ = 0;
  std::string error_;
};

bool ProtoRequestDecoder::FailLimit(std::string what) {
  error_ = std::move(what);
  return false;
}

bool ProtoRequestDecoder::FailDepth(std::string_view message) {
  return FailLimit("attribute value at offset " + std::to_string(Offset(message.data())) +
                   " is nested deeper than " + std::to_string(max_depth_) +
                   " arrays/kvlists (limit)");
}

// Reads the tag and the payload of the next field of `cursor`'s message, checking that the
// payload lies within the message.
inline bool ProtoRequestDecoder::NextField(Cursor& cursor, Field& field) {
  const char* start = cursor.pos;
  field.start = start;
  uint64_t tag;
  if (VarintResult r = ReadVarint(cursor.pos, cursor.end, tag); r != VarintResult::kOk) {
    return FailField(
        start, r == VarintResult::kTruncated ? FieldError::kTruncatedTag : FieldError::kOverlongTag,
        0);
  }
  if (tag > UINT32_MAX || tag < 8) [[unlikely]] {
    return FailField(start, FieldError::kBadFieldNumber, tag >> 3);
  }
  field.tag = static_cast<uint32_t>(tag);
  switch (field.tag & 7) {
    case kVarint:
      if (VarintResult r = ReadVarint(cursor.pos, cursor.end, field.number); r != VarintResult::kOk)
          [[unlikely]] {
        return FailField(start,
                         r == VarintResult::kTruncated ? FieldError::kTruncatedVarint
                                                       : FieldError::kOverlongVarint,
                         field.tag >> 3);
      }
      return true;
    case kFixed64:
      if (cursor.end - cursor.pos < 8) [[unlikely]] {
        return FailField(start, FieldError::kFixed64PastEnd, field.tag >> 3);
      }
      field.number = LoadLittleEndian64(cursor.pos);
      cursor.pos += 8;
      return true;
    case kLengthDelimited: {
      uint64_t length;
      if (VarintResult r = ReadVarint(cursor.pos, cursor.end, length); r != VarintResult::kOk)
          [[unlikely]] {
        return FailField(start,
                         r == VarintResult::kTruncated ? FieldError::kTruncatedLength
                                                       : FieldError::kOverlongLength,
                         field.tag >> 3);
      }
      if (length > static_cast<size_t>(cursor.end - cursor.pos)) [[unlikely]] {
        return FailField(start, FieldError::kLengthPastEnd, field.tag >> 3);
      }
      field.bytes = std::string_view(cursor.pos, static_cast<size_t>(length));
      cursor.pos += length;
      return true;
    }
    case kFixed32:
      if (cursor.end - cursor.pos < 4) [[unlikely]] {
        return FailField(start, FieldError::kFixed32PastEnd, field.tag >> 3);
      }
      field.number = LoadLittleEndian32(cursor.pos);
      cursor.pos += 4;
      return true;
    case kStartGroup:
    case kEndGroup:
      return FailField(start, FieldError::kGroup, field.tag);
    default:
      return FailField(start, FieldError::kInvalidWireType, field.tag);
  }
}

bool ProtoRequestDecoder::FailField(const char* at, FieldError error, uint64_t value) {
  std::string what;
  const std::string field = std::to_string(value >> 3);
  const std::string number = std::to_string(value);
  switch (error) {
    case FieldError::kTruncatedTag:
      what = "truncated tag";
      break;
    case FieldError::kOverlongTag:
      what = "tag longer than 10 bytes";
      break;
    case FieldError::kBadFieldNumber:
      what = "invalid field number " + number;
      break;
    case FieldError::kTruncatedVarint:
      what = "truncated varint field " + number;
      break;
    case FieldError::kOverlongVarint:
      what = "varint field " + number + " longer than 10 bytes";
      break;
    case FieldError::kFixed64PastEnd:
      what = "fixed64 field " + number + " exceeds message";
      break;
    case FieldError::kFixed32PastEnd:
      what = "fixed32 field " + number + " exceeds message";
      break;
    case FieldError::kTruncatedLength:
      what = "truncated length of field " + number;
      break;
    case FieldError::kOverlongLength:
      what = "length of field " + number + " longer than 10 bytes";
      break;
    case FieldError::kLengthPastEnd:
      what = "length of field " + number + " exceeds message";
      break;
    case FieldError::kGroup:
      what = "field " + field + " has group wire type " + std::to_string(value & 7) +
             " (groups are not supported)";
      break;
    case FieldError::kInvalidWireType:
      what = "field " + field + " has invalid wire type " + std::to_string(value & 7);
      break;
  }
  error_ = "malformed protobuf: " + what + " at offset " + std::to_string(Offset(at));
  return false;
}

bool ProtoRequestDecoder::DecodeRequest() {
  Cursor cursor(body_);
  Field field;
  while (!cursor.AtEnd()) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kRequestResourceSpans && !DecodeResourceSpans(field.bytes)) return false;
  }
  return true;
}

// The resource may follow its scope_spans on the wire: a first pass finds service.name (and
// checks the framing of every field), a second decodes the spans.
bool ProtoRequestDecoder::DecodeResourceSpans(std::string_view message) {
  std::string_view service_name;
  bool has_service_name = false;
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kResourceSpansResource &&
        !ParseResourceCached(field.bytes, service_name, has_service_name)) {
      return false;
    }
  }
  builder_.BeginResource();
  if (has_service_name) builder_.SetServiceName(service_name);
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kResourceSpansScopeSpans && !DecodeScopeSpans(field.bytes)) return false;
  }
  return true;
}

bool ProtoRequestDecoder::ParseResourceCached(std::string_view message,
                                              std::string_view& service_name,
                                              bool& has_service_name) {
  if (resources_ == nullptr) return ParseResource(message, service_name, has_service_name);
  if (const ResourceCache::Outcome* hit = resources_->Find(message, limits_)) {
    if (hit->has_service_name) {
      service_name = message.substr(hit->service_name_offset, hit->service_name_size);
      has_service_name = true;
    }
    return true;
  }
  // ParseResource sets its outputs only when it finds service.name: the outcome of this
  // resource alone, then merged as ParseResource would have.
  std::string_view found;
  bool has_found = false;
  if (!ParseResource(message, found, has_found)) return false;
  resources_->Remember(
      message, limits_,
      {.has_service_name = has_found,
       .service_name_offset = has_found ? static_cast<uint32_t>(found.data() - message.data()) : 0,
       .service_name_size = static_cast<uint32_t>(found.size())});
  if (has_found) {
    service_name = found;
    has_service_name = true;
  }
  return true;
}

bool ProtoRequestDecoder::ParseResource(std::string_view message, std::string_view& service_name,
                                        bool& has_service_name) {
  uint32_t attributes = 0;
  Field field;
  Attribute attribute;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag != kResourceAttributes) continue;
    if (++attributes > max_attributes_) {
      return FailLimit("resource has more than " + std::to_string(max_attributes_) +
                       " attributes (limit)");
    }
    attribute = Attribute{};
    if (!ParseKeyValue(field.bytes, 0, attribute)) return false;
    if (attribute.key == kServiceNameKey && attribute.value.kind == AttributeValue::Kind::kString) {
      service_name = attribute.value.string_value;
      has_service_name = true;
    }
  }
  return true;
}

bool ProtoRequestDecoder::DecodeScopeSpans(std::string_view message) {
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kScopeSpansSpans && !DecodeSpan(field.bytes)) return false;
  }
  return true;
}

bool ProtoRequestDecoder::DecodeSpan(std::string_view message) {
  if (span_index_ >= max_spans_) {
    return FailLimit("request has more than " + std::to_string(max_spans_) + " spans (limit)");
  }
  builder_.BeginSpan();
  uint32_t attributes = 0;
  Field field;
  Attribute attribute;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    switch (field.tag) {
      case kSpanTraceId:
        builder_.SetTraceId(field.bytes);
        break;
      case kSpanSpanId:
        builder_.SetSpanId(field.bytes);
        break;
      case kSpanParentSpanId:
        builder_.SetParentSpanId(field.bytes);
        break;
      case kSpanName:
        builder_.SetName(field.bytes);
        break;
      case kSpanKind:
        // An enum is an int32 on the wire.
        builder_.SetKind(static_cast<int32_t>(field.number));
        break;
      case kSpanStartTime:
        builder_.SetStartTime(field.number);
        break;
      case kSpanEndTime:
        builder_.SetEndTime(field.number);
        break;
      case kSpanAttributes:
        if (++attributes > max_attributes_) {
          return FailLimit("span " + std::to_string(span_index_) + " has more than " +
                           std::to_string(max_attributes_) + " attributes (limit)");
        }
        attribute = Attribute{};
        if (!ParseKeyValue(field.bytes, 0, attribute)) return false;
        if (attribute.value.kind == AttributeValue::Kind::kString) {
          builder_.OnStringAttribute(attribute.key, attribute.value.string_value);
        } else if (attribute.value.kind == AttributeValue::Kind::kInt) {
          builder_.OnIntAttribute(attribute.key, attribute.value.int_value);
        }
        break;
      case kSpanEvents:
        if (!DecodeEvent(field.bytes)) return false;
        break;
      case kSpanStatus:
        if (!DecodeStatus(field.bytes)) return false;
        break;
      default:
        break;
    }
  }
  builder_.EndSpan(span_index_++);
  return true;
}

// The name may follow the attributes on the wire: a first pass finds it (and checks the
// framing), a second feeds the attributes.
bool ProtoRequestDecoder::DecodeEvent(std::string_view message) {
  std::string_view name;
  uint32_t attributes = 0;
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kEventName) {
      name = field.bytes;
    } else if (field.tag == kEventAttributes && ++attributes > max_attributes_) {
      return FailLimit("event of span " + std::to_string(span_index_) + " has more than " +
                       std::to_string(max_attributes_) + " attributes (limit)");
    }
  }
  builder_.BeginEvent(name);
  Attribute attribute;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag != kEventAttributes) continue;
    attribute = Attribute{};
    if (!ParseKeyValue(field.bytes, 0, attribute)) return false;
    if (attribute.value.kind == AttributeValue::Kind::kString) {
      builder_.OnEventStringAttribute(attribute.key, attribute.value.string_value);
    }
  }
  builder_.EndEvent();
  return true;
}

bool ProtoRequestDecoder::DecodeStatus(std::string_view message) {
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kStatusMessage) {
      builder_.SetStatusMessage(field.bytes);
    } else if (field.tag == kStatusCode) {
      builder_.SetStatusCode(static_cast<int32_t>(field.number));
    }
  }
  return true;
}

// `depth` is the number of arrays/kvlists that enclose this KeyValue's value.
bool ProtoRequestDecoder::ParseKeyValue(std::string_view message, uint32_t depth,
                                        Attribute& attribute) {
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kKeyValueKey) {
      attribute.key = field.bytes;
    } else if (field.tag == kKeyValueValue) {
      // Repeated occurrences merge: a later value replaces an earlier one only if it is set.
      if (!ParseAnyValue(field.bytes, depth, attribute.value)) return false;
    }
  }
  return true;
}

bool ProtoRequestDecoder::ParseAnyValue(std::string_view message, uint32_t depth,
                                        AttributeValue& value) {
  using Kind = AttributeValue::Kind;
  Field field;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    switch (field.tag) {
      case kAnyString:
        value.kind = Kind::kString;
        value.string_value = field.bytes;
        break;
      case kAnyInt:
        value.kind = Kind::kInt;
        value.int_value = static_cast<int64_t>(field.number);
        break;
      case kAnyBool:
      case kAnyDouble:
      case kAnyBytes:
        value.kind = Kind::kOther;
        break;
      case kAnyArray:
        value.kind = Kind::kOther;
        if (!ParseArrayValue(field.bytes, depth + 1)) return false;
        break;
      case kAnyKvList:
        value.kind = Kind::kOther;
        if (!ParseKeyValueList(field.bytes, depth + 1)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

// `depth` counts this array: 1 for an attribute's own array value.
bool ProtoRequestDecoder::ParseArrayValue(std::string_view message, uint32_t depth) {
  if (depth > max_depth_) return FailDepth(message);
  Field field;
  AttributeValue element;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kArrayValueValues && !ParseAnyValue(field.bytes, depth, element)) {
      return false;
    }
  }
  return true;
}

bool ProtoRequestDecoder::ParseKeyValueList(std::string_view message, uint32_t depth) {
  if (depth > max_depth_) return FailDepth(message);
  Field field;
  Attribute entry;
  for (Cursor cursor(message); !cursor.AtEnd();) {
    if (!NextField(cursor, field)) return false;
    if (field.tag == kKeyValueListValues && !ParseKeyValue(field.bytes, depth, entry)) {
      return false;
    }
  }
  return true;
}

}  // namespace

size_t ResourceCache::SlotOf(std::string_view resource) {
  // absl::string_view: absl hashes it with its own fast hash (std::string_view goes through
  // std::hash, several times slower on a resource's few hundred bytes).
  return absl::Hash<absl::string_view>{}(absl::string_view(resource.data(), resource.size())) %
         kSlots;
}

const ResourceCache::Outcome* ResourceCache::Find(std::string_view resource,
                                                  const DecodeLimits& limits) const {
  if (resource.size() > kMaxResourceBytes || limits.max_depth != max_depth_ ||
      limits.max_attributes != max_attributes_) {
    return nullptr;
  }
  const Entry& entry = entries_[SlotOf(resource)];
  return entry.used && entry.bytes == resource ? &entry.outcome : nullptr;
}

void ResourceCache::Remember(std::string_view resource, const DecodeLimits& limits,
                             const Outcome& outcome) {
  if (resource.size() > kMaxResourceBytes) return;
  if (limits.max_depth != max_depth_ || limits.max_attributes != max_attributes_) {
    for (Entry& entry : entries_) entry.used = false;
    max_depth_ = limits.max_depth;
    max_attributes_ = limits.max_attributes;
  }
  Entry& entry = entries_[SlotOf(resource)];
  entry.used = true;
  entry.bytes.assign(resource);
  entry.outcome = outcome;
}

absl::Status DecodeOtlpProto(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                             DecodeResult& result, ResourceCache* resources) {
  const size_t spans_before = out.spans.size();
  const size_t strings_before = out.strings.size();
  const uint32_t accepted_before = result.accepted;
  const auto rejected_before = result.rejected;
  const bool had_first_error = !result.first_error.empty();

  ProtoRequestDecoder decoder(body, limits, out, result, resources);
  if (decoder.DecodeRequest()) return absl::OkStatus();

  out.spans.resize(spans_before);
  out.strings.resize(strings_before);
  result.accepted = accepted_before;
  result.rejected = rejected_before;
  if (!had_first_error) result.first_error.clear();
  return absl::InvalidArgumentError(decoder.TakeError());
}

}  // namespace traceslo::ingest
