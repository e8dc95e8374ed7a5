#include "traceslo/alerting/alert_feed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/alerting/router_test_util.h"
#include "traceslo/common/manual_clock.h"
#include "traceslo/pipeline/error_signature.h"
#include "traceslo/pipeline/span_sink.h"
#include "traceslo/slo/causes.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/sli_engine.h"

// The alert feed between real parts: spans go through the SLI engine's shard processors on a
// manual clock, a real evaluator fires rules built here, a real CauseFinder names the causes and
// a real router (with in-memory stores and a recording sink) groups and sends. Every expected
// value comes from what a test feeds: span counts per 10 s bucket, exception types, signature
// ids computed from the span fields with pipeline::ComputeSignature.

namespace traceslo::alerting {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using testing_util::MemorySilenceStore;
using testing_util::MemoryStateStore;
using testing_util::RecordingSink;

constexpr int64_t kEpochSeconds = 1'700'000'000;  // a bucket boundary: bucket b is [10b, 10b+10)
constexpr int64_t kNanosPerMilli = 1'000'000;
constexpr milliseconds kSlow{100};  // the latency SLOs' threshold
constexpr char kExternalUrl[] = "http://traceslo.example";

// One span of a trace; the first span of a shape is its root.
struct SpanShape {
  std::string service;
  std::string operation;
  int parent = -1;             // index of the parent span in the shape; -1: a root
  std::string exception_type;  // set: the span fails (status ERROR) with this exception
  std::string exception_message;
  milliseconds duration{20};
};
using TraceShape = std::vector<SpanShape>;

// `per_second` traces of `shape` end in every second.
struct Traffic {
  TraceShape shape;
  int per_second = 0;
};

// The error signature id of a span of `shape` as the pipeline computes it (no stack trace, no
// HTTP or gRPC status), from the span's fields.
std::string SignatureId(const SpanShape& span) {
  std::string message;
  pipeline::NormalizeMessage(span.exception_message, message);
  return pipeline::SignatureIdHex(pipeline::ComputeSignature({.service = span.service,
                                                              .operation = span.operation,
                                                              .exception_type = span.exception_type,
                                                              .message = message})
                                      .id);
}

// A burn-rate SLO with one short page tier: 99 %, burn 10 over 1m and 30s, at least 5 events.
slo::Slo BurnSlo(std::string service, std::string name, slo::SliKind kind) {
  slo::Slo slo;
  slo.service = std::move(service);
  slo.name = std::move(name);
  slo.objective_percent = 99;
  slo.sli.kind = kind;
  slo.sli.latency.threshold = kSlow;
  slo.alerting.tiers = {slo::BurnRateTier{.severity = slo::Severity::kPage,
                                          .long_window = minutes(1),
                                          .short_window = seconds(30),
                                          .burn_rate = 10}};
  slo.alerting.min_events = 5;
  slo.source = "alert_feed_test";
  return slo;
}

const Alert* WithSignature(const std::vector<Alert>& alerts, const std::string& signature) {
  for (const Alert& alert : alerts) {
    auto it = alert.labels.find("signature");
    if (it != alert.labels.end() && it->second == signature) return &alert;
  }
  return nullptr;
}

std::vector<Alert> OfSlo(const std::vector<Alert>& alerts, const std::string& service,
                         const std::string& slo) {
  std::vector<Alert> out;
  for (const Alert& alert : alerts) {
    if (alert.labels.at("service") == service && alert.labels.at("slo") == slo) {
      out.push_back(alert);
    }
  }
  return out;
}

std::set<std::string> SignaturesOf(const std::vector<Alert>& alerts) {
  std::set<std::string> out;
  for (const Alert& alert : alerts) {
    if (auto it = alert.labels.find("signature"); it != alert.labels.end()) out.insert(it->second);
  }
  return out;
}

std::vector<std::string> IdsOf(const std::vector<slo::AlertCause>& causes) {
  std::vector<std::string> out;
  for (const slo::AlertCause& cause : causes) out.push_back(cause.id);
  return out;
}

class AlertFeedTest : public ::testing::Test {
 protected:
  explicit AlertFeedTest(const config::PipelineConfig& pipeline = PipelineConfig())
      : clock_(Epoch()),
        engine_(pipeline, clock_),
        processors_(engine_.MakeProcessors()),
        evaluator_(engine_.evaluator_options(), engine_.source()),
        finder_(slo::CauseOptions{}, engine_.series(), engine_.store()) {
    router_options_.group_wait = seconds(30);
    router_options_.group_interval = minutes(1);
    router_options_.repeat_interval = hours(4);
    router_options_.external_url = kExternalUrl;
  }

  static std::chrono::system_clock::time_point Epoch() {
    return std::chrono::system_clock::time_point(seconds(kEpochSeconds));
  }
  static config::PipelineConfig PipelineConfig() {
    config::PipelineConfig config;
    config.shards = 2;
    config.trace_idle_timeout = seconds(15);
    config.tick_interval = seconds(1);
    return config;
  }

  void Start(std::vector<slo::Slo> slos) {
    slos_ = std::move(slos);
    evaluator_.SetRules(slos_);
    router_ = MakeRouter(sink_, state_, silences_);
    feed_ = std::make_unique<AlertFeed>(feed_options_, evaluator_, finder_, *router_);
  }

  std::unique_ptr<AlertRouter> MakeRouter(RecordingSink& sink, MemoryStateStore& state,
                                          MemorySilenceStore& silences) {
    absl::StatusOr<std::unique_ptr<AlertRouter>> router =
        AlertRouter::Create(router_options_, sink, state, silences);
    EXPECT_TRUE(router.ok()) << router.status();
    return std::move(router).value();
  }

  // A restart of the feed: the evaluator goes on, and the new feed finds causes in an SLI store
  // restored from the persisted minutes, which carry no signatures. The new feed is seeded with
  // the router's alerts, as main does. `reload_router`: the router is created again from its
  // state store (it holds what it last sent) instead of keeping what it holds.
  void RestartFeed(bool reload_router = false) {
    if (reload_router) {
      feed_.reset();
      router_ = MakeRouter(sink_, state_, silences_);
    }
    restored_store_ = std::make_unique<pipeline::SliStore>(pipeline::SliStoreOptions{.shards = 2});
    restored_store_->Restore(engine_.store().TakeChangedMinutes());
    restored_finder_ =
        std::make_unique<slo::CauseFinder>(slo::CauseOptions{}, engine_.series(), *restored_store_);
    feed_ = std::make_unique<AlertFeed>(feed_options_, evaluator_, *restored_finder_, *router_);
    feed_->Seed(HeldAlerts(*router_));
  }

