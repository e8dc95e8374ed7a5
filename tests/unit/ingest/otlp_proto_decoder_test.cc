// DecodeOtlpProto against requests built by libprotobuf (an independent encoder) and against
// hand-made wire bytes for what libprotobuf never writes (odd field order, unknown fields,
// malformed framing).
#include <gmock/gmock.h>
#include <google/protobuf/unknown_field_set.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {
namespace {

namespace otlp = ::opentelemetry::proto;
using ::google::protobuf::Message;
using ::google::protobuf::RepeatedPtrField;
using otlp::collector::trace::v1::ExportTraceServiceRequest;
using ::testing::HasSubstr;
using PbAnyValue = otlp::common::v1::AnyValue;
using PbKeyValue = otlp::common::v1::KeyValue;
using PbResourceSpans = otlp::trace::v1::ResourceSpans;
using PbSpan = otlp::trace::v1::Span;
using PbStatus = otlp::trace::v1::Status;
using PbAttributes = RepeatedPtrField<PbKeyValue>;

// ---- Building requests ------------------------------------------------------------------------

std::string ProtoTraceId(uint64_t seed) {
  std::string id(16, '\0');
  for (int i = 0; i < 16; ++i) id[i] = static_cast<char>(seed + i + 1);
  return id;
}

// The 8 bytes of `id`, big-endian (how Span::span_id reads them back).
std::string ProtoSpanId(uint64_t id) {
  std::string bytes(8, '\0');
  for (int i = 7; i >= 0; --i, id >>= 8) bytes[i] = static_cast<char>(id & 0xff);
  return bytes;
}

TraceId ExpectedTraceId(uint64_t seed) {
  TraceId id{};
  for (int i = 0; i < 16; ++i) id[i] = static_cast<uint8_t>(seed + i + 1);
  return id;
}

void AddStringAttribute(PbAttributes* attributes, const std::string& key,
                        const std::string& value) {
  PbKeyValue* kv = attributes->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

void AddIntAttribute(PbAttributes* attributes, const std::string& key, int64_t value) {
  PbKeyValue* kv = attributes->Add();
  kv->set_key(key);
  kv->mutable_value()->set_int_value(value);
}

PbResourceSpans* AddProtoResource(ExportTraceServiceRequest& request,
                                  std::optional<std::string> service_name) {
  PbResourceSpans* resource_spans = request.add_resource_spans();
  if (service_name) {
    AddStringAttribute(resource_spans->mutable_resource()->mutable_attributes(), "host.name", "h1");
    AddStringAttribute(resource_spans->mutable_resource()->mutable_attributes(), "service.name",
                       *service_name);
    AddIntAttribute(resource_spans->mutable_resource()->mutable_attributes(), "pid", 42);
  }
  return resource_spans;
}

// A valid span: trace id from `id`, span id `id`, times 1000*id .. 1000*id + 500.
PbSpan* AddProtoSpan(PbResourceSpans* resource_spans, uint64_t id) {
  if (resource_spans->scope_spans_size() == 0) {
    resource_spans->add_scope_spans()->mutable_scope()->set_name("io.example.lib");
  }
  PbSpan* span = resource_spans->mutable_scope_spans(0)->add_spans();
  span->set_trace_id(ProtoTraceId(id));
  span->set_span_id(ProtoSpanId(id));
  span->set_name("op-" + std::to_string(id));
  span->set_kind(PbSpan::SPAN_KIND_SERVER);
  span->set_start_time_unix_nano(1000 * id);
  span->set_end_time_unix_nano(1000 * id + 500);
  return span;
}

// ---- Hand-made wire bytes ---------------------------------------------------------------------

std::string WireVarint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

std::string WireTag(uint32_t field, uint32_t wire_type) {
  return WireVarint(uint64_t{field} << 3 | wire_type);
}

std::string WireLen(uint32_t field, std::string_view payload) {
  return WireTag(field, 2) + WireVarint(payload.size()) + std::string(payload);
}

std::string WireVarintField(uint32_t field, uint64_t value) {
  return WireTag(field, 0) + WireVarint(value);
}

std::string WireFixed64(uint32_t field, uint64_t value) {
  std::string out = WireTag(field, 1);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
  return out;
}

std::string WireFixed32(uint32_t field, uint32_t value) {
  std::string out = WireTag(field, 5);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(value >> (8 * i)));
  return out;
}

// Unknown fields of the four skippable wire types, numbered clear of every OTLP field.
std::string WireUnknownFields() {
  return WireVarintField(90, 300) + WireFixed64(91, 7) + WireLen(92, "opaque\x01\x02") +
         WireFixed32(93, 9) + WireVarintField(536870911, 1);  // the largest field number
}

std::string WireStringKeyValue(std::string_view key, std::string_view value) {
  return WireLen(1, key) + WireLen(2, WireLen(1, value));
}

// ---- Decoding ---------------------------------------------------------------------------------

struct ProtoDecodeOutcome {
  absl::Status status;
  SpanBatch batch;
  DecodeResult result;

