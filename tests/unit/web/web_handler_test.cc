#include "traceslo/web/web_handler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "tests/fakes/fake_clock.h"
#include "tests/unit/alerting/router_test_util.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/web/api.h"

namespace traceslo::web {
namespace {

http::Request MakeRequest(std::string method, std::string target) {
  http::Request request;
  request.method = std::move(method);
  request.target = std::move(target);
  return request;
}

// A batch of `n` spans with distinct, non-zero ids.
SpanBatch MakeBatch(size_t n) {
  SpanBatch batch;
  for (size_t i = 0; i < n; ++i) {
    Span span;
    span.trace_id[0] = 1;
    span.trace_id[15] = static_cast<uint8_t>(i + 1);
    span.span_id = i + 1;
    span.name = batch.Add("op", kMaxNameBytes);
    batch.spans.push_back(span);
  }
  return batch;
}

// Two metric sources (an application registry with one counter, and the pipeline's registry)
// and a one-shard pipeline.
class WebHandlerTest : public ::testing::Test {
 protected:
  WebHandlerTest() {
    prometheus::BuildCounter()
        .Name("traceslo_test_events_total")
        .Help("Events seen by the test.")
        .Register(app_registry_)
        .Add({{"kind", "a"}})
        .Increment(3);
    std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors;
    processors.push_back(std::make_unique<pipeline::CountingProcessor>());
    auto created =
        pipeline::ShardedPipeline::Create({.shards = 1}, std::move(processors), pipeline_registry_);
    EXPECT_TRUE(created.ok()) << created.status();
    pipeline_ = std::move(*created);
  }

  WebHandler MakeHandler(bool debug_endpoints) {
    return WebHandler({.debug_endpoints = debug_endpoints}, {&app_registry_, &pipeline_registry_},
                      *pipeline_);
  }

