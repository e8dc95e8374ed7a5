#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kJsonTraceIdHex = "5b8efff798038103d269b633813fc60c";
constexpr std::string_view kJsonSpanIdHex = "eee19b7ec3c1b174";
constexpr std::string_view kJsonParentIdHex = "eee19b7ec3c1b173";

struct JsonDecodeRun {
  absl::Status status;
  SpanBatch batch;
  DecodeResult result;

  std::string_view Str(StrRef ref) const { return batch.Str(ref); }
  const Span& OnlySpan() const {
    EXPECT_EQ(batch.spans.size(), 1u);
    return batch.spans.front();
  }
};

JsonDecodeRun DecodeJsonBody(std::string_view body, const DecodeLimits& limits = {}) {
  JsonDecodeRun run;
  run.status = DecodeOtlpJson(body, limits, run.batch, run.result);
  return run;
}

// A valid span object body (without braces) with the given extra fields appended.
std::string JsonSpanFields(std::string_view extra = {}) {
  std::string fields = R"("traceId":")" + std::string(kJsonTraceIdHex) + R"(","spanId":")" +
                       std::string(kJsonSpanIdHex) +
                       R"(","name":"GET /","startTimeUnixNano":"100","endTimeUnixNano":"250")";
  if (!extra.empty()) {
    fields += ",";
    fields += extra;
  }
  return fields;
}

// One resource (service "checkout") with one scope holding `spans` (a JSON array body).
std::string JsonRequestWithSpans(std::string_view spans) {
  return R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":)"
         R"({"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"lib"},"spans":[)" +
         std::string(spans) + "]}]}]}";
}

std::string JsonRequestWithSpan(std::string_view extra_fields = {}) {
  return JsonRequestWithSpans("{" + JsonSpanFields(extra_fields) + "}");
}

// A batch that already holds one span and some strings, to check appends and roll-backs.
SpanBatch JsonPrefilledBatch() {
  SpanBatch batch;
  Span span;
  span.span_id = 7;
  span.name = batch.Add("existing", kMaxNameBytes);
  batch.spans.push_back(span);
  return batch;
}

void ExpectJsonBatchEquals(const SpanBatch& actual, const SpanBatch& expected) {
  EXPECT_EQ(actual.strings, expected.strings);
  ASSERT_EQ(actual.spans.size(), expected.spans.size());
  for (size_t i = 0; i < actual.spans.size(); ++i) {
    EXPECT_EQ(actual.spans[i].span_id, expected.spans[i].span_id);
    EXPECT_EQ(actual.spans[i].name.offset, expected.spans[i].name.offset);
    EXPECT_EQ(actual.spans[i].name.size, expected.spans[i].name.size);
  }
}

TEST(OtlpJsonDecoderTest, DecodesEveryField) {
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(
      R"("parentSpanId":")" + std::string(kJsonParentIdHex) +
      R"(","kind":2,"status":{"code":2,"message":"boom"},)"
      R"("attributes":[{"key":"http.response.status_code","value":{"intValue":"503"}}])"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.accepted, 1u);
  EXPECT_EQ(run.result.TotalRejected(), 0u);
  const Span& span = run.OnlySpan();
  const TraceId expected_trace = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                  0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
  EXPECT_EQ(span.trace_id, expected_trace);
  EXPECT_EQ(span.span_id, 0xeee19b7ec3c1b174u);
  EXPECT_EQ(span.parent_span_id, 0xeee19b7ec3c1b173u);
  EXPECT_EQ(span.start_unix_nano, 100u);
  EXPECT_EQ(span.end_unix_nano, 250u);
  EXPECT_EQ(run.Str(span.service), "checkout");
  EXPECT_EQ(run.Str(span.name), "GET /");
  EXPECT_EQ(span.kind, SpanKind::kServer);
  EXPECT_EQ(span.status, StatusCode::kError);
  EXPECT_EQ(run.Str(span.status_message), "boom");
  EXPECT_EQ(span.http_status, 503);
  EXPECT_EQ(span.rpc_status, -1);
}

TEST(OtlpJsonDecoderTest, HexIdsAreCaseInsensitive) {
  JsonDecodeRun lower = DecodeJsonBody(JsonRequestWithSpans(
      R"({"traceId":"abcdef0123456789abcdef0123456789","spanId":"abcdef0123456789"})"));
  JsonDecodeRun upper = DecodeJsonBody(JsonRequestWithSpans(
      R"({"traceId":"ABCDEF0123456789ABCDEF0123456789","spanId":"ABCDEF0123456789",)"
      R"("parentSpanId":"AbCdEf0123456789"})"));
  ASSERT_TRUE(lower.status.ok()) << lower.status;
  ASSERT_TRUE(upper.status.ok()) << upper.status;
  EXPECT_EQ(lower.OnlySpan().trace_id, upper.OnlySpan().trace_id);
  EXPECT_EQ(lower.OnlySpan().span_id, 0xabcdef0123456789u);
  EXPECT_EQ(upper.OnlySpan().span_id, 0xabcdef0123456789u);
  EXPECT_EQ(upper.OnlySpan().parent_span_id, 0xabcdef0123456789u);
  EXPECT_EQ(lower.OnlySpan().parent_span_id, 0u);
}

TEST(OtlpJsonDecoderTest, EmptyParentSpanIdIsARoot) {
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(R"("parentSpanId":"")"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.OnlySpan().parent_span_id, 0u);
}

