// The protobuf and the JSON decoder must turn the same request into the same spans and counts.
// Requests are built with the generated protobuf classes, serialised once as binary and once as
// OTLP/JSON by a small writer below (hex ids, 64-bit integers as strings or numbers, either field
// naming, unknown fields), and decoded by both.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"
#include "tests/unit/ingest/test_rng.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {
namespace {

namespace collector_pb = ::opentelemetry::proto::collector::trace::v1;
namespace trace_pb = ::opentelemetry::proto::trace::v1;
namespace common_pb = ::opentelemetry::proto::common::v1;

using EquivalenceRng = testutil::SplitMix64;

// ---------------------------------------------------------------------------------------------
// Random requests.

std::string RandomEquivalenceBytes(EquivalenceRng& rng, size_t size) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng.Below(256));
  return bytes;
}

// An id of `size` bytes, or (rarely) a broken one: wrong length, all zero or empty.
std::string RandomEquivalenceId(EquivalenceRng& rng, size_t size) {
  switch (rng.Below(40)) {
    case 0:
      return RandomEquivalenceBytes(rng, size - 1);
    case 1:
      return RandomEquivalenceBytes(rng, size + 1);
    case 2:
      return std::string(size, '\0');
    case 3:
      return "";
    default:
      return RandomEquivalenceBytes(rng, size);
  }
}

std::string RandomEquivalenceText(EquivalenceRng& rng) {
  static const char* const kTexts[] = {
      "GET /checkout",
      "",
      "SELECT * FROM \"orders\"",
      "back\\slash/and\ttab\nnewline",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80",
      "\x01\x1f control",
      "UNAVAILABLE",
      "503",
      "-7",
      "exception",
  };
  if (rng.Percent(5)) return std::string(200 + rng.Below(3000), 'x');
  return kTexts[rng.Below(std::size(kTexts))];
}

void FillEquivalenceAnyValue(EquivalenceRng& rng, common_pb::AnyValue& value, int depth) {
  switch (rng.Below(depth >= 3 ? 5 : 7)) {
    case 0:
      value.set_string_value(RandomEquivalenceText(rng));
      break;
    case 1: {
      static const int64_t kInts[] = {0,  200, 404, 500, 503,       999,       1000,      -1,
                                      14, 16,  17,  2,   INT64_MIN, INT64_MAX, 4294967496};
      value.set_int_value(rng.Percent(70) ? rng.Pick(kInts) : static_cast<int64_t>(rng.Next()));
      break;
    }
    case 2:
      value.set_bool_value(rng.Percent(50));
      break;
    case 3: {
      static const double kDoubles[] = {0.0,
                                        -1.5,
                                        503.0,
                                        1e300,
                                        2.5e-10,
                                        std::numeric_limits<double>::infinity(),
                                        std::numeric_limits<double>::quiet_NaN()};
      value.set_double_value(rng.Pick(kDoubles));
      break;
    }
    case 4:
      value.set_bytes_value(RandomEquivalenceBytes(rng, rng.Below(6)));
      break;
    case 5: {
      common_pb::ArrayValue* array = value.mutable_array_value();
      for (uint32_t i = rng.Below(3); i > 0; --i) {
        FillEquivalenceAnyValue(rng, *array->add_values(), depth + 1);
      }
      break;
    }
    default: {
      common_pb::KeyValueList* list = value.mutable_kvlist_value();
      for (uint32_t i = rng.Below(3); i > 0; --i) {
        common_pb::KeyValue* entry = list->add_values();
        entry->set_key("k" + std::to_string(i));
        FillEquivalenceAnyValue(rng, *entry->mutable_value(), depth + 1);
      }
      break;
    }
  }
}

void AddEquivalenceAttribute(EquivalenceRng& rng,
                             google::protobuf::RepeatedPtrField<common_pb::KeyValue>& attributes,
                             bool exception_keys) {
  static const char* const kKeys[] = {
      "http.response.status_code",
      "http.status_code",
      "rpc.grpc.status_code",
      "rpc.response.status_code",
      "rpc.status_code",
      "exception.type",
      "exception.message",
      "exception.stacktrace",
      "service.name",
      "db.system",
      "",
  };
  common_pb::KeyValue* attribute = attributes.Add();
  attribute->set_key(exception_keys && rng.Percent(60) ? kKeys[5 + rng.Below(3)] : rng.Pick(kKeys));
  if (rng.Percent(3)) return;  // no value at all
  FillEquivalenceAnyValue(rng, *attribute->mutable_value(), 0);
}