  std::vector<Alert> HeldAlerts(const AlertRouter& router) const {
    std::vector<Alert> held;
    for (const RouterGroupView& group : router.Snapshot(NowNanos())) {
      for (const RouterAlertView& view : group.alerts) held.push_back(view.alert);
    }
    return held;
  }

  int64_t NowNanos() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Now().time_since_epoch())
        .count();
  }

  // Moves the clock one second at a time up to `until` (seconds after the epoch). Every second
  // sends the traffic's traces (ending 1 ms before it) and ticks the shards; every 10 s the
  // evaluator runs, then the feed, then `after_evaluation`; the router ticks every second.
  void RunUntil(int64_t until, const std::function<void()>& after_evaluation = {}) {
    while (second_ < until) {
      ++second_;
      clock_.AdvanceTo(Epoch() + seconds(second_));
      Send();
      for (auto& processor : processors_) processor->OnTick();
      const int64_t now = NowNanos();
      if (second_ % 10 == 0) {
        evaluator_.Evaluate(clock_.Now());
        feed_->Update(now);
        if (after_evaluation) after_evaluation();
      }
      ASSERT_TRUE(router_->Tick(now).ok());
    }
  }

  // The buckets [first, last] of `window` ending now (an alert's short window).
  std::pair<int64_t, int64_t> Window(milliseconds window) const {
    const int64_t last = pipeline::BucketOfUnixNanos(NowNanos());
    return {last - window.count() / (pipeline::kBucketSeconds * 1000) + 1, last};
  }

  // Error spans fed for (service, exception type) over the buckets of `window` ending now.
  uint64_t FedErrors(const std::string& service, const std::string& exception_type,
                     milliseconds window) const {
    return Sum(errors_fed_, {service, exception_type}, window);
  }
  // Spans slower than kSlow fed for (service, operation) over the buckets of `window`.
  uint64_t FedSlow(const std::string& service, const std::string& operation,
                   milliseconds window) const {
    return Sum(slow_fed_, {service, operation}, window);
  }

  const slo::Slo& SloNamed(const std::string& service, const std::string& name) const {
    for (const slo::Slo& slo : slos_) {
      if (slo.service == service && slo.name == name) return slo;
    }
    ADD_FAILURE() << "no SLO " << service << "/" << name;
    return slos_.front();
  }

  std::optional<slo::AlertStatus> Status(const std::string& service, const std::string& name,
                                         bool no_data = false) const {
    for (const slo::AlertStatus& status : evaluator_.Alerts()) {
      if (status.service == service && status.slo == name && status.no_data == no_data) {
        return status;
      }
    }
    return std::nullopt;
  }
  bool Firing(const std::string& service, const std::string& name) const {
    std::optional<slo::AlertStatus> status = Status(service, name);
    return status && status->state == slo::AlertState::kFiring;
  }

  // The notifications sent for groups of `service`.
  std::vector<Notification> SentFor(const std::string& service) const {
    std::vector<Notification> out;
    for (const Notification& n : sink_.sent) {
      if (n.group_labels.count("service") != 0 && n.group_labels.at("service") == service) {
        out.push_back(n);
      }
    }
    return out;
  }

  // Checks a signature cause against what was fed: its id, title, count and share over the
  // short window, and exemplar traces that are pinned, were fed with this exception and carry
  // a span of the signature.
  void ExpectSignatureCause(const Cause& cause, const SpanShape& span, uint64_t count,
                            double share) {
    SCOPED_TRACE("cause " + span.exception_type);
    EXPECT_EQ(cause.kind, Cause::Kind::kSignature);
    EXPECT_EQ(cause.id, SignatureId(span));
    EXPECT_EQ(cause.title, span.exception_type + ": " + span.exception_message);
    EXPECT_EQ(cause.count, count);
    EXPECT_DOUBLE_EQ(cause.share, share);
    ASSERT_FALSE(cause.trace_ids.empty());
    EXPECT_LE(cause.trace_ids.size(), 3u);
    const uint64_t signature = *pipeline::ParseSignatureId(cause.id);
    for (const std::string& hex : cause.trace_ids) {
      EXPECT_TRUE(traces_with_[span.exception_type].contains(hex)) << hex;
      std::optional<TraceId> id = ParseTraceIdHex(hex);
      ASSERT_TRUE(id.has_value()) << hex;
      pipeline::ExemplarRef trace = feed_->PinnedTrace(*id);
      ASSERT_NE(trace, nullptr) << hex;
      EXPECT_EQ(TraceIdHex(trace->trace_id), hex);
      EXPECT_TRUE(std::any_of(
          trace->spans.begin(), trace->spans.end(),
          [&](const pipeline::ExemplarSpan& s) { return s.error && s.signature == signature; }))
          << hex;
    }
  }

  ManualClock clock_;
  slo::SliEngine engine_;
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors_;
  slo::Evaluator evaluator_;
  slo::CauseFinder finder_;
  RouterOptions router_options_;
  AlertFeedOptions feed_options_{.external_url = kExternalUrl};
  RecordingSink sink_;
  MemoryStateStore state_;
  MemorySilenceStore silences_;
  std::unique_ptr<pipeline::SliStore> restored_store_;
  std::unique_ptr<slo::CauseFinder> restored_finder_;
  std::unique_ptr<AlertRouter> router_;
  std::unique_ptr<AlertFeed> feed_;
  std::vector<slo::Slo> slos_;
  std::vector<Traffic> traffic_;  // what every second sends; tests change it between phases
  int64_t second_ = 0;            // seconds after the epoch
  // Trace ids (hex) fed with a span of each exception type, and ("slow " + operation) with a
  // span of the operation slower than kSlow.
  std::map<std::string, std::set<std::string>> traces_with_;

 private:
  using Key = std::pair<std::string, std::string>;
  using Fed = std::map<Key, std::map<int64_t, uint64_t>>;  // per key and bucket

  uint64_t Sum(const Fed& fed, const Key& key, milliseconds window) const {
    auto [first, last] = Window(window);
    auto it = fed.find(key);
    if (it == fed.end()) return 0;
    uint64_t sum = 0;
    for (const auto& [bucket, n] : it->second) {
      if (bucket >= first && bucket <= last) sum += n;
    }
    return sum;
  }

  void Send() {
    SpanBatch arena;
    std::vector<std::vector<Span>> shards(processors_.size());
    const auto end = static_cast<uint64_t>(NowNanos() - kNanosPerMilli);
    for (const Traffic& traffic : traffic_) {
      for (int i = 0; i < traffic.per_second; ++i) {
        TraceId trace_id{};
        ++traces_;
        for (int b = 0; b < 8; ++b) trace_id[15 - b] = static_cast<uint8_t>(traces_ >> (8 * b));
        trace_id[0] = 0xfe;
        const std::string hex = TraceIdHex(trace_id);
        const uint32_t shard = pipeline::ShardOf(trace_id, static_cast<uint32_t>(shards.size()));
        std::vector<uint64_t> ends(traffic.shape.size());
        for (size_t j = 0; j < traffic.shape.size(); ++j) {
          const SpanShape& shape = traffic.shape[j];
          // A child ends 1 ms before its parent.
          ends[j] =
              shape.parent < 0 ? end : ends[static_cast<size_t>(shape.parent)] - kNanosPerMilli;
          Span span;
          span.trace_id = trace_id;
          span.span_id = next_span_id_ + j;
          span.parent_span_id = shape.parent < 0 ? 0 : next_span_id_ + shape.parent;
          span.end_unix_nano = ends[j];
          span.start_unix_nano = ends[j] - static_cast<uint64_t>(shape.duration.count()) *
                                               static_cast<uint64_t>(kNanosPerMilli);
          span.service = arena.Add(shape.service, kMaxNameBytes);
          span.name = arena.Add(shape.operation, kMaxNameBytes);
          span.kind = SpanKind::kServer;
          const int64_t bucket = pipeline::BucketOfUnixNanos(static_cast<int64_t>(ends[j]));
          if (!shape.exception_type.empty()) {
            span.status = StatusCode::kError;
            span.exception_type = arena.Add(shape.exception_type, kMaxMessageBytes);
            span.exception_message = arena.Add(shape.exception_message, kMaxMessageBytes);
            ++errors_fed_[{shape.service, shape.exception_type}][bucket];
            traces_with_[shape.exception_type].insert(hex);
          }
          if (shape.duration > kSlow) {
            ++slow_fed_[{shape.service, shape.operation}][bucket];
            traces_with_["slow " + shape.operation].insert(hex);
          }
          shards[shard].push_back(span);
        }
        next_span_id_ += traffic.shape.size();
      }
    }
    auto strings = std::make_shared<const std::string>(std::move(arena.strings));
    for (size_t shard = 0; shard < shards.size(); ++shard) {
      if (shards[shard].empty()) continue;
      pipeline::ShardBatch batch;
      batch.strings = strings;
      batch.spans = std::move(shards[shard]);
      processors_[shard]->Process(batch);
    }
  }

  Fed errors_fed_;
  Fed slow_fed_;
  uint64_t traces_ = 0;
  uint64_t next_span_id_ = 1;
};

