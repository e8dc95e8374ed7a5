// OtlpRecordDecoder (DecodeOtlpRecord with a cache of parsed resources) must give what
// DecodeOtlpRecord gives, byte for byte, whatever the order of the resources: many distinct
// resources interleaved (more than the cache holds, so slots are replaced and shared), resources
// that differ only in service.name, resources without one or with a non-string one, repeated
// resource fields (merged), resources larger than the cache keeps, malformed records and changed
// limits.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "services/ingest/otlp_decode.h"
#include "tests/unit/ingest/test_rng.h"
#include "traceslo/common/span.h"
#include "traceslo/ingest/otlp_file.h"

namespace traceslo::ingest {
namespace {

namespace collector_pb = ::opentelemetry::proto::collector::trace::v1;
namespace trace_pb = ::opentelemetry::proto::trace::v1;
namespace common_pb = ::opentelemetry::proto::common::v1;
namespace resource_pb = ::opentelemetry::proto::resource::v1;

using Rng = testutil::SplitMix64;

void AddString(google::protobuf::RepeatedPtrField<common_pb::KeyValue>* attributes,
               const std::string& key, const std::string& value) {
  common_pb::KeyValue* kv = attributes->Add();
  kv->set_key(key);
  kv->mutable_value()->set_string_value(value);
}

// Resource number `i` of a few kinds, serialised.
std::string MakeResource(uint32_t i) {
  resource_pb::Resource resource;
  auto* attributes = resource.mutable_attributes();
  const std::string n = std::to_string(i);
  switch (i % 6) {
    case 0:  // no service.name
      AddString(attributes, "host.name", "host-" + n);
      break;
    case 1: {  // service.name that is not a string
      common_pb::KeyValue* kv = attributes->Add();
      kv->set_key("service.name");
      kv->mutable_value()->set_int_value(i);
      AddString(attributes, "host.name", "host-" + n);
      break;
    }
    case 2:  // service.name twice: the last wins
      AddString(attributes, "service.name", "first-" + n);
      AddString(attributes, "service.namespace", "shop");
      AddString(attributes, "service.name", "second-" + n);
      break;
    case 3:  // larger than the cache keeps
      AddString(attributes, "service.name", "big-" + n);
      AddString(attributes, "blob", std::string(ResourceCache::kMaxResourceBytes, 'x'));
      break;
    default:  // the usual, or (5) the same size without service.name: a key one byte off
      AddString(attributes, i % 6 == 4 ? "service.name" : "service.namf", "svc-" + n);
      AddString(attributes, "service.instance.id", "3f0c5a1e-9b7d-4c2e-8a61-" + n);
      AddString(attributes, "host.name", "svc-" + n + "-7d9f8b6c5-x2k4q");
      AddString(attributes, "telemetry.sdk.language", "java");
      break;
  }
  return resource.SerializeAsString();
}

// A length-delimited field: tag byte (field < 16), length, bytes.
std::string Field(uint32_t field, std::string_view bytes) {
  std::string out(1, static_cast<char>(field << 3 | 2));
  uint64_t length = bytes.size();
  while (length >= 0x80) {
    out.push_back(static_cast<char>(length | 0x80));
    length >>= 7;
  }
  out.push_back(static_cast<char>(length));
  out.append(bytes);
  return out;
}

std::string ScopeSpans(Rng& rng, uint64_t record) {
  trace_pb::ScopeSpans scope;
  const uint32_t spans = 1 + rng.Below(3);
  for (uint32_t s = 0; s < spans; ++s) {
    trace_pb::Span* span = scope.add_spans();
    std::string trace_id(16, '\0');
    trace_id[0] = static_cast<char>(record);
    trace_id[15] = 1;
    span->set_trace_id(trace_id);
    span->set_span_id(std::string(7, '\1') + static_cast<char>(s + 1));
    span->set_name("op-" + std::to_string(rng.Below(5)));
    span->set_kind(trace_pb::Span::SPAN_KIND_SERVER);
    span->set_start_time_unix_nano(1000 + record);
    span->set_end_time_unix_nano(2000 + record);
  }
  return scope.SerializeAsString();
}

// A request of one or two ResourceSpans, each of one or (rarely) two resource fields (merged),
// before or after its scope spans.
std::string MakeRecord(Rng& rng, const std::vector<std::string>& resources, uint64_t record) {
  // Most records use a few resources (cache hits), the rest any of them.
  auto pick = [&]() -> const std::string& {
    return resources[rng.Below(4) != 0 ? rng.Below(8) : rng.Below(resources.size())];
  };
  std::string request;
  const uint32_t resource_spans = 1 + (rng.Below(5) == 0 ? 1 : 0);
  for (uint32_t r = 0; r < resource_spans; ++r) {
    std::string message;
    const std::string scope = Field(2, ScopeSpans(rng, record));
    const bool scope_first = rng.Below(8) == 0;
    if (scope_first) message += scope;
    message += Field(1, pick());
    if (rng.Below(10) == 0) message += Field(1, pick());
    if (!scope_first) message += scope;
    request += Field(1, message);
  }
  return request;
}

void ExpectSameSpans(const SpanBatch& expected, const SpanBatch& actual) {
  ASSERT_EQ(expected.strings, actual.strings);
  ASSERT_EQ(expected.spans.size(), actual.spans.size());
  for (size_t i = 0; i < expected.spans.size(); ++i) {
    const Span& a = expected.spans[i];
    const Span& b = actual.spans[i];
    EXPECT_EQ(a.trace_id, b.trace_id);
    EXPECT_EQ(a.span_id, b.span_id);
    EXPECT_EQ(a.parent_span_id, b.parent_span_id);
    EXPECT_EQ(a.start_unix_nano, b.start_unix_nano);
    EXPECT_EQ(a.end_unix_nano, b.end_unix_nano);
    for (auto ref : {&Span::service, &Span::name, &Span::status_message, &Span::exception_type,
                     &Span::exception_message, &Span::exception_stacktrace}) {
      EXPECT_EQ((a.*ref).offset, (b.*ref).offset);
      EXPECT_EQ((a.*ref).size, (b.*ref).size);
    }
    EXPECT_EQ(a.http_status, b.http_status);
    EXPECT_EQ(a.rpc_status, b.rpc_status);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.status, b.status);
  }
}

TEST(OtlpRecordDecoderTest, SameSpansAsDecodeOtlpRecordWithResourcesInterleaved) {
  std::vector<std::string> resources;
  // More resources than the cache has slots.
  for (uint32_t i = 0; i < 3 * ResourceCache::kSlots; ++i) resources.push_back(MakeResource(i));
  Rng rng(7);
  OtlpRecordDecoder decoder(OtlpFileFormat::kLengthPrefixedProtobuf, 1000);
  SpanBatch expected_all;  // one batch across records, as a caller that appends keeps it
  SpanBatch actual_all;
  size_t with_service = 0;
  for (uint64_t record = 0; record < 5000; ++record) {
    SCOPED_TRACE("record " + std::to_string(record));
    std::string value = MakeRecord(rng, resources, record);
    if (record % 97 == 0) value.resize(value.size() / 2);  // malformed: cut short
    SpanBatch expected;
    SpanBatch actual;
    RecordSpans expected_spans;
    RecordSpans actual_spans;
    const absl::Status expected_status = DecodeOtlpRecord(OtlpFileFormat::kLengthPrefixedProtobuf,
                                                          value, 1000, expected, expected_spans);
    const absl::Status actual_status = decoder.Decode(value, actual, actual_spans);
    ASSERT_EQ(expected_status, actual_status);
    EXPECT_EQ(expected_spans.accepted, actual_spans.accepted);
    EXPECT_EQ(expected_spans.rejected, actual_spans.rejected);
    ExpectSameSpans(expected, actual);
    for (const Span& span : actual.spans) {
      if (actual.Str(span.service) != "unknown_service") ++with_service;
    }
    RecordSpans ignored;
    ASSERT_EQ(DecodeOtlpRecord(OtlpFileFormat::kLengthPrefixedProtobuf, value, 1000, expected_all,
                               ignored),
              decoder.Decode(value, actual_all, ignored));
  }
  ExpectSameSpans(expected_all, actual_all);
  EXPECT_GT(with_service, 1000u);
}

TEST(OtlpRecordDecoderTest, JsonLinesAsDecodeOtlpRecord) {
  const std::string line =
      R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":)"
      R"({"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[{"traceId":)"
      R"("0000000000000000000000000000000a","spanId":"00000000000000aa","name":"GET /",)"
      R"("startTimeUnixNano":"1000","endTimeUnixNano":"2000"}]}]}]})";
  OtlpRecordDecoder decoder(OtlpFileFormat::kJsonLines, 1000);
  for (int i = 0; i < 3; ++i) {
    SpanBatch expected;
    SpanBatch actual;
    RecordSpans expected_spans;
    RecordSpans actual_spans;
    ASSERT_EQ(DecodeOtlpRecord(OtlpFileFormat::kJsonLines, line, 1000, expected, expected_spans),
              decoder.Decode(line, actual, actual_spans));
    ExpectSameSpans(expected, actual);
    EXPECT_EQ(actual.spans.size(), 1u);
  }
}

// A resource remembered under one limit is parsed again under another: it may break that one.
TEST(ResourceCacheTest, ChangedLimitsParseAgain) {
  resource_pb::Resource resource;
  for (int i = 0; i < 5; ++i) {
    AddString(resource.mutable_attributes(), "key" + std::to_string(i), "value");
  }
  AddString(resource.mutable_attributes(), "service.name", "checkout");
  collector_pb::ExportTraceServiceRequest request;
  trace_pb::ResourceSpans* resource_spans = request.add_resource_spans();
  *resource_spans->mutable_resource() = resource;
  trace_pb::Span* span = resource_spans->add_scope_spans()->add_spans();
  span->set_trace_id(std::string(15, '\0') + '\1');
  span->set_span_id(std::string(7, '\0') + '\1');
  span->set_start_time_unix_nano(1);
  span->set_end_time_unix_nano(2);
  const std::string body = request.SerializeAsString();

  ResourceCache cache;
  for (uint32_t max_attributes : {10u, 10u, 3u, 10u, 3u}) {
    SCOPED_TRACE("max_attributes " + std::to_string(max_attributes));
    const DecodeLimits limits{.max_attributes = max_attributes};
    SpanBatch expected;
    SpanBatch actual;
    DecodeResult expected_result;
    DecodeResult actual_result;
    const absl::Status expected_status = DecodeOtlpProto(body, limits, expected, expected_result);
    EXPECT_EQ(expected_status, DecodeOtlpProto(body, limits, actual, actual_result, &cache));
    EXPECT_EQ(expected_status.ok(), max_attributes == 10u);
    ExpectSameSpans(expected, actual);
  }
  // Remembered under 10 only after a successful parse under it.
  EXPECT_NE(cache.Find(resource.SerializeAsString(), DecodeLimits{.max_attributes = 10}), nullptr);
  EXPECT_EQ(cache.Find(resource.SerializeAsString(), DecodeLimits{.max_attributes = 3}), nullptr);
}

}  // namespace
}  // namespace traceslo::ingest