void FillEquivalenceSpan(EquivalenceRng& rng, trace_pb::Span& span) {
  span.set_trace_id(RandomEquivalenceId(rng, 16));
  span.set_span_id(RandomEquivalenceId(rng, 8));
  if (rng.Percent(60)) span.set_parent_span_id(RandomEquivalenceId(rng, 8));
  span.set_name(RandomEquivalenceText(rng));
  if (rng.Percent(90)) span.set_kind(static_cast<trace_pb::Span::SpanKind>(rng.Below(6)));
  uint64_t start = rng.Percent(5) ? UINT64_MAX - rng.Below(1000) : rng.Next() >> 2;
  uint64_t end = start + rng.Below(5'000'000);
  if (rng.Percent(8)) std::swap(start, end);
  if (rng.Percent(3)) start = 0;
  span.set_start_time_unix_nano(start);
  span.set_end_time_unix_nano(end);
  span.set_trace_state("rojo=00f067aa0ba902b7");
  for (uint32_t i = rng.Below(6); i > 0; --i) {
    AddEquivalenceAttribute(rng, *span.mutable_attributes(), /*exception_keys=*/false);
  }
  for (uint32_t i = rng.Percent(60) ? 0 : rng.Below(4); i > 0; --i) {
    trace_pb::Span::Event* event = span.add_events();
    static const char* const kEventNames[] = {"exception", "exception", "log", "", "Exception"};
    event->set_name(rng.Pick(kEventNames));
    event->set_time_unix_nano(rng.Next());
    for (uint32_t j = rng.Below(5); j > 0; --j) {
      AddEquivalenceAttribute(rng, *event->mutable_attributes(), /*exception_keys=*/true);
    }
  }
  if (rng.Percent(20)) {
    trace_pb::Span::Link* link = span.add_links();
    link->set_trace_id(RandomEquivalenceBytes(rng, 16));
    link->set_span_id(RandomEquivalenceBytes(rng, 8));
  }
  if (rng.Percent(70)) {
    trace_pb::Status* status = span.mutable_status();
    status->set_code(static_cast<trace_pb::Status::StatusCode>(rng.Below(3)));
    if (rng.Percent(50)) status->set_message(RandomEquivalenceText(rng));
  }
}

collector_pb::ExportTraceServiceRequest RandomEquivalenceRequest(uint64_t seed) {
  EquivalenceRng rng(seed);
  collector_pb::ExportTraceServiceRequest request;
  static const char* const kServices[] = {"checkout", "payments", "", "frontend-\xc3\xa9"};
  for (uint32_t r = 1 + rng.Below(4); r > 0; --r) {
    trace_pb::ResourceSpans* resource_spans = request.add_resource_spans();
    if (rng.Percent(85)) {
      auto* attributes = resource_spans->mutable_resource()->mutable_attributes();
      for (uint32_t i = rng.Below(3); i > 0; --i) {
        AddEquivalenceAttribute(rng, *attributes, /*exception_keys=*/false);
      }
      for (uint32_t i = rng.Below(3); i > 0; --i) {
        common_pb::KeyValue* service = attributes->Add();
        service->set_key("service.name");
        if (rng.Percent(90)) {
          service->mutable_value()->set_string_value(rng.Pick(kServices));
        } else {
          service->mutable_value()->set_int_value(7);
        }
      }
    }
    for (uint32_t s = rng.Below(4); s > 0; --s) {
      trace_pb::ScopeSpans* scope_spans = resource_spans->add_scope_spans();
      if (rng.Percent(50)) scope_spans->mutable_scope()->set_name("io.opentelemetry.lib");
      for (uint32_t n = rng.Below(8); n > 0; --n)
        FillEquivalenceSpan(rng, *scope_spans->add_spans());
    }
  }
  return request;
}

// ---------------------------------------------------------------------------------------------
// An OTLP/JSON writer, independent of the decoder under test. Its choices (naming, integer
// encoding, field order, unknown fields) are drawn from its own random sequence.

class EquivalenceJsonWriter {
 public:
  explicit EquivalenceJsonWriter(uint64_t seed) : rng_(seed) {}

  std::string Write(const collector_pb::ExportTraceServiceRequest& request) {
    out_.clear();
    snake_ = rng_.Percent(20);
    out_ += "{";
    MaybeUnknownField();
    Key("resourceSpans", "resource_spans");
    out_ += "[";
    for (int i = 0; i < request.resource_spans_size(); ++i) {
      if (i > 0) out_ += ",";
      WriteResourceSpans(request.resource_spans(i));
    }
    out_ += "]}";
    return out_;
  }

