// Detection latency: a total outage of a service with a 99.9 % availability SLO and the default
// policy (page at 14.4x over 1 h and 5 m, or 6x over 6 h and 30 m), after 6 h 10 m of healthy
// traffic, through the real pipeline (shard processor, SLI store), evaluator, cause finder, alert
// feed and router, on simulated time. Reports, in simulated seconds from the incident's start:
//   fire_s    the page alert fires (the policy alone needs 0.0144 x 3600 s = 51.8 s of outage,
//             plus up to one evaluation interval);
//   notify_s  its notification leaves the router for the outbox, with the default alerting
//             settings (group_wait 30 s counted from the first warming evaluation);
//   notify_firing_s  the same with group_wait_start: firing (Alertmanager's timing: group_wait
//             after the alert fires), the baseline;
//   notify_no_wait_s  the same with group_wait 0.
// Tickets are off: their 1 d and 3 d windows would need days of simulated history.
// The incident starts at each of 10 phases of the 10 s evaluation interval (range argument); the
// summary prints min / median / max over the phases and the goal (notification <= 60 s).
// CPU time is what simulating the 6 h 11 m costs.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "traceslo/alerting/alert_feed.h"
#include "traceslo/alerting/router.h"
#include "traceslo/alerting/sqlite_router_state_store.h"
#include "traceslo/alerting/sqlite_silence_store.h"
#include "traceslo/common/manual_clock.h"
#include "traceslo/config/config.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/span_sink.h"
#include "traceslo/slo/causes.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/sli_engine.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kStartUnixSeconds = 1'800'000'000;  // a multiple of 10
constexpr int kRequestsPerSecond = 20;
// Longer than the longest page window (6 h), so no window holds less history than it spans.
constexpr int kHealthySeconds = 6 * 3600 + 600;

constexpr std::string_view kRules = R"(service: payment
slos:
  - name: availability
    objective: 99.9
    sli: {errors: {}}
    alerting:
      ticket: {enabled: false}  # its 1d/3d windows would hold only the simulated hour
)";

// Records when the first firing notification was offered.
class FirstNotification final : public alerting::NotificationSink {
 public:
  absl::Status Send(const alerting::Notification& n) override {
    if (n.firing && !first_unix_nano) first_unix_nano = n.created_unix_nano;
    return absl::OkStatus();
  }
  std::optional<int64_t> first_unix_nano;
};

struct Result {
  double fire_s = -1;
  double notify_s = -1;
};