const SpanShape kTimeout{.service = "checkout",
                         .operation = "POST /checkout",
                         .exception_type = "TimeoutError",
                         .exception_message = "upstream timed out"};
const SpanShape kRefused{.service = "checkout",
                         .operation = "POST /checkout",
                         .exception_type = "ConnectError",
                         .exception_message = "connection refused"};
const SpanShape kCheckoutOk{.service = "checkout", .operation = "POST /checkout"};

// 7 timeouts and 3 refusals a second (among 20 requests): the timeout covers 70 % of the
// errors, so 80 % needs both, and each is one router alert (one group, one page).
TEST_F(AlertFeedTest, OneAlertPerSignatureWithItsShareAndPinnedTraces) {
  slo::Slo slo = BurnSlo("checkout", "availability", slo::SliKind::kErrors);
  slo.description = "Checkout requests succeed";
  slo.alerting.labels = {{"team", "shop"}};
  slo.alerting.annotations = {{"runbook_url", "https://runbooks.example/checkout"}};
  Start({slo});
  traffic_ = {{{kTimeout}, 7}, {{kRefused}, 3}, {{kCheckoutOk}, 10}};
  RunUntil(30);

  // The ids computed here are the ones the pipeline registered for these exceptions.
  std::map<std::string, std::string> registered;
  for (const pipeline::SignatureInfo& info : engine_.store().Signatures()) {
    registered[info.exception_type] = pipeline::SignatureIdHex(info.id);
  }
  EXPECT_EQ(registered,
            (std::map<std::string, std::string>{{"TimeoutError", SignatureId(kTimeout)},
                                                {"ConnectError", SignatureId(kRefused)}}));

  ASSERT_TRUE(Firing("checkout", "availability"));
  const std::vector<Alert> firing = feed_->Firing();
  ASSERT_EQ(firing.size(), 2u);
  const uint64_t timeouts = FedErrors("checkout", "TimeoutError", seconds(30));
  const uint64_t refusals = FedErrors("checkout", "ConnectError", seconds(30));
  ASSERT_EQ(timeouts, 7u * 20);  // two buckets of the window have traffic, the third is new
  ASSERT_EQ(refusals, 3u * 20);
  const double total = static_cast<double>(timeouts + refusals);
  for (const auto& [span, count] :
       std::vector<std::pair<SpanShape, uint64_t>>{{kTimeout, timeouts}, {kRefused, refusals}}) {
    const Alert* alert = WithSignature(firing, SignatureId(span));
    ASSERT_NE(alert, nullptr) << span.exception_type;
    EXPECT_EQ(alert->labels, (Labels{{"alertname", "SloBurnRate"},
                                     {"service", "checkout"},
                                     {"slo", "availability"},
                                     {"severity", "page"},
                                     {"team", "shop"},
                                     {"signature", SignatureId(span)}}));
    EXPECT_TRUE(alert->firing);
    EXPECT_EQ(alert->starts_at_unix_nano, Status("checkout", "availability")->fired_at_unix_nano);
    EXPECT_EQ(alert->annotations.at("runbook_url"), "https://runbooks.example/checkout");
    EXPECT_EQ(alert->annotations.at("description"), "Checkout requests succeed");
    EXPECT_FALSE(alert->annotations.at("summary").empty());
    ASSERT_EQ(alert->causes.size(), 1u);
    ExpectSignatureCause(alert->causes[0], span, count, static_cast<double>(count) / total);
  }
  std::set<std::string> cause_ids;
  for (const Cause& cause : feed_->CausesOf(*Status("checkout", "availability"))) {
    cause_ids.insert(cause.id);
  }
  EXPECT_EQ(cause_ids, (std::set<std::string>{SignatureId(kTimeout), SignatureId(kRefused)}));

  // The router got them at the first evaluation (10 s): one group per signature, each sent
  // once group_wait (30 s) has passed.
  EXPECT_TRUE(sink_.sent.empty());
  RunUntil(40);
  ASSERT_EQ(sink_.sent.size(), 2u);
  std::set<std::string> sent;
  for (const Notification& n : sink_.sent) {
    EXPECT_TRUE(n.firing);
    ASSERT_EQ(n.alerts.size(), 1u);
    const std::string& signature = n.alerts[0].labels.at("signature");
    sent.insert(signature);
    EXPECT_EQ(n.group_labels, (Labels{{"service", "checkout"}, {"signature", signature}}));
    ASSERT_EQ(n.alerts[0].causes.size(), 1u);
    EXPECT_EQ(n.alerts[0].causes[0].id, signature);
  }
  EXPECT_EQ(sent, (std::set<std::string>{SignatureId(kTimeout), SignatureId(kRefused)}));
}