 private:
  void Key(std::string_view camel, std::string_view snake) {
    out_ += "\"";
    out_ += snake_ ? snake : camel;
    out_ += "\":";
  }
  void Comma() { out_ += ","; }

  void MaybeUnknownField() {
    if (!rng_.Percent(15)) return;
    static const char* const kUnknown[] = {
        R"("droppedAttributesCount":0,)",
        R"("x-vendor":{"nested":[1,"two",null,{"three":3.5e3}],"empty":{}},)",
        R"("schemaUrl":"https://opentelemetry.io/schemas/1.21.0",)",
        R"("future":null,)",
    };
    out_ += rng_.Pick(kUnknown);
  }

  void String(std::string_view text) {
    out_ += '"';
    for (unsigned char c : text) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
      } else if (c < 0x20 || (c == '/' && rng_.Percent(50)) || (c == 'e' && rng_.Percent(10))) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
        out_ += escaped;
      } else {
        out_ += static_cast<char>(c);
      }
    }
    out_ += '"';
  }

  void Hex(std::string_view bytes) {
    static const char kLower[] = "0123456789abcdef";
    static const char kUpper[] = "0123456789ABCDEF";
    const char* digits = rng_.Percent(20) ? kUpper : kLower;
    out_ += '"';
    for (unsigned char c : bytes) {
      out_ += digits[c >> 4];
      out_ += digits[c & 15];
    }
    out_ += '"';
  }

  void Base64(std::string_view bytes) {
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out_ += '"';
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
      uint32_t n = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8 |
                   static_cast<uint8_t>(bytes[i + 2]);
      for (int shift = 18; shift >= 0; shift -= 6) out_ += kAlphabet[(n >> shift) & 63];
    }
    if (bytes.size() - i == 1) {
      uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
      out_ += kAlphabet[(n >> 18) & 63];
      out_ += kAlphabet[(n >> 12) & 63];
      out_ += "==";
    } else if (bytes.size() - i == 2) {
      uint32_t n = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8;
      out_ += kAlphabet[(n >> 18) & 63];
      out_ += kAlphabet[(n >> 12) & 63];
      out_ += kAlphabet[(n >> 6) & 63];
      out_ += '=';
    }
    out_ += '"';
  }

  // 64-bit integers: decimal strings (the spec's form) or plain JSON numbers.
  template <typename Int>
  void Integer(Int value) {
    if (rng_.Percent(50)) {
      out_ += '"' + std::to_string(value) + '"';
    } else {
      out_ += std::to_string(value);
    }
  }

  void Double(double value) {
    if (std::isnan(value)) {
      out_ += "\"NaN\"";
    } else if (std::isinf(value)) {
      out_ += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    } else {
      char text[32];
      std::snprintf(text, sizeof text, "%.17g", value);
      out_ += text;
    }
  }

  void WriteAnyValue(const common_pb::AnyValue& value) {
    out_ += "{";
    MaybeUnknownField();
    switch (value.value_case()) {
      case common_pb::AnyValue::kStringValue:
        Key("stringValue", "string_value");
        String(value.string_value());
        break;
      case common_pb::AnyValue::kIntValue:
        Key("intValue", "int_value");
        Integer(value.int_value());
        break;
      case common_pb::AnyValue::kBoolValue:
        Key("boolValue", "bool_value");
        out_ += value.bool_value() ? "true" : "false";
        break;
      case common_pb::AnyValue::kDoubleValue:
        Key("doubleValue", "double_value");
        Double(value.double_value());
        break;
      case common_pb::AnyValue::kBytesValue:
        Key("bytesValue", "bytes_value");
        Base64(value.bytes_value());
        break;
      case common_pb::AnyValue::kArrayValue:
        Key("arrayValue", "array_value");
        out_ += "{\"values\":[";
        for (int i = 0; i < value.array_value().values_size(); ++i) {
          if (i > 0) Comma();
          WriteAnyValue(value.array_value().values(i));
        }
        out_ += "]}";
        break;
      case common_pb::AnyValue::kKvlistValue:
        Key("kvlistValue", "kvlist_value");
        out_ += "{\"values\":";
        WriteAttributes(value.kvlist_value().values());
        out_ += "}";
        break;
      case common_pb::AnyValue::VALUE_NOT_SET:
        out_ += "\"unset\":null";
        break;
    }
    out_ += "}";
  }

  void WriteAttributes(const google::protobuf::RepeatedPtrField<common_pb::KeyValue>& list) {
    out_ += "[";
    for (int i = 0; i < list.size(); ++i) {
      if (i > 0) Comma();
      const common_pb::KeyValue& attribute = list[i];
      out_ += "{";
      const bool value_first = rng_.Percent(20);
      if (value_first && attribute.has_value()) {
        out_ += "\"value\":";
        WriteAnyValue(attribute.value());
        Comma();
      }
      out_ += "\"key\":";
      String(attribute.key());
      if (!value_first && attribute.has_value()) {
        out_ += ",\"value\":";
        WriteAnyValue(attribute.value());
      }
      out_ += "}";
    }
    out_ += "]";
  }

  void WriteResource(const trace_pb::ResourceSpans& resource_spans) {
    Key("resource", "resource");
    out_ += "{";
    MaybeUnknownField();
    out_ += "\"attributes\":";
    WriteAttributes(resource_spans.resource().attributes());
    out_ += "}";
  }

  void WriteResourceSpans(const trace_pb::ResourceSpans& resource_spans) {
    out_ += "{";
    MaybeUnknownField();
    const bool resource_last = rng_.Percent(30);
    if (resource_spans.has_resource() && !resource_last) {
      WriteResource(resource_spans);
      Comma();
    }
    Key("scopeSpans", "scope_spans");
    out_ += "[";
    for (int i = 0; i < resource_spans.scope_spans_size(); ++i) {
      if (i > 0) Comma();
      const trace_pb::ScopeSpans& scope_spans = resource_spans.scope_spans(i);
      out_ += "{";
      MaybeUnknownField();
      if (scope_spans.has_scope()) {
        out_ += R"("scope":{"name":)";
        String(scope_spans.scope().name());
        out_ += R"(,"attributes":[]},)";
      }
      out_ += "\"spans\":[";
      for (int j = 0; j < scope_spans.spans_size(); ++j) {
        if (j > 0) Comma();
        WriteSpan(scope_spans.spans(j));
      }
      out_ += "]}";
    }
    out_ += "]";
    if (resource_spans.has_resource() && resource_last) {
      Comma();
      WriteResource(resource_spans);
    }
    out_ += "}";
  }

  void WriteEvent(const trace_pb::Span::Event& event) {
    out_ += "{";
    MaybeUnknownField();
    Key("timeUnixNano", "time_unix_nano");
    Integer(event.time_unix_nano());
    const bool name_last = rng_.Percent(30);
    if (!name_last) {
      out_ += ",\"name\":";
      String(event.name());
    }
    out_ += ",\"attributes\":";
    WriteAttributes(event.attributes());
    if (name_last) {
      out_ += ",\"name\":";
      String(event.name());
    }
    out_ += "}";
  }

  void WriteSpan(const trace_pb::Span& span) {
    out_ += "{";
    MaybeUnknownField();
    // Proto3 leaves empty and zero fields out; so does this writer, mostly.
    Key("traceId", "trace_id");
    Hex(span.trace_id());
    Comma();
    Key("spanId", "span_id");
    Hex(span.span_id());
    if (!span.parent_span_id().empty() || rng_.Percent(30)) {
      Comma();
      Key("parentSpanId", "parent_span_id");
      Hex(span.parent_span_id());
    }
    if (!span.trace_state().empty()) {
      Comma();
      Key("traceState", "trace_state");
      String(span.trace_state());
    }
    Comma();
    out_ += "\"name\":";
    String(span.name());
    if (span.kind() != 0 || rng_.Percent(30)) {
      out_ += ",\"kind\":" + std::to_string(span.kind());
    }
    Comma();
    Key("startTimeUnixNano", "start_time_unix_nano");
    Integer(span.start_time_unix_nano());
    Comma();
    Key("endTimeUnixNano", "end_time_unix_nano");
    Integer(span.end_time_unix_nano());
    if (span.attributes_size() > 0) {
      out_ += ",\"attributes\":";
      WriteAttributes(span.attributes());
    }
    Comma();
    Key("droppedAttributesCount", "dropped_attributes_count");
    out_ += "0";
    if (span.events_size() > 0) {
      out_ += ",\"events\":[";
      for (int i = 0; i < span.events_size(); ++i) {
        if (i > 0) Comma();
        WriteEvent(span.events(i));
      }
      out_ += "]";
    }
    if (span.links_size() > 0) {
      out_ += ",\"links\":[";
      for (int i = 0; i < span.links_size(); ++i) {
        if (i > 0) Comma();
        out_ += "{";
        Key("traceId", "trace_id");
        Hex(span.links(i).trace_id());
        Comma();
        Key("spanId", "span_id");
        Hex(span.links(i).span_id());
        out_ += "}";
      }
      out_ += "]";
    }
    if (span.has_status()) {
      out_ += ",\"status\":{";
      MaybeUnknownField();
      out_ += "\"code\":" + std::to_string(span.status().code());
      if (!span.status().message().empty()) {
        out_ += ",\"message\":";
        String(span.status().message());
      }
      out_ += "}";
    }
    out_ += "}";
  }

  EquivalenceRng rng_;
  bool snake_ = false;
  std::string out_;
};