  std::string_view Str(StrRef ref) const { return batch.Str(ref); }
};

ProtoDecodeOutcome DecodeProtoBody(std::string_view body, const DecodeLimits& limits = {}) {
  ProtoDecodeOutcome outcome;
  outcome.status = DecodeOtlpProto(body, limits, outcome.batch, outcome.result);
  return outcome;
}

// The same request through libprotobuf's parser and SpanBuilder: the oracle for
// field-by-field comparisons.
void ReferenceDecode(const ExportTraceServiceRequest& request, SpanBatch& out,
                     DecodeResult& result) {
  SpanBuilder builder(out, result);
  uint64_t index = 0;
  for (const PbResourceSpans& resource_spans : request.resource_spans()) {
    builder.BeginResource();
    const std::string* service_name = nullptr;
    for (const PbKeyValue& kv : resource_spans.resource().attributes()) {
      if (kv.key() == "service.name" && kv.value().has_string_value()) {
        service_name = &kv.value().string_value();
      }
    }
    if (service_name != nullptr) builder.SetServiceName(*service_name);
    for (const auto& scope_spans : resource_spans.scope_spans()) {
      for (const PbSpan& span : scope_spans.spans()) {
        builder.BeginSpan();
        builder.SetTraceId(span.trace_id());
        builder.SetSpanId(span.span_id());
        builder.SetParentSpanId(span.parent_span_id());
        builder.SetName(span.name());
        builder.SetKind(span.kind());
        builder.SetTimes(span.start_time_unix_nano(), span.end_time_unix_nano());
        builder.SetStatus(span.status().code(), span.status().message());
        for (const PbKeyValue& kv : span.attributes()) {
          if (kv.value().has_string_value()) {
            builder.OnStringAttribute(kv.key(), kv.value().string_value());
          } else if (kv.value().has_int_value()) {
            builder.OnIntAttribute(kv.key(), kv.value().int_value());
          }
        }
        for (const auto& event : span.events()) {
          builder.BeginEvent(event.name());
          for (const PbKeyValue& kv : event.attributes()) {
            if (kv.value().has_string_value()) {
              builder.OnEventStringAttribute(kv.key(), kv.value().string_value());
            }
          }
          builder.EndEvent();
        }
        builder.EndSpan(index++);
      }
    }
  }
}

// Compares two batches span by span, strings by content (offsets may differ).
void ExpectSameSpans(const SpanBatch& actual, const SpanBatch& expected) {
  ASSERT_EQ(actual.spans.size(), expected.spans.size());
  for (size_t i = 0; i < actual.spans.size(); ++i) {
    SCOPED_TRACE("span " + std::to_string(i));
    const Span& a = actual.spans[i];
    const Span& e = expected.spans[i];
    EXPECT_EQ(a.trace_id, e.trace_id);
    EXPECT_EQ(a.span_id, e.span_id);
    EXPECT_EQ(a.parent_span_id, e.parent_span_id);
    EXPECT_EQ(a.start_unix_nano, e.start_unix_nano);
    EXPECT_EQ(a.end_unix_nano, e.end_unix_nano);
    EXPECT_EQ(actual.Str(a.service), expected.Str(e.service));
    EXPECT_EQ(actual.Str(a.name), expected.Str(e.name));
    EXPECT_EQ(actual.Str(a.status_message), expected.Str(e.status_message));
    EXPECT_EQ(actual.Str(a.exception_type), expected.Str(e.exception_type));
    EXPECT_EQ(actual.Str(a.exception_message), expected.Str(e.exception_message));
    EXPECT_EQ(actual.Str(a.exception_stacktrace), expected.Str(e.exception_stacktrace));
    EXPECT_EQ(a.http_status, e.http_status);
    EXPECT_EQ(a.rpc_status, e.rpc_status);
    EXPECT_EQ(a.kind, e.kind);
    EXPECT_EQ(a.status, e.status);
  }
}

// Decodes `body` both ways and expects the same spans and counts.
void ExpectMatchesReference(std::string_view body) {
  ExportTraceServiceRequest request;
  ASSERT_TRUE(request.ParseFromArray(body.data(), static_cast<int>(body.size())));
  SpanBatch expected;
  DecodeResult expected_result;
  ReferenceDecode(request, expected, expected_result);
  ProtoDecodeOutcome outcome = DecodeProtoBody(body);
  ASSERT_TRUE(outcome.status.ok()) << outcome.status;
  ExpectSameSpans(outcome.batch, expected);
  EXPECT_EQ(outcome.result.accepted, expected_result.accepted);
  EXPECT_EQ(outcome.result.rejected, expected_result.rejected);
  EXPECT_EQ(outcome.result.first_error, expected_result.first_error);
}

// A batch and result that already hold one span, to check that failures leave them as they were.
struct PrefilledBatch {
  PrefilledBatch() {
    batch.strings = "earlier-service";
    Span span;
    span.service = StrRef{0, 15};
    span.span_id = 99;
    batch.spans.push_back(span);
    result.accepted = 1;
    result.rejected[0] = 2;
    result.first_error = "span 3: earlier";
  }
  void ExpectUnchanged() const {
    EXPECT_EQ(batch.strings, "earlier-service");
    ASSERT_EQ(batch.spans.size(), 1u);
    EXPECT_EQ(batch.spans[0].span_id, 99u);
    EXPECT_EQ(result.accepted, 1u);
    EXPECT_EQ(result.TotalRejected(), 2u);
    EXPECT_EQ(result.first_error, "span 3: earlier");
  }
  SpanBatch batch;
  DecodeResult result;
};

// A request that uses every field the decoder reads, and a few it skips.
ExportTraceServiceRequest RichRequest() {
  ExportTraceServiceRequest request;
  PbResourceSpans* first = AddProtoResource(request, "checkout");
  first->set_schema_url("https://opentelemetry.io/schemas/1.24.0");
  PbSpan* span = AddProtoSpan(first, 1);
  span->set_parent_span_id(ProtoSpanId(77));
  span->set_trace_state("k=v");
  span->set_flags(0x101);
  AddIntAttribute(span->mutable_attributes(), "http.response.status_code", 503);
  AddStringAttribute(span->mutable_attributes(), "http.route", "/cart");
  PbKeyValue* nested = span->mutable_attributes()->Add();
  nested->set_key("nested");
  PbAnyValue* element = nested->mutable_value()->mutable_array_value()->add_values();
  element->set_double_value(1.5);
  PbKeyValue* inner = nested->mutable_value()
                          ->mutable_array_value()
                          ->add_values()
                          ->mutable_kvlist_value()
                          ->add_values();
  inner->set_key("inner");
  inner->mutable_value()->set_bool_value(true);
  span->mutable_attributes()->Add()->set_key("bytes");
  span->mutable_attributes(span->attributes_size() - 1)->mutable_value()->set_bytes_value("\x00");
  auto* event = span->add_events();
  event->set_name("exception");
  event->set_time_unix_nano(1234);
  AddStringAttribute(event->mutable_attributes(), "exception.type", "IOError");
  AddStringAttribute(event->mutable_attributes(), "exception.message", "disk full");
  auto* link = span->add_links();
  link->set_trace_id(ProtoTraceId(5));
  link->set_span_id(ProtoSpanId(5));
  span->mutable_status()->set_code(PbStatus::STATUS_CODE_ERROR);
  span->mutable_status()->set_message("upstream failed");
  span->set_dropped_attributes_count(3);
  PbSpan* client = AddProtoSpan(first, 2);
  client->set_kind(PbSpan::SPAN_KIND_CLIENT);
  AddStringAttribute(client->mutable_attributes(), "rpc.response.status_code", "UNAVAILABLE");
  PbResourceSpans* second = AddProtoResource(request, std::nullopt);
  PbSpan* bad = AddProtoSpan(second, 3);
  bad->set_end_time_unix_nano(1);
  AddProtoSpan(second, 4)->set_kind(PbSpan::SPAN_KIND_CONSUMER);
  return request;
}

// ---- Field-by-field ---------------------------------------------------------------------------

TEST(OtlpProtoDecoderTest, DecodesEveryField) {
  ExportTraceServiceRequest request = RichRequest();
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 3u);
  EXPECT_EQ(out.result.accepted, 3u);
  EXPECT_EQ(out.result.TotalRejected(), 1u);
  EXPECT_EQ(out.result.rejected[static_cast<size_t>(SpanRejectReason::kEndBeforeStart)], 1u);
  EXPECT_EQ(out.result.first_error, "span 2: end_time_unix_nano is before start_time_unix_nano");

  const Span& server = out.batch.spans[0];
  EXPECT_EQ(server.trace_id, ExpectedTraceId(1));
  EXPECT_EQ(server.span_id, 1u);
  EXPECT_EQ(server.parent_span_id, 77u);
  EXPECT_EQ(out.Str(server.service), "checkout");
  EXPECT_EQ(out.Str(server.name), "op-1");
  EXPECT_EQ(server.kind, SpanKind::kServer);
  EXPECT_EQ(server.start_unix_nano, 1000u);
  EXPECT_EQ(server.end_unix_nano, 1500u);
  EXPECT_EQ(server.status, StatusCode::kError);
  EXPECT_EQ(out.Str(server.status_message), "upstream failed");
  EXPECT_EQ(server.http_status, 503);
  EXPECT_EQ(server.rpc_status, -1);
  EXPECT_EQ(out.Str(server.exception_type), "IOError");
  EXPECT_EQ(out.Str(server.exception_message), "disk full");
  EXPECT_EQ(out.Str(server.exception_stacktrace), "");