TEST(OtlpJsonDecoderTest, BadIdsRejectOnlyTheirSpanCountedByReason) {
  const std::string trace(kJsonTraceIdHex);
  const std::string span_id(kJsonSpanIdHex);
  const std::string spans =
      // 0: valid
      R"({"traceId":")" + trace + R"(","spanId":")" + span_id + R"("},)" +
      // 1: trace id one byte short
      R"({"traceId":")" + trace.substr(2) + R"(","spanId":")" + span_id + R"("},)" +
      // 2: trace id with a non-hex character
      R"({"traceId":"5b8efff798038103d269b633813fc60g","spanId":")" + span_id + R"("},)" +
      // 3: trace id all zero
      R"({"traceId":"00000000000000000000000000000000","spanId":")" + span_id + R"("},)" +
      // 4: trace id base64 (as protobuf's canonical JSON would write it)
      R"({"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":")" + span_id + R"("},)" +
      // 5: span id odd length
      R"({"traceId":")" + trace + R"(","spanId":"eee19b7ec3c1b17"},)" +
      // 6: span id missing
      R"({"traceId":")" + trace + R"("},)" +
      // 7: span id all zero
      R"({"traceId":")" + trace + R"(","spanId":"0000000000000000"},)" +
      // 8: parent id wrong length
      R"({"traceId":")" + trace + R"(","spanId":")" + span_id + R"(","parentSpanId":"ab"},)" +
      // 9: parent id non-hex
      R"({"traceId":")" + trace + R"(","spanId":")" + span_id +
      R"(","parentSpanId":"zzzzzzzzzzzzzzzz"},)" +
      // 10: end before start
      R"({"traceId":")" + trace + R"(","spanId":")" + span_id +
      R"(","startTimeUnixNano":"10","endTimeUnixNano":"9"},)" +
      // 11: valid
      R"({"traceId":")" + trace + R"(","spanId":")" + span_id + R"(","name":"last"})";
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpans(spans));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.accepted, 2u);
  auto rejected = [&](SpanRejectReason reason) {
    return run.result.rejected[static_cast<size_t>(reason)];
  };
  EXPECT_EQ(rejected(SpanRejectReason::kInvalidTraceId), 4u);
  EXPECT_EQ(rejected(SpanRejectReason::kInvalidSpanId), 3u);
  EXPECT_EQ(rejected(SpanRejectReason::kInvalidParentSpanId), 2u);
  EXPECT_EQ(rejected(SpanRejectReason::kEndBeforeStart), 1u);
  EXPECT_THAT(run.result.first_error, HasSubstr("span 1:"));
  ASSERT_EQ(run.batch.spans.size(), 2u);
  EXPECT_EQ(run.Str(run.batch.spans[1].name), "last");
}

TEST(OtlpJsonDecoderTest, SpanIndexInFirstErrorCountsAcrossResources) {
  const std::string good = "{" + JsonSpanFields() + "}";
  const std::string body = R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + good + "," + good +
                           R"(]}]},{"scopeSpans":[{"spans":[)" + good +
                           R"(]},{"spans":[{"spanId":"01"}]}]}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.accepted, 3u);
  EXPECT_THAT(run.result.first_error, HasSubstr("span 3:"));
}

TEST(OtlpJsonDecoderTest, TimesAsStringsOrNumbers) {
  JsonDecodeRun numbers = DecodeJsonBody(
      JsonRequestWithSpans("{" +
                           JsonSpanFields(R"("startTimeUnixNano":1700000000123456789,)"
                                          R"("endTimeUnixNano":18446744073709551615)") +
                           "}"));
  ASSERT_TRUE(numbers.status.ok()) << numbers.status;
  EXPECT_EQ(numbers.OnlySpan().start_unix_nano, 1700000000123456789u);
  EXPECT_EQ(numbers.OnlySpan().end_unix_nano, UINT64_MAX);

  JsonDecodeRun strings = DecodeJsonBody(
      JsonRequestWithSpans("{" +
                           JsonSpanFields(R"("startTimeUnixNano":"0",)"
                                          R"("endTimeUnixNano":"18446744073709551615")") +
                           "}"));
  ASSERT_TRUE(strings.status.ok()) << strings.status;
  EXPECT_EQ(strings.OnlySpan().start_unix_nano, 0u);
  EXPECT_EQ(strings.OnlySpan().end_unix_nano, UINT64_MAX);
}

TEST(OtlpJsonDecoderTest, BadTimesFailTheRequest) {
  const char* const kBadTimes[] = {"-1",
                                   R"("-1")",
                                   "1.5",
                                   "1e9",
                                   R"("1e9")",
                                   R"("")",
                                   R"(" 5")",
                                   R"("+5")",
                                   R"("12a")",
                                   "true",
                                   "[]",
                                   "{}",
                                   R"("18446744073709551616")",
                                   "18446744073709551616",
                                   "99999999999999999999999"};
  for (const char* bad : kBadTimes) {
    SCOPED_TRACE(bad);
    const std::string body =
        JsonRequestWithSpans("{" + JsonSpanFields() + "},{" +
                             JsonSpanFields(std::string(R"("endTimeUnixNano":)") + bad) + "}");
    JsonDecodeRun run = DecodeJsonBody(body);
    EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(run.batch.spans.empty());
    EXPECT_TRUE(run.batch.strings.empty());
  }
}