// ---------------------------------------------------------------------------------------------
// Comparison.

struct EquivalenceDecoded {
  absl::Status status;
  SpanBatch batch;
  DecodeResult result;
};

void ExpectEquivalentSpan(const SpanBatch& proto_batch, const Span& proto,
                          const SpanBatch& json_batch, const Span& json) {
  EXPECT_EQ(proto.trace_id, json.trace_id);
  EXPECT_EQ(proto.span_id, json.span_id);
  EXPECT_EQ(proto.parent_span_id, json.parent_span_id);
  EXPECT_EQ(proto.start_unix_nano, json.start_unix_nano);
  EXPECT_EQ(proto.end_unix_nano, json.end_unix_nano);
  EXPECT_EQ(proto_batch.Str(proto.service), json_batch.Str(json.service));
  EXPECT_EQ(proto_batch.Str(proto.name), json_batch.Str(json.name));
  EXPECT_EQ(proto_batch.Str(proto.status_message), json_batch.Str(json.status_message));
  EXPECT_EQ(proto_batch.Str(proto.exception_type), json_batch.Str(json.exception_type));
  EXPECT_EQ(proto_batch.Str(proto.exception_message), json_batch.Str(json.exception_message));
  EXPECT_EQ(proto_batch.Str(proto.exception_stacktrace), json_batch.Str(json.exception_stacktrace));
  EXPECT_EQ(proto.http_status, json.http_status);
  EXPECT_EQ(proto.rpc_status, json.rpc_status);
  EXPECT_EQ(proto.kind, json.kind);
  EXPECT_EQ(proto.status, json.status);
}