  const Span& client = out.batch.spans[1];
  EXPECT_EQ(client.span_id, 2u);
  EXPECT_EQ(client.parent_span_id, 0u);
  EXPECT_EQ(client.kind, SpanKind::kClient);
  EXPECT_EQ(client.status, StatusCode::kUnset);
  EXPECT_EQ(client.rpc_status, 14);
  EXPECT_EQ(client.http_status, 0);
  EXPECT_EQ(out.Str(client.service), "checkout");

  const Span& consumer = out.batch.spans[2];
  EXPECT_EQ(consumer.span_id, 4u);
  EXPECT_EQ(consumer.kind, SpanKind::kConsumer);
  EXPECT_EQ(out.Str(consumer.service), "unknown_service");

  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, SpanIdIsBigEndian) {
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, "s"), 1);
  span->set_span_id(std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  span->set_parent_span_id(std::string("\xf1\x02\x03\x04\x05\x06\x07\x09", 8));
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.batch.spans[0].span_id, 0x0102030405060708u);
  EXPECT_EQ(out.batch.spans[0].parent_span_id, 0xf102030405060709u);
}

TEST(OtlpProtoDecoderTest, EmptyBodyIsAnEmptyRequest) {
  ProtoDecodeOutcome out = DecodeProtoBody("");
  EXPECT_TRUE(out.status.ok());
  EXPECT_TRUE(out.batch.spans.empty());
  EXPECT_EQ(out.result.accepted, 0u);
}

TEST(OtlpProtoDecoderTest, ServiceNamePerResource) {
  ExportTraceServiceRequest request;
  const char* names[] = {"cart", "payments", "search"};
  uint64_t id = 1;
  for (const char* name : names) {
    PbResourceSpans* resource_spans = AddProtoResource(request, name);
    AddProtoSpan(resource_spans, id++);
    resource_spans->add_scope_spans();  // an empty scope
    AddProtoSpan(resource_spans, id++);
  }
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(out.batch.spans[i].span_id, i + 1);
    EXPECT_EQ(out.Str(out.batch.spans[i].service), names[i / 2]) << i;
  }
  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, MissingServiceNameIsUnknownService) {
  ExportTraceServiceRequest request;
  AddProtoSpan(request.add_resource_spans(), 1);  // no resource field at all
  PbResourceSpans* other_attributes = request.add_resource_spans();
  AddStringAttribute(other_attributes->mutable_resource()->mutable_attributes(), "host.name", "x");
  AddProtoSpan(other_attributes, 2);
  PbResourceSpans* int_name = request.add_resource_spans();
  AddIntAttribute(int_name->mutable_resource()->mutable_attributes(), "service.name", 5);
  AddProtoSpan(int_name, 3);
  AddProtoSpan(AddProtoResource(request, ""), 4);
  AddProtoSpan(AddProtoResource(request, "named"), 5);
  AddProtoSpan(request.add_resource_spans(), 6);  // not inherited from the previous resource
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 6u);
  const char* expected[] = {"unknown_service", "unknown_service", "unknown_service",
                            "unknown_service", "named",           "unknown_service"};
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(out.Str(out.batch.spans[i].service), expected[i]) << i;
  }
  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, ResourceAfterScopeSpansOnTheWire) {
  ExportTraceServiceRequest spans_holder;
  PbResourceSpans* holder = spans_holder.add_resource_spans();
  AddProtoSpan(holder, 1);
  AddProtoSpan(holder, 2);
  otlp::resource::v1::Resource resource;
  AddStringAttribute(resource.mutable_attributes(), "service.name", "late-resource");
  const std::string late = WireLen(2, holder->scope_spans(0).SerializeAsString()) +
                           WireLen(1, resource.SerializeAsString());
  // A second, ordinary resource: its name must not leak into the first.
  ExportTraceServiceRequest normal;
  AddProtoSpan(AddProtoResource(normal, "normal"), 3);
  const std::string body = WireLen(1, late) + normal.SerializeAsString();

  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 3u);
  EXPECT_EQ(out.Str(out.batch.spans[0].service), "late-resource");
  EXPECT_EQ(out.Str(out.batch.spans[1].service), "late-resource");
  EXPECT_EQ(out.Str(out.batch.spans[2].service), "normal");
  ExpectMatchesReference(body);
}

TEST(OtlpProtoDecoderTest, RepeatedResourceFieldsMerge) {
  otlp::resource::v1::Resource named_a, other, named_b;
  AddStringAttribute(named_a.mutable_attributes(), "service.name", "a");
  AddStringAttribute(other.mutable_attributes(), "host.name", "h");
  AddStringAttribute(named_b.mutable_attributes(), "service.name", "b");
  ExportTraceServiceRequest holder;
  AddProtoSpan(holder.add_resource_spans(), 1);
  const std::string scope = WireLen(2, holder.resource_spans(0).scope_spans(0).SerializeAsString());

  // Attributes accumulate across occurrences: service.name from the first still applies.
  std::string body = WireLen(
      1, WireLen(1, named_a.SerializeAsString()) + scope + WireLen(1, other.SerializeAsString()));
  // The last service.name wins.
  body += WireLen(
      1, WireLen(1, named_a.SerializeAsString()) + scope + WireLen(1, named_b.SerializeAsString()));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 2u);
  EXPECT_EQ(out.Str(out.batch.spans[0].service), "a");
  EXPECT_EQ(out.Str(out.batch.spans[1].service), "b");
  ExpectMatchesReference(body);
}

TEST(OtlpProtoDecoderTest, SpanFieldsInAnyOrderLastScalarWins) {
  const std::string span =
      WireFixed64(8, 9000) + WireLen(5, "first-name") + WireVarintField(6, 3) +
      WireLen(2, "bad") +                   // an invalid span id, then a valid one
      WireLen(15, WireVarintField(3, 2)) +  // status code in one occurrence...
      WireLen(2, ProtoSpanId(0xabc)) + WireLen(1, ProtoTraceId(9)) + WireFixed64(7, 8000) +
      WireLen(15, WireLen(2, "status message")) +  // ...and the message in another: merged
      WireLen(5, "second-name") + WireVarintField(6, 2) + WireFixed64(8, 8500) +
      WireLen(4, ProtoSpanId(5)) + WireLen(4, "");  // an empty parent last: a root span
  const std::string body = WireLen(1, WireLen(2, WireLen(2, span)));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 1u) << out.result.first_error;
  const Span& s = out.batch.spans[0];
  EXPECT_EQ(s.trace_id, ExpectedTraceId(9));
  EXPECT_EQ(s.span_id, 0xabcu);
  EXPECT_EQ(s.parent_span_id, 0u);
  EXPECT_EQ(out.Str(s.name), "second-name");
  EXPECT_EQ(s.kind, SpanKind::kServer);
  EXPECT_EQ(s.start_unix_nano, 8000u);
  EXPECT_EQ(s.end_unix_nano, 8500u);
  EXPECT_EQ(s.status, StatusCode::kError);
  EXPECT_EQ(out.Str(s.status_message), "status message");
  ExpectMatchesReference(body);
}