TEST(OtlpJsonDecoderTest, ErrorMessageNamesThePath) {
  const std::string good = "{" + JsonSpanFields() + "}";
  const std::string body = R"({"resourceSpans":[{"scopeSpans":[{"spans":[]},{"spans":[)" + good +
                           "," + good + "," + good +
                           R"(,{"traceId":"x","startTimeUnixNano":1.5}]}]}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(run.status.message(),
            "resourceSpans[0].scopeSpans[1].spans[3].startTimeUnixNano: expected a decimal "
            "string or integer");
}

TEST(OtlpJsonDecoderTest, IntValueAsStringOrNumber) {
  JsonDecodeRun as_number = DecodeJsonBody(
      JsonRequestWithSpan(R"("attributes":[{"key":"http.status_code","value":{"intValue":404}}])"));
  ASSERT_TRUE(as_number.status.ok()) << as_number.status;
  EXPECT_EQ(as_number.OnlySpan().http_status, 404);

  JsonDecodeRun as_string = DecodeJsonBody(JsonRequestWithSpan(
      R"("attributes":[{"key":"rpc.grpc.status_code","value":{"intValue":"14"}}])"));
  ASSERT_TRUE(as_string.status.ok()) << as_string.status;
  EXPECT_EQ(as_string.OnlySpan().rpc_status, 14);

  JsonDecodeRun extremes = DecodeJsonBody(JsonRequestWithSpan(
      R"("attributes":[{"key":"a","value":{"intValue":"-9223372036854775808"}},)"
      R"({"key":"b","value":{"intValue":9223372036854775807}},)"
      R"({"key":"http.status_code","value":{"intValue":-5}}])"));
  ASSERT_TRUE(extremes.status.ok()) << extremes.status;
  EXPECT_EQ(extremes.OnlySpan().http_status, 0);
}

TEST(OtlpJsonDecoderTest, BadIntValueFailsTheRequest) {
  const char* const kBadInts[] = {"1.0",
                                  "9223372036854775808",
                                  R"("9223372036854775808")",
                                  R"("")",
                                  R"("0x10")",
                                  "true",
                                  "null2",
                                  R"("1 ")",
                                  "100000000000000000000"};
  for (const char* bad : kBadInts) {
    SCOPED_TRACE(bad);
    JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(
        std::string(R"("attributes":[{"key":"http.status_code","value":{"intValue":)") + bad +
        "}}]"));
    EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(run.batch.spans.empty());
  }
}

TEST(OtlpJsonDecoderTest, HttpAndRpcStatusAttributes) {
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpans(
      "{" +
      JsonSpanFields(R"("attributes":[{"key":"http.response.status_code","value":{"intValue":)"
                     R"("200"}},{"key":"rpc.grpc.status_code","value":{"intValue":0}}])") +
      "},{" +
      JsonSpanFields(
          R"("attributes":[{"key":"http.status_code","value":{"stringValue":"503"}},)"
          R"({"key":"rpc.response.status_code","value":{"stringValue":"UNAVAILABLE"}}])") +
      "},{" +
      JsonSpanFields(R"("attributes":[{"key":"rpc.status_code","value":{"stringValue":"4"}},)"
                     R"({"key":"http.status_code","value":{"doubleValue":500.0}},)"
                     R"({"key":"other","value":{"intValue":"500"}}])") +
      "}"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 3u);
  EXPECT_EQ(run.batch.spans[0].http_status, 200);
  EXPECT_EQ(run.batch.spans[0].rpc_status, 0);
  EXPECT_EQ(run.batch.spans[1].http_status, 503);
  EXPECT_EQ(run.batch.spans[1].rpc_status, 14);
  EXPECT_EQ(run.batch.spans[2].http_status, 0);
  EXPECT_EQ(run.batch.spans[2].rpc_status, 4);
}