  prometheus::Registry app_registry_;
  prometheus::Registry pipeline_registry_;
  std::unique_ptr<pipeline::ShardedPipeline> pipeline_;
};

TEST_F(WebHandlerTest, MetricsServesTheCounterInTextFormat) {
  WebHandler handler = MakeHandler(false);
  http::Response response = handler.Handle(MakeRequest("GET", "/metrics"));
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.content_type.starts_with("text/plain; version=0.0.4"))
      << response.content_type;
  EXPECT_NE(response.body.find("# TYPE traceslo_test_events_total counter\n"), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("# HELP traceslo_test_events_total Events seen by the test.\n"),
            std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("traceslo_test_events_total{kind=\"a\"} 3"), std::string::npos)
      << response.body;
}

TEST_F(WebHandlerTest, MetricsAnswersOpenMetricsWhenAskedFor) {
  WebHandler handler = MakeHandler(false);
  http::Request request = MakeRequest("GET", "/metrics");
  request.headers.emplace_back(
      "accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
  http::Response response = handler.Handle(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_NE(response.body.find("# TYPE traceslo_test_events counter\n"), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("traceslo_test_events_total{kind=\"a\"} 3\n"), std::string::npos)
      << response.body;
  EXPECT_NE(response.body.find("traceslo_pipeline_queue_capacity_spans 65536\n"), std::string::npos)
      << response.body;
  EXPECT_TRUE(response.body.ends_with("# EOF\n")) << response.body;
  EXPECT_NE(std::find(response.headers.begin(), response.headers.end(),
                      std::pair<std::string, std::string>("Vary", "Accept")),
            response.headers.end());

  request.headers = {{"accept", "text/plain;version=0.0.4"}};
  response = handler.Handle(request);
  EXPECT_TRUE(response.content_type.starts_with("text/plain; version=0.0.4"));
  EXPECT_EQ(response.body.find("# EOF"), std::string::npos);
}

TEST_F(WebHandlerTest, MetricsCombinesEverySource) {
  WebHandler handler = MakeHandler(false);
  http::Response response = handler.Handle(MakeRequest("GET", "/metrics?ignored=1"));
  EXPECT_EQ(response.status, 200);
  const size_t app = response.body.find("traceslo_test_events_total");
  const size_t pipeline = response.body.find("traceslo_pipeline_spans_processed_total");
  const size_t capacity = response.body.find("traceslo_pipeline_queue_capacity_spans 65536");
  ASSERT_NE(app, std::string::npos) << response.body;
  ASSERT_NE(pipeline, std::string::npos) << response.body;
  EXPECT_NE(capacity, std::string::npos) << response.body;
  EXPECT_LT(app, pipeline);  // in the order the sources were given
}

TEST_F(WebHandlerTest, MetricsWithNoSourcesIsEmpty) {
  WebHandler handler({}, {}, *pipeline_);
  http::Response response = handler.Handle(MakeRequest("GET", "/metrics"));
  EXPECT_EQ(response.status, 200);
  EXPECT_TRUE(response.body.empty()) << response.body;
}

TEST_F(WebHandlerTest, MetricsAnswersHead) {
  WebHandler handler = MakeHandler(false);
  EXPECT_EQ(handler.Handle(MakeRequest("HEAD", "/metrics")).status, 200);
}

TEST_F(WebHandlerTest, NonReadMethodsAreNotAllowed) {
  WebHandler handler = MakeHandler(true);
  for (const char* path : {"/metrics", "/-/healthy", "/-/ready"}) {
    for (const char* method : {"POST", "PUT", "DELETE"}) {
      http::Response response = handler.Handle(MakeRequest(method, path));
      EXPECT_EQ(response.status, 405) << method << " " << path;
    }
  }
}

TEST_F(WebHandlerTest, HealthyIsAlways200) {
  WebHandler handler = MakeHandler(false);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/healthy")).status, 200);
  handler.SetReady(true);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/healthy")).status, 200);
}

TEST_F(WebHandlerTest, ReadyFollowsSetReady) {
  WebHandler handler = MakeHandler(false);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/ready")).status, 503);
  handler.SetReady(true);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/ready")).status, 200);
  handler.SetReady(false);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/ready")).status, 503);
}

TEST_F(WebHandlerTest, UnknownPathIs404) {
  WebHandler handler = MakeHandler(true);
  for (const char* path : {"/", "/metricsx", "/metrics/", "/-/unknown", "/-/debug"}) {
    EXPECT_EQ(handler.Handle(MakeRequest("GET", path)).status, 404) << path;
  }
  EXPECT_EQ(handler.Handle(MakeRequest("POST", "/-/debug/unknown")).status, 404);
}

// With the API wired in, / is the SLO overview (and the other pages answer); the handler's own
// paths stay its own.
TEST_F(WebHandlerTest, RootIsTheOverviewWhenTheApiIsWired) {
  fakes::FakeClock clock;
  pipeline::SeriesRegistry series(10, 10);
  pipeline::SliStore store(pipeline::SliStoreOptions{});
  alerting::testing_util::RecordingSink sink;
  alerting::testing_util::MemoryStateStore state;
  alerting::testing_util::MemorySilenceStore silences;
  auto router = alerting::AlertRouter::Create({}, sink, state, silences);
  ASSERT_TRUE(router.ok()) << router.status();
  ApiHandler api(ApiOptions{},
                 ApiSources{.clock = clock, .series = series, .store = store, .router = **router});
  WebHandler handler({.api = &api}, {&app_registry_}, *pipeline_);
  for (const char* path : {"/", "/alerts", "/signatures"}) {
    const http::Response r = handler.Handle(MakeRequest("GET", path));
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8") << path;
  }
  EXPECT_NE(handler.Handle(MakeRequest("GET", "/")).body.find("No SLO evaluator"),
            std::string::npos);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/metrics")).content_type,
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/index.html")).status, 404);
}

TEST_F(WebHandlerTest, DebugEndpointsAre404WhenDisabled) {
  WebHandler handler = MakeHandler(false);
  for (const char* path : {"/-/debug/pipeline/pause", "/-/debug/pipeline/resume"}) {
    EXPECT_EQ(handler.Handle(MakeRequest("POST", path)).status, 404) << path;
    EXPECT_EQ(handler.Handle(MakeRequest("GET", path)).status, 404) << path;
  }
  // Nothing was paused: spans flow.
  SpanBatch batch = MakeBatch(4);
  ASSERT_TRUE(pipeline_->TryEnqueue(batch).ok());
  ASSERT_TRUE(pipeline_->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(pipeline_->spans_processed(), 4u);
}

TEST_F(WebHandlerTest, DebugEndpointsNeedPost) {
  WebHandler handler = MakeHandler(true);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/debug/pipeline/pause")).status, 405);
  EXPECT_EQ(handler.Handle(MakeRequest("GET", "/-/debug/pipeline/resume")).status, 405);
}

TEST_F(WebHandlerTest, PauseHoldsSpansUntilResume) {
  WebHandler handler = MakeHandler(true);
  ASSERT_EQ(handler.Handle(MakeRequest("POST", "/-/debug/pipeline/pause")).status, 200);
  SpanBatch first = MakeBatch(5);
  SpanBatch second = MakeBatch(3);
  ASSERT_TRUE(pipeline_->TryEnqueue(first).ok());
  ASSERT_TRUE(pipeline_->TryEnqueue(second).ok());
  EXPECT_TRUE(first.spans.empty());  // taken
  // The worker was paused before the spans arrived, so it cannot have taken them.
  EXPECT_EQ(pipeline_->spans_processed(), 0u);
  http::Response metrics = handler.Handle(MakeRequest("GET", "/metrics"));
  EXPECT_NE(metrics.body.find("traceslo_pipeline_queue_spans{shard=\"0\"} 8"), std::string::npos)
      << metrics.body;

  ASSERT_EQ(handler.Handle(MakeRequest("POST", "/-/debug/pipeline/resume")).status, 200);
  ASSERT_TRUE(pipeline_->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(pipeline_->spans_processed(), 8u);
}

TEST_F(WebHandlerTest, ConcurrentRequestsAreServed) {
  WebHandler handler = MakeHandler(true);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (t == 0) handler.SetReady(i % 2 == 0);
        if (handler.Handle(MakeRequest("GET", "/metrics")).status != 200) failures.fetch_add(1);
        int ready = handler.Handle(MakeRequest("GET", "/-/ready")).status;
        if (ready != 200 && ready != 503) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace traceslo::web