TEST(OtlpProtoDecoderTest, KindValues) {
  ExportTraceServiceRequest request;
  PbResourceSpans* resource_spans = AddProtoResource(request, "s");
  const int kinds[] = {0, 1, 2, 3, 4, 5, 6, 1000, -1};
  for (size_t i = 0; i < std::size(kinds); ++i) {
    AddProtoSpan(resource_spans, i + 1)->set_kind(static_cast<PbSpan::SpanKind>(kinds[i]));
  }
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), std::size(kinds));
  const SpanKind expected[] = {
      SpanKind::kUnspecified, SpanKind::kInternal,    SpanKind::kServer,
      SpanKind::kClient,      SpanKind::kProducer,    SpanKind::kConsumer,
      SpanKind::kUnspecified, SpanKind::kUnspecified, SpanKind::kUnspecified};
  for (size_t i = 0; i < std::size(kinds); ++i) {
    EXPECT_EQ(out.batch.spans[i].kind, expected[i]) << kinds[i];
  }
  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, StatusCodes) {
  ExportTraceServiceRequest request;
  PbResourceSpans* resource_spans = AddProtoResource(request, "s");
  AddProtoSpan(resource_spans, 1);  // no status at all
  for (int code : {0, 1, 2, 3}) {
    AddProtoSpan(resource_spans, code + 2)
        ->mutable_status()
        ->set_code(static_cast<PbStatus::StatusCode>(code));
  }
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 5u);
  const StatusCode expected[] = {StatusCode::kUnset, StatusCode::kUnset, StatusCode::kOk,
                                 StatusCode::kError, StatusCode::kUnset};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(out.batch.spans[i].status, expected[i]) << i;
  ExpectMatchesReference(request.SerializeAsString());
}

struct StatusAttributeCase {
  const char* name;
  std::string key;
  std::optional<std::string> string_value;
  int64_t int_value;
  int32_t http_status;
  int32_t rpc_status;
};

class OtlpProtoStatusAttributeTest : public ::testing::TestWithParam<StatusAttributeCase> {};

TEST_P(OtlpProtoStatusAttributeTest, MapsToSpan) {
  const StatusAttributeCase& c = GetParam();
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, "s"), 1);
  AddStringAttribute(span->mutable_attributes(), "http.method", "GET");
  if (c.string_value) {
    AddStringAttribute(span->mutable_attributes(), c.key, *c.string_value);
  } else {
    AddIntAttribute(span->mutable_attributes(), c.key, c.int_value);
  }
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.batch.spans[0].http_status, c.http_status);
  EXPECT_EQ(out.batch.spans[0].rpc_status, c.rpc_status);
}

INSTANTIATE_TEST_SUITE_P(
    Keys, OtlpProtoStatusAttributeTest,
    ::testing::Values(
        StatusAttributeCase{
            "HttpResponseStatusCode", "http.response.status_code", {}, 503, 503, -1},
        StatusAttributeCase{"HttpStatusCodeInt", "http.status_code", {}, 404, 404, -1},
        StatusAttributeCase{"HttpStatusCodeString", "http.status_code", "503", 0, 503, -1},
        StatusAttributeCase{"HttpStatusCodeNotANumber", "http.status_code", "5x3", 0, 0, -1},
        StatusAttributeCase{
            "HttpStatusCodeOutOfRange", "http.response.status_code", {}, 1000, 0, -1},
        StatusAttributeCase{"RpcGrpcStatusCode", "rpc.grpc.status_code", {}, 14, 0, 14},
        StatusAttributeCase{"RpcGrpcStatusCodeOk", "rpc.grpc.status_code", {}, 0, 0, 0},
        StatusAttributeCase{"RpcResponseStatusCodeName", "rpc.response.status_code", "UNAVAILABLE",
                            0, 0, 14},
        StatusAttributeCase{"RpcResponseStatusCodeNumber", "rpc.response.status_code", "4", 0, 0,
                            4},
        StatusAttributeCase{"RpcStatusCode", "rpc.status_code", {}, 2, 0, 2},
        StatusAttributeCase{"RpcStatusCodeOutOfRange", "rpc.status_code", {}, 17, 0, -1},
        StatusAttributeCase{"UnrelatedKey", "http.request.status_code", {}, 503, 0, -1}),
    [](const ::testing::TestParamInfo<StatusAttributeCase>& info) {
      return std::string(info.param.name);
    });

TEST(OtlpProtoDecoderTest, OnlyStringAndIntAttributeValuesCount) {
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, "s"), 1);
  PbKeyValue* as_bool = span->add_attributes();
  as_bool->set_key("http.status_code");
  as_bool->mutable_value()->set_bool_value(true);
  PbKeyValue* as_double = span->add_attributes();
  as_double->set_key("rpc.grpc.status_code");
  as_double->mutable_value()->set_double_value(14.0);
  PbKeyValue* as_bytes = span->add_attributes();
  as_bytes->set_key("http.response.status_code");
  as_bytes->mutable_value()->set_bytes_value("503");
  PbKeyValue* as_array = span->add_attributes();
  as_array->set_key("rpc.status_code");
  as_array->mutable_value()->mutable_array_value()->add_values()->set_int_value(3);
  PbKeyValue* empty = span->add_attributes();
  empty->set_key("rpc.response.status_code");
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.batch.spans[0].http_status, 0);
  EXPECT_EQ(out.batch.spans[0].rpc_status, -1);
}

TEST(OtlpProtoDecoderTest, AnyValueOneofLastWinsAndKeyMayFollowValue) {
  auto span_with_attribute = [](const std::string& key_value) {
    return WireLen(1, ProtoTraceId(1)) + WireLen(2, ProtoSpanId(1)) + WireLen(9, key_value);
  };
  const std::string int_then_string =
      WireLen(2, WireVarintField(3, 503) + WireLen(1, "404")) + WireLen(1, "http.status_code");
  const std::string string_then_int =
      WireLen(1, "http.status_code") + WireLen(2, WireLen(1, "404") + WireVarintField(3, 503));
  // A later, empty AnyValue occurrence does not clear the earlier one (messages merge).
  const std::string merged =
      WireLen(1, "rpc.grpc.status_code") + WireLen(2, WireVarintField(3, 7)) + WireLen(2, "");
  const std::string body =
      WireLen(1, WireLen(2, WireLen(2, span_with_attribute(int_then_string)) +
                                WireLen(2, span_with_attribute(string_then_int)) +
                                WireLen(2, span_with_attribute(merged))));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 3u);
  EXPECT_EQ(out.batch.spans[0].http_status, 404);
  EXPECT_EQ(out.batch.spans[1].http_status, 503);
  EXPECT_EQ(out.batch.spans[2].rpc_status, 7);
  ExpectMatchesReference(body);
}