TEST(OtlpJsonDecoderTest, FirstExceptionEventWins) {
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(
      R"("events":[{"name":"log","attributes":[{"key":"exception.type","value":)"
      R"({"stringValue":"NotMe"}}]},)"
      // The name comes after the attributes here.
      R"({"timeUnixNano":"5","attributes":[{"key":"exception.type","value":{"stringValue":)"
      R"("IOError"}},{"key":"exception.message","value":{"stringValue":"disk full"}},)"
      R"({"key":"exception.stacktrace","value":{"stringValue":"at f"}}],"name":"exception"},)"
      R"({"name":"exception","attributes":[{"key":"exception.type","value":)"
      R"({"stringValue":"Second"}}]}],)"
      R"("attributes":[{"key":"exception.message","value":{"stringValue":"from attribute"}}])"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  const Span& span = run.OnlySpan();
  EXPECT_EQ(run.Str(span.exception_type), "IOError");
  EXPECT_EQ(run.Str(span.exception_message), "disk full");
  EXPECT_EQ(run.Str(span.exception_stacktrace), "at f");
}

TEST(OtlpJsonDecoderTest, ExceptionAttributesOnTheSpanWithoutEvent) {
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(
      R"("attributes":[{"key":"exception.type","value":{"stringValue":"Timeout"}},)"
      R"({"key":"exception.message","value":{"stringValue":"too slow"}}])"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.Str(run.OnlySpan().exception_type), "Timeout");
  EXPECT_EQ(run.Str(run.OnlySpan().exception_message), "too slow");
}

TEST(OtlpJsonDecoderTest, UnknownFieldsAreIgnoredAtEveryLevel) {
  const std::string junk = R"({"a":[1,{"b":null},"c",true,-2.5e10],"d":{"e":{}}})";
  const std::string body =
      R"({"x":)" + junk + R"(,"resourceSpans":[{"schemaUrl":"s","x":)" + junk +
      R"(,"resource":{"droppedAttributesCount":3,"x":)" + junk + R"(,"attributes":[{"x":)" + junk +
      R"(,"key":"service.name","value":{"x":)" + junk + R"(,"stringValue":"svc"}}]},)" +
      R"("scopeSpans":[{"x":)" + junk + R"(,"scope":{"name":"n","version":"1","x":)" + junk +
      R"(},"spans":[{"x":)" + junk + R"(,"traceState":"t","flags":1,"droppedEventsCount":0,)" +
      R"("links":[{"traceId":"zz"}],)" + JsonSpanFields() + R"(,"status":{"x":)" + junk +
      R"(,"code":1},"events":[{"x":)" + junk +
      R"(,"name":"exception","droppedAttributesCount":1,"attributes":[{"key":"exception.type",)" +
      R"("value":{"stringValue":"E","x":)" + junk + R"(}}]}],"attributes":[{"key":"k","value":)" +
      R"({"arrayValue":{"x":)" + junk + R"(,"values":[{"x":)" + junk + R"(,"intValue":"1"}]}}},)" +
      R"({"key":"kv","value":{"kvlistValue":{"x":)" + junk + R"(,"values":[{"key":"a","x":)" +
      junk + R"(}]}}}]}]}]}],"zzz":null})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  const Span& span = run.OnlySpan();
  EXPECT_EQ(run.Str(span.service), "svc");
  EXPECT_EQ(span.status, StatusCode::kOk);
  EXPECT_EQ(run.Str(span.exception_type), "E");
}

TEST(OtlpJsonDecoderTest, OriginalSnakeCaseFieldNames) {
  const std::string body =
      R"({"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":)"
      R"({"string_value":"snake"}}]},"scope_spans":[{"spans":[{"trace_id":")" +
      std::string(kJsonTraceIdHex) + R"(","span_id":")" + std::string(kJsonSpanIdHex) +
      R"(","parent_span_id":")" + std::string(kJsonParentIdHex) +
      R"(","start_time_unix_nano":"1","end_time_unix_nano":2,"kind":3,)"
      R"("attributes":[{"key":"http.status_code","value":{"int_value":"418"}},)"
      R"({"key":"n","value":{"array_value":{"values":[{"bool_value":true},{"double_value":1},)"
      R"({"bytes_value":"AAE="},{"kvlist_value":{"values":[]}}]}}}],)"
      R"("events":[{"name":"exception","time_unix_nano":"3","attributes":[{"key":)"
      R"("exception.type","value":{"string_value":"Snake"}}]}]}]}]}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  const Span& span = run.OnlySpan();
  EXPECT_EQ(run.Str(span.service), "snake");
  EXPECT_EQ(span.parent_span_id, 0xeee19b7ec3c1b173u);
  EXPECT_EQ(span.start_unix_nano, 1u);
  EXPECT_EQ(span.end_unix_nano, 2u);
  EXPECT_EQ(span.kind, SpanKind::kClient);
  EXPECT_EQ(span.http_status, 418);
  EXPECT_EQ(run.Str(span.exception_type), "Snake");
}

TEST(OtlpJsonDecoderTest, ResourceAfterScopeSpansStillNamesTheService) {
  const std::string span = "{" + JsonSpanFields() + "}";
  const std::string body = R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + span + "," + span +
                           R"(]},{"spans":[)" + span +
                           R"(]}],"resource":{"attributes":[{"key":"service.name","value":)"
                           R"({"stringValue":"late"}}]}},{"scopeSpans":[{"spans":[)" +
                           span + R"(]}]}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 4u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(run.Str(run.batch.spans[i].service), "late");
  // The next resource has none of its own.
  EXPECT_EQ(run.Str(run.batch.spans[3].service), "unknown_service");
}

TEST(OtlpJsonDecoderTest, ServiceNameFallsBackToUnknownService) {
  const std::string span = "{" + JsonSpanFields() + "}";
  const std::string body =
      R"({"resourceSpans":[)"
      R"({"scopeSpans":[{"spans":[)" +
      span +
      R"(]}]},)"
      R"({"resource":{"attributes":[{"key":"service.name","value":{"intValue":5}}]},)"
      R"("scopeSpans":[{"spans":[)" +
      span +
      R"(]}]},)"
      R"({"resource":{"attributes":[{"key":"service.name","value":{"stringValue":""}}]},)"
      R"("scopeSpans":[{"spans":[)" +
      span +
      R"(]}]},)"
      R"({"resource":null,"scopeSpans":[{"spans":[)" +
      span +
      R"(]}]},)"
      R"({"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}},)"
      R"({"key":"service.name","value":{"stringValue":"b"}}]},"scopeSpans":[{"spans":[)" +
      span + R"(]}]}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 5u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(run.Str(run.batch.spans[i].service), "unknown_service") << i;
  }
  EXPECT_EQ(run.Str(run.batch.spans[4].service), "b");
}

