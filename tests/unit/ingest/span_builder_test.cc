#include "services/ingest/span_builder.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/common/span.h"

namespace traceslo::ingest {
namespace {

constexpr std::string_view kTraceIdHex = "0102030405060708090a0b0c0d0e0f10";
constexpr std::string_view kSpanIdHex = "1112131415161718";

class SpanBuilderTest : public ::testing::Test {
 protected:
  // Starts a span with valid ids and times, ready for the test's setters.
  void BeginValidSpan() {
    builder_.BeginSpan();
    builder_.SetTraceIdHex(kTraceIdHex);
    builder_.SetSpanIdHex(kSpanIdHex);
    builder_.SetTimes(100, 200);
  }
  std::string_view Str(StrRef ref) const { return batch_.Str(ref); }

  SpanBatch batch_;
  DecodeResult result_;
  SpanBuilder builder_{batch_, result_};
};

TEST_F(SpanBuilderTest, BuildsSpanFromRawIds) {
  builder_.BeginResource();
  builder_.SetServiceName("checkout");
  builder_.BeginSpan();
  builder_.SetTraceId(
      std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16));
  builder_.SetSpanId(std::string("\x11\x12\x13\x14\x15\x16\x17\x18", 8));
  builder_.SetParentSpanId(std::string("\x00\x00\x00\x00\x00\x00\x01\x02", 8));
  builder_.SetName("GET /cart");
  builder_.SetKind(2);
  builder_.SetStartTime(1000);
  builder_.SetEndTime(2500);
  builder_.SetStatus(2, "boom");
  builder_.EndSpan(0);