TEST(OtlpProtoDecoderTest, FirstExceptionEventWins) {
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, "s"), 1);
  AddStringAttribute(span->mutable_attributes(), "exception.type", "FromAttribute");
  AddStringAttribute(span->mutable_attributes(), "exception.message", "from attribute");
  auto* log = span->add_events();
  log->set_name("log");
  AddStringAttribute(log->mutable_attributes(), "exception.type", "NotAnException");
  auto* first = span->add_events();
  first->set_name("exception");
  AddStringAttribute(first->mutable_attributes(), "exception.type", "IOError");
  AddStringAttribute(first->mutable_attributes(), "exception.stacktrace", "at main()");
  AddIntAttribute(first->mutable_attributes(), "exception.message", 5);  // not a string
  auto* second = span->add_events();
  second->set_name("exception");
  AddStringAttribute(second->mutable_attributes(), "exception.type", "Second");
  AddStringAttribute(second->mutable_attributes(), "exception.message", "second");
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 1u);
  const Span& s = out.batch.spans[0];
  EXPECT_EQ(out.Str(s.exception_type), "IOError");
  EXPECT_EQ(out.Str(s.exception_message), "");
  EXPECT_EQ(out.Str(s.exception_stacktrace), "at main()");
  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, ExceptionAttributesUsedOnlyWithoutEvent) {
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, "s"), 1);
  AddStringAttribute(span->mutable_attributes(), "exception.type", "ValueError");
  AddStringAttribute(span->mutable_attributes(), "exception.message", "bad value");
  AddStringAttribute(span->mutable_attributes(), "exception.stacktrace", "trace");
  span->add_events()->set_name("retry");
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.Str(out.batch.spans[0].exception_type), "ValueError");
  EXPECT_EQ(out.Str(out.batch.spans[0].exception_message), "bad value");
  EXPECT_EQ(out.Str(out.batch.spans[0].exception_stacktrace), "trace");
}

TEST(OtlpProtoDecoderTest, EventNameMayFollowItsAttributes) {
  const std::string event = WireLen(3, WireStringKeyValue("exception.type", "Late")) +
                            WireFixed64(1, 77) + WireLen(2, "log") + WireLen(2, "exception");
  // Span attributes after the event: the event still wins.
  const std::string span = WireLen(1, ProtoTraceId(1)) + WireLen(2, ProtoSpanId(1)) +
                           WireLen(11, event) +
                           WireLen(9, WireStringKeyValue("exception.type", "Attribute"));
  const std::string body = WireLen(1, WireLen(2, WireLen(2, span)));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.Str(out.batch.spans[0].exception_type), "Late");
  ExpectMatchesReference(body);
}

TEST(OtlpProtoDecoderTest, StringsAreTruncated) {
  ExportTraceServiceRequest request;
  PbSpan* span = AddProtoSpan(AddProtoResource(request, std::string(400, 'v')), 1);
  span->set_name(std::string(300, 'n'));
  span->mutable_status()->set_message(std::string(2000, 'm'));
  auto* event = span->add_events();
  event->set_name("exception");
  AddStringAttribute(event->mutable_attributes(), "exception.type", std::string(1500, 't'));
  AddStringAttribute(event->mutable_attributes(), "exception.message", std::string(1500, 'x'));
  AddStringAttribute(event->mutable_attributes(), "exception.stacktrace", std::string(5000, 's'));
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_EQ(out.batch.spans.size(), 1u);
  const Span& s = out.batch.spans[0];
  EXPECT_EQ(out.Str(s.service), std::string(kMaxNameBytes, 'v'));
  EXPECT_EQ(out.Str(s.name), std::string(kMaxNameBytes, 'n'));
  EXPECT_EQ(out.Str(s.status_message), std::string(kMaxMessageBytes, 'm'));
  EXPECT_EQ(out.Str(s.exception_type), std::string(kMaxMessageBytes, 't'));
  EXPECT_EQ(out.Str(s.exception_message), std::string(kMaxMessageBytes, 'x'));
  EXPECT_EQ(out.Str(s.exception_stacktrace), std::string(kMaxStacktraceBytes, 's'));
}

// ---- Span rejections --------------------------------------------------------------------------

TEST(OtlpProtoDecoderTest, RejectedSpansAreCountedValidOnesKept) {
  ExportTraceServiceRequest request;
  PbResourceSpans* first = AddProtoResource(request, "a");
  AddProtoSpan(first, 1);                                         // 0: valid
  AddProtoSpan(first, 2)->set_trace_id(std::string(15, '\x01'));  // 1
  AddProtoSpan(first, 3)->set_trace_id(std::string(16, '\0'));    // 2
  AddProtoSpan(first, 4)->clear_trace_id();                       // 3
  AddProtoSpan(first, 5)->set_span_id(std::string(7, '\x01'));    // 4
  PbResourceSpans* second = AddProtoResource(request, "b");
  AddProtoSpan(second, 6)->set_span_id(std::string(8, '\0'));           // 5
  AddProtoSpan(second, 7)->set_parent_span_id(std::string(4, '\x01'));  // 6
  AddProtoSpan(second, 8)->set_end_time_unix_nano(7999);                // 7
  AddProtoSpan(second, 9)->set_trace_id(std::string(17, '\x01'));       // 8
  AddProtoSpan(second, 10);                                             // 9: valid
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 2u);
  EXPECT_EQ(out.batch.spans[0].span_id, 1u);
  EXPECT_EQ(out.batch.spans[1].span_id, 10u);
  EXPECT_EQ(out.Str(out.batch.spans[1].service), "b");
  EXPECT_EQ(out.result.accepted, 2u);
  EXPECT_EQ(out.result.rejected[static_cast<size_t>(SpanRejectReason::kInvalidTraceId)], 4u);
  EXPECT_EQ(out.result.rejected[static_cast<size_t>(SpanRejectReason::kInvalidSpanId)], 2u);
  EXPECT_EQ(out.result.rejected[static_cast<size_t>(SpanRejectReason::kInvalidParentSpanId)], 1u);
  EXPECT_EQ(out.result.rejected[static_cast<size_t>(SpanRejectReason::kEndBeforeStart)], 1u);
  EXPECT_EQ(out.result.TotalRejected(), 8u);
  EXPECT_EQ(out.result.first_error, "span 1: trace_id must be 16 bytes and not all zero");
  ExpectMatchesReference(request.SerializeAsString());
}

TEST(OtlpProtoDecoderTest, FirstErrorNamesTheRequestWideSpanIndex) {
  ExportTraceServiceRequest request;
  AddProtoSpan(AddProtoResource(request, "a"), 1);
  AddProtoSpan(AddProtoResource(request, "a"), 2);
  PbResourceSpans* third = AddProtoResource(request, "b");
  AddProtoSpan(third, 3);
  AddProtoSpan(third, 4)->set_parent_span_id("x");
  AddProtoSpan(third, 5)->set_span_id("");
  ProtoDecodeOutcome out = DecodeProtoBody(request.SerializeAsString());
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.result.accepted, 3u);
  EXPECT_EQ(out.result.TotalRejected(), 2u);
  EXPECT_EQ(out.result.first_error, "span 3: parent_span_id must be empty or 8 bytes");
}

