// OTLP/HTTP status mapping, auth and counting, through the handler seam with a fake sink
// (the wire-level twins of these cases run against the real binary in tests/integration).
#include "services/ingest/otlp_http_handler.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <thread>

#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "prometheus/registry.h"
#include "tests/fakes/fake_span_sink.h"

namespace traceslo::ingest {
namespace {

namespace otlp = opentelemetry::proto::collector::trace::v1;

std::string ValidRequest(int spans, int invalid_spans = 0) {
  otlp::ExportTraceServiceRequest request;
  auto* resource_spans = request.add_resource_spans();
  auto* attr = resource_spans->mutable_resource()->add_attributes();
  attr->set_key("service.name");
  attr->mutable_value()->set_string_value("checkout");
  auto* scope = resource_spans->add_scope_spans();
  for (int i = 0; i < spans + invalid_spans; ++i) {
    auto* span = scope->add_spans();
    std::string trace_id(16, '\0');
    trace_id[15] = static_cast<char>(i + 1);
    span->set_trace_id(i < spans ? trace_id : std::string(3, 'x'));
    span->set_span_id(std::string(7, '\0') + static_cast<char>(i + 1));
    span->set_name("GET /cart");
    span->set_start_time_unix_nano(1000);
    span->set_end_time_unix_nano(2000);
  }
  return request.SerializeAsString();
}

std::string Gzip(const std::string& data) {
  z_stream stream{};
  deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

double CounterValue(prometheus::Registry& registry, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> got;
      for (const auto& label : metric.label) got[label.name] = label.value;
      if (got == labels) return metric.counter.value;
    }
  }
  ADD_FAILURE() << "no series " << name;
  return -1;
}

class OtlpHttpHandlerTest : public ::testing::Test {
 protected:
  explicit OtlpHttpHandlerTest(std::vector<std::string> tokens = {})
      : auth_(tokens),
        ingest_(IngestOptions{.max_request_bytes = 64 * 1024}, auth_, sink_, registry_),
        handler_(ingest_) {}

  http::Response Post(std::string body, std::string content_type = "application/x-protobuf",
                      std::vector<std::pair<std::string, std::string>> extra = {}) {
    http::Request request;
    request.method = "POST";
    request.target = "/v1/traces";
    request.headers = {{"content-type", content_type}};
    for (auto& h : extra) request.headers.push_back(h);
    request.body = std::move(body);
    return handler_.Handle(request);
  }
  double Requests(const std::string& code) {
    return CounterValue(registry_, "traceslo_otlp_requests_total",
                        {{"transport", "http"}, {"code", code}});
  }
  size_t SpansInSink() {
    size_t n = 0;
    for (const auto& batch : sink_.batches()) n += batch.spans.size();
    return n;
  }

  prometheus::Registry registry_;
  fakes::FakeSpanSink sink_;
  BearerAuth auth_;
  OtlpIngest ingest_;
  OtlpHttpHandler handler_;
};

std::string RpcMessage(const http::Response& response) {
  google::rpc::Status status;
  EXPECT_TRUE(status.ParseFromString(response.body));
  return status.message();
}

TEST_F(OtlpHttpHandlerTest, ProtobufRequestIsQueuedAndCounted) {
  http::Response response = Post(ValidRequest(5));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/x-protobuf");
  otlp::ExportTraceServiceResponse message;
  ASSERT_TRUE(message.ParseFromString(response.body));
  EXPECT_FALSE(message.has_partial_success());
  EXPECT_EQ(SpansInSink(), 5u);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_received_total", {{"transport", "http"}}), 5);
  EXPECT_EQ(Requests("200"), 1);
}

TEST_F(OtlpHttpHandlerTest, InvalidSpansArePartialSuccessAndValidOnesKept) {
  http::Response response = Post(ValidRequest(3, 2));
  EXPECT_EQ(response.status, 200);
  otlp::ExportTraceServiceResponse message;
  ASSERT_TRUE(message.ParseFromString(response.body));
  EXPECT_EQ(message.partial_success().rejected_spans(), 2);
  EXPECT_NE(message.partial_success().error_message().find("trace_id"), std::string::npos);
  EXPECT_EQ(SpansInSink(), 3u);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_rejected_total",
                         {{"transport", "http"}, {"reason", "invalid_trace_id"}}),
            2);
}