struct Variant {
  milliseconds group_wait{30'000};
  bool from_warming = true;
};

Result Run(int phase_seconds, Variant variant, const std::string& dir) {
  ManualClock clock{std::chrono::system_clock::time_point(seconds(kStartUnixSeconds))};
  config::PipelineConfig pc;
  pc.shards = 1;
  slo::SliEngine engine(pc, clock);
  auto processors = engine.MakeProcessors();
  slo::Evaluator evaluator(engine.evaluator_options(), engine.source());
  std::vector<slo::Diagnostic> diagnostics;
  auto rules = slo::ParseRuleFile(kRules, "payment.yaml", diagnostics);
  if (!rules.ok() || !diagnostics.empty()) std::abort();
  evaluator.SetRules(rules->slos);

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto db = storage::SqliteStore::Open(dir + "/traceslo.db");
  if (!db.ok()) std::abort();
  alerting::SqliteRouterStateStore state(**db);
  alerting::SqliteSilenceStore silences(**db);
  FirstNotification sink;
  alerting::RouterOptions options;
  options.group_wait = variant.group_wait;
  options.group_wait_from_warming = variant.from_warming;
  auto router = alerting::AlertRouter::Create(options, sink, state, silences);
  if (!router.ok()) std::abort();
  slo::CauseFinder finder(slo::CauseOptions{}, engine.series(), engine.store());
  // As main sets it: the hold on causes whose traces have not completed yet.
  alerting::AlertFeed feed(
      alerting::AlertFeedOptions{.origin_hold = pc.trace_max_age + 2 * pc.tick_interval +
                                                config::RulesConfig{}.evaluation_interval},
      evaluator, finder, **router);

  auto strings = std::make_shared<const std::string>("paymentcharge");
  const int64_t incident = kStartUnixSeconds + kHealthySeconds + phase_seconds;
  uint64_t next_id = 1;
  Result result;
  for (int64_t t = kStartUnixSeconds + 1;; ++t) {
    clock.AdvanceTo(std::chrono::system_clock::time_point(seconds(t)));
    pipeline::ShardBatch batch;
    batch.strings = strings;
    for (int i = 0; i < kRequestsPerSecond; ++i) {
      Span span;
      span.trace_id[0] = 1;
      for (int b = 0; b < 8; ++b) span.trace_id[8 + b] = static_cast<uint8_t>(next_id >> (8 * b));
      span.span_id = next_id++;
      span.end_unix_nano = static_cast<uint64_t>(t) * 1'000'000'000 - 1'000'000;
      span.start_unix_nano = span.end_unix_nano - 20'000'000;
      span.service = StrRef{0, 7};
      span.name = StrRef{7, 6};
      span.kind = SpanKind::kServer;
      span.status = t > incident ? StatusCode::kError : StatusCode::kOk;
      batch.spans.push_back(span);
    }
    processors[0]->Process(batch);
    processors[0]->OnTick();  // pipeline.tick_interval 1 s
    const int64_t now = t * 1'000'000'000;
    if (t % 10 == 0) {  // rules.evaluation_interval 10 s
      evaluator.Evaluate(clock.Now());
      feed.Update(now);
      for (const slo::AlertStatus& a : evaluator.Alerts()) {
        if (result.fire_s < 0 && a.state == slo::AlertState::kFiring &&
            a.severity == slo::Severity::kPage) {
          result.fire_s = static_cast<double>(t - incident);
        }
      }
    }
    (void)(*router)->Tick(now);  // the router ticker, every second
    if (sink.first_unix_nano) {
      result.notify_s = static_cast<double>(*sink.first_unix_nano - incident * 1'000'000'000) / 1e9;
      return result;
    }
    if (t > incident + 600) return result;  // not detected within 10 minutes: -1
  }
}

// Simulated seconds to the notification, per counter name, over all phases run.
std::map<std::string, std::vector<double>>& Figures() {
  static std::map<std::string, std::vector<double>> figures;
  return figures;
}

void Detection(benchmark::State& state, Variant variant, const char* counter) {
  const std::string dir = std::filesystem::temp_directory_path().string() + "/traceslo-detect-" +
                          std::to_string(::getpid());
  Result r;
  for (auto _ : state) r = Run(static_cast<int>(state.range(0)), variant, dir);
  std::filesystem::remove_all(dir);
  state.counters["fire_s"] = r.fire_s;
  state.counters[counter] = r.notify_s;
  Figures()["fire_s"].push_back(r.fire_s);
  Figures()[counter].push_back(r.notify_s);
}

void BM_DetectionDefaultGroupWait(benchmark::State& state) {
  Detection(state, Variant{}, "notify_s");
}
void BM_DetectionGroupWaitFromFiring(benchmark::State& state) {
  Detection(state, Variant{.from_warming = false}, "notify_firing_s");
}
void BM_DetectionNoGroupWait(benchmark::State& state) {
  Detection(state, Variant{.group_wait = milliseconds(0)}, "notify_no_wait_s");
}
BENCHMARK(BM_DetectionDefaultGroupWait)->DenseRange(0, 9)->Iterations(1)->Unit(benchmark::kSecond);
BENCHMARK(BM_DetectionGroupWaitFromFiring)
    ->DenseRange(0, 9)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);
BENCHMARK(BM_DetectionNoGroupWait)->DenseRange(0, 9)->Iterations(1)->Unit(benchmark::kSecond);

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace
}  // namespace traceslo

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  using traceslo::Figures;
  std::printf("\nSimulated seconds from the incident's start (min / median / max over phases):\n");
  bool undetected = false;
  for (const auto& [name, values] : Figures()) {
    if (values.empty()) continue;
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    std::printf("  %-18s %5.1f / %5.1f / %5.1f  (%zu runs)\n", name.c_str(), *lo,
                traceslo::Median(values), *hi, values.size());
    undetected = undetected || *lo < 0;
  }
  if (auto it = Figures().find("notify_s"); it != Figures().end() && !it->second.empty()) {
    const double median = traceslo::Median(it->second);
    std::printf(
        "Goal: notification <= 60 s after the incident starts, default settings: %s "
        "(median %.1f s)\n",
        median <= 60 ? "met" : "NOT met", median);
  }
  if (undetected) std::printf("ERROR: an outage was not detected within 10 minutes\n");
  return undetected ? 1 : 0;
}