// ---- Unknown fields and wire types ------------------------------------------------------------

void AddUnknownFields(Message& message) {
  auto* unknown = message.GetReflection()->MutableUnknownFields(&message);
  unknown->AddVarint(90, 300);
  unknown->AddFixed64(91, 7);
  unknown->AddLengthDelimited(92, "opaque\x01\x02");
  unknown->AddFixed32(93, 9);
  unknown->AddVarint(536870911, 1);
}

TEST(OtlpProtoDecoderTest, UnknownFieldsAtEveryLevelAreSkipped) {
  ExportTraceServiceRequest request = RichRequest();
  const std::string plain = request.SerializeAsString();
  AddUnknownFields(request);
  for (PbResourceSpans& resource_spans : *request.mutable_resource_spans()) {
    AddUnknownFields(resource_spans);
    AddUnknownFields(*resource_spans.mutable_resource());
    for (auto& scope_spans : *resource_spans.mutable_scope_spans()) {
      AddUnknownFields(scope_spans);
      AddUnknownFields(*scope_spans.mutable_scope());
      for (PbSpan& span : *scope_spans.mutable_spans()) {
        AddUnknownFields(span);
        AddUnknownFields(*span.mutable_status());
        for (PbKeyValue& kv : *span.mutable_attributes()) {
          AddUnknownFields(kv);
          AddUnknownFields(*kv.mutable_value());
        }
        for (auto& event : *span.mutable_events()) {
          AddUnknownFields(event);
          for (PbKeyValue& kv : *event.mutable_attributes()) AddUnknownFields(kv);
        }
      }
    }
  }
  const std::string noisy = request.SerializeAsString();
  ASSERT_GT(noisy.size(), plain.size() + 200);
  ProtoDecodeOutcome expected = DecodeProtoBody(plain);
  ProtoDecodeOutcome out = DecodeProtoBody(noisy);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ExpectSameSpans(out.batch, expected.batch);
  EXPECT_EQ(out.result.accepted, expected.result.accepted);
  EXPECT_EQ(out.result.rejected, expected.result.rejected);
  ExpectMatchesReference(noisy);
}

TEST(OtlpProtoDecoderTest, HandMadeUnknownFieldsAreSkipped) {
  const std::string span =
      WireUnknownFields() + WireLen(1, ProtoTraceId(1)) + WireUnknownFields() +
      WireLen(2, ProtoSpanId(1)) +
      WireLen(9, WireUnknownFields() + WireLen(1, "http.status_code") +
                     WireLen(2, WireUnknownFields() + WireVarintField(3, 500))) +
      WireLen(15, WireUnknownFields() + WireVarintField(3, 2));
  const std::string body =
      WireUnknownFields() +
      WireLen(1, WireUnknownFields() + WireLen(2, WireUnknownFields() + WireLen(2, span)) +
                     WireLen(1, WireUnknownFields() +
                                    WireLen(1, WireStringKeyValue("service.name", "svc"))));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.batch.spans[0].http_status, 500);
  EXPECT_EQ(out.batch.spans[0].status, StatusCode::kError);
  EXPECT_EQ(out.Str(out.batch.spans[0].service), "svc");
  ExpectMatchesReference(body);
}

// Decision (as libprotobuf): a known field number with another wire type is an unknown field.
TEST(OtlpProtoDecoderTest, KnownFieldWithWrongWireTypeIsSkipped) {
  const std::string span = WireLen(1, ProtoTraceId(1)) + WireLen(2, ProtoSpanId(1)) +
                           WireFixed64(7, 100) + WireFixed64(8, 200) +
                           WireVarintField(7, 5000) +  // start as varint: skipped
                           WireFixed32(8, 1) +         // end as fixed32: skipped
                           WireFixed64(5, 1) +         // name as fixed64: skipped
                           WireLen(6, "x");            // kind as bytes: skipped
  const std::string body =
      WireVarintField(1, 3) + WireLen(1, WireFixed32(2, 1) + WireLen(2, WireLen(2, span)));
  ProtoDecodeOutcome out = DecodeProtoBody(body);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.batch.spans.size(), 1u);
  EXPECT_EQ(out.batch.spans[0].start_unix_nano, 100u);
  EXPECT_EQ(out.batch.spans[0].end_unix_nano, 200u);
  EXPECT_EQ(out.batch.spans[0].name.size, 0u);
  EXPECT_EQ(out.batch.spans[0].kind, SpanKind::kUnspecified);
  ExpectMatchesReference(body);
}

// ---- Malformed bodies -------------------------------------------------------------------------

struct MalformedCase {
  const char* name;
  std::string body;
  std::string message;
};

