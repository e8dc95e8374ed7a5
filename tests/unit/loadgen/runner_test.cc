// The run: pacing on an injected clock, batching, retries, and a report whose counts equal a
// recount of what was sent (decoded by traceslo's own decoders).
#include "services/loadgen/runner.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <random>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/loadgen/loadgen_test_util.h"

namespace traceslo::loadgen {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing_util::DecodeAll;
using testing_util::FakeExporter;
using testing_util::FromReport;
using testing_util::Permanent;
using testing_util::RecountSpans;
using testing_util::Retryable;

std::vector<Incident> Incidents(std::initializer_list<std::string_view> flags) {
  std::vector<Incident> out;
  for (std::string_view flag : flags) {
    absl::StatusOr<Incident> incident = ParseIncidentFlag(flag, std::string(flag));
    EXPECT_TRUE(incident.ok()) << incident.status();
    if (incident.ok()) out.push_back(*incident);
  }
  return out;
}

struct Run {
  Report report;
  FakeExporter exporter;
};

// Runs on a fake clock; `script` answers the first requests.
std::unique_ptr<Run> RunWith(RunOptions options, const std::vector<Incident>& incidents,
                             fakes::FakeClock& clock, uint64_t seed = 1,
                             std::deque<ExportResult> script = {}) {
  auto run = std::make_unique<Run>();
  run->exporter.script = std::move(script);
  std::mt19937_64 engine(seed);
  Runner runner(options, TopologyOptions{}, incidents, clock, engine, run->exporter, nullptr,
                nullptr);
  run->report = runner.Run();
  return run;
}

TEST(RunnerTest, PacesOnTheInjectedClock) {
  fakes::FakeClock clock;
  const auto start = clock.SteadyNow();
  auto run = RunWith(RunOptions{.rate = 20, .traces = 100}, {}, clock);
  // 100 traces at 20 per second: 5 fake seconds, whatever the real time.
  EXPECT_EQ(clock.SteadyNow() - start, seconds(5));
  EXPECT_EQ(run->report.elapsed_seconds, 5.0);
  EXPECT_EQ(run->report.traces.generated, 100u);
  EXPECT_EQ(run->report.end_unix_nano - run->report.start_unix_nano, 5'000'000'000);

  // The last trace's spans end when it was generated: 99 / 20 s after the start.
  const SpanBatch spans = DecodeAll(run->exporter.bodies, Encoding::kProtobuf);
  uint64_t latest_end = 0;
  for (const Span& s : spans.spans) latest_end = std::max(latest_end, s.end_unix_nano);
  EXPECT_EQ(latest_end, static_cast<uint64_t>(run->report.start_unix_nano) + 4'950'000'000u);
}

TEST(RunnerTest, SameSeedSameBytesApartFromTimestamps) {
  fakes::FakeClock a;
  fakes::FakeClock b(std::chrono::system_clock::time_point(seconds(1'800'000'000)));
  const std::vector<Incident> incidents =
      Incidents({"error_burst:service=payment,ratio=0.5", "propagation_break:service=email"});
  auto one = RunWith(RunOptions{.rate = 50, .traces = 200, .batch_size = 100}, incidents, a, 9);
  auto two = RunWith(RunOptions{.rate = 50, .traces = 200, .batch_size = 100}, incidents, b, 9);
  ASSERT_EQ(one->exporter.bodies.size(), two->exporter.bodies.size());
  const SpanBatch x = DecodeAll(one->exporter.bodies, Encoding::kProtobuf);
  const SpanBatch y = DecodeAll(two->exporter.bodies, Encoding::kProtobuf);
  ASSERT_EQ(x.spans.size(), y.spans.size());
  const uint64_t shift = 100'000'000ull * 1'000'000'000ull;
  for (size_t i = 0; i < x.spans.size(); ++i) {
    EXPECT_EQ(x.spans[i].trace_id, y.spans[i].trace_id);
    EXPECT_EQ(x.spans[i].span_id, y.spans[i].span_id);
    EXPECT_EQ(x.spans[i].start_unix_nano + shift, y.spans[i].start_unix_nano);
  }
  // With the same clock the requests are byte-identical.
  fakes::FakeClock c;
  auto three = RunWith(RunOptions{.rate = 50, .traces = 200, .batch_size = 100}, incidents, c, 9);
  EXPECT_EQ(one->exporter.bodies, three->exporter.bodies);
  auto other = RunWith(RunOptions{.rate = 50, .traces = 200, .batch_size = 100}, incidents, c, 10);
  EXPECT_NE(one->exporter.bodies, other->exporter.bodies);
}

TEST(RunnerTest, ReportEqualsARecountOfWhatWasSent) {
  for (Encoding encoding : {Encoding::kProtobuf, Encoding::kJson}) {
    fakes::FakeClock clock;
    const std::vector<Incident> incidents = Incidents({
        "error_burst:service=payment,ratio=0.4,start=2s,duration=4s",
        "error_burst:service=database,operation=SELECT cart,ratio=0.5",
        "error_burst:service=email,ratio=0.2",
        "propagation_break:service=inventory,ratio=0.3,start=1s",
        "propagation_break:service=gateway,ratio=0.05",
        "latency_regression:service=checkout,factor=2,start=3s,duration=1s",
        "traffic_drop:ratio=0.2,start=5s,duration=2s",
    });
    auto run =
        RunWith(RunOptions{.rate = 100, .traces = 1000, .batch_size = 300, .encoding = encoding},
                incidents, clock, 77);
    const Report& report = run->report;
    const testing_util::Recount recount =
        RecountSpans(DecodeAll(run->exporter.AcknowledgedBodies(), encoding));
    const testing_util::Recount expected = FromReport(report);
    EXPECT_EQ(expected.operations, recount.operations);
    EXPECT_EQ(expected.services, recount.services);
    EXPECT_TRUE(report.exact());

    // The incidents left marks in the counts.
    EXPECT_GT(recount.services.at("inventory").breaks, 0u);
    EXPECT_GT(recount.services.at("gateway").partial, 0u);
    EXPECT_GT(recount.services.at("payment").error_origin, 0u);
    EXPECT_GT(recount.services.at("email").error_origin, 0u) << "consumer errors originate there";
    EXPECT_GT(recount.services.at("gateway").error_root, 0u) << "... and the root is gateway's";
    EXPECT_GT(report.traces.dropped, 20u) << "a fifth of 200 traces";
    EXPECT_EQ(report.traces.generated, 1000u);
    EXPECT_EQ(report.traces.sent + report.traces.dropped, report.traces.generated);
    EXPECT_EQ(report.spans.sent + report.spans.dropped, report.spans.generated);
    EXPECT_EQ(report.spans.acknowledged, report.spans.sent);
    EXPECT_EQ(report.traces.acknowledged, report.traces.sent);
    uint64_t traces_total = 0;
    for (const auto& [service, counts] : recount.services) traces_total += counts.traces;
    EXPECT_GT(traces_total, report.traces.acknowledged) << "traces count once per service";
  }
}

TEST(RunnerTest, BatchesKeepTracesWholeAndRespectTheSize) {
  fakes::FakeClock clock;
  auto run = RunWith(RunOptions{.rate = 1000, .traces = 500, .batch_size = 100}, {}, clock);
  std::map<TraceId, size_t> request_of;
  for (size_t i = 0; i < run->exporter.bodies.size(); ++i) {
    const SpanBatch batch = DecodeAll({run->exporter.bodies[i]}, Encoding::kProtobuf);
    EXPECT_LE(batch.spans.size(), 100u);
    for (const Span& s : batch.spans) {
      auto [it, inserted] = request_of.try_emplace(s.trace_id, i);
      EXPECT_EQ(it->second, i) << "a trace's spans travel in one request";
    }
  }
  EXPECT_EQ(request_of.size(), 500u);

  // A trace larger than a request is split over requests sent back to back.
  fakes::FakeClock clock2;
  auto split = RunWith(RunOptions{.rate = 10, .traces = 5, .batch_size = 4}, {}, clock2);
  EXPECT_EQ(split->report.spans.acknowledged, split->report.spans.sent);
  EXPECT_GT(split->exporter.bodies.size(), 5u);
}

TEST(RunnerTest, PartialBatchesLingerAtMostTheLingerTime) {
  // One trace per 2 s, batches of 10 000 spans: each trace leaves 200 ms after it was made.
  fakes::FakeClock clock;
  class TimingExporter final : public Exporter {
   public:
    explicit TimingExporter(const Clock& clock) : clock_(clock) {}
    ExportResult Export(std::string_view) override {
      times.push_back(clock_.SteadyNow());
      return {};
    }
    std::vector<std::chrono::steady_clock::time_point> times;

   private:
    const Clock& clock_;
  } exporter(clock);
  std::mt19937_64 engine(1);
  const auto start = clock.SteadyNow();
  Runner runner(RunOptions{.rate = 0.5, .traces = 3, .batch_size = 10'000}, TopologyOptions{}, {},
                clock, engine, exporter, nullptr, nullptr);
  runner.Run();
  ASSERT_EQ(exporter.times.size(), 3u);
  EXPECT_EQ(exporter.times[0] - start, milliseconds(200));
  EXPECT_EQ(exporter.times[1] - start, milliseconds(2200));
  EXPECT_EQ(exporter.times[2] - start, milliseconds(4200));
  EXPECT_EQ(clock.SteadyNow() - start, seconds(6));
}

TEST(RunnerTest, RetriesHonourRetryAfterAndCountEveryFailure) {
  fakes::FakeClock clock;
  const auto start = clock.SteadyNow();
  auto run = RunWith(RunOptions{.rate = 1000, .traces = 10, .batch_size = 10'000}, {}, clock, 1,
                     {Retryable("http_503", seconds(2)), Retryable("grpc_UNAVAILABLE", seconds(3)),
                      Retryable("network", std::nullopt)});
  const Report& r = run->report;
  EXPECT_EQ(r.requests.sent, 4u);
  EXPECT_EQ(r.requests.succeeded, 1u);
  EXPECT_EQ(r.requests.retries, 3u);
  EXPECT_EQ(r.requests.failed, 0u);
  EXPECT_EQ(r.requests.failures.at("http_503"), 1u);
  EXPECT_EQ(r.requests.failures.at("grpc_UNAVAILABLE"), 1u);
  EXPECT_EQ(r.requests.failures.at("network"), 1u);
  EXPECT_EQ(r.spans.acknowledged, r.spans.sent);
  EXPECT_TRUE(r.exact());
  // The batch leaves at 10 ms; then waits of 2 s (Retry-After, over the 100 ms backoff), 3 s
  // (RetryInfo) and 400 ms (the backoff, doubled twice).
  EXPECT_EQ(clock.SteadyNow() - start, milliseconds(10 + 2000 + 3000 + 400));
  EXPECT_EQ(run->exporter.bodies[0], run->exporter.bodies[3]) << "the same request again";
}

TEST(RunnerTest, FailuresAreCountedNeverHidden) {
  fakes::FakeClock clock;
  // The first request is refused for good, the second runs out of retry time.
  std::deque<ExportResult> script = {Permanent("http_400")};
  for (int i = 0; i < 5; ++i) script.push_back(Retryable("http_503", seconds(1)));
  auto run = RunWith(
      RunOptions{.rate = 100, .traces = 40, .batch_size = 200, .max_retry_time = seconds(5)}, {},
      clock, 3, script);
  const Report& r = run->report;
  EXPECT_FALSE(r.exact());
  EXPECT_EQ(r.requests.failed, 2u);
  EXPECT_EQ(r.requests.failures.at("http_400"), 1u);
  // Retried after 1 s four times (1 s Retry-After over a 100-800 ms backoff); the fifth wait
  // (1.6 s) would end past the 5 s retry budget.
  EXPECT_EQ(r.requests.failures.at("http_503"), 5u);
  EXPECT_EQ(r.requests.retries, 4u);
  EXPECT_GT(r.spans.failed, 0u);
  EXPECT_EQ(r.spans.failed + r.spans.acknowledged, r.spans.sent);
  EXPECT_EQ(r.traces.failed + r.traces.acknowledged, r.traces.sent);
  EXPECT_GT(r.traces.failed, 0u);
  // The expectations cover exactly the acknowledged spans.
  const testing_util::Recount recount =
      RecountSpans(DecodeAll(run->exporter.AcknowledgedBodies(), Encoding::kProtobuf));
  EXPECT_EQ(FromReport(r).operations, recount.operations);
  EXPECT_EQ(FromReport(r).services, recount.services);
}

TEST(RunnerTest, PartialSuccessIsCountedAsRejected) {
  fakes::FakeClock clock;
  ExportResult partial;
  partial.rejected_spans = 3;
  auto run =
      RunWith(RunOptions{.rate = 100, .traces = 5, .batch_size = 10'000}, {}, clock, 1, {partial});
  EXPECT_EQ(run->report.spans.rejected, 3u);
  EXPECT_EQ(run->report.spans.acknowledged + 3, run->report.spans.sent);
  EXPECT_FALSE(run->report.exact());
}

TEST(RunnerTest, IncidentWindowsAreReportedInUnixTime) {
  fakes::FakeClock clock;
  auto run =
      RunWith(RunOptions{.rate = 10, .traces = 100},
              Incidents({"traffic_drop:ratio=1,start=2s,duration=3s",
                         "error_burst:service=payment,start=8s", "traffic_drop:ratio=1,start=20s"}),
              clock);
  const Report& r = run->report;
  const int64_t start = r.start_unix_nano;
  ASSERT_EQ(r.incident_records.size(), 3u);
  EXPECT_EQ(r.incident_records[0].traces, 30u);
  EXPECT_EQ(r.incident_records[0].affected, 30u) << "ratio 1 drops every trace of the window";
  EXPECT_EQ(r.traces.dropped, 30u);
  EXPECT_EQ(r.incident_records[0].start_unix_nano, start + 2'000'000'000);
  EXPECT_EQ(r.incident_records[0].end_unix_nano, start + 5'000'000'000);
  EXPECT_EQ(r.incident_records[1].start_unix_nano, start + 8'000'000'000);
  EXPECT_EQ(r.incident_records[1].end_unix_nano, r.end_unix_nano) << "lasted to the end";
  EXPECT_EQ(r.incident_records[1].traces, 20u);
  EXPECT_FALSE(r.incident_records[2].start_unix_nano.has_value()) << "the run ended first";
  EXPECT_FALSE(r.incident_records[2].end_unix_nano.has_value());
}

TEST(RunnerTest, StopEndsTheRunAndStillAccounts) {
  fakes::FakeClock clock;
  std::atomic<bool> stop{false};
  class StoppingExporter final : public Exporter {
   public:
    explicit StoppingExporter(std::atomic<bool>& stop) : stop_(stop) {}
    ExportResult Export(std::string_view) override {
      stop_.store(true);
      return {};
    }

   private:
    std::atomic<bool>& stop_;
  } exporter(stop);
  std::mt19937_64 engine(1);
  Runner runner(RunOptions{.rate = 10, .traces = 1000, .batch_size = 50}, TopologyOptions{}, {},
                clock, engine, exporter, nullptr, nullptr, &stop);
  const Report report = runner.Run();
  EXPECT_TRUE(report.interrupted);
  EXPECT_LT(report.traces.generated, 1000u);
  EXPECT_EQ(report.spans.acknowledged, report.spans.sent);
  EXPECT_EQ(report.traces.acknowledged, report.traces.sent);
}

TEST(RunnerTest, ReportJsonHasEveryField) {
  fakes::FakeClock clock;
  auto run = RunWith(RunOptions{.rate = 100, .traces = 50},
                     Incidents({"error_burst:service=payment,ratio=0.5,start=100ms,duration=200ms",
                                "latency_regression:service=database,add=5ms"}),
                     clock);
  run->report.endpoint = "127.0.0.1:4317";
  run->report.protocol = "grpc";
  const std::string json = ReportToJson(run->report);
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(json, ec);
  ASSERT_FALSE(ec) << json;
  const boost::json::object& o = v.as_object();
  EXPECT_EQ(o.at("protocol").as_string(), "grpc");
  EXPECT_EQ(o.at("exact").as_bool(), true);
  EXPECT_EQ(o.at("traces").at("planned").as_int64(), 50);
  EXPECT_EQ(o.at("spans").at("acknowledged").as_int64(),
            static_cast<int64_t>(run->report.spans.acknowledged));
  EXPECT_EQ(o.at("requests").at("failures").as_object().size(), 0u);
  const auto& checkout = o.at("operations").at("gateway").at("POST /api/checkout");
  EXPECT_GT(checkout.at("requests").as_int64(), 0);
  EXPECT_TRUE(checkout.as_object().contains("errors"));
  for (std::string_view service : kServiceNames) {
    const auto& s = o.at("services").at(service).as_object();
    for (const char* key : {"traces", "error_traces_root", "error_traces_origin", "partial_traces",
                            "propagation_breaks"}) {
      EXPECT_TRUE(s.contains(key)) << service << " " << key;
    }
  }
  const auto& incidents = o.at("incidents").as_array();
  ASSERT_EQ(incidents.size(), 2u);
  EXPECT_EQ(incidents[0].at("type").as_string(), "error_burst");
  EXPECT_EQ(incidents[0].at("service").as_string(), "payment");
  EXPECT_EQ(incidents[0].at("start_offset_seconds").as_double(), 0.1);
  EXPECT_EQ(incidents[0].at("traces").as_int64(), 20);
  EXPECT_TRUE(incidents[0].at("start_unix").is_double());
  EXPECT_EQ(incidents[1].at("add_seconds").as_double(), 0.005);
  EXPECT_TRUE(incidents[1].at("duration_seconds").is_null());
}

}  // namespace
}  // namespace traceslo::loadgen