// A total outage after healthy traffic, with a 10 m long window: the 30 s short window burns
// from the first evaluation, the long window confirms ~60 s later. OutageToPage() returns the
// seconds from the outage's start to the page alert firing and to its notification.
class AlertFeedWarmingTest : public AlertFeedTest {
 protected:
  std::pair<double, double> OutageToPage() {
    slo::Slo slo = BurnSlo("checkout", "availability", slo::SliKind::kErrors);
    slo.alerting.tiers[0].long_window = minutes(10);
    Start({slo});
    traffic_ = {{{kCheckoutOk}, 10}};
    RunUntil(700);  // the long window holds healthy traffic only
    EXPECT_TRUE(sink_.sent.empty());
    const int64_t outage = second_;
    traffic_ = {{{kTimeout}, 10}};
    int64_t warmed_at = -1;
    size_t pinned_while_warming = 0;
    size_t cause_traces_while_warming = 0;
    RunUntil(outage + 200, [&] {
      if (!Status("checkout", "availability")->warming) return;
      if (warmed_at < 0) warmed_at = second_;
      // A warming alert is never sent: no link to keep open.
      const auto [first, last] = Window(seconds(30));
      for (const slo::AlertCause& cause :
           finder_.Find(SloNamed("checkout", "availability"), first, last)) {
        for (const pipeline::ExemplarRef& trace : cause.traces) {
          ++cause_traces_while_warming;
          if (feed_->PinnedTrace(trace->trace_id) != nullptr) ++pinned_while_warming;
        }
      }
    });
    EXPECT_GT(cause_traces_while_warming, 0u);
    EXPECT_EQ(pinned_while_warming, 0u);
    // Independent of the code under test: the first evaluation after the outage's start sees a
    // whole bucket of errors, a 100 % error ratio in the 30 s window, burning 100x >= 10x; the
    // 10 m window holds 59 complete buckets and needs 10 % of them failed: 6 buckets.
    EXPECT_EQ(warmed_at, outage + 10);
    const std::optional<slo::AlertStatus> status = Status("checkout", "availability");
    EXPECT_EQ(status->state, slo::AlertState::kFiring);
    EXPECT_EQ(status->fired_at_unix_nano, (kEpochSeconds + outage + 60) * 1'000'000'000);
    EXPECT_EQ(sink_.sent.size(), 1u);
    if (sink_.sent.empty()) return {-1, -1};
    EXPECT_EQ(sink_.sent[0].group_labels,
              (Labels{{"service", "checkout"}, {"signature", SignatureId(kTimeout)}}));
    // The page's traces are kept.
    size_t links = 0;
    for (const Alert& alert : sink_.sent[0].alerts) {
      for (const Cause& cause : alert.causes) {
        for (const std::string& hex : cause.trace_ids) {
          const std::optional<TraceId> id = ParseTraceIdHex(hex);
          EXPECT_TRUE(id.has_value()) << hex;
          if (id) {
            EXPECT_NE(feed_->PinnedTrace(*id), nullptr) << hex;
          }
          ++links;
        }
      }
    }
    EXPECT_GT(links, 0u);
    const double start = static_cast<double>(kEpochSeconds + outage) * 1e9;
    return {(static_cast<double>(status->fired_at_unix_nano) - start) / 1e9,
            (static_cast<double>(sink_.sent[0].created_unix_nano) - start) / 1e9};
  }
};

// group_wait_start: warming (the default). The alert warmed for 50 s (> group_wait 30 s) under
// the signature it fires with: the page leaves when it fires.
TEST_F(AlertFeedWarmingTest, PageLeavesWhenTheAlertFiresAfterWarmingPastGroupWait) {
  const auto [fire_s, notify_s] = OutageToPage();
  EXPECT_EQ(fire_s, 60);
  EXPECT_EQ(notify_s, 60);
}

// group_wait_start: firing (Alertmanager's timing): group_wait follows the firing.
TEST_F(AlertFeedWarmingTest, GroupWaitStartFiringWaitsAfterTheAlertFires) {
  router_options_.group_wait_from_warming = false;
  const auto [fire_s, notify_s] = OutageToPage();
  EXPECT_EQ(fire_s, 60);
  EXPECT_EQ(notify_s, 90);
}

// An errors SLO and an error_traces SLO of one service fail through one signature: both alerts
// carry it and share one group, so one notification pages for both.
TEST_F(AlertFeedTest, TwoSlosOfOneSignatureShareOneGroup) {
  slo::Slo traces = BurnSlo("checkout", "failed-traces", slo::SliKind::kErrorTraces);
  traces.alerting.annotations = {{"summary", "checkout traces fail"}};
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors), traces});
  traffic_ = {{{kTimeout}, 10}, {{kCheckoutOk}, 10}};
  // Errors fire at 10 s; error traces once the first traces complete (idle 15 s), at 20 s.
  RunUntil(30);
  ASSERT_TRUE(Firing("checkout", "availability"));
  ASSERT_TRUE(Firing("checkout", "failed-traces"));
  const std::vector<Alert> firing = feed_->Firing();
  ASSERT_EQ(firing.size(), 2u);
  for (const Alert& alert : firing) {
    EXPECT_EQ(alert.labels.at("signature"), SignatureId(kTimeout));
    ASSERT_EQ(alert.causes.size(), 1u);
    EXPECT_EQ(alert.causes[0].id, SignatureId(kTimeout));
    EXPECT_DOUBLE_EQ(alert.causes[0].share, 1.0);
  }
  const std::vector<Alert> traces_alerts = OfSlo(firing, "checkout", "failed-traces");
  ASSERT_EQ(traces_alerts.size(), 1u);
  EXPECT_EQ(traces_alerts[0].annotations.at("summary"), "checkout traces fail")
      << "the rule's summary is kept";
  EXPECT_EQ(router_->group_count(), 1u);

  RunUntil(40);
  ASSERT_EQ(sink_.sent.size(), 1u);
  const Notification& page = sink_.sent[0];
  EXPECT_EQ(page.group_labels,
            (Labels{{"service", "checkout"}, {"signature", SignatureId(kTimeout)}}));
  std::set<std::string> slos;
  for (const Alert& alert : page.alerts) slos.insert(alert.labels.at("slo"));
  EXPECT_EQ(slos, (std::set<std::string>{"availability", "failed-traces"}));
}