std::vector<MalformedCase> MalformedCases() {
  const std::string valid_span = WireLen(1, ProtoTraceId(1)) + WireLen(2, ProtoSpanId(1));
  std::string overlong_varint = WireTag(6, 0) + std::string(10, '\xff') + "\x01";
  return {
      {"LengthPastEnd",
       "\x0a\x05"
       "abc",
       "malformed protobuf: length of field 1 exceeds message at offset 0"},
      {"TruncatedTag", std::string("\x80", 1), "malformed protobuf: truncated tag at offset 0"},
      {"TagLongerThan10Bytes", std::string(11, '\x80'),
       "malformed protobuf: tag longer than 10 bytes at offset 0"},
      {"TagBeyond32Bits", WireVarint(uint64_t{1} << 35 | 2) + std::string("\x00", 1),
       "malformed protobuf: invalid field number 4294967296 at offset 0"},
      {"FieldZeroVarint", std::string("\x00\x01", 2),
       "malformed protobuf: invalid field number 0 at offset 0"},
      {"FieldZeroLength", std::string("\x02\x00", 2),
       "malformed protobuf: invalid field number 0 at offset 0"},
      {"StartGroup", WireTag(4, 3) + WireTag(4, 4),
       "malformed protobuf: field 4 has group wire type 3 (groups are not supported) at offset 0"},
      {"EndGroup", WireVarintField(2, 1) + WireTag(4, 4),
       "malformed protobuf: field 4 has group wire type 4 (groups are not supported) at offset 2"},
      {"WireType6", WireTag(3, 6),
       "malformed protobuf: field 3 has invalid wire type 6 at offset 0"},
      {"WireType7", WireTag(3, 7),
       "malformed protobuf: field 3 has invalid wire type 7 at offset 0"},
      {"TruncatedVarint", WireTag(5, 0) + "\x80",
       "malformed protobuf: truncated varint field 5 at offset 0"},
      {"VarintLongerThan10Bytes", overlong_varint,
       "malformed protobuf: varint field 6 longer than 10 bytes at offset 0"},
      {"TruncatedFixed64", WireTag(7, 1) + "1234567",
       "malformed protobuf: fixed64 field 7 exceeds message at offset 0"},
      {"TruncatedFixed32", WireTag(7, 5) + "123",
       "malformed protobuf: fixed32 field 7 exceeds message at offset 0"},
      {"TruncatedLength", WireTag(1, 2) + "\xff",
       "malformed protobuf: truncated length of field 1 at offset 0"},
      {"LengthLongerThan10Bytes", WireTag(1, 2) + std::string(10, '\xff') + "\x01",
       "malformed protobuf: length of field 1 longer than 10 bytes at offset 0"},
      {"HugeLength", WireTag(1, 2) + WireVarint(~uint64_t{0}) + "abc",
       "malformed protobuf: length of field 1 exceeds message at offset 0"},
      // The nested length fits in the body but not in its parent (3 bytes long).
      {"NestedLengthPastParent",
       WireLen(1, WireTag(2, 2) + WireVarint(20) + "x") + std::string(40, '\0'),
       "malformed protobuf: length of field 2 exceeds message at offset 2"},
      {"NestedFixed64PastParent",
       WireLen(1, WireLen(2, WireLen(2, WireTag(7, 1) + "1234"))) + std::string(20, '\0'),
       "malformed protobuf: fixed64 field 7 exceeds message at offset 6"},
      {"MalformedAttributeValue",
       WireLen(1, WireLen(2, WireLen(2, valid_span + WireLen(9, WireLen(1, "k") +
                                                                    WireLen(2, WireTag(1, 7)))))),
       "malformed protobuf: field 1 has invalid wire type 7 at offset "},
      {"MalformedNestedArray",
       WireLen(1, WireLen(1, WireLen(1, WireLen(1, "k") +
                                            WireLen(2, WireLen(5, WireLen(1, WireTag(9, 3))))))),
       "malformed protobuf: field 9 has group wire type 3"},
      {"MalformedEventAttribute",
       WireLen(1, WireLen(2, WireLen(2, valid_span + WireLen(11, WireLen(2, "exception") +
                                                                     WireLen(3,
                                                                             "\x0a\x09"
                                                                             "short"))))),
       "malformed protobuf: length of field 1 exceeds message at offset "},
      {"MalformedStatus",
       WireLen(1, WireLen(2, WireLen(2, valid_span + WireLen(15, WireTag(3, 0))))),
       "malformed protobuf: truncated varint field 3 at offset "},
      {"MalformedResourceAfterSpans",
       WireLen(1, WireLen(2, WireLen(2, valid_span)) + WireLen(1, WireTag(1, 6))),
       "malformed protobuf: field 1 has invalid wire type 6 at offset "},
      {"TrailingGarbageAfterValidRequest", WireLen(1, WireLen(2, WireLen(2, valid_span))) + "\x0a",
       "malformed protobuf: truncated length of field 1 at offset "},
  };
}

class OtlpProtoMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(OtlpProtoMalformedTest, FailsAndRestoresBatch) {
  const MalformedCase& c = GetParam();
  PrefilledBatch prefilled;
  absl::Status status = DecodeOtlpProto(c.body, DecodeLimits{}, prefilled.batch, prefilled.result);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  prefilled.ExpectUnchanged();
}

INSTANTIATE_TEST_SUITE_P(Bodies, OtlpProtoMalformedTest, ::testing::ValuesIn(MalformedCases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(OtlpProtoDecoderTest, EveryPrefixFailsCleanlyOrSucceeds) {
  ExportTraceServiceRequest request = RichRequest();
  AddUnknownFields(*request.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(0));
  const std::string body = request.SerializeAsString();
  ProtoDecodeOutcome full = DecodeProtoBody(body);
  ASSERT_TRUE(full.status.ok());
  size_t succeeded = 0;
  for (size_t size = 0; size < body.size(); ++size) {
    SCOPED_TRACE("prefix of " + std::to_string(size) + " bytes");
    const std::string prefix = body.substr(0, size);  // a copy, so ASan sees reads past it
    PrefilledBatch prefilled;
    absl::Status status =
        DecodeOtlpProto(prefix, DecodeLimits{}, prefilled.batch, prefilled.result);
    ExportTraceServiceRequest parsed;
    const bool libprotobuf_ok = parsed.ParseFromString(prefix);
    EXPECT_EQ(status.ok(), libprotobuf_ok) << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(status.message()), HasSubstr("malformed protobuf: "));
      prefilled.ExpectUnchanged();
      continue;
    }
    ++succeeded;
    SpanBatch expected;
    DecodeResult expected_result;
    ReferenceDecode(parsed, expected, expected_result);
    SpanBatch actual = prefilled.batch;
    actual.spans.erase(actual.spans.begin());
    ExpectSameSpans(actual, expected);
  }
  EXPECT_GE(succeeded, 2u);  // the empty prefix and the first resource_spans
}

// ---- Limits -----------------------------------------------------------------------------------

TEST(OtlpProtoDecoderTest, MaxSpans) {
  ExportTraceServiceRequest request;
  AddProtoSpan(AddProtoResource(request, "a"), 1);
  PbResourceSpans* second = AddProtoResource(request, "b");
  for (uint64_t id = 2; id <= 5; ++id) AddProtoSpan(second, id);
  second->mutable_scope_spans(0)->mutable_spans(3)->set_trace_id("");  // rejected spans count too
  const std::string body = request.SerializeAsString();

  DecodeLimits limits;
  limits.max_spans = 5;
  ProtoDecodeOutcome at_limit = DecodeProtoBody(body, limits);
  ASSERT_TRUE(at_limit.status.ok()) << at_limit.status;
  EXPECT_EQ(at_limit.result.accepted, 4u);

  limits.max_spans = 4;
  PrefilledBatch prefilled;
  absl::Status status = DecodeOtlpProto(body, limits, prefilled.batch, prefilled.result);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "request has more than 4 spans (limit)");
  prefilled.ExpectUnchanged();
}

// An attribute whose value nests `depth` arrays (or kvlists) inside each other.
void AddNestedAttribute(PbAttributes* attributes, int depth, bool kvlist) {
  PbKeyValue* kv = attributes->Add();
  kv->set_key("nested");
  PbAnyValue* value = kv->mutable_value();
  for (int i = 0; i < depth; ++i) {
    if (kvlist) {
      PbKeyValue* entry = value->mutable_kvlist_value()->add_values();
      entry->set_key("level" + std::to_string(i));
      value = entry->mutable_value();
    } else {
      value = value->mutable_array_value()->add_values();
    }
  }
  value->set_string_value("leaf");
}

TEST(OtlpProtoDecoderTest, MaxDepth) {
  DecodeLimits limits;
  limits.max_depth = 4;
  for (bool kvlist : {false, true}) {
    for (int where = 0; where < 3; ++where) {  // span, resource and event attributes
      SCOPED_TRACE(std::string(kvlist ? "kvlist" : "array") + " at " + std::to_string(where));
      for (int depth : {4, 5}) {
        ExportTraceServiceRequest request;
        PbResourceSpans* resource_spans = AddProtoResource(request, "s");
        PbSpan* span = AddProtoSpan(resource_spans, 1);
        PbAttributes* attributes = where == 0 ? span->mutable_attributes()
                                   : where == 1
                                       ? resource_spans->mutable_resource()->mutable_attributes()
                                       : span->add_events()->mutable_attributes();
        AddNestedAttribute(attributes, depth, kvlist);
        PrefilledBatch prefilled;
        absl::Status status =
            DecodeOtlpProto(request.SerializeAsString(), limits, prefilled.batch, prefilled.result);
        if (depth <= 4) {
          EXPECT_TRUE(status.ok()) << status;
          EXPECT_EQ(prefilled.batch.spans.size(), 2u);
        } else {
          EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
          EXPECT_THAT(std::string(status.message()),
                      HasSubstr("is nested deeper than 4 arrays/kvlists (limit)"));
          prefilled.ExpectUnchanged();
        }
      }
    }
  }
}