TEST_F(OtlpHttpHandlerTest, JsonPartialSuccessIsJson) {
  const std::string body =
      R"({"resourceSpans":[{"scopeSpans":[{"spans":[)"
      R"({"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",)"
      R"("startTimeUnixNano":"2","endTimeUnixNano":"1"}]}]}]})";
  http::Response response = Post(body, "application/json; charset=utf-8");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_NE(response.body.find(R"("rejectedSpans":"1")"), std::string::npos) << response.body;
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_rejected_total",
                         {{"transport", "http"}, {"reason", "end_before_start"}}),
            1);
}

TEST_F(OtlpHttpHandlerTest, UndecodableBodyIs400WithStatusBody) {
  std::string body = ValidRequest(2);
  body.resize(body.size() - 3);
  http::Response response = Post(body);
  EXPECT_EQ(response.status, 400);
  EXPECT_FALSE(RpcMessage(response).empty());
  http::Response json = Post("{not json", "application/json");
  EXPECT_EQ(json.status, 400);
  EXPECT_NE(json.body.find("\"code\":3"), std::string::npos) << json.body;
  EXPECT_EQ(Requests("400"), 2);
  EXPECT_EQ(SpansInSink(), 0u);
}

TEST_F(OtlpHttpHandlerTest, WrongPathMethodAndMediaType) {
  http::Request request;
  request.method = "GET";
  request.target = "/v1/traces";
  http::Response get = handler_.Handle(request);
  EXPECT_EQ(get.status, 405);
  ASSERT_EQ(get.headers.size(), 1u);
  EXPECT_EQ(get.headers[0], (std::pair<std::string, std::string>{"Allow", "POST"}));
  request.method = "POST";
  request.target = "/v1/metrics";
  EXPECT_EQ(handler_.Handle(request).status, 404);
  EXPECT_EQ(Post(ValidRequest(1), "text/plain").status, 415);
  EXPECT_EQ(Post(ValidRequest(1), "application/x-protobuf", {{"content-encoding", "br"}}).status,
            415);
  EXPECT_EQ(Requests("405"), 1);
  EXPECT_EQ(Requests("404"), 1);
  EXPECT_EQ(Requests("415"), 2);
}

TEST_F(OtlpHttpHandlerTest, GzipBodiesAreInflatedWithinTheLimit) {
  EXPECT_EQ(
      Post(Gzip(ValidRequest(4)), "application/x-protobuf", {{"content-encoding", "gzip"}}).status,
      200);
  EXPECT_EQ(SpansInSink(), 4u);
  // 64 MiB of zeros compress to ~64 KiB; inflating stops at the 64 KiB limit.
  http::Response bomb = Post(Gzip(std::string(64 << 20, '\0')), "application/x-protobuf",
                             {{"content-encoding", "gzip"}});
  EXPECT_EQ(bomb.status, 413);
  EXPECT_EQ(
      Post("not gzip at all", "application/x-protobuf", {{"content-encoding", "gzip"}}).status,
      400);
}

TEST_F(OtlpHttpHandlerTest, OversizedBodyIs413) {
  http::Request request;
  request.method = "POST";
  request.target = "/v1/traces";
  request.headers = {{"content-type", "application/x-protobuf"}};
  request.body_too_large = true;
  EXPECT_EQ(handler_.Handle(request).status, 413);
  EXPECT_EQ(Post(std::string(64 * 1024 + 1, '\0')).status, 413);
  EXPECT_EQ(Requests("413"), 2);
}

TEST_F(OtlpHttpHandlerTest, FullQueueIs503WithRetryAfterAndCountsTheSpans) {
  sink_.RefuseWith(absl::ResourceExhaustedError("queue full"));
  http::Response response = Post(ValidRequest(7));
  EXPECT_EQ(response.status, 503);
  bool retry_after = false;
  for (const auto& [name, value] : response.headers) retry_after |= name == "Retry-After";
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_rejected_total",
                         {{"transport", "http"}, {"reason", "queue_full"}}),
            7);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_received_total", {{"transport", "http"}}), 0);
  sink_.RefuseWith(absl::OkStatus());
  EXPECT_EQ(Post(ValidRequest(7)).status, 200);
  EXPECT_EQ(SpansInSink(), 7u);
}