// Once named, a signature stays named while the SLO alert fires, even after it has left the
// window (no resolve and re-open of its group); when the SLO alert resolves, all of them do.
TEST_F(AlertFeedTest, CausesStayWhileTheSloAlertFiresThenAllResolve) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  const std::string a = SignatureId(kTimeout);
  const std::string b = SignatureId(kRefused);
  traffic_ = {{{kTimeout}, 7}, {{kRefused}, 3}, {{kCheckoutOk}, 10}};
  RunUntil(40);
  ASSERT_EQ(SignaturesOf(feed_->Firing()), (std::set<std::string>{a, b}));
  ASSERT_EQ(sink_.sent.size(), 2u);

  // Only timeouts from 41 s on: from 60 s the window holds no refusal.
  traffic_ = {{{kTimeout}, 10}, {{kCheckoutOk}, 10}};
  int checked = 0;
  RunUntil(80, [&] {
    if (second_ < 60) return;
    ASSERT_TRUE(Firing("checkout", "availability"));
    auto [first, last] = Window(seconds(30));
    ASSERT_EQ(FedErrors("checkout", "ConnectError", seconds(30)), 0u);
    ASSERT_EQ(IdsOf(finder_.Find(SloNamed("checkout", "availability"), first, last)),
              std::vector<std::string>{a});
    const std::vector<Alert> firing = feed_->Firing();
    EXPECT_EQ(SignaturesOf(firing), (std::set<std::string>{a, b})) << "at " << second_;
    const Alert* timeout = WithSignature(firing, a);
    ASSERT_NE(timeout, nullptr);
    ASSERT_EQ(timeout->causes.size(), 1u);
    EXPECT_EQ(timeout->causes[0].count, FedErrors("checkout", "TimeoutError", seconds(30)))
        << "fresh figures while it shows";
    EXPECT_DOUBLE_EQ(timeout->causes[0].share, 1.0);
    ++checked;
  });
  EXPECT_EQ(checked, 3);
  EXPECT_EQ(sink_.sent.size(), 2u) << "no group resolved or re-opened";

  // No errors from 81 s on: the SLO alert resolves once its short window is clean.
  traffic_ = {{{kCheckoutOk}, 20}};
  int64_t resolved_at = 0;
  RunUntil(200, [&] {
    if (resolved_at != 0) return;
    if (Firing("checkout", "availability")) {
      EXPECT_EQ(SignaturesOf(feed_->Firing()), (std::set<std::string>{a, b})) << "at " << second_;
      return;
    }
    resolved_at = second_;
    EXPECT_TRUE(feed_->Firing().empty());
  });
  ASSERT_NE(resolved_at, 0);
  for (const std::string& signature : {a, b}) {
    std::vector<const Notification*> of_group;
    for (const Notification& n : sink_.sent) {
      if (n.group_labels.at("signature") == signature) of_group.push_back(&n);
    }
    ASSERT_EQ(of_group.size(), 2u) << signature;
    EXPECT_TRUE(of_group[0]->firing);
    EXPECT_FALSE(of_group[1]->firing) << "resolved";
    EXPECT_GE(of_group[1]->created_unix_nano, (kEpochSeconds + resolved_at) * 1'000'000'000)
        << "not before the SLO alert";
    ASSERT_EQ(of_group[1]->alerts.size(), 1u);
    EXPECT_FALSE(of_group[1]->alerts[0].firing);
  }
  EXPECT_EQ(router_->group_count(), 0u);
}

// checkout's entry span fails (CheckoutFailed) because the payment span below it failed
// (PaymentDeclined). checkout's alert names payment's signature with cause_service=payment once
// the traces completed and show it; payment's own alert fires too, so only payment pages.
const SpanShape kCheckoutFailed{.service = "checkout",
                                .operation = "POST /checkout",
                                .exception_type = "CheckoutFailed",
                                .exception_message = "payment failed",
                                .duration = milliseconds(40)};
const SpanShape kDeclined{.service = "payment",
                          .operation = "charge",
                          .parent = 0,
                          .exception_type = "PaymentDeclined",
                          .exception_message = "card declined",
                          .duration = milliseconds(20)};
