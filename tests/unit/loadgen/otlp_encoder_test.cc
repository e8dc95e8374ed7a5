// The wire: what the encoders write is what traceslo's decoders read, span for span; the
// readers of receivers' answers; gzip.
#include "services/loadgen/otlp_encoder.h"

#include <gtest/gtest.h>

#include <random>

#include "services/ingest/gzip.h"
#include "services/loadgen/gzip.h"
#include "services/loadgen/incidents.h"
#include "services/loadgen/otlp_response.h"
#include "tests/unit/loadgen/loadgen_test_util.h"

namespace traceslo::loadgen {
namespace {

using testing_util::DecodeAll;

std::vector<GeneratedTrace> Traces(size_t count) {
  std::mt19937_64 engine(5);
  Random random(engine);
  TraceGenerator generator(TopologyOptions{});
  absl::StatusOr<Incident> burst = ParseIncidentFlag(
      "error_burst:service=payment,ratio=0.5,message=\"ünïcode \\\"quoted\\\" \\\\ {int}\"", "");
  EXPECT_TRUE(burst.ok());
  const std::vector<Incident> incidents = {*burst};
  const Effects effects = EffectsAt(incidents, std::chrono::nanoseconds(0));
  std::vector<uint64_t> affected(1, 0);
  std::vector<GeneratedTrace> out;
  for (size_t i = 0; i < count; ++i) {
    out.push_back(generator.Generate(i, random, effects, affected));
    out.back().anchor_unix_nano = 1'700'000'000'000'000'000 + static_cast<int64_t>(i) * 1'000'000;
  }
  return out;
}

std::vector<BatchSpan> Batch(const std::vector<GeneratedTrace>& traces) {
  std::vector<BatchSpan> batch;
  for (const GeneratedTrace& t : traces) {
    for (const GeneratedSpan& s : t.spans) batch.push_back(BatchSpan{&t, &s});
  }
  OrderForWire(batch);
  return batch;
}

void ExpectSame(const std::vector<BatchSpan>& sent, const SpanBatch& got) {
  ASSERT_EQ(got.spans.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    const GeneratedTrace& t = *sent[i].trace;
    const GeneratedSpan& s = *sent[i].span;
    const Span& d = got.spans[i];
    ASSERT_EQ(d.trace_id, t.trace_id);
    EXPECT_EQ(d.span_id, s.span_id);
    EXPECT_EQ(d.parent_span_id, s.parent_span_id);
    EXPECT_EQ(got.Str(d.service), kServiceNames[s.service]);
    EXPECT_EQ(got.Str(d.name), s.name);
    EXPECT_EQ(static_cast<int>(d.kind), static_cast<int>(s.kind));
    EXPECT_EQ(d.start_unix_nano, static_cast<uint64_t>(t.StartUnixNano(s)));
    EXPECT_EQ(d.end_unix_nano, static_cast<uint64_t>(t.EndUnixNano(s)));
    EXPECT_EQ(static_cast<int>(d.status), static_cast<int>(s.status));
    EXPECT_EQ(got.Str(d.status_message), s.status_message);
    EXPECT_EQ(d.http_status, s.http_status);
    EXPECT_EQ(d.rpc_status, s.rpc_status);
    if (s.exception) {
      EXPECT_EQ(got.Str(d.exception_type), s.exception->type);
      EXPECT_EQ(got.Str(d.exception_message), s.exception->message);
      EXPECT_FALSE(got.Str(d.exception_stacktrace).empty());
    } else {
      EXPECT_TRUE(got.Str(d.exception_type).empty());
    }
  }
}

TEST(OtlpEncoderTest, TracesloDecodesProtobufSpanForSpan) {
  const std::vector<GeneratedTrace> traces = Traces(60);
  const std::vector<BatchSpan> batch = Batch(traces);
  ExpectSame(batch, DecodeAll({EncodeProtobuf(batch)}, Encoding::kProtobuf));
}

TEST(OtlpEncoderTest, TracesloDecodesJsonSpanForSpan) {
  const std::vector<GeneratedTrace> traces = Traces(60);
  const std::vector<BatchSpan> batch = Batch(traces);
  const std::string json = EncodeJson(batch);
  EXPECT_NE(json.find("\"intValue\":\"200\""), std::string::npos) << "64-bit ints as strings";
  EXPECT_NE(json.find("\"kind\":2"), std::string::npos) << "enums as integers";
  ExpectSame(batch, DecodeAll({json}, Encoding::kJson));
}

TEST(OtlpEncoderTest, OneResourcePerServiceInFirstSeenOrder) {
  const std::vector<GeneratedTrace> traces = Traces(5);
  std::vector<BatchSpan> batch;
  for (const GeneratedTrace& t : traces) {
    for (const GeneratedSpan& s : t.spans) batch.push_back(BatchSpan{&t, &s});
  }
  const std::vector<uint32_t> order = WireOrder(batch);
  ASSERT_EQ(order.size(), batch.size());
  EXPECT_EQ(order[0], 0u) << "the first span's service comes first";
  std::set<uint8_t> done;
  uint8_t current = batch[order[0]].span->service;
  for (uint32_t i = 1; i < order.size(); ++i) {
    const uint8_t service = batch[order[i]].span->service;
    if (service != current) {
      EXPECT_TRUE(done.insert(current).second) << "each service is one run";
      current = service;
    } else {
      EXPECT_LT(order[i - 1], order[i]) << "batch order inside a service";
    }
  }
  EXPECT_FALSE(done.contains(current));
}

TEST(OtlpEncoderTest, LongNestedMessagesKeepMinimalLengths) {
  // A status message long enough that the span, scope and resource lengths take 2-3 bytes.
  GeneratedTrace trace;
  trace.trace_id[15] = 1;
  trace.anchor_unix_nano = 1'700'000'000'000'000'000;
  GeneratedSpan& span = trace.spans.emplace_back();
  span.span_id = 7;
  span.name = "x";
  span.kind = SpanKind::kServer;
  span.status = SpanStatus::kError;
  span.status_message = std::string(1000, 'm');
  const std::vector<BatchSpan> batch = {{&trace, &trace.spans[0]}};
  const SpanBatch got = DecodeAll({EncodeProtobuf(batch)}, Encoding::kProtobuf);
  ASSERT_EQ(got.spans.size(), 1u);
  EXPECT_EQ(got.Str(got.spans[0].status_message).size(), 1000u);
}

TEST(OtlpEncoderTest, GzipRoundTrip) {
  const std::vector<GeneratedTrace> traces = Traces(20);
  const std::string body = EncodeProtobuf(Batch(traces));
  const std::string compressed = Gzip(body);
  EXPECT_LT(compressed.size(), body.size());
  std::string inflated;
  ASSERT_TRUE(ingest::Gunzip(compressed, 1 << 26, inflated).ok());
  EXPECT_EQ(inflated, body);
}

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Field(int number, std::string_view bytes) {
  return Varint(static_cast<uint64_t>(number) << 3 | 2) + Varint(bytes.size()) + std::string(bytes);
}
std::string VarintField(int number, uint64_t v) {
  return Varint(static_cast<uint64_t>(number) << 3) + Varint(v);
}

TEST(OtlpResponseTest, ReadsPartialSuccess) {
  EXPECT_EQ(RejectedSpansFromProtobuf(""), 0);
  EXPECT_EQ(RejectedSpansFromProtobuf(Field(1, VarintField(1, 3) + Field(2, "bad ids"))), 3);
  EXPECT_EQ(RejectedSpansFromProtobuf("\x0a\x05"), std::nullopt) << "truncated";
  EXPECT_EQ(RejectedSpansFromJson(""), 0);
  EXPECT_EQ(RejectedSpansFromJson("{}"), 0);
  EXPECT_EQ(RejectedSpansFromJson(R"({"partialSuccess":{"rejectedSpans":"4","errorMessage":"x"}})"),
            4);
  EXPECT_EQ(RejectedSpansFromJson(R"({"partialSuccess":{"rejectedSpans":5}})"), 5);
  EXPECT_EQ(RejectedSpansFromJson("{"), std::nullopt);
}

TEST(OtlpResponseTest, ReadsRetryInfoAndRetryAfter) {
  const std::string duration = VarintField(1, 2) + VarintField(2, 500'000'000);
  const std::string retry_info = Field(1, duration);
  const std::string any =
      Field(1, "type.googleapis.com/google.rpc.RetryInfo") + Field(2, retry_info);
  const std::string other = Field(1, "type.googleapis.com/google.rpc.DebugInfo") + Field(2, "zz");
  const std::string status =
      VarintField(1, 14) + Field(2, "queue full") + Field(3, other) + Field(3, any);
  EXPECT_EQ(RetryDelayFromRpcStatus(status), std::chrono::milliseconds(2500));
  EXPECT_EQ(RetryDelayFromRpcStatus(VarintField(1, 14)), std::nullopt);
  EXPECT_EQ(RetryDelayFromRpcStatus(""), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("1"), std::chrono::milliseconds(1000));
  EXPECT_EQ(ParseRetryAfter(" 30 "), std::chrono::milliseconds(30'000));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"), std::nullopt);
  EXPECT_EQ(ParseRetryAfter(""), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-1"), std::nullopt);
}

}  // namespace
}  // namespace traceslo::loadgen