TEST(OtlpProtoDecoderTest, DeepNestingNeverExhaustsTheStack) {
  // 5000 nested arrays by hand (libprotobuf would refuse to build or parse this).
  std::string value = WireLen(1, "leaf");
  for (int i = 0; i < 5000; ++i) value = WireLen(5, WireLen(1, value));
  const std::string span = WireLen(1, ProtoTraceId(1)) + WireLen(2, ProtoSpanId(1)) +
                           WireLen(9, WireLen(1, "deep") + WireLen(2, value));
  const std::string body = WireLen(1, WireLen(2, WireLen(2, span)));
  DecodeLimits limits;
  limits.max_depth = UINT32_MAX;
  ProtoDecodeOutcome out = DecodeProtoBody(body, limits);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("nested deeper than 100"));
  EXPECT_TRUE(out.batch.spans.empty());
  EXPECT_TRUE(out.batch.strings.empty());
}

TEST(OtlpProtoDecoderTest, MaxAttributes) {
  DecodeLimits limits;
  limits.max_attributes = 3;
  struct Case {
    int where;  // 0: span, 1: resource, 2: event
    const char* message;
  };
  const Case cases[] = {{0, "span 0 has more than 3 attributes (limit)"},
                        {1, "resource has more than 3 attributes (limit)"},
                        {2, "event of span 0 has more than 3 attributes (limit)"}};
  for (const Case& c : cases) {
    for (int count : {3, 4}) {
      SCOPED_TRACE(std::to_string(c.where) + "/" + std::to_string(count));
      ExportTraceServiceRequest request;
      PbResourceSpans* resource_spans = request.add_resource_spans();
      PbSpan* span = AddProtoSpan(resource_spans, 1);
      PbAttributes* attributes = c.where == 0 ? span->mutable_attributes()
                                 : c.where == 1
                                     ? resource_spans->mutable_resource()->mutable_attributes()
                                     : span->add_events()->mutable_attributes();
      for (int i = 0; i < count; ++i) AddIntAttribute(attributes, "k" + std::to_string(i), i);
      PrefilledBatch prefilled;
      absl::Status status =
          DecodeOtlpProto(request.SerializeAsString(), limits, prefilled.batch, prefilled.result);
      if (count <= 3) {
        EXPECT_TRUE(status.ok()) << status;
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(status.message(), c.message);
        prefilled.ExpectUnchanged();
      }
    }
  }
}

// ---- Appending and randomised comparison ------------------------------------------------------

TEST(OtlpProtoDecoderTest, AppendsToAnExistingBatch) {
  ExportTraceServiceRequest request;
  AddProtoSpan(AddProtoResource(request, "svc"), 1);
  PrefilledBatch prefilled;
  ASSERT_TRUE(DecodeOtlpProto(request.SerializeAsString(), DecodeLimits{}, prefilled.batch,
                              prefilled.result)
                  .ok());
  ASSERT_EQ(prefilled.batch.spans.size(), 2u);
  EXPECT_EQ(prefilled.batch.Str(prefilled.batch.spans[0].service), "earlier-service");
  EXPECT_EQ(prefilled.batch.Str(prefilled.batch.spans[1].service), "svc");
  EXPECT_EQ(prefilled.batch.Str(prefilled.batch.spans[1].name), "op-1");
  EXPECT_EQ(prefilled.result.accepted, 2u);
  EXPECT_EQ(prefilled.result.first_error, "span 3: earlier");
}

// Random requests (fixed seed): every decoded field matches libprotobuf + SpanBuilder.
TEST(OtlpProtoDecoderTest, RandomRequestsMatchLibprotobuf) {
  std::mt19937_64 rng(20240601);
  auto pick = [&rng](uint64_t n) { return rng() % n; };
  const char* keys[] = {"http.response.status_code", "http.status_code",     "rpc.grpc.status_code",
                        "rpc.response.status_code",  "rpc.status_code",      "exception.type",
                        "exception.message",         "exception.stacktrace", "http.route"};
  const char* strings[] = {"503", "UNAVAILABLE", "OK", "abc", "", "200", "-1", "16", "boom"};
  auto random_value = [&](PbAnyValue* value) {
    switch (pick(5)) {
      case 0:
        value->set_string_value(strings[pick(std::size(strings))]);
        break;
      case 1:
        value->set_int_value(static_cast<int64_t>(pick(1100)) - 50);
        break;
      case 2:
        value->set_bool_value(true);
        break;
      case 3:
        value->mutable_array_value()->add_values()->set_int_value(1);
        break;
      default:
        break;  // empty AnyValue
    }
  };
  for (int iteration = 0; iteration < 200; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    ExportTraceServiceRequest request;
    uint64_t id = 1;
    for (uint64_t r = pick(4); r > 0; --r) {
      PbResourceSpans* resource_spans =
          pick(4) == 0 ? request.add_resource_spans()
                       : AddProtoResource(request, "svc-" + std::to_string(pick(3)));
      for (uint64_t s = pick(6); s > 0; --s) {
        PbSpan* span = AddProtoSpan(resource_spans, id++);
        if (pick(8) == 0) span->set_trace_id(std::string(pick(17), '\x01'));
        if (pick(8) == 0) span->set_span_id(std::string(pick(9), '\x02'));
        if (pick(4) == 0) span->set_parent_span_id(std::string(pick(2) * 8, '\x03'));
        if (pick(8) == 0) span->set_end_time_unix_nano(pick(3000));
        span->set_kind(static_cast<PbSpan::SpanKind>(pick(7)));
        if (pick(2) == 0) {
          span->mutable_status()->set_code(static_cast<PbStatus::StatusCode>(pick(3)));
          span->mutable_status()->set_message(strings[pick(std::size(strings))]);
        }
        for (uint64_t a = pick(6); a > 0; --a) {
          PbKeyValue* kv = span->add_attributes();
          kv->set_key(keys[pick(std::size(keys))]);
          random_value(kv->mutable_value());
        }
        for (uint64_t e = pick(3); e > 0; --e) {
          auto* event = span->add_events();
          event->set_name(pick(2) == 0 ? "exception" : "log");
          for (uint64_t a = pick(4); a > 0; --a) {
            PbKeyValue* kv = event->add_attributes();
            kv->set_key(keys[5 + pick(3)]);
            random_value(kv->mutable_value());
          }
        }
      }
    }
    ExpectMatchesReference(request.SerializeAsString());
  }
}

}  // namespace
}  // namespace traceslo::ingest