TEST(OtlpJsonDecoderTest, EnumsAsIntegersOrNames) {
  const std::string spans =
      "{" + JsonSpanFields(R"("kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"})") +
      "},{" + JsonSpanFields(R"("kind":"SPAN_KIND_BOGUS","status":{"code":"STATUS_CODE_OK"})") +
      "},{" + JsonSpanFields(R"("kind":5,"status":{"code":1})") + "},{" +
      JsonSpanFields(R"("kind":9,"status":{"code":7})") + "},{" +
      JsonSpanFields(R"("kind":"4","status":{"code":"2","message":"m"})") + "}";
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpans(spans));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 5u);
  EXPECT_EQ(run.batch.spans[0].kind, SpanKind::kServer);
  EXPECT_EQ(run.batch.spans[0].status, StatusCode::kError);
  EXPECT_EQ(run.batch.spans[1].kind, SpanKind::kUnspecified);
  EXPECT_EQ(run.batch.spans[1].status, StatusCode::kOk);
  EXPECT_EQ(run.batch.spans[2].kind, SpanKind::kConsumer);
  EXPECT_EQ(run.batch.spans[2].status, StatusCode::kOk);
  EXPECT_EQ(run.batch.spans[3].kind, SpanKind::kUnspecified);
  EXPECT_EQ(run.batch.spans[3].status, StatusCode::kUnset);
  EXPECT_EQ(run.batch.spans[4].kind, SpanKind::kProducer);
  EXPECT_EQ(run.batch.spans[4].status, StatusCode::kError);
}

TEST(OtlpJsonDecoderTest, NullFieldsAreAbsent) {
  const std::string body =
      R"({"resourceSpans":[{"resource":{"attributes":null},"scopeSpans":[{"scope":null,)"
      R"("spans":[{"traceId":")" +
      std::string(kJsonTraceIdHex) + R"(","spanId":")" + std::string(kJsonSpanIdHex) +
      R"(","parentSpanId":null,"name":null,"kind":null,"startTimeUnixNano":null,)"
      R"("endTimeUnixNano":null,"attributes":[{"key":null,"value":null},)"
      R"({"key":"k","value":{"stringValue":null,"arrayValue":{"values":null}}}],)"
      R"("events":[{"name":null,"attributes":null,"timeUnixNano":null}],)"
      R"("status":{"code":null,"message":null}},{"traceId":")" +
      std::string(kJsonTraceIdHex) + R"(","spanId":")" + std::string(kJsonSpanIdHex) +
      R"(","status":null,"events":null,"attributes":null}]},{"spans":null}]},)"
      R"({"scopeSpans":null}]})";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 2u);
  EXPECT_EQ(run.batch.spans[0].kind, SpanKind::kUnspecified);
  EXPECT_EQ(run.Str(run.batch.spans[0].name), "");
  EXPECT_EQ(run.batch.spans[0].status, StatusCode::kUnset);
  EXPECT_EQ(run.batch.spans[0].parent_span_id, 0u);

  JsonDecodeRun null_list = DecodeJsonBody(R"({"resourceSpans":null})");
  ASSERT_TRUE(null_list.status.ok()) << null_list.status;
  EXPECT_TRUE(null_list.batch.spans.empty());
}

TEST(OtlpJsonDecoderTest, EmptyObjectIsAnEmptyRequest) {
  for (std::string_view body :
       {"{}", " \n{ }\t", R"({"resourceSpans":[]})", R"({"resourceSpans":[{}]})",
        R"({"resourceSpans":[{"scopeSpans":[{}]}]})"}) {
    SCOPED_TRACE(body);
    JsonDecodeRun run = DecodeJsonBody(body);
    EXPECT_TRUE(run.status.ok()) << run.status;
    EXPECT_TRUE(run.batch.spans.empty());
    EXPECT_EQ(run.result.accepted, 0u);
    EXPECT_EQ(run.result.TotalRejected(), 0u);
  }
}

TEST(OtlpJsonDecoderTest, NonObjectBodiesAreInvalid) {
  for (std::string_view body :
       {"", " ", "\n", "null", "[]", "[{}]", "1", R"("resourceSpans")", "true", "{} {}", "{},",
        "{\"a\":1,}", "{'a':1}", "\xef\xbb\xbf{}", "{\"a\":\"\xff\"}", "{\"a\":nan}",
        "{\"a\":\"\\x\"}", "{\"a\":01}"}) {
    SCOPED_TRACE(body);
    SpanBatch batch = JsonPrefilledBatch();
    DecodeResult result;
    absl::Status status = DecodeOtlpJson(body, {}, batch, result);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    ExpectJsonBatchEquals(batch, JsonPrefilledBatch());
  }
}