void ExpectEquivalentDecodes(const EquivalenceDecoded& proto, const EquivalenceDecoded& json) {
  ASSERT_EQ(proto.status.code(), json.status.code())
      << "proto: " << proto.status << "\njson: " << json.status;
  EXPECT_EQ(proto.result.accepted, json.result.accepted);
  EXPECT_EQ(proto.result.rejected, json.result.rejected);
  EXPECT_EQ(proto.result.first_error, json.result.first_error);
  ASSERT_EQ(proto.batch.spans.size(), json.batch.spans.size());
  for (size_t i = 0; i < proto.batch.spans.size(); ++i) {
    SCOPED_TRACE("span " + std::to_string(i));
    ExpectEquivalentSpan(proto.batch, proto.batch.spans[i], json.batch, json.batch.spans[i]);
  }
}

// Decodes both encodings of `request` (`json` written from it) into fresh batches.
void DecodeEquivalencePair(const collector_pb::ExportTraceServiceRequest& request,
                           const std::string& json, const DecodeLimits& limits,
                           EquivalenceDecoded& proto_out, EquivalenceDecoded& json_out) {
  const std::string binary = request.SerializeAsString();
  proto_out.status = DecodeOtlpProto(binary, limits, proto_out.batch, proto_out.result);
  json_out.status = DecodeOtlpJson(json, limits, json_out.batch, json_out.result);
}

size_t CountEquivalenceSpans(const collector_pb::ExportTraceServiceRequest& request) {
  size_t spans = 0;
  for (const auto& resource_spans : request.resource_spans()) {
    for (const auto& scope_spans : resource_spans.scope_spans()) spans += scope_spans.spans_size();
  }
  return spans;
}