class OtlpHttpAuthTest : public OtlpHttpHandlerTest {
 protected:
  OtlpHttpAuthTest() : OtlpHttpHandlerTest({"old-token", "new-token"}) {}
};

TEST_F(OtlpHttpAuthTest, BearerTokensAreRequiredAndRotatable) {
  EXPECT_EQ(Post(ValidRequest(1)).status, 401);
  EXPECT_EQ(
      Post(ValidRequest(1), "application/x-protobuf", {{"authorization", "Bearer nope"}}).status,
      401);
  EXPECT_EQ(Post(ValidRequest(1), "application/x-protobuf", {{"authorization", "Basic old-token"}})
                .status,
            401);
  EXPECT_EQ(Post(ValidRequest(1), "application/x-protobuf", {{"authorization", "Bearer old-token"}})
                .status,
            200);
  EXPECT_EQ(Post(ValidRequest(1), "application/x-protobuf", {{"authorization", "bearer new-token"}})
                .status,
            200);
  EXPECT_EQ(Requests("401"), 3);
  EXPECT_EQ(SpansInSink(), 2u);
}

TEST_F(OtlpHttpAuthTest, RefusalsAreDecidedFromHeadersBeforeAnyBodyIsRead) {
  http::Request headers_only;
  headers_only.method = "POST";
  headers_only.target = "/v1/traces";
  headers_only.headers = {{"content-type", "application/x-protobuf"}};
  std::optional<http::Response> refusal = handler_.CheckHeaders(headers_only);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->status, 401);
  headers_only.headers.emplace_back("authorization", "Bearer new-token");
  EXPECT_FALSE(handler_.CheckHeaders(headers_only).has_value());
  headers_only.headers[0].second = "text/plain";
  ASSERT_TRUE(handler_.CheckHeaders(headers_only).has_value());
  EXPECT_EQ(handler_.CheckHeaders(headers_only)->status, 415);
  EXPECT_EQ(Requests("401"), 1);
  EXPECT_EQ(Requests("415"), 2);
}

TEST_F(OtlpHttpAuthTest, ConcurrentRequestsAreAllCountedOnce) {
  // OtlpIngest, BearerAuth and the handler claim thread-safety: this runs under TSan too.
  constexpr int kThreads = 4;
  constexpr int kRequestsPerThread = 200;
  const std::string body = ValidRequest(3, 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequestsPerThread; ++i) {
        const bool good_token = (i + t) % 2 == 0;
        Post(body, "application/x-protobuf",
             {{"authorization", good_token ? "Bearer old-token" : "Bearer wrong"}});
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const int good = kThreads * kRequestsPerThread / 2;
  EXPECT_EQ(Requests("200"), good);
  EXPECT_EQ(Requests("401"), kThreads * kRequestsPerThread - good);
  EXPECT_EQ(SpansInSink(), static_cast<size_t>(good) * 3);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_received_total", {{"transport", "http"}}),
            good * 3);
  EXPECT_EQ(CounterValue(registry_, "traceslo_spans_rejected_total",
                         {{"transport", "http"}, {"reason", "invalid_trace_id"}}),
            good);
}

TEST(BearerAuthTest, EmptySetAllowsEverythingAndPrefixesDoNotMatch) {
  EXPECT_TRUE(BearerAuth({}).Allows(""));
  BearerAuth auth({"secret"});
  EXPECT_FALSE(auth.Allows(""));
  EXPECT_FALSE(auth.Allows("Bearer "));
  EXPECT_FALSE(auth.Allows("Bearer secre"));
  EXPECT_FALSE(auth.Allows("Bearer secrets"));
  EXPECT_TRUE(auth.Allows("Bearer secret"));
  EXPECT_TRUE(auth.Allows("BEARER  secret "));
}

}  // namespace
}  // namespace traceslo::ingest