TEST(OtlpJsonDecoderTest, WrongTypesFailWithTheirPath) {
  struct Case {
    std::string body;
    std::string message_part;
  };
  const std::string id_fields = R"("traceId":")" + std::string(kJsonTraceIdHex) +
                                R"(","spanId":")" + std::string(kJsonSpanIdHex) + R"(")";
  const std::vector<Case> cases = {
      {R"({"resourceSpans":{}})", "resourceSpans: expected an array"},
      {R"({"resourceSpans":[1]})", "resourceSpans[0]: expected an object"},
      {R"({"resourceSpans":[null]})", "resourceSpans[0]: expected an object"},
      {R"({"resourceSpans":[{"resource":[]}]})", "resourceSpans[0].resource: expected an object"},
      {R"({"resourceSpans":[{"resource":{"attributes":{}}}]})",
       "resourceSpans[0].resource.attributes: expected an array"},
      {R"({"resourceSpans":[{"resource":{"attributes":[{"key":1}]}}]})",
       "resourceSpans[0].resource.attributes[0].key: expected a string"},
      {R"({"resourceSpans":[{"scopeSpans":"x"}]})",
       "resourceSpans[0].scopeSpans: expected an array"},
      {R"({"resourceSpans":[{"scopeSpans":[{"spans":{}}]}]})",
       "resourceSpans[0].scopeSpans[0].spans: expected an array"},
      {R"({"resourceSpans":[{"scopeSpans":[{"spans":[[]]}]}]})",
       "resourceSpans[0].scopeSpans[0].spans[0]: expected an object"},
      {JsonRequestWithSpans(R"({"traceId":12})"), "spans[0].traceId: expected a hex string"},
      {JsonRequestWithSpans(R"({"spanId":true})"), "spans[0].spanId: expected a hex string"},
      {JsonRequestWithSpans(R"({"parentSpanId":[]})"),
       "spans[0].parentSpanId: expected a hex string"},
      {JsonRequestWithSpans(R"({"name":{}})"), "spans[0].name: expected a string"},
      {JsonRequestWithSpans(R"({"kind":2.0})"), "spans[0].kind: expected an integer"},
      {JsonRequestWithSpans(R"({"kind":true})"), "spans[0].kind: expected an integer"},
      {JsonRequestWithSpans(R"({"status":"ok"})"), "spans[0].status: expected an object"},
      {JsonRequestWithSpans(R"({"status":{"code":[]}})"),
       "spans[0].status.code: expected an integer"},
      {JsonRequestWithSpans(R"({"status":{"message":1}})"),
       "spans[0].status.message: expected a string"},
      {JsonRequestWithSpans(R"({"attributes":{}})"), "spans[0].attributes: expected an array"},
      {JsonRequestWithSpans(R"({"attributes":["k"]})"),
       "spans[0].attributes[0]: expected an object"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":"v"}]})"),
       "spans[0].attributes[0].value: expected an object"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"stringValue":1}}]})"),
       "spans[0].attributes[0].value.stringValue: expected a string"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"boolValue":"true"}}]})"),
       "spans[0].attributes[0].value.boolValue: expected true or false"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"doubleValue":[]}}]})"),
       "spans[0].attributes[0].value.doubleValue: expected a number"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"bytesValue":1}}]})"),
       "spans[0].attributes[0].value.bytesValue: expected a base64 string"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"arrayValue":[]}}]})"),
       "spans[0].attributes[0].value.arrayValue: expected an object"},
      {JsonRequestWithSpans(R"({"attributes":[{"key":"k","value":{"arrayValue":{"values":{}}}}]})"),
       "spans[0].attributes[0].value.arrayValue.values: expected an array"},
      {JsonRequestWithSpans(
           R"({"attributes":[{"key":"k","value":{"arrayValue":{"values":[1]}}}]})"),
       "spans[0].attributes[0].value.arrayValue.values[0]: expected an object"},
      {JsonRequestWithSpans(
           R"({"attributes":[{"key":"k","value":{"kvlistValue":{"values":[{"key":2}]}}}]})"),
       "spans[0].attributes[0].value.kvlistValue.values[0].key: expected a string"},
      {JsonRequestWithSpans(R"({"events":{}})"), "spans[0].events: expected an array"},
      {JsonRequestWithSpans(R"({"events":[{"name":5}]})"),
       "spans[0].events[0].name: expected a string"},
      {JsonRequestWithSpans(R"({"events":[{"timeUnixNano":-1}]})"),
       "spans[0].events[0].timeUnixNano: must not be negative"},
      {JsonRequestWithSpans(
           R"({"events":[{"attributes":[{"key":"k","value":{"intValue":1.5}}]}]})"),
       "spans[0].events[0].attributes[0].value.intValue: expected a decimal string or integer"},
      {JsonRequestWithSpans("{" + id_fields + R"(,"startTimeUnixNano":"-3"})"),
       "spans[0].startTimeUnixNano: must not be negative"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    SpanBatch batch = JsonPrefilledBatch();
    DecodeResult result;
    absl::Status status = DecodeOtlpJson(c.body, {}, batch, result);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message_part));
    ExpectJsonBatchEquals(batch, JsonPrefilledBatch());
    EXPECT_EQ(result.accepted, 0u);
    EXPECT_EQ(result.TotalRejected(), 0u);
  }
}

TEST(OtlpJsonDecoderTest, FailureAfterGoodSpansRollsBackBatchAndResult) {
  const std::string good = "{" + JsonSpanFields() + "}";
  const std::string rejected = R"({"traceId":"00"})";
  const std::string body =
      JsonRequestWithSpans(good + "," + rejected + "," + good + R"(,{"name":7})");
  SpanBatch batch = JsonPrefilledBatch();
  DecodeResult result;
  result.accepted = 3;
  absl::Status status = DecodeOtlpJson(body, {}, batch, result);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ExpectJsonBatchEquals(batch, JsonPrefilledBatch());
  EXPECT_EQ(result.accepted, 3u);
  EXPECT_EQ(result.TotalRejected(), 0u);
  EXPECT_TRUE(result.first_error.empty());
}

TEST(OtlpJsonDecoderTest, AppendsToAnExistingBatch) {
  SpanBatch batch = JsonPrefilledBatch();
  DecodeResult result;
  result.accepted = 1;
  result.first_error = "earlier";
  const std::string body = JsonRequestWithSpans("{" + JsonSpanFields() + R"(},{"spanId":"1"})");
  ASSERT_TRUE(DecodeOtlpJson(body, {}, batch, result).ok());
  ASSERT_EQ(batch.spans.size(), 2u);
  EXPECT_EQ(batch.Str(batch.spans[0].name), "existing");
  EXPECT_EQ(batch.Str(batch.spans[1].name), "GET /");
  EXPECT_EQ(batch.Str(batch.spans[1].service), "checkout");
  EXPECT_EQ(result.accepted, 2u);
  EXPECT_EQ(result.TotalRejected(), 1u);
  EXPECT_EQ(result.first_error, "earlier");
}