TEST(DecoderEquivalenceTest, RandomRequestsDecodeIdentically) {
  size_t total_spans = 0;
  size_t total_accepted = 0;
  size_t total_rejected = 0;
  for (uint64_t seed = 1; seed <= 400; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const collector_pb::ExportTraceServiceRequest request = RandomEquivalenceRequest(seed);
    const std::string json = EquivalenceJsonWriter(seed * 7919).Write(request);
    EquivalenceDecoded proto;
    EquivalenceDecoded decoded_json;
    DecodeEquivalencePair(request, json, DecodeLimits{}, proto, decoded_json);
    ASSERT_TRUE(proto.status.ok()) << proto.status;
    ASSERT_TRUE(decoded_json.status.ok()) << decoded_json.status << "\n" << json;
    ExpectEquivalentDecodes(proto, decoded_json);
    if (HasFailure()) {
      ADD_FAILURE() << json;
      return;
    }
    total_spans += CountEquivalenceSpans(request);
    total_accepted += proto.result.accepted;
    total_rejected += proto.result.TotalRejected();
  }
  // The generator really produced both kinds of span, in numbers.
  EXPECT_EQ(total_accepted + total_rejected, total_spans);
  EXPECT_GT(total_accepted, 2000u);
  EXPECT_GT(total_rejected, 300u);
}

TEST(DecoderEquivalenceTest, LimitsFailBothOrNeither) {
  size_t failures = 0;
  for (uint64_t seed = 1000; seed < 1300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    EquivalenceRng rng(seed);
    const collector_pb::ExportTraceServiceRequest request = RandomEquivalenceRequest(seed);
    const std::string json = EquivalenceJsonWriter(seed).Write(request);
    DecodeLimits limits;
    // Each limit is tight in a third of the runs.
    if (rng.Percent(33)) limits.max_spans = rng.Below(30);
    if (rng.Percent(33)) limits.max_attributes = rng.Below(6);
    if (rng.Percent(33)) limits.max_depth = rng.Below(3);
    EquivalenceDecoded proto;
    EquivalenceDecoded decoded_json;
    DecodeEquivalencePair(request, json, limits, proto, decoded_json);
    ExpectEquivalentDecodes(proto, decoded_json);
    if (!proto.status.ok()) {
      ++failures;
      EXPECT_EQ(proto.status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_TRUE(decoded_json.batch.spans.empty());
      EXPECT_TRUE(decoded_json.batch.strings.empty());
    }
    if (HasFailure()) {
      ADD_FAILURE() << json;
      return;
    }
  }
  EXPECT_GT(failures, 50u);
  EXPECT_LT(failures, 250u);
}

TEST(DecoderEquivalenceTest, HandWrittenEdgeCases) {
  collector_pb::ExportTraceServiceRequest request;
  // Two service.name attributes, the last one empty: the last string wins, so unknown_service.
  trace_pb::ResourceSpans* first = request.add_resource_spans();
  auto* attributes = first->mutable_resource()->mutable_attributes();
  common_pb::KeyValue* a = attributes->Add();
  a->set_key("service.name");
  a->mutable_value()->set_string_value("a");
  common_pb::KeyValue* b = attributes->Add();
  b->set_key("service.name");
  b->mutable_value()->set_string_value("");
  trace_pb::Span* span = first->add_scope_spans()->add_spans();
  span->set_trace_id(std::string(15, '\x01') + "\x02");
  span->set_span_id("\x00\x00\x00\x00\x00\x00\x00\x01", 8);
  span->set_start_time_unix_nano(UINT64_MAX);
  span->set_end_time_unix_nano(UINT64_MAX);
  // A resource with no resource at all, and a span whose exception comes from attributes only.
  trace_pb::Span* second = request.add_resource_spans()->add_scope_spans()->add_spans();
  *second = *span;
  common_pb::KeyValue* exception = second->add_attributes();
  exception->set_key("exception.type");
  exception->mutable_value()->set_string_value("Timeout");
  trace_pb::Span::Event* event = second->add_events();
  event->set_name("exception");

  for (uint64_t writer_seed = 0; writer_seed < 20; ++writer_seed) {
    const std::string json = EquivalenceJsonWriter(writer_seed).Write(request);
    EquivalenceDecoded proto;
    EquivalenceDecoded decoded_json;
    DecodeEquivalencePair(request, json, DecodeLimits{}, proto, decoded_json);
    ASSERT_TRUE(proto.status.ok()) << proto.status;
    ExpectEquivalentDecodes(proto, decoded_json);
    ASSERT_EQ(decoded_json.batch.spans.size(), 2u);
    EXPECT_EQ(decoded_json.batch.Str(decoded_json.batch.spans[0].service), "unknown_service");
    EXPECT_EQ(decoded_json.batch.Str(decoded_json.batch.spans[1].exception_type), "");
  }
}

}  // namespace
}  // namespace traceslo::ingest
