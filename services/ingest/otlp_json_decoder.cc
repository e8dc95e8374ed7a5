// OTLP/JSON decoding with simdjson's DOM API. The DOM parse validates the whole document (syntax,
// UTF-8, number ranges, nesting) before any span is built, so every later failure is a structural
// one with a precise location, and a `resource` written after `scopeSpans` is just a second look
// at the same object.
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "services/ingest/otlp_decode.h"

namespace traceslo::ingest {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::key_value_pair;
using simdjson::dom::object;

// JSON nesting of the OTLP skeleton down to an event attribute's AnyValue:
// request{ resourceSpans[ {scopeSpans[ {spans[ {events[ {attributes[ {value{ = 12 levels.
constexpr uint64_t kSkeletonDepth = 12;
// Each nested kvlistValue adds {values[ {value{ (4 levels; arrayValue adds 3).
constexpr uint64_t kDepthPerAnyValue = 4;
// Room to see (and name) the container that breaks DecodeLimits::max_depth.
constexpr uint64_t kDepthSlack = 8;
// Bodies up to this size are parsed by a parser each thread keeps (about 14 MiB of buffers).
constexpr size_t kReusedParserMaxBytes = size_t{1} << 20;
// AnyValue nesting is recursion here; whatever DecodeLimits::max_depth says, it stops at this
// (as in the protobuf decoder, libprotobuf's default recursion limit).
constexpr uint32_t kMaxSupportedDepth = 100;

uint32_t MaxAnyValueDepth(const DecodeLimits& limits) {
  return std::min(limits.max_depth, kMaxSupportedDepth);
}

// One step of a JSON path, linked to its parent on the stack; formatted only on error.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // field name as written in the document; empty for an array element
  size_t index = 0;      // array position when `key` is empty
};

void AppendPath(const Path* path, std::string& text) {
  if (path == nullptr || path->parent == nullptr) return;  // the root prints as nothing
  AppendPath(path->parent, text);
  if (!path->key.empty()) {
    if (!text.empty()) text.push_back('.');
    text.append(path->key);
  } else {
    text.push_back('[');
    text.append(std::to_string(path->index));
    text.push_back(']');
  }
}

absl::Status ErrorAt(const Path& path, std::string_view what) {
  std::string text;
  AppendPath(&path, text);
  if (text.empty()) text = "request";
  text.append(": ");
  text.append(what);
  return absl::InvalidArgumentError(text);
}

// A field of a field: the path is only materialised on error.
absl::Status ErrorAt(const Path& parent, std::string_view key, std::string_view what) {
  return ErrorAt(Path{&parent, key}, what);
}

// OTLP/JSON uses lowerCamelCase; receivers also accept the original proto field names. Inlined,
// so that each comparison is against a constant length (a length check and a word compare).
[[gnu::always_inline]] inline bool IsField(std::string_view key, std::string_view camel,
                                           std::string_view snake) {
  return key == camel || key == snake;
}

bool ParseDecimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && ptr == text.data() + text.size();
}