  ASSERT_EQ(batch_.spans.size(), 1u);
  const Span& span = batch_.spans[0];
  EXPECT_EQ(span.trace_id, (TraceId{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
  EXPECT_EQ(span.span_id, 0x1112131415161718u);
  EXPECT_EQ(span.parent_span_id, 0x0102u);
  EXPECT_EQ(Str(span.service), "checkout");
  EXPECT_EQ(Str(span.name), "GET /cart");
  EXPECT_EQ(span.kind, SpanKind::kServer);
  EXPECT_EQ(span.start_unix_nano, 1000u);
  EXPECT_EQ(span.end_unix_nano, 2500u);
  EXPECT_EQ(span.status, StatusCode::kError);
  EXPECT_EQ(Str(span.status_message), "boom");
  EXPECT_EQ(span.http_status, 0);
  EXPECT_EQ(span.rpc_status, -1);
  EXPECT_EQ(result_.accepted, 1u);
  EXPECT_EQ(result_.TotalRejected(), 0u);
  EXPECT_TRUE(result_.first_error.empty());
}

TEST_F(SpanBuilderTest, UnknownServiceIsStoredOnceForManyResourcesWithoutServiceName) {
  for (int resource = 0; resource < 5; ++resource) {
    builder_.BeginResource();
    BeginValidSpan();
    builder_.EndSpan(resource);
  }
  ASSERT_EQ(batch_.spans.size(), 5u);
  for (const Span& span : batch_.spans) EXPECT_EQ(Str(span.service), "unknown_service");
  // The arena holds the name once (spans here have no other strings).
  EXPECT_EQ(batch_.strings, "unknown_service");
}

TEST_F(SpanBuilderTest, HexIdsAcceptUpperAndLowerCase) {
  builder_.BeginSpan();
  builder_.SetTraceIdHex("0102030405060708090A0B0C0D0E0Ff0");
  builder_.SetSpanIdHex("AbCdEf0123456789");
  builder_.SetParentSpanIdHex("00000000000000FF");
  builder_.SetTimes(1, 1);
  builder_.EndSpan(0);
  ASSERT_EQ(batch_.spans.size(), 1u);
  EXPECT_EQ(batch_.spans[0].trace_id,
            (TraceId{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xf0}));
  EXPECT_EQ(batch_.spans[0].span_id, 0xabcdef0123456789u);
  EXPECT_EQ(batch_.spans[0].parent_span_id, 0xffu);
}

TEST_F(SpanBuilderTest, EmptyParentHexIsRoot) {
  BeginValidSpan();
  builder_.SetParentSpanIdHex("");
  builder_.EndSpan(0);
  ASSERT_EQ(batch_.spans.size(), 1u);
  EXPECT_EQ(batch_.spans[0].parent_span_id, 0u);
}

struct BadIdCase {
  const char* name;
  std::string_view trace_id;
  std::string_view span_id;
  std::string_view parent_span_id;
  SpanRejectReason reason;
};

class SpanBuilderBadHexIdTest : public ::testing::TestWithParam<BadIdCase> {};

TEST_P(SpanBuilderBadHexIdTest, RejectsSpan) {
  const BadIdCase& c = GetParam();
  SpanBatch batch;
  DecodeResult result;
  SpanBuilder builder(batch, result);
  builder.BeginSpan();
  builder.SetTraceIdHex(c.trace_id);
  builder.SetSpanIdHex(c.span_id);
  builder.SetParentSpanIdHex(c.parent_span_id);
  builder.SetTimes(1, 2);
  builder.EndSpan(7);
  EXPECT_TRUE(batch.spans.empty());
  EXPECT_EQ(result.accepted, 0u);
  EXPECT_EQ(result.TotalRejected(), 1u);
  EXPECT_EQ(result.rejected[static_cast<size_t>(c.reason)], 1u);
  EXPECT_TRUE(result.first_error.starts_with("span 7: ")) << result.first_error;
}

INSTANTIATE_TEST_SUITE_P(
    Ids, SpanBuilderBadHexIdTest,
    ::testing::Values(BadIdCase{"TraceOddLength", "0102030405060708090a0b0c0d0e0f1", kSpanIdHex, "",
                                SpanRejectReason::kInvalidTraceId},
                      BadIdCase{"TraceNonHex", "0102030405060708090a0b0c0d0e0fzz", kSpanIdHex, "",
                                SpanRejectReason::kInvalidTraceId},
                      BadIdCase{"TraceTooLong", "0102030405060708090a0b0c0d0e0f1011", kSpanIdHex,
                                "", SpanRejectReason::kInvalidTraceId},
                      BadIdCase{"TraceAllZero", "00000000000000000000000000000000", kSpanIdHex, "",
                                SpanRejectReason::kInvalidTraceId},
                      BadIdCase{"TraceEmpty", "", kSpanIdHex, "",
                                SpanRejectReason::kInvalidTraceId},
                      BadIdCase{"SpanOddLength", kTraceIdHex, "111213141516171", "",
                                SpanRejectReason::kInvalidSpanId},
                      BadIdCase{"SpanNonHex", kTraceIdHex, "11121314151617g8", "",
                                SpanRejectReason::kInvalidSpanId},
                      BadIdCase{"SpanZero", kTraceIdHex, "0000000000000000", "",
                                SpanRejectReason::kInvalidSpanId},
                      BadIdCase{"SpanSigned", kTraceIdHex, "-111213141516171", "",
                                SpanRejectReason::kInvalidSpanId},
                      BadIdCase{"ParentOddLength", kTraceIdHex, kSpanIdHex, "123",
                                SpanRejectReason::kInvalidParentSpanId},
                      BadIdCase{"ParentNonHex", kTraceIdHex, kSpanIdHex, "xx12131415161718",
                                SpanRejectReason::kInvalidParentSpanId}),
    [](const ::testing::TestParamInfo<BadIdCase>& info) { return std::string(info.param.name); });

TEST_F(SpanBuilderTest, MissingIdsAreRejected) {
  builder_.BeginSpan();
  builder_.SetSpanIdHex(kSpanIdHex);
  builder_.EndSpan(0);
  builder_.BeginSpan();
  builder_.SetTraceIdHex(kTraceIdHex);
  builder_.EndSpan(1);
  EXPECT_TRUE(batch_.spans.empty());
  EXPECT_EQ(result_.rejected[static_cast<size_t>(SpanRejectReason::kInvalidTraceId)], 1u);
  EXPECT_EQ(result_.rejected[static_cast<size_t>(SpanRejectReason::kInvalidSpanId)], 1u);
  EXPECT_EQ(result_.first_error, "span 0: trace_id must be 16 bytes and not all zero");
}

TEST_F(SpanBuilderTest, RawIdLengthsAreChecked) {
  builder_.BeginSpan();
  builder_.SetTraceId(std::string(15, '\x01'));
  builder_.SetSpanIdHex(kSpanIdHex);
  builder_.EndSpan(0);
  builder_.BeginSpan();
  builder_.SetTraceIdHex(kTraceIdHex);
  builder_.SetSpanId(std::string(9, '\x01'));
  builder_.EndSpan(1);
  builder_.BeginSpan();
  builder_.SetTraceIdHex(kTraceIdHex);
  builder_.SetSpanIdHex(kSpanIdHex);
  builder_.SetParentSpanId(std::string(4, '\x01'));
  builder_.EndSpan(2);
  EXPECT_TRUE(batch_.spans.empty());
  for (size_t reason = 0; reason < 3; ++reason) EXPECT_EQ(result_.rejected[reason], 1u) << reason;
  EXPECT_EQ(result_.first_error, "span 0: trace_id must be 16 bytes and not all zero");
}

TEST_F(SpanBuilderTest, EndBeforeStartIsRejectedAndFirstErrorKept) {
  BeginValidSpan();
  builder_.SetTimes(200, 199);
  builder_.EndSpan(3);
  BeginValidSpan();
  builder_.SetParentSpanIdHex("12");
  builder_.EndSpan(4);
  BeginValidSpan();
  builder_.EndSpan(5);
  ASSERT_EQ(batch_.spans.size(), 1u);
  EXPECT_EQ(result_.accepted, 1u);
  EXPECT_EQ(result_.rejected[static_cast<size_t>(SpanRejectReason::kEndBeforeStart)], 1u);
  EXPECT_EQ(result_.rejected[static_cast<size_t>(SpanRejectReason::kInvalidParentSpanId)], 1u);
  EXPECT_EQ(result_.first_error, "span 3: end_time_unix_nano is before start_time_unix_nano");
}

TEST_F(SpanBuilderTest, EqualStartAndEndIsAccepted) {
  BeginValidSpan();
  builder_.SetTimes(5, 5);
  builder_.EndSpan(0);
  EXPECT_EQ(batch_.spans.size(), 1u);
}

TEST_F(SpanBuilderTest, KindOutOfRangeIsUnspecified) {
  const std::pair<int64_t, SpanKind> cases[] = {
      {0, SpanKind::kUnspecified},
      {1, SpanKind::kInternal},
      {2, SpanKind::kServer},
      {3, SpanKind::kClient},
      {4, SpanKind::kProducer},
      {5, SpanKind::kConsumer},
      {6, SpanKind::kUnspecified},
      {-1, SpanKind::kUnspecified},
      {1LL << 40, SpanKind::kUnspecified},
  };
  for (const auto& [kind, expected] : cases) {
    BeginValidSpan();
    builder_.SetKind(kind);
    builder_.EndSpan(0);
    ASSERT_FALSE(batch_.spans.empty());
    EXPECT_EQ(batch_.spans.back().kind, expected) << kind;
  }
}

TEST_F(SpanBuilderTest, StatusCodes) {
  const std::pair<int64_t, StatusCode> cases[] = {
      {0, StatusCode::kUnset}, {1, StatusCode::kOk},     {2, StatusCode::kError},
      {3, StatusCode::kUnset}, {-1, StatusCode::kUnset},
  };
  for (const auto& [code, expected] : cases) {
    BeginValidSpan();
    builder_.SetStatusCode(code);
    builder_.EndSpan(0);
    ASSERT_FALSE(batch_.spans.empty());
    EXPECT_EQ(batch_.spans.back().status, expected) << code;
    EXPECT_EQ(batch_.spans.back().status_message.size, 0u);
  }
}

TEST_F(SpanBuilderTest, ServiceNamePerResourceAndUnknownDefault) {
  BeginValidSpan();  // no resource at all
  builder_.EndSpan(0);
  builder_.BeginResource();
  builder_.SetServiceName("a");
  BeginValidSpan();
  builder_.EndSpan(1);
  builder_.BeginResource();  // no service.name: not inherited from the previous resource
  BeginValidSpan();
  builder_.EndSpan(2);
  builder_.BeginResource();
  builder_.SetServiceName("");  // empty counts as absent
  BeginValidSpan();
  builder_.EndSpan(3);
  builder_.BeginResource();
  builder_.SetServiceName(std::string(300, 's'));
  BeginValidSpan();
  builder_.EndSpan(4);
  ASSERT_EQ(batch_.spans.size(), 5u);
  EXPECT_EQ(Str(batch_.spans[0].service), "unknown_service");
  EXPECT_EQ(Str(batch_.spans[1].service), "a");
  EXPECT_EQ(Str(batch_.spans[2].service), "unknown_service");
  EXPECT_EQ(Str(batch_.spans[3].service), "unknown_service");
  EXPECT_EQ(Str(batch_.spans[4].service), std::string(kMaxNameBytes, 's'));
}

TEST_F(SpanBuilderTest, StatusAttributes) {
  struct Case {
    std::string_view key;
    std::string_view string_value;  // used when non-empty
    int64_t int_value;
    int32_t http;
    int32_t rpc;
  };
  const Case cases[] = {
      {"http.response.status_code", "", 503, 503, -1},
      {"http.status_code", "", 404, 404, -1},
      {"http.status_code", "503", 0, 503, -1},
      {"http.response.status_code", "abc", 0, 0, -1},
      {"http.status_code", "", 0, 0, -1},
      {"http.status_code", "", 1000, 0, -1},
      {"http.status_code", "", -500, 0, -1},
      {"rpc.grpc.status_code", "", 14, 0, 14},
      {"rpc.grpc.status_code", "", 0, 0, 0},
      {"rpc.grpc.status_code", "", 17, 0, -1},
      {"rpc.response.status_code", "UNAVAILABLE", 0, 0, 14},
      {"rpc.response.status_code", "UNAUTHENTICATED", 0, 0, 16},
      {"rpc.response.status_code", "unavailable", 0, 0, -1},
      {"rpc.response.status_code", "5", 0, 0, 5},
      {"rpc.status_code", "", 2, 0, 2},
      {"http.route", "503", 0, 0, -1},
  };
  for (const Case& c : cases) {
    BeginValidSpan();
    if (c.string_value.empty()) {
      builder_.OnIntAttribute(c.key, c.int_value);
    } else {
      builder_.OnStringAttribute(c.key, c.string_value);
    }
    builder_.EndSpan(0);
    ASSERT_FALSE(batch_.spans.empty());
    EXPECT_EQ(batch_.spans.back().http_status, c.http) << c.key << "=" << c.string_value;
    EXPECT_EQ(batch_.spans.back().rpc_status, c.rpc) << c.key << "=" << c.string_value;
  }
}

TEST_F(SpanBuilderTest, FirstExceptionEventWinsOverAttributes) {
  BeginValidSpan();
  builder_.OnStringAttribute("exception.type", "AttrType");
  builder_.OnStringAttribute("exception.stacktrace", "attr trace");
  builder_.BeginEvent("log");
  builder_.OnEventStringAttribute("exception.type", "NotAnException");
  builder_.EndEvent();
  builder_.BeginEvent("exception");
  builder_.OnEventStringAttribute("exception.type", "IOError");
  builder_.OnEventStringAttribute("exception.message", "disk full");
  builder_.EndEvent();
  builder_.BeginEvent("exception");
  builder_.OnEventStringAttribute("exception.type", "Second");
  builder_.OnEventStringAttribute("exception.stacktrace", "second trace");
  builder_.EndEvent();
  builder_.OnStringAttribute("exception.message", "late attribute");
  builder_.EndSpan(0);
  ASSERT_EQ(batch_.spans.size(), 1u);
  const Span& span = batch_.spans[0];
  EXPECT_EQ(Str(span.exception_type), "IOError");
  EXPECT_EQ(Str(span.exception_message), "disk full");
  EXPECT_EQ(Str(span.exception_stacktrace), "");  // the event had none; attributes don't mix in
}

TEST_F(SpanBuilderTest, ExceptionAttributesUsedWithoutEvent) {
  BeginValidSpan();
  builder_.OnStringAttribute("exception.type", "ValueError");
  builder_.OnStringAttribute("exception.message", "bad");
  builder_.OnStringAttribute("exception.stacktrace", std::string(5000, 't'));
  builder_.OnStringAttribute("exception.escaped", "true");
  builder_.EndSpan(0);
  ASSERT_EQ(batch_.spans.size(), 1u);
  const Span& span = batch_.spans[0];
  EXPECT_EQ(Str(span.exception_type), "ValueError");
  EXPECT_EQ(Str(span.exception_message), "bad");
  EXPECT_EQ(Str(span.exception_stacktrace), std::string(kMaxStacktraceBytes, 't'));
}

TEST_F(SpanBuilderTest, ExceptionStateDoesNotLeakIntoNextSpan) {
  BeginValidSpan();
  builder_.BeginEvent("exception");
  builder_.OnEventStringAttribute("exception.type", "IOError");
  builder_.EndEvent();
  builder_.EndSpan(0);
  BeginValidSpan();
  builder_.OnStringAttribute("exception.type", "FromAttribute");
  builder_.EndSpan(1);
  ASSERT_EQ(batch_.spans.size(), 2u);
  EXPECT_EQ(Str(batch_.spans[1].exception_type), "FromAttribute");
}

TEST_F(SpanBuilderTest, StringsAreTruncated) {
  BeginValidSpan();
  builder_.SetName(std::string(1000, 'n'));
  builder_.SetStatus(2, std::string(5000, 'm'));
  builder_.BeginEvent("exception");
  builder_.OnEventStringAttribute("exception.type", std::string(5000, 'y'));
  builder_.OnEventStringAttribute("exception.message", std::string(5000, 'x'));
  builder_.OnEventStringAttribute("exception.stacktrace", std::string(5000, 's'));
  builder_.EndEvent();
  builder_.EndSpan(0);
  ASSERT_EQ(batch_.spans.size(), 1u);
  const Span& span = batch_.spans[0];
  EXPECT_EQ(span.name.size, kMaxNameBytes);
  EXPECT_EQ(span.status_message.size, kMaxMessageBytes);
  EXPECT_EQ(span.exception_type.size, kMaxMessageBytes);
  EXPECT_EQ(span.exception_message.size, kMaxMessageBytes);
  EXPECT_EQ(span.exception_stacktrace.size, kMaxStacktraceBytes);
}

TEST_F(SpanBuilderTest, RejectReasonNames) {
  EXPECT_EQ(SpanRejectReasonName(SpanRejectReason::kInvalidTraceId), "invalid_trace_id");
  EXPECT_EQ(SpanRejectReasonName(SpanRejectReason::kInvalidSpanId), "invalid_span_id");
  EXPECT_EQ(SpanRejectReasonName(SpanRejectReason::kInvalidParentSpanId), "invalid_parent_span_id");
  EXPECT_EQ(SpanRejectReasonName(SpanRejectReason::kEndBeforeStart), "end_before_start");
}

}  // namespace
}  // namespace traceslo::ingest