TEST(OtlpJsonDecoderTest, EveryTruncationFailsAndLeavesTheBatchAlone) {
  const std::string body = JsonRequestWithSpans(
      "{" +
      JsonSpanFields(R"("kind":2,"status":{"code":2,"message":"m\"q\u00e9"},)"
                     R"("events":[{"name":"exception","attributes":[{"key":"exception.type",)"
                     R"("value":{"stringValue":"E"}}]}],"attributes":[{"key":"http.status_code",)"
                     R"("value":{"intValue":500}},{"key":"d","value":{"doubleValue":-1.5e-3}},)"
                     R"({"key":"l","value":{"arrayValue":{"values":[{"boolValue":false}]}}}])") +
      "}");
  ASSERT_TRUE(DecodeJsonBody(body).status.ok());
  for (size_t size = 0; size < body.size(); ++size) {
    SpanBatch batch = JsonPrefilledBatch();
    DecodeResult result;
    absl::Status status = DecodeOtlpJson(std::string_view(body).substr(0, size), {}, batch, result);
    ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << size;
    ExpectJsonBatchEquals(batch, JsonPrefilledBatch());
    EXPECT_EQ(result.accepted, 0u);
  }
}

TEST(OtlpJsonDecoderTest, StringsAreUnescapedAndTruncated) {
  const std::string long_name(kMaxNameBytes + 50, 'n');
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpans(
      R"({"traceId":")" + std::string(kJsonTraceIdHex) + R"(","spanId":")" +
      std::string(kJsonSpanIdHex) + R"(","name":"q\"b\\s\/\u00e9\ud83d\ude00\n",)" +
      R"("status":{"message":")" + long_name + R"("}},{"traceId":")" +
      std::string(kJsonTraceIdHex) + R"(","spanId":")" + std::string(kJsonSpanIdHex) +
      R"(","name":")" + long_name + R"("})"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 2u);
  EXPECT_EQ(run.Str(run.batch.spans[0].name), "q\"b\\s/\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(run.Str(run.batch.spans[0].status_message), long_name);
  EXPECT_EQ(run.Str(run.batch.spans[1].name), long_name.substr(0, kMaxNameBytes));
}

TEST(OtlpJsonDecoderTest, MaxSpans) {
  const std::string span = "{" + JsonSpanFields() + "}";
  const std::string invalid_span = R"({"spanId":"00"})";
  const std::string body = R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + span + "," +
                           invalid_span + R"(]}]},{"scopeSpans":[{"spans":[)" + span + "]}]}]}";
  DecodeLimits limits;
  limits.max_spans = 3;
  JsonDecodeRun at_limit = DecodeJsonBody(body, limits);
  ASSERT_TRUE(at_limit.status.ok()) << at_limit.status;
  EXPECT_EQ(at_limit.result.accepted, 2u);

  limits.max_spans = 2;  // rejected spans count too
  SpanBatch batch = JsonPrefilledBatch();
  DecodeResult result;
  absl::Status status = DecodeOtlpJson(body, limits, batch, result);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_spans"));
  ExpectJsonBatchEquals(batch, JsonPrefilledBatch());
}

TEST(OtlpJsonDecoderTest, MaxAttributesPerSpanResourceAndEvent) {
  auto attributes = [](int n) {
    std::string list = "[";
    for (int i = 0; i < n; ++i) {
      if (i > 0) list += ",";
      list += R"({"key":"k)" + std::to_string(i) + R"(","value":{"intValue":1}})";
    }
    return list + "]";
  };
  DecodeLimits limits;
  limits.max_attributes = 3;

  EXPECT_TRUE(
      DecodeJsonBody(JsonRequestWithSpan(R"("attributes":)" + attributes(3)), limits).status.ok());
  JsonDecodeRun span_over = DecodeJsonBody(
      JsonRequestWithSpan(R"("attributes":)" + attributes(2) + R"(,"attributes":)" + attributes(2)),
      limits);
  EXPECT_EQ(span_over.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(span_over.status.message()), HasSubstr("max_attributes"));

  const std::string span = "{" + JsonSpanFields() + "}";
  JsonDecodeRun resource_over =
      DecodeJsonBody(R"({"resourceSpans":[{"resource":{"attributes":)" + attributes(4) +
                         R"(},"scopeSpans":[{"spans":[)" + span + "]}]}]}",
                     limits);
  EXPECT_EQ(resource_over.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(resource_over.status.message()),
              HasSubstr("resourceSpans[0].resource.attributes: more than 3"));

  JsonDecodeRun event_ok =
      DecodeJsonBody(JsonRequestWithSpan(R"("attributes":)" + attributes(3) +
                                         R"(,"events":[{"attributes":)" + attributes(3) + "}]"),
                     limits);
  EXPECT_TRUE(event_ok.status.ok()) << event_ok.status;
  JsonDecodeRun event_over = DecodeJsonBody(
      JsonRequestWithSpan(R"("events":[{"attributes":)" + attributes(4) + "}]"), limits);
  EXPECT_EQ(event_over.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(event_over.status.message()), HasSubstr("events[0].attributes"));
}