const SpanShape kCheckoutPays{
    .service = "checkout", .operation = "POST /checkout", .duration = milliseconds(40)};
const SpanShape kPaymentOk{
    .service = "payment", .operation = "charge", .parent = 0, .duration = milliseconds(20)};

// A long incident whose errors keep changing signature: the feed keeps at most
// max_sticky_causes (8) per SLO alert, dropping the ones named longest ago that no longer show.
TEST_F(AlertFeedTest, StickyCausesAreBoundedOldestFirst) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  std::vector<std::string> named;  // in the order the test makes them the only error
  constexpr int kKinds = 11;
  for (int k = 0; k < kKinds; ++k) {
    const SpanShape error{.service = "checkout",
                          .operation = "POST /checkout",
                          .exception_type = "Error" + std::string(1, static_cast<char>('A' + k)),
                          .exception_message = "boom"};
    named.push_back(SignatureId(error));
    traffic_ = {{{error}, 10}, {{kCheckoutOk}, 10}};
    RunUntil(40 * (k + 1));  // 40 s each: the 30 s window then holds only this one
    ASSERT_TRUE(Firing("checkout", "availability")) << "at " << second_;
    const std::set<std::string> firing = SignaturesOf(feed_->Firing());
    const size_t kept = std::min<size_t>(named.size(), 8);
    EXPECT_EQ(firing, std::set<std::string>(named.end() - static_cast<long>(kept), named.end()))
        << "after " << named.size() << " signatures";
  }
}

TEST_F(AlertFeedTest, CauseThatBeganDownstreamIsNamedByItsOriginAndHeldBack) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors),
         BurnSlo("payment", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kCheckoutFailed, kDeclined}, 10}, {{kCheckoutPays, kPaymentOk}, 10}};
  const std::string own = SignatureId(kCheckoutFailed);
  const std::string origin = SignatureId(kDeclined);

  // 10 s: both fire; no trace has completed yet, so checkout's cause is its own signature.
  RunUntil(10);
  ASSERT_TRUE(Firing("checkout", "availability"));
  ASSERT_TRUE(Firing("payment", "availability"));
  std::vector<Alert> checkout = OfSlo(feed_->Firing(), "checkout", "availability");
  ASSERT_EQ(checkout.size(), 1u);
  EXPECT_EQ(checkout[0].labels.at("signature"), own);
  EXPECT_EQ(checkout[0].labels.count("cause_service"), 0u);

  // 20 s: the traces of the first 5 s completed (idle 15 s) and show where the error began.
  RunUntil(20);
  checkout = OfSlo(feed_->Firing(), "checkout", "availability");
  ASSERT_EQ(checkout.size(), 1u) << "the origin replaces the own signature";
  EXPECT_EQ(checkout[0].labels, (Labels{{"alertname", "SloBurnRate"},
                                        {"service", "checkout"},
                                        {"slo", "availability"},
                                        {"severity", "page"},
                                        {"signature", origin},
                                        {"cause_service", "payment"}}));
  ASSERT_EQ(checkout[0].causes.size(), 1u);
  const Cause& cause = checkout[0].causes[0];
  EXPECT_EQ(cause.id, origin);
  EXPECT_TRUE(cause.title.starts_with("payment: ")) << cause.title;
  EXPECT_EQ(cause.title, "payment: PaymentDeclined: card declined");
  EXPECT_EQ(cause.count, FedErrors("checkout", "CheckoutFailed", seconds(30)));
  EXPECT_DOUBLE_EQ(cause.share, 1.0);
  ASSERT_FALSE(cause.trace_ids.empty());
  for (const std::string& hex : cause.trace_ids) {
    EXPECT_TRUE(traces_with_["PaymentDeclined"].contains(hex)) << hex;
    EXPECT_NE(feed_->PinnedTrace(*ParseTraceIdHex(hex)), nullptr) << hex;
  }
  const std::vector<Alert> payment = OfSlo(feed_->Firing(), "payment", "availability");
  ASSERT_EQ(payment.size(), 1u);
  EXPECT_EQ(payment[0].labels.at("signature"), origin);
  EXPECT_EQ(payment[0].labels.count("cause_service"), 0u);

  // Past group_wait and group_interval: only payment pages; checkout's alert for its own
  // signature resolved before its group_wait, its alert for payment's cause is held back.
  RunUntil(120);
  EXPECT_FALSE(sink_.sent.empty());
  EXPECT_EQ(SentFor("payment").size(), sink_.sent.size());
  EXPECT_TRUE(SentFor("checkout").empty());
  EXPECT_EQ(OfSlo(feed_->Firing(), "checkout", "availability").size(), 1u);
}

// A cause that began downstream, in a service without an SLO of its own, with group_wait (5 s)
// shorter than the time its traces take to complete (idle 15 s): the alert fires at 10 s named by
// its own signature, and the traces show the origin at 20 s. Without origin_hold the page goes
// out under the own signature, then again under the origin (two pages for one cause); with it,
// the alert is held until its traces show, and pages once, under the origin.
class AlertFeedOriginHoldTest : public AlertFeedTest, public ::testing::WithParamInterface<bool> {};

TEST_P(AlertFeedOriginHoldTest, PagesOnceUnderTheOriginWhenHeld) {
  const bool hold = GetParam();
  router_options_.group_wait = seconds(5);
  feed_options_.origin_hold = hold ? seconds(90) : seconds(0);
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kCheckoutFailed, kDeclined}, 10}, {{kCheckoutPays, kPaymentOk}, 10}};
  const std::string own = SignatureId(kCheckoutFailed);
  const std::string origin = SignatureId(kDeclined);
  RunUntil(10);
  ASSERT_TRUE(Firing("checkout", "availability"));
  EXPECT_EQ(feed_->Firing().size(), hold ? 0u : 1u) << "held: handed to the router as warming";
  RunUntil(120);
  std::vector<std::string> paged;
  for (const Notification& n : SentFor("checkout")) {
    if (n.firing) paged.push_back(n.group_labels.at("signature"));
  }
  if (hold) {
    EXPECT_EQ(paged, std::vector<std::string>{origin});
  } else {
    EXPECT_EQ(paged, (std::vector<std::string>{own, origin}));
  }
  const std::vector<Alert> checkout = OfSlo(feed_->Firing(), "checkout", "availability");
  ASSERT_EQ(checkout.size(), 1u);
  EXPECT_EQ(checkout[0].labels.at("signature"), origin);
}