bool ParseDecimal(std::string_view text, int64_t& value) {
  if (text.empty() || (text[0] != '-' && (text[0] < '0' || text[0] > '9'))) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// fixed64 times: a decimal string or a JSON integer in [0, 2^64).
absl::Status ReadUint64(element value, const Path& parent, std::string_view key, uint64_t& out) {
  switch (value.type()) {
    case element_type::INT64: {
      const int64_t signed_value = value.get_int64().value_unsafe();
      if (signed_value < 0) return ErrorAt(parent, key, "must not be negative");
      out = static_cast<uint64_t>(signed_value);
      return absl::OkStatus();
    }
    case element_type::UINT64:
      out = value.get_uint64().value_unsafe();
      return absl::OkStatus();
    case element_type::STRING: {
      const std::string_view text = value.get_string().value_unsafe();
      if (!text.empty() && text[0] == '-') return ErrorAt(parent, key, "must not be negative");
      if (!ParseDecimal(text, out)) {
        return ErrorAt(parent, key, "expected a decimal string or integer in [0, 2^64)");
      }
      return absl::OkStatus();
    }
    default:
      return ErrorAt(parent, key, "expected a decimal string or integer");
  }
}

// int64 (AnyValue.intValue): a decimal string or a JSON integer in [-2^63, 2^63).
absl::Status ReadInt64(element value, const Path& parent, std::string_view key, int64_t& out) {
  switch (value.type()) {
    case element_type::INT64:
      out = value.get_int64().value_unsafe();
      return absl::OkStatus();
    case element_type::UINT64:
      return ErrorAt(parent, key, "out of range for int64");
    case element_type::STRING: {
      const std::string_view text = value.get_string().value_unsafe();
      if (!ParseDecimal(text, out)) {
        return ErrorAt(parent, key, "expected a decimal string or integer in [-2^63, 2^63)");
      }
      return absl::OkStatus();
    }
    default:
      return ErrorAt(parent, key, "expected a decimal string or integer");
  }
}

// Enums: integers per the spec; enum names and decimal strings are accepted too. An unknown name
// reads as `unknown` (which the builder maps to UNSPECIFIED/UNSET).
template <size_t N>
absl::Status ReadEnum(element value, const Path& parent, std::string_view key,
                      const std::string_view (&names)[N], int64_t& out) {
  constexpr int64_t kUnknown = -1;
  switch (value.type()) {
    case element_type::INT64:
      out = value.get_int64().value_unsafe();
      return absl::OkStatus();
    case element_type::UINT64:
      out = kUnknown;
      return absl::OkStatus();
    case element_type::STRING: {
      const std::string_view text = value.get_string().value_unsafe();
      if (ParseDecimal(text, out)) return absl::OkStatus();
      out = kUnknown;
      for (size_t i = 0; i < N; ++i) {
        if (names[i] == text) out = static_cast<int64_t>(i);
      }
      return absl::OkStatus();
    }
    default:
      return ErrorAt(parent, key, "expected an integer or an enum name");
  }
}

constexpr std::string_view kSpanKindNames[] = {"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL",
                                               "SPAN_KIND_SERVER",      "SPAN_KIND_CLIENT",
                                               "SPAN_KIND_PRODUCER",    "SPAN_KIND_CONSUMER"};
constexpr std::string_view kStatusCodeNames[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                                 "STATUS_CODE_ERROR"};

// Which SpanBuilder callbacks an attribute list feeds.
enum class AttributeOwner : uint8_t { kResource, kSpan, kEvent };

// The decoded oneof of an AnyValue (the last field present wins, as in the binary encoding).
struct AnyValueRead {
  enum class Kind : uint8_t { kNone, kString, kInt, kOther } kind = Kind::kNone;
  std::string_view string_value;
  int64_t int_value = 0;
};

// Walks one parsed request and feeds the SpanBuilder. Owned by the decoding call.
class JsonRequestDecoder {
 public:
  JsonRequestDecoder(const DecodeLimits& limits, SpanBuilder& builder)
      : limits_(limits), builder_(builder) {}

  absl::Status DecodeRequest(element root) {
    const Path root_path{};
    object request;
    if (root.get(request) != simdjson::SUCCESS) {
      return absl::InvalidArgumentError("request: expected a JSON object");
    }
    for (key_value_pair field : request) {
      if (!IsField(field.key, "resourceSpans", "resource_spans")) continue;
      absl::Status status = ForEachObject(
          field.value, root_path, field.key,
          [this](object rs, const Path& path) { return DecodeResourceSpans(rs, path); });
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

 private:
  // Calls `fn(object, path)` for each element of the array `value` (null: no elements).
  template <typename Fn>
  absl::Status ForEachObject(element value, const Path& parent, std::string_view key, Fn&& fn) {
    if (value.is_null()) return absl::OkStatus();
    array elements;
    if (value.get(elements) != simdjson::SUCCESS) {
      return ErrorAt(parent, key, "expected an array");
    }
    const Path field_path{&parent, key};
    size_t index = 0;
    for (element item : elements) {
      const Path path{&field_path, {}, index++};
      object item_object;
      if (item.get(item_object) != simdjson::SUCCESS) {
        return ErrorAt(path, "expected an object");
      }
      absl::Status status = fn(item_object, path);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status DecodeResourceSpans(object resource_spans, const Path& path) {
    // The resource may follow its spans in the document: read it first. The last string
    // service.name wins, as in the binary encoding.
    std::string_view service_name;
    bool has_service_name = false;
    for (key_value_pair field : resource_spans) {
      if (field.key != "resource" || field.value.is_null()) continue;
      object resource;
      if (field.value.get(resource) != simdjson::SUCCESS) {
        return ErrorAt(path, field.key, "expected an object");
      }
      const Path resource_path{&path, field.key};
      uint64_t attribute_count = 0;
      for (key_value_pair resource_field : resource) {
        if (resource_field.key != "attributes") continue;
        absl::Status status = DecodeAttributes(resource_field.value, resource_path,
                                               resource_field.key, AttributeOwner::kResource,
                                               attribute_count, &service_name, &has_service_name);
        if (!status.ok()) return status;
      }
    }
    builder_.BeginResource();
    if (has_service_name) builder_.SetServiceName(service_name);
    for (key_value_pair field : resource_spans) {
      if (!IsField(field.key, "scopeSpans", "scope_spans")) continue;
      absl::Status status = ForEachObject(field.value, path, field.key,
                                          [this](object scope_spans, const Path& scope_path) {
                                            return DecodeScopeSpans(scope_spans, scope_path);
                                          });
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status DecodeScopeSpans(object scope_spans, const Path& path) {
    for (key_value_pair field : scope_spans) {
      if (field.key != "spans") continue;
      absl::Status status = ForEachObject(
          field.value, path, field.key,
          [this](object span, const Path& span_path) { return DecodeSpan(span, span_path); });
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status DecodeSpan(object span, const Path& path) {
    const uint64_t span_index = span_count_++;
    if (span_count_ > limits_.max_spans) {
      return ErrorAt(path, "request has more than " + std::to_string(limits_.max_spans) +
                               " spans (max_spans)");
    }
    builder_.BeginSpan();
    uint64_t attribute_count = 0;
    for (key_value_pair field : span) {
      const std::string_view key = field.key;
      const element value = field.value;
      if (value.is_null()) continue;
      absl::Status status;
      if (IsField(key, "traceId", "trace_id")) {
        std::string_view hex;
        if (value.get(hex) != simdjson::SUCCESS) return ErrorAt(path, key, "expected a hex string");
        builder_.SetTraceIdHex(hex);
      } else if (IsField(key, "spanId", "span_id")) {
        std::string_view hex;
        if (value.get(hex) != simdjson::SUCCESS) return ErrorAt(path, key, "expected a hex string");
        builder_.SetSpanIdHex(hex);
      } else if (IsField(key, "parentSpanId", "parent_span_id")) {
        std::string_view hex;
        if (value.get(hex) != simdjson::SUCCESS) return ErrorAt(path, key, "expected a hex string");
        builder_.SetParentSpanIdHex(hex);
      } else if (key == "name") {
        std::string_view name;
        if (value.get(name) != simdjson::SUCCESS) return ErrorAt(path, key, "expected a string");
        builder_.SetName(name);
      } else if (key == "kind") {
        int64_t kind = 0;
        status = ReadEnum(value, path, key, kSpanKindNames, kind);
        if (status.ok()) builder_.SetKind(kind);
      } else if (IsField(key, "startTimeUnixNano", "start_time_unix_nano")) {
        uint64_t time = 0;
        status = ReadUint64(value, path, key, time);
        if (status.ok()) builder_.SetStartTime(time);
      } else if (IsField(key, "endTimeUnixNano", "end_time_unix_nano")) {
        uint64_t time = 0;
        status = ReadUint64(value, path, key, time);
        if (status.ok()) builder_.SetEndTime(time);
      } else if (key == "attributes") {
        status = DecodeAttributes(value, path, key, AttributeOwner::kSpan, attribute_count);
      } else if (key == "events") {
        status = ForEachObject(value, path, key, [this](object event, const Path& event_path) {
          return DecodeEvent(event, event_path);
        });
      } else if (key == "status") {
        status = DecodeStatus(value, path, key);
      }
      if (!status.ok()) return status;
    }
    builder_.EndSpan(span_index);
    return absl::OkStatus();
  }

  absl::Status DecodeStatus(element value, const Path& parent, std::string_view key) {
    object status_object;
    if (value.get(status_object) != simdjson::SUCCESS) {
      return ErrorAt(parent, key, "expected an object");
    }
    const Path path{&parent, key};
    for (key_value_pair field : status_object) {
      if (field.value.is_null()) continue;
      if (field.key == "code") {
        int64_t code = 0;
        absl::Status status = ReadEnum(field.value, path, field.key, kStatusCodeNames, code);
        if (!status.ok()) return status;
        builder_.SetStatusCode(code);
      } else if (field.key == "message") {
        std::string_view message;
        if (field.value.get(message) != simdjson::SUCCESS) {
          return ErrorAt(path, field.key, "expected a string");
        }
        builder_.SetStatusMessage(message);
      }
    }
    return absl::OkStatus();
  }

  absl::Status DecodeEvent(object event, const Path& path) {
    // BeginEvent needs the name, which may follow the attributes: find it first.
    std::string_view name;
    for (key_value_pair field : event) {
      if (field.value.is_null()) continue;
      if (field.key == "name") {
        if (field.value.get(name) != simdjson::SUCCESS) {
          return ErrorAt(path, field.key, "expected a string");
        }
      } else if (IsField(field.key, "timeUnixNano", "time_unix_nano")) {
        uint64_t time = 0;
        absl::Status status = ReadUint64(field.value, path, field.key, time);
        if (!status.ok()) return status;
      }
    }
    builder_.BeginEvent(name);
    uint64_t attribute_count = 0;
    for (key_value_pair field : event) {
      if (field.key != "attributes") continue;
      absl::Status status =
          DecodeAttributes(field.value, path, field.key, AttributeOwner::kEvent, attribute_count);
      if (!status.ok()) return status;
    }
    builder_.EndEvent();
    return absl::OkStatus();
  }

  // A list of KeyValue. `attribute_count` is the owner's running total against max_attributes
  // (repeated "attributes" fields add up, as repeated proto fields do).
  // For the resource, the last string service.name goes to `service_name`.
  absl::Status DecodeAttributes(element value, const Path& parent, std::string_view key,
                                AttributeOwner owner, uint64_t& attribute_count,
                                std::string_view* service_name = nullptr,
                                bool* has_service_name = nullptr) {
    if (value.is_null()) return absl::OkStatus();
    array attributes;
    if (value.get(attributes) != simdjson::SUCCESS) {
      return ErrorAt(parent, key, "expected an array");
    }
    const Path list_path{&parent, key};
    attribute_count += attributes.size();
    if (attribute_count > limits_.max_attributes) {
      return ErrorAt(list_path, "more than " + std::to_string(limits_.max_attributes) +
                                    " attributes (max_attributes)");
    }
    size_t index = 0;
    for (element item : attributes) {
      const Path path{&list_path, {}, index++};
      std::string_view attribute_key;
      AnyValueRead read;
      absl::Status status = ReadKeyValue(item, path, /*nesting=*/0, attribute_key, read);
      if (!status.ok()) return status;
      if (read.kind == AnyValueRead::Kind::kString) {
        switch (owner) {
          case AttributeOwner::kResource:
            if (attribute_key == "service.name") {
              *service_name = read.string_value;
              *has_service_name = true;
            }
            break;
          case AttributeOwner::kSpan:
            builder_.OnStringAttribute(attribute_key, read.string_value);
            break;
          case AttributeOwner::kEvent:
            builder_.OnEventStringAttribute(attribute_key, read.string_value);
            break;
        }
      } else if (read.kind == AnyValueRead::Kind::kInt && owner == AttributeOwner::kSpan) {
        builder_.OnIntAttribute(attribute_key, read.int_value);
      }
    }
    return absl::OkStatus();
  }

  // A KeyValue object {key, value}, in either order. `nesting` counts the arrayValue/kvlistValue
  // containers around it.
  absl::Status ReadKeyValue(element item, const Path& path, uint32_t nesting,
                            std::string_view& key_out, AnyValueRead& read) {
    object key_value;
    if (item.get(key_value) != simdjson::SUCCESS) return ErrorAt(path, "expected an object");
    for (key_value_pair field : key_value) {
      if (field.value.is_null()) continue;
      if (field.key == "key") {
        if (field.value.get(key_out) != simdjson::SUCCESS) {
          return ErrorAt(path, field.key, "expected a string");
        }
      } else if (field.key == "value") {
        absl::Status status = ReadAnyValue(field.value, Path{&path, field.key}, nesting, read);
        if (!status.ok()) return status;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadAnyValue(element value, const Path& path, uint32_t nesting, AnyValueRead& read) {
    object any_value;
    if (value.get(any_value) != simdjson::SUCCESS) return ErrorAt(path, "expected an object");
    for (key_value_pair field : any_value) {
      const std::string_view key = field.key;
      const element_type type = field.value.type();
      if (type == element_type::NULL_VALUE) continue;
      if (IsField(key, "stringValue", "string_value")) {
        if (field.value.get(read.string_value) != simdjson::SUCCESS) {
          return ErrorAt(path, key, "expected a string");
        }
        read.kind = AnyValueRead::Kind::kString;
      } else if (IsField(key, "intValue", "int_value")) {
        absl::Status status = ReadInt64(field.value, path, key, read.int_value);
        if (!status.ok()) return status;
        read.kind = AnyValueRead::Kind::kInt;
      } else if (IsField(key, "boolValue", "bool_value")) {
        if (type != element_type::BOOL) return ErrorAt(path, key, "expected true or false");
        read.kind = AnyValueRead::Kind::kOther;
      } else if (IsField(key, "doubleValue", "double_value")) {
        // Numbers, or strings such as "NaN" and "Infinity" (proto3 JSON).
        if (type != element_type::DOUBLE && type != element_type::INT64 &&
            type != element_type::UINT64 && type != element_type::STRING) {
          return ErrorAt(path, key, "expected a number");
        }
        read.kind = AnyValueRead::Kind::kOther;
      } else if (IsField(key, "bytesValue", "bytes_value")) {
        if (type != element_type::STRING) return ErrorAt(path, key, "expected a base64 string");
        read.kind = AnyValueRead::Kind::kOther;
      } else if (IsField(key, "arrayValue", "array_value") ||
                 IsField(key, "kvlistValue", "kvlist_value")) {
        absl::Status status = CheckContainer(field.value, path, key, nesting + 1);
        if (!status.ok()) return status;
        read.kind = AnyValueRead::Kind::kOther;
      }
    }
    return absl::OkStatus();
  }

  // An ArrayValue or KeyValueList {values: [...]}: validated for shape and depth, not kept.
  absl::Status CheckContainer(element value, const Path& parent, std::string_view key,
                              uint32_t nesting) {
    if (nesting > MaxAnyValueDepth(limits_)) {
      return ErrorAt(parent, key,
                     "AnyValue nested deeper than " + std::to_string(MaxAnyValueDepth(limits_)) +
                         " arrays/kvlists (max_depth)");
    }
    const bool is_kvlist = IsField(key, "kvlistValue", "kvlist_value");
    object container;
    if (value.get(container) != simdjson::SUCCESS) {
      return ErrorAt(parent, key, "expected an object");
    }
    const Path path{&parent, key};
    for (key_value_pair field : container) {
      if (field.key != "values" || field.value.is_null()) continue;
      array values;
      if (field.value.get(values) != simdjson::SUCCESS) {
        return ErrorAt(path, field.key, "expected an array");
      }
      const Path values_path{&path, field.key};
      size_t index = 0;
      for (element item : values) {
        const Path item_path{&values_path, {}, index++};
        AnyValueRead ignored;
        std::string_view ignored_key;
        absl::Status status = is_kvlist
                                  ? ReadKeyValue(item, item_path, nesting, ignored_key, ignored)
                                  : ReadAnyValue(item, item_path, nesting, ignored);
        if (!status.ok()) return status;
      }
    }
    return absl::OkStatus();
  }

  const DecodeLimits& limits_;
  SpanBuilder& builder_;
  uint64_t span_count_ = 0;
};

size_t ParserDepth(const DecodeLimits& limits) {
  return kSkeletonDepth + kDepthPerAnyValue * MaxAnyValueDepth(limits) + kDepthSlack;
}

absl::Status ParseError(simdjson::error_code error, const DecodeLimits& limits) {
  if (error == simdjson::DEPTH_ERROR) {
    return absl::InvalidArgumentError(
        "JSON nesting deeper than " + std::to_string(ParserDepth(limits)) +
        " levels (allowed by max_depth " + std::to_string(MaxAnyValueDepth(limits)) + ")");
  }
  return absl::InvalidArgumentError(std::string("malformed JSON: ") +
                                    simdjson::error_message(error));
}

}  // namespace

absl::Status DecodeOtlpJson(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                            DecodeResult& result) {
  if (body.empty()) return absl::InvalidArgumentError("malformed JSON: empty body");
  // A parser per call costs an allocation of ~14 bytes per body byte, and glibc may hand that
  // memory back and fault it in again on every call (measured: 3x slower decodes). So each
  // thread keeps one parser for bodies up to kReusedParserMaxBytes; larger bodies, where the
  // parse dwarfs the allocation, get their own so that no thread holds on to their memory.
  thread_local simdjson::dom::parser reused_parser;
  simdjson::dom::parser one_off_parser;  // allocates nothing until used
  simdjson::dom::parser& parser =
      body.size() <= kReusedParserMaxBytes ? reused_parser : one_off_parser;
  const size_t depth = ParserDepth(limits);
  if (parser.max_depth() != depth || parser.capacity() < body.size()) {
    if (simdjson::error_code error =
            parser.allocate(std::max(body.size(), parser.capacity()), depth)) {
      return ParseError(error, limits);
    }
  }
  // simdjson reads up to SIMDJSON_PADDING bytes past the end, and `body` promises no such slack:
  // the parser copies it into its own padded buffer (reused with the parser).
  element root;
  if (simdjson::error_code error =
          parser.parse(body.data(), body.size(), /*realloc_if_needed=*/true).get(root)) {
    return ParseError(error, limits);
  }

  const size_t spans_before = out.spans.size();
  const size_t strings_before = out.strings.size();
  DecodeResult local;
  SpanBuilder builder(out, local);
  JsonRequestDecoder decoder(limits, builder);
  absl::Status status = decoder.DecodeRequest(root);
  if (!status.ok()) {
    out.spans.resize(spans_before);
    out.strings.resize(strings_before);
    return status;
  }
  result.accepted += local.accepted;
  for (size_t i = 0; i < kSpanRejectReasonCount; ++i) result.rejected[i] += local.rejected[i];
  if (result.first_error.empty()) result.first_error = std::move(local.first_error);
  return absl::OkStatus();
}

}  // namespace traceslo::ingest