// An attribute value nested in `depth` arrays/kvlists (alternating), innermost an int.
std::string JsonNestedValue(int depth) {
  std::string value = R"({"intValue":"1"})";
  for (int i = 0; i < depth; ++i) {
    value = i % 2 == 0 ? R"({"arrayValue":{"values":[)" + value + "]}}"
                       : R"({"kvlistValue":{"values":[{"key":"k","value":)" + value + "}]}}";
  }
  return value;
}

TEST(OtlpJsonDecoderTest, MaxDepthOfNestedAnyValues) {
  for (uint32_t max_depth : {0u, 1u, 4u, 32u, 100u}) {
    SCOPED_TRACE(max_depth);
    DecodeLimits limits;
    limits.max_depth = max_depth;
    for (const char* owner : {"span", "event", "resource"}) {
      SCOPED_TRACE(owner);
      auto body_with = [&](int depth) {
        const std::string attribute = R"([{"key":"deep","value":)" + JsonNestedValue(depth) + "}]";
        if (std::string_view(owner) == "span") {
          return JsonRequestWithSpan(R"("attributes":)" + attribute);
        }
        if (std::string_view(owner) == "event") {
          return JsonRequestWithSpan(R"("events":[{"attributes":)" + attribute + "}]");
        }
        return R"({"resourceSpans":[{"resource":{"attributes":)" + attribute +
               R"(},"scopeSpans":[{"spans":[{)" + JsonSpanFields() + "}]}]}]}";
      };
      JsonDecodeRun at_limit = DecodeJsonBody(body_with(static_cast<int>(max_depth)), limits);
      EXPECT_TRUE(at_limit.status.ok()) << at_limit.status;
      JsonDecodeRun over = DecodeJsonBody(body_with(static_cast<int>(max_depth) + 1), limits);
      EXPECT_EQ(over.status.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(over.status.message()), HasSubstr("max_depth"));
      EXPECT_TRUE(over.batch.spans.empty());
    }
  }
}

TEST(OtlpJsonDecoderTest, DeepJsonAnywhereIsRefusedWithoutCrashing) {
  for (int depth : {200, 100000}) {
    const std::string deep_unknown =
        JsonRequestWithSpan(R"("x":)" + std::string(depth, '[') + std::string(depth, ']'));
    JsonDecodeRun run = DecodeJsonBody(deep_unknown);
    EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(run.status.message()), HasSubstr("nesting"));
  }
  // Far deeper AnyValue nesting than any limit allows.
  JsonDecodeRun run = DecodeJsonBody(JsonRequestWithSpan(R"("attributes":[{"key":"deep","value":)" +
                                                         JsonNestedValue(5000) + "}]"));
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
}

// Bodies over 1 MiB take a one-off parser, smaller ones the thread's reused parser; limits
// change between calls. All must decode the same.
TEST(OtlpJsonDecoderTest, LargeAndSmallBodiesInTurn) {
  const std::string span =
      "{" + JsonSpanFields(R"("status":{"message":")" + std::string(900, 'm') + R"("})") + "}";
  std::string spans = span;
  for (int i = 1; i < 1500; ++i) spans += "," + span;
  const std::string large = JsonRequestWithSpans(spans);
  ASSERT_GT(large.size(), size_t{1} << 20);
  const std::string small = JsonRequestWithSpan();
  DecodeLimits shallow;
  shallow.max_depth = 1;
  for (int round = 0; round < 3; ++round) {
    JsonDecodeRun large_run = DecodeJsonBody(large, round == 1 ? shallow : DecodeLimits{});
    ASSERT_TRUE(large_run.status.ok()) << large_run.status;
    EXPECT_EQ(large_run.batch.spans.size(), 1500u);
    JsonDecodeRun small_run = DecodeJsonBody(small, round == 2 ? shallow : DecodeLimits{});
    ASSERT_TRUE(small_run.status.ok()) << small_run.status;
    EXPECT_EQ(small_run.Str(small_run.OnlySpan().name), "GET /");
    JsonDecodeRun deep = DecodeJsonBody(
        JsonRequestWithSpan(R"("attributes":[{"key":"d","value":)" + JsonNestedValue(2) + "}]"),
        shallow);
    EXPECT_EQ(deep.status.code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(OtlpJsonDecoderTest, ConcurrentDecodesAreIndependent) {
  std::vector<std::string> bodies;
  for (int t = 0; t < 4; ++t) {
    bodies.push_back(JsonRequestWithSpan(R"("name":"thread)" + std::to_string(t) + R"(")"));
  }
  std::vector<int> mismatches(bodies.size(), 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < bodies.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        JsonDecodeRun run = DecodeJsonBody(bodies[t]);
        if (!run.status.ok() || run.batch.spans.size() != 1 ||
            run.Str(run.batch.spans[0].name) != "thread" + std::to_string(t)) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int count : mismatches) EXPECT_EQ(count, 0);
}

TEST(OtlpJsonDecoderTest, RepeatedFieldsConcatenateAndScalarsTakeTheLast) {
  const std::string span = "{" + JsonSpanFields() + "}";
  const std::string body = R"({"resourceSpans":[{"scopeSpans":[{"spans":[)" + span +
                           R"(],"spans":[)" + span + R"(]}]}],"resourceSpans":[{"scopeSpans":[)" +
                           R"({"spans":[{)" + JsonSpanFields(R"("name":"second")") + "}]}]}]}";
  JsonDecodeRun run = DecodeJsonBody(body);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.batch.spans.size(), 3u);
  EXPECT_EQ(run.Str(run.batch.spans[2].name), "second");
}

}  // namespace
}  // namespace traceslo::ingest