INSTANTIATE_TEST_SUITE_P(Hold, AlertFeedOriginHoldTest, ::testing::Bool());

// A cause no completed trace shows within origin_hold (here traces stay open for minutes) is
// held no longer than that: then it pages, under its own signature.
class AlertFeedLongTracesTest : public AlertFeedTest {
 protected:
  static config::PipelineConfig LongTraces() {
    config::PipelineConfig config = PipelineConfig();
    config.trace_idle_timeout = minutes(10);
    config.trace_max_age = minutes(20);
    return config;
  }
  AlertFeedLongTracesTest() : AlertFeedTest(LongTraces()) {}
};

TEST_F(AlertFeedLongTracesTest, HeldCauseWithoutTracesPagesWhenTheHoldEnds) {
  router_options_.group_wait = seconds(5);
  feed_options_.origin_hold = seconds(30);
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kTimeout}, 10}, {{kCheckoutOk}, 10}};
  RunUntil(10);
  ASSERT_TRUE(Firing("checkout", "availability"));
  EXPECT_TRUE(feed_->Firing().empty()) << "held: named at 10 s, no trace completed";
  RunUntil(39);
  EXPECT_TRUE(sink_.sent.empty()) << "held through the evaluations at 20 s and 30 s";
  RunUntil(60);
  ASSERT_EQ(sink_.sent.size(), 1u) << "released at 40 s (30 s after it was named)";
  EXPECT_EQ(sink_.sent[0].group_labels.at("signature"), SignatureId(kTimeout));
  EXPECT_TRUE(sink_.sent[0].alerts[0].causes[0].trace_ids.empty());
}

// After a restart the SLI minutes come back without signatures, so the finder names nothing;
// the feed seeded with the router's alerts keeps their signatures, and nothing resolves.
TEST_F(AlertFeedTest, SeededFeedKeepsSignaturesTheFinderCannotFindAfterARestart) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kTimeout}, 7}, {{kRefused}, 3}, {{kCheckoutOk}, 10}};
  RunUntil(50);
  const std::vector<Alert> before = feed_->Firing();
  ASSERT_EQ(SignaturesOf(before),
            (std::set<std::string>{SignatureId(kTimeout), SignatureId(kRefused)}));
  ASSERT_EQ(sink_.sent.size(), 2u);

  RestartFeed();
  const slo::Slo& slo = SloNamed("checkout", "availability");
  auto [first, last] = Window(minutes(1));
  ASSERT_GT(
      restored_store_->SeriesCounts(slo::SloSeries(slo, engine_.series()), first, last).errors, 0u);
  ASSERT_TRUE(restored_finder_->Find(slo, first, last).empty()) << "no signatures restored";

  // An unseeded feed over the same store has nothing to name (its own router, so as not to
  // disturb this one).
  RecordingSink other_sink;
  MemoryStateStore other_state;
  MemorySilenceStore other_silences;
  std::unique_ptr<AlertRouter> other_router = MakeRouter(other_sink, other_state, other_silences);
  {
    AlertFeed unseeded(AlertFeedOptions{}, evaluator_, *restored_finder_, *other_router);
    unseeded.Update(NowNanos());
    const std::vector<Alert> firing = unseeded.Firing();
    ASSERT_EQ(firing.size(), 1u);
    EXPECT_EQ(firing[0].labels.count("signature"), 0u);
    EXPECT_TRUE(firing[0].causes.empty());
  }

  RunUntil(120, [&] {
    ASSERT_TRUE(Firing("checkout", "availability"));
    const std::vector<Alert> firing = feed_->Firing();
    ASSERT_EQ(firing.size(), 2u) << "at " << second_;
    for (const Alert& old : before) {
      const Alert* now = WithSignature(firing, old.labels.at("signature"));
      ASSERT_NE(now, nullptr);
      EXPECT_EQ(now->labels, old.labels);
      ASSERT_EQ(now->causes.size(), 1u);
      EXPECT_EQ(now->causes[0].id, old.causes[0].id);
      EXPECT_EQ(now->causes[0].title, old.causes[0].title);
    }
    EXPECT_EQ(feed_->CausesOf(*Status("checkout", "availability")).size(), 2u);
  });
  EXPECT_EQ(sink_.sent.size(), 2u) << "nothing resolved, nothing sent again";
}

// As main restarts: the router comes back from its state store with the alerts it last sent
// (causes included), and the seeded feed keeps their signatures; nothing is sent again.
TEST_F(AlertFeedTest, SeededFeedKeepsTheSignaturesARestartedRouterSent) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kTimeout}, 7}, {{kRefused}, 3}, {{kCheckoutOk}, 10}};
  RunUntil(50);
  const std::vector<Alert> before = feed_->Firing();
  ASSERT_EQ(sink_.sent.size(), 2u);

  RestartFeed(/*reload_router=*/true);
  ASSERT_EQ(HeldAlerts(*router_).size(), 2u);
  RunUntil(120, [&] {
    const std::vector<Alert> firing = feed_->Firing();
    ASSERT_EQ(firing.size(), 2u) << "at " << second_;
    for (const Alert& old : before) {
      const Alert* now = WithSignature(firing, old.labels.at("signature"));
      ASSERT_NE(now, nullptr);
      EXPECT_EQ(now->labels, old.labels);
    }
  });
  EXPECT_EQ(sink_.sent.size(), 2u) << "nothing resolved, nothing sent again";
}

// The same after a restart for a cause that began downstream: it keeps its origin's signature
// and cause_service, so it stays held back behind payment's page.
TEST_F(AlertFeedTest, SeededFeedKeepsTheCauseServiceOfADownstreamCause) {
  Start({BurnSlo("checkout", "availability", slo::SliKind::kErrors),
         BurnSlo("payment", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kCheckoutFailed, kDeclined}, 10}, {{kCheckoutPays, kPaymentOk}, 10}};
  RunUntil(30);
  std::vector<Alert> checkout = OfSlo(feed_->Firing(), "checkout", "availability");
  ASSERT_EQ(checkout.size(), 1u);
  ASSERT_EQ(checkout[0].labels.count("cause_service"), 1u);

  RestartFeed();
  RunUntil(120);
  checkout = OfSlo(feed_->Firing(), "checkout", "availability");
  ASSERT_EQ(checkout.size(), 1u);
  EXPECT_EQ(checkout[0].labels.at("signature"), SignatureId(kDeclined));
  EXPECT_EQ(checkout[0].labels.at("cause_service"), "payment");
  const std::vector<Alert> payment = OfSlo(feed_->Firing(), "payment", "availability");
  ASSERT_EQ(payment.size(), 1u);
  EXPECT_EQ(payment[0].labels.at("signature"), SignatureId(kDeclined));
  EXPECT_FALSE(SentFor("payment").empty());
  EXPECT_TRUE(SentFor("checkout").empty());
}

// Latency alerts (burn rate and quantile) carry their slow operations as causes, without a
// signature label: one alert each.
TEST_F(AlertFeedTest, LatencyAlertsCarrySlowOperationsWithoutSignature) {
  slo::Slo p99;
  p99.service = "search";
  p99.name = "p99";
  p99.sli.kind = slo::SliKind::kLatencyQuantile;
  p99.sli.latency_quantile = {.quantile = 0.99, .threshold = kSlow, .window = seconds(30)};
  p99.alerting.min_events = 5;
  p99.alerting.severity = slo::Severity::kTicket;
  Start({BurnSlo("search", "latency", slo::SliKind::kLatency), p99});
  const SpanShape slow_search{
      .service = "search", .operation = "GET /search", .duration = milliseconds(300)};
  const SpanShape slow_suggest{
      .service = "search", .operation = "GET /suggest", .duration = milliseconds(300)};
  const SpanShape fast_search{
      .service = "search", .operation = "GET /search", .duration = milliseconds(5)};
  traffic_ = {{{slow_search}, 7}, {{slow_suggest}, 3}, {{fast_search}, 10}};
  RunUntil(30);
  ASSERT_TRUE(Firing("search", "latency"));
  ASSERT_TRUE(Firing("search", "p99"));

  const std::vector<Alert> firing = feed_->Firing();
  ASSERT_EQ(firing.size(), 2u);
  const uint64_t search = FedSlow("search", "GET /search", seconds(30));
  const uint64_t suggest = FedSlow("search", "GET /suggest", seconds(30));
  ASSERT_EQ(search, 7u * 20);
  ASSERT_EQ(suggest, 3u * 20);
  for (const auto& [name, labels] :
       std::vector<std::pair<std::string, Labels>>{{"latency",
                                                    {{"alertname", "SloBurnRate"},
                                                     {"service", "search"},
                                                     {"slo", "latency"},
                                                     {"severity", "page"}}},
                                                   {"p99",
                                                    {{"alertname", "SloLatencyQuantile"},
                                                     {"service", "search"},
                                                     {"slo", "p99"},
                                                     {"severity", "ticket"}}}}) {
    SCOPED_TRACE(name);
    const std::vector<Alert> alerts = OfSlo(firing, "search", name);
    ASSERT_EQ(alerts.size(), 1u);
    EXPECT_EQ(alerts[0].labels, labels);
    ASSERT_EQ(alerts[0].causes.size(), 2u);
    const std::vector<std::pair<std::string, uint64_t>> expected = {{"GET /search", search},
                                                                    {"GET /suggest", suggest}};
    for (size_t i = 0; i < expected.size(); ++i) {
      const Cause& cause = alerts[0].causes[i];
      EXPECT_EQ(cause.kind, Cause::Kind::kSlowOperation);
      EXPECT_EQ(cause.id, expected[i].first);
      EXPECT_EQ(cause.title, expected[i].first);
      EXPECT_EQ(cause.count, expected[i].second);
      EXPECT_DOUBLE_EQ(cause.share, static_cast<double>(expected[i].second) /
                                        static_cast<double>(search + suggest));
      ASSERT_FALSE(cause.trace_ids.empty());
      for (const std::string& hex : cause.trace_ids) {
        EXPECT_TRUE(traces_with_["slow " + expected[i].first].contains(hex)) << hex;
        EXPECT_NE(feed_->PinnedTrace(*ParseTraceIdHex(hex)), nullptr) << hex;
      }
    }
  }
  EXPECT_TRUE(feed_->PinnedTrace(TraceId{}) == nullptr);
}

// A service that sends nothing: its no-data alert is one alert without causes or signature.
TEST_F(AlertFeedTest, NoDataAlertIsOneAlertWithoutCauses) {
  slo::Slo inventory = BurnSlo("inventory", "availability", slo::SliKind::kErrors);
  inventory.alerting.no_data = slo::NoDataAlert{.for_duration = seconds(30)};
  Start({inventory, BurnSlo("checkout", "availability", slo::SliKind::kErrors)});
  traffic_ = {{{kCheckoutOk}, 10}};
  // First evaluated at 10 s; silence is known 30 s later.
  RunUntil(30);
  EXPECT_TRUE(feed_->Firing().empty());
  RunUntil(40);
  const std::optional<slo::AlertStatus> status = Status("inventory", "availability", true);
  ASSERT_TRUE(status.has_value());
  ASSERT_EQ(status->state, slo::AlertState::kFiring);
  const std::vector<Alert> firing = feed_->Firing();
  ASSERT_EQ(firing.size(), 1u);
  EXPECT_EQ(firing[0].labels, (Labels{{"alertname", "SloNoData"},
                                      {"service", "inventory"},
                                      {"slo", "availability"},
                                      {"severity", "ticket"}}));
  EXPECT_TRUE(firing[0].causes.empty());
  EXPECT_TRUE(feed_->CausesOf(*status).empty());
  RunUntil(70);
  ASSERT_EQ(sink_.sent.size(), 1u);
  EXPECT_EQ(sink_.sent[0].group_labels, (Labels{{"service", "inventory"}}));
}

}  // namespace
}  // namespace traceslo::alerting
