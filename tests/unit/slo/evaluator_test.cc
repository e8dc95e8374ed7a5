#include "traceslo/slo/evaluator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "tests/fakes/fake_clock.h"

namespace traceslo::slo {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kStartSeconds = 1'700'000'000;  // a whole minute: divisible by 60

// SLIs written straight into a real SliStore, bucket by bucket, with a ledger the expectations
// are computed from.
class Harness {
 public:
  explicit Harness(std::vector<Slo> slos)
      : registry(100, 100),
        store(pipeline::SliStoreOptions{.shards = 1}),
        source(registry, store),
        evaluator(EvaluatorOptions{}, source) {
    ids = registry.Resolve("checkout", "POST /pay");
    evaluator.SetRules(slos);
  }

  int64_t now_seconds() const { return kStartSeconds + elapsed_; }

  // One 10 s bucket of traffic ending now, then the clock moves past it and evaluates.
  std::vector<AlertTransition> Step(uint64_t requests, uint64_t errors,
                                    uint64_t latency_nanos = 1'000'000) {
    pipeline::ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = now_seconds() / pipeline::kBucketSeconds;
    d.requests = requests;
    d.errors = errors;
    d.latency.Add(latency_nanos, requests);
    ledger[d.bucket] = {requests, errors};
    store.Apply(std::move(delta));
    elapsed_ += pipeline::kBucketSeconds;
    return evaluator.Evaluate(std::chrono::system_clock::time_point(seconds(now_seconds())));
  }

  // Exact events over the `buckets` buckets ending with the current (empty) one.
  Events Exact(int64_t buckets) const {
    const int64_t now_bucket = now_seconds() / pipeline::kBucketSeconds;
    Events e;
    for (const auto& [bucket, events] : ledger) {
      if (bucket > now_bucket - buckets && bucket <= now_bucket) e += events;
    }
    return e;
  }

  AlertStatus Alert(Severity severity) const {
    for (const AlertStatus& a : evaluator.Alerts()) {
      if (a.severity == severity && !a.no_data) return a;
    }
    ADD_FAILURE() << "no alert";
    return {};
  }

  pipeline::SeriesRegistry registry;
  pipeline::SliStore store;
  StoreSliSource source;
  Evaluator evaluator;
  pipeline::SeriesRegistry::Ids ids;
  std::map<int64_t, Events> ledger;

 private:
  int64_t elapsed_ = 0;
};

Slo Availability(double objective = 99.9) {
  Slo slo;
  slo.service = "checkout";
  slo.name = "availability";
  slo.objective_percent = objective;
  slo.sli.kind = SliKind::kErrors;
  slo.alerting.tiers = DefaultTiers(Severity::kPage, slo.window);
  for (const BurnRateTier& t : DefaultTiers(Severity::kTicket, slo.window)) {
    slo.alerting.tiers.push_back(t);
  }
  return slo;
}

// Total outage on a 99.9 % SLO with steady traffic: the 14.4x tier needs the 1 h error ratio at
// 14.4 x 0.1 % = 1.44 %, i.e. 51.84 s of a full hour; the first 10 s evaluation after that fires.
TEST(EvaluatorTest, TotalOutageFiresThePageAtTheFirstEvaluationAfter52Seconds) {
  Harness h({Availability()});
  // 6 h clean, so that every window of the default tiers is full (a shorter history makes the
  // 6 h tier more sensitive: it would fire first).
  for (int i = 0; i < 6 * 60 * 6; ++i) ASSERT_TRUE(h.Step(1000, 0).empty());
  int64_t fired_after = -1;
  for (int k = 1; k <= 12 && fired_after < 0; ++k) {
    for (const AlertTransition& t : h.Step(1000, 1000)) {
      if (t.status.severity == Severity::kPage && t.status.state == AlertState::kFiring) {
        fired_after = k * 10;
      }
    }
    // Independent arithmetic: the 1 h window holds 359 complete buckets (the current one is
    // empty), k of them failed.
    const double long_ratio = static_cast<double>(k) / 359;
    const bool expected = long_ratio >= 14.4 * 0.001;
    EXPECT_EQ(h.Alert(Severity::kPage).state == AlertState::kFiring, expected) << "k=" << k;
  }
  EXPECT_EQ(fired_after, 60);
  EXPECT_EQ(h.Alert(Severity::kPage).long_window, milliseconds(3'600'000));
  EXPECT_NEAR(h.Alert(Severity::kPage).burn_rate_long, 6.0 / 359 / 0.001, 1e-9);
}

// Warming: a page tier's short window burns at its rate (with min_events) while the alert does
// not fire yet. In a total outage the 5 m window (29 complete buckets) burns 14.4x after one
// failed bucket, five evaluations before the 1 h window confirms.
TEST(EvaluatorTest, ShortWindowBurningBeforeTheLongConfirmsIsWarming) {
  Harness h({Availability()});
  for (int i = 0; i < 6 * 60 * 6; ++i) {
    h.Step(1000, 0);
    ASSERT_FALSE(h.Alert(Severity::kPage).warming) << "healthy step " << i;
  }
  for (int k = 1; k <= 8; ++k) {
    h.Step(1000, 1000);
    const double short_5m = std::min(1.0, static_cast<double>(k) / 29);
    const double short_30m = static_cast<double>(k) / 179;
    const bool firing = static_cast<double>(k) / 359 >= 14.4 * 0.001;
    const bool expected = !firing && (short_5m >= 14.4 * 0.001 || short_30m >= 6 * 0.001);
    const AlertStatus page = h.Alert(Severity::kPage);
    EXPECT_EQ(page.state == AlertState::kFiring, firing) << "k=" << k;
    EXPECT_EQ(page.warming, expected) << "k=" << k;
  }
  // Recovery: the 5 m window cools down and the alert resolves; the 30 m window still holds the
  // 8 failed buckets (8/179 >= 0.6 %), so it warms until they leave it.
  for (int i = 0; i < 40; ++i) h.Step(1000, 0);
  EXPECT_NE(h.Alert(Severity::kPage).state, AlertState::kFiring);
  EXPECT_TRUE(h.Alert(Severity::kPage).warming);
  for (int i = 0; i < 150; ++i) h.Step(1000, 0);  // 190 steps: past the 30 m window
  EXPECT_NE(h.Alert(Severity::kPage).state, AlertState::kFiring);
  EXPECT_FALSE(h.Alert(Severity::kPage).warming);
}

TEST(EvaluatorTest, ShortWindowBelowMinEventsDoesNotWarm) {
  Harness h({Availability()});
  // Every request fails, but the 5 m and 30 m windows hold fewer than min_events (20) events.
  h.Step(3, 3);
  h.Step(3, 3);
  EXPECT_FALSE(h.Alert(Severity::kPage).warming);
  EXPECT_NE(h.Alert(Severity::kPage).state, AlertState::kFiring);
}

TEST(EvaluatorTest, LowTrafficBelowTheMinimumNeverPages) {
  Harness h({Availability()});
  for (int i = 0; i < 6 * 60 * 3; ++i) {
    // One failing request every 2 minutes: burn 1000x, but the page tiers' short windows hold
    // 3 (5 m) and 15 (30 m) events, under min_events 20. (The ticket tiers' 2 h and 6 h short
    // windows do reach 20 events: a ticket is right.)
    for (const AlertTransition& t : h.Step(i % 12 == 0 ? 1 : 0, i % 12 == 0 ? 1 : 0)) {
      if (t.status.severity == Severity::kPage) {
        ADD_FAILURE() << "page " << AlertStateName(t.status.state) << " at step " << i;
      }
    }
  }
}

TEST(EvaluatorTest, RecoveryResolvesTheAlertOnce) {
  Harness h({Availability()});
  for (int i = 0; i < 6 * 30; ++i) h.Step(100, 0);
  std::map<std::pair<Severity, AlertState>, int> transitions;
  for (int i = 0; i < 18; ++i) {  // 3 minutes down
    for (const auto& t : h.Step(100, 100)) ++transitions[{t.status.severity, t.status.state}];
  }
  for (int i = 0; i < 6 * 60 * 2; ++i) {  // 2 hours up
    for (const auto& t : h.Step(100, 0)) ++transitions[{t.status.severity, t.status.state}];
  }
  EXPECT_EQ((transitions[{Severity::kPage, AlertState::kFiring}]), 1);
  EXPECT_EQ((transitions[{Severity::kPage, AlertState::kResolved}]), 1);
  EXPECT_EQ(h.Alert(Severity::kPage).state, AlertState::kResolved);
}

TEST(EvaluatorTest, WindowsBeyondTheStoreComeFromRollupsAndTheBudgetFromAllOfThem) {
  Slo slo = Availability(99.0);
  Harness h({slo});
  uint64_t step = 0;
  for (int i = 0; i < 6 * 60 * 8; ++i, ++step) h.Step(50 + step % 7, step % 13 == 0 ? 3 : 0);
  const SloStatus status = h.evaluator.Slos().at(0);
  for (const WindowFigures& w : status.windows) {
    const int64_t buckets = w.window.count() / 10'000;
    const Events exact = h.Exact(buckets);
    // Windows longer than the store's hour lose at most the part of their first minute that
    // left the store: 5 buckets of at most 56 requests.
    const uint64_t slack = w.window > milliseconds(3'600'000) ? 5 * 56 : 0;
    EXPECT_LE(exact.total - w.events.total, slack) << w.window.count();
    EXPECT_GE(exact.total, w.events.total) << w.window.count();
    EXPECT_LE(exact.bad - w.events.bad, slack) << w.window.count();
  }
  // Compliance window (30 d) holds all 8 hours: the budget is exact but for the first minute.
  const Events all = h.Exact(1'000'000);
  const double spent = static_cast<double>(all.bad) / static_cast<double>(all.total) / 0.01;
  EXPECT_NEAR(status.error_budget_remaining_ratio, 1 - spent, 0.002);
  ASSERT_TRUE(std::isfinite(status.seconds_to_exhaustion));
  EXPECT_GT(status.seconds_to_exhaustion, 0);
}

TEST(EvaluatorTest, LatencyQuantileAlertWaitsForItsForDuration) {
  Slo slo;
  slo.service = "checkout";
  slo.name = "p99";
  slo.sli.kind = SliKind::kLatencyQuantile;
  slo.sli.latency_quantile = {.quantile = 0.99,
                              .threshold = milliseconds(800),
                              .window = milliseconds(60'000),
                              .for_duration = milliseconds(30'000)};
  Harness h({slo});
  for (int i = 0; i < 12; ++i) h.Step(100, 0, 100'000'000);  // 100 ms
  EXPECT_EQ(h.Alert(Severity::kTicket).state, AlertState::kInactive);
  std::vector<AlertState> states;
  for (int i = 0; i < 6; ++i) {
    h.Step(100, 0, 2'000'000'000);  // 2 s
    states.push_back(h.Alert(Severity::kTicket).state);
  }
  // The 1 m window's p99 passes 800 ms once 1 % of its requests are slow (the first bucket);
  // firing comes 30 s of pending later.
  EXPECT_EQ(states, (std::vector<AlertState>{AlertState::kPending, AlertState::kPending,
                                             AlertState::kPending, AlertState::kFiring,
                                             AlertState::kFiring, AlertState::kFiring}));
  EXPECT_NEAR(h.evaluator.Slos().at(0).latency_quantile_seconds, 2.0,
              2.0 * pipeline::LatencySketch::kRelativeErrorBound);
}

TEST(EvaluatorTest, ReloadKeepsStateOfUnchangedSlosAndResetsChangedOnes) {
  Harness h({Availability()});
  for (int i = 0; i < 6 * 30; ++i) h.Step(100, 0);
  for (int i = 0; i < 12; ++i) h.Step(100, 100);
  ASSERT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring);
  h.evaluator.SetRules({Availability()});
  EXPECT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring) << "same SLO: still firing";
  EXPECT_TRUE(h.Step(100, 100).empty()) << "and not fired again";
  Slo changed = Availability();
  changed.filter.operations = {"GET /"};  // another SLI: history does not apply
  h.evaluator.SetRules({changed});
  EXPECT_EQ(h.Alert(Severity::kPage).state, AlertState::kInactive);
}

// Kafka mode: an instance evaluates only the SLOs of the services whose deltas partition it owns;
// the others keep their states, unevaluated, and show no figures on /metrics.
TEST(EvaluatorTest, EvaluatesOnlyOwnedServicesAndKeepsTheOthersAsTheyWere) {
  Slo search = Availability();
  search.service = "search";
  Harness h({Availability(), search});
  for (int i = 0; i < 6 * 30; ++i) h.Step(100, 0);
  for (int i = 0; i < 12; ++i) h.Step(100, 100);  // checkout fails: its page fires
  ASSERT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring);

  // Another instance owns checkout now: not evaluated here, though it has recovered.
  auto only_search = [](std::string_view service) { return service == "search"; };
  for (int i = 0; i < 6 * 30; ++i) {
    pipeline::ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = h.ids.series;
    d.service = h.ids.service;
    d.bucket = (kStartSeconds + (6 * 30 + 12 + i) * 10) / pipeline::kBucketSeconds;
    d.requests = 100;
    d.latency.Add(1'000'000, 100);
    h.store.Apply(std::move(delta));
    const auto at =
        std::chrono::system_clock::time_point(seconds(kStartSeconds + (6 * 30 + 12 + i + 1) * 10));
    EXPECT_TRUE(h.evaluator.Evaluate(at, only_search).empty()) << i;
  }
  EXPECT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring) << "kept as it was";
  std::set<std::string> services;
  for (const auto& f : h.evaluator.Collect()) {
    if (f.name != "traceslo_slo_objective_ratio" && f.name != "traceslo_alerts") continue;
    for (const auto& m : f.metric) {
      for (const auto& label : m.label) {
        if (label.name == "service") services.insert(label.value);
      }
    }
  }
  EXPECT_EQ(services, std::set<std::string>{"search"});

  // Owned again: evaluated on what the store holds now, so it resolves.
  const auto at = std::chrono::system_clock::time_point(seconds(kStartSeconds + 373 * 10));
  bool resolved = false;
  for (const AlertTransition& t : h.evaluator.Evaluate(at, [](std::string_view) { return true; })) {
    if (t.status.service == "checkout" && t.status.severity == Severity::kPage) {
      resolved = t.status.state == AlertState::kResolved;
    }
  }
  EXPECT_TRUE(resolved);
}

// Kafka mode: an instance evaluates time t once every partition is final through t, when the
// store may hold part of t's own bucket; one that takes the service over later evaluates the past
// hour again (after ResetSlos) with all of that bucket. Over a HorizonSliSource both see the same
// windows, so the alert fires since the same evaluation (the notification ids depend on it).
TEST(EvaluatorTest, ResetAndEvaluatedAgainOverTheHorizonDerivesTheSameFiringSince) {
  for (const bool horizon : {false, true}) {
    SCOPED_TRACE(horizon);
    pipeline::SeriesRegistry registry(100, 100);
    pipeline::SliStore store(pipeline::SliStoreOptions{.shards = 1});
    StoreSliSource source(registry, store);
    HorizonSliSource hidden(source);
    Evaluator evaluator(EvaluatorOptions{},
                        horizon ? static_cast<const SliSource&>(hidden) : source);
    evaluator.SetRules({Availability()});
    const auto ids = registry.Resolve("checkout", "POST /pay");
    auto add = [&](int64_t bucket, uint64_t requests, uint64_t errors) {
      pipeline::ShardDelta delta;
      pipeline::SeriesDelta& d = delta.series.emplace_back();
      d.series = ids.series;
      d.service = ids.service;
      d.bucket = bucket;
      d.requests = requests;
      d.errors = errors;
      d.latency.Add(1'000'000, requests);
      store.Apply(std::move(delta));
    };
    auto at = [](int64_t bucket) {
      return std::chrono::system_clock::time_point(seconds(bucket * pipeline::kBucketSeconds));
    };
    auto evaluate = [&](int64_t bucket, const std::function<bool(std::string_view)>& owns) {
      hidden.SetHorizon(bucket);
      return evaluator.Evaluate(at(bucket), owns);
    };
    auto all = [](std::string_view) { return true; };
    // Live: bucket k complete and a little of bucket k + 1 in the store when k + 1 is evaluated.
    const int64_t first = kStartSeconds / pipeline::kBucketSeconds;
    int64_t fired_at = 0;
    for (int64_t k = 0; k < 6 * 30 + 20; ++k) {
      const bool failing = k >= 6 * 30;
      add(first + k, 99, failing ? 99 : 0);  // the rest of bucket k
      add(first + k + 1, 1, k + 1 >= 6 * 30 ? 1 : 0);
      for (const AlertTransition& t : evaluate(first + k + 1, all)) {
        if (t.status.severity == Severity::kPage && t.status.state == AlertState::kFiring) {
          fired_at = t.status.fired_at_unix_nano;
        }
      }
    }
    ASSERT_NE(fired_at, 0);
    // Taken over: bucket first + 200 complete now; the past hour evaluated again.
    add(first + 6 * 30 + 20, 99, 99);
    const int64_t now = first + 6 * 30 + 20;
    auto checkout = [](std::string_view service) { return service == "checkout"; };
    evaluator.ResetSlos(checkout);
    for (int64_t b = now - 359; b <= now; ++b) (void)evaluate(b, checkout);
    int64_t derived = 0;
    for (const AlertStatus& a : evaluator.Alerts()) {
      if (a.severity == Severity::kPage && a.state == AlertState::kFiring) {
        derived = a.fired_at_unix_nano;
      }
    }
    EXPECT_EQ(derived == fired_at, horizon) << derived << " vs " << fired_at;
  }
}

// A takeover during an incident older than the derivation: the derived alert fires since the
// first derived evaluation; the previous owner's state (firing since earlier) gives it back its
// episode. Not when the previous owner had it resolved, not for an alert that resolved and fired
// again within the derivation, not for other SLOs.
TEST(EvaluatorTest, AnEpisodeOlderThanTheDerivationIsInheritedFromThePreviousOwner) {
  Slo other = Availability();
  other.service = "payment";
  Harness h({Availability(), other});
  for (int i = 0; i < 6 * 30; ++i) h.Step(100, 0);
  for (int i = 0; i < 6 * 60 * 2; ++i) h.Step(100, 100);  // two hours of failures
  const AlertStatus before = h.Alert(Severity::kPage);
  ASSERT_EQ(before.state, AlertState::kFiring);
  const std::vector<AlertStatus> previous = h.evaluator.Alerts();

  // Derived again over the last hour only.
  auto checkout = [](std::string_view service) { return service == "checkout"; };
  h.evaluator.ResetSlos(checkout);
  const int64_t now = h.now_seconds();
  const int64_t first = now - 359 * pipeline::kBucketSeconds;
  for (int64_t t = first; t <= now; t += pipeline::kBucketSeconds) {
    (void)h.evaluator.Evaluate(std::chrono::system_clock::time_point(seconds(t)), checkout);
  }
  const int64_t from = first * 1'000'000'000;
  ASSERT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring);
  ASSERT_GT(h.Alert(Severity::kPage).fired_at_unix_nano, before.fired_at_unix_nano)
      << "the derivation alone starts a new episode";

  // The previous owner had it resolved: nothing to inherit.
  std::vector<AlertStatus> resolved = previous;
  for (AlertStatus& a : resolved) a.state = AlertState::kResolved;
  EXPECT_EQ(h.evaluator.InheritEpisodes(resolved, from), 0u);
  // Another service's firing alert does not match.
  std::vector<AlertStatus> elsewhere = previous;
  for (AlertStatus& a : elsewhere) a.service = "inventory";
  EXPECT_EQ(h.evaluator.InheritEpisodes(elsewhere, from), 0u);
  // Derived as firing only since later than the first derived evaluation (it fired again
  // within the derivation): a new episode, kept.
  EXPECT_EQ(h.evaluator.InheritEpisodes(previous, from - pipeline::kBucketNanos), 0u);

  // Every alert firing before and after (the page; the ticket too if its windows fire again).
  size_t firing_both = 0;
  for (const AlertStatus& a : previous) {
    for (const AlertStatus& b : h.evaluator.Alerts()) {
      firing_both += a.state == AlertState::kFiring && b.state == AlertState::kFiring &&
                             a.service == b.service && a.severity == b.severity &&
                             a.no_data == b.no_data
                         ? 1
                         : 0;
    }
  }
  ASSERT_GE(firing_both, 1u);
  EXPECT_EQ(h.evaluator.InheritEpisodes(previous, from), firing_both);
  const AlertStatus after = h.Alert(Severity::kPage);
  EXPECT_EQ(after.state, AlertState::kFiring);
  EXPECT_EQ(after.fired_at_unix_nano, before.fired_at_unix_nano);
  EXPECT_EQ(after.active_since_unix_nano, before.active_since_unix_nano);
}

TEST(EvaluatorTest, ExportsTheSloFamilies) {
  Harness h({Availability()});
  h.Step(100, 1);
  std::map<std::string, size_t> families;
  for (const auto& f : h.evaluator.Collect()) families[f.name] = f.metric.size();
  EXPECT_EQ(families["traceslo_slo_objective_ratio"], 1u);
  // Windows 5m, 30m, 1h, 2h, 6h, 1d, 3d and the compliance window 30d.
  EXPECT_EQ(families["traceslo_slo_sli_ratio"], 8u);
  EXPECT_EQ(families["traceslo_slo_burn_rate"], 8u);
  EXPECT_EQ(families["traceslo_slo_error_budget_remaining_ratio"], 1u);
  EXPECT_EQ(families["traceslo_slo_alert_firing"], 2u);  // page and ticket
  EXPECT_EQ(families["traceslo_alerts"], 6u);            // page and ticket, three states each
}

TEST(EvaluatorTest, AlertsGaugeShowsEachAlertInExactlyItsState) {
  Harness h({Availability()});
  for (int i = 0; i < 6 * 30; ++i) h.Step(100, 0);
  for (int i = 0; i < 12; ++i) h.Step(100, 100);
  ASSERT_EQ(h.Alert(Severity::kPage).state, AlertState::kFiring);
  const AlertState ticket = h.Alert(Severity::kTicket).state;
  std::map<std::pair<std::string, std::string>, double> values;  // (severity, state)
  for (const auto& f : h.evaluator.Collect()) {
    if (f.name != "traceslo_alerts") continue;
    for (const auto& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      EXPECT_EQ(labels["alert"], "slo");
      values[{labels["severity"], labels["state"]}] = m.gauge.value;
    }
  }
  auto value = [&](const char* severity, const char* state) { return values[{severity, state}]; };
  EXPECT_EQ(value("page", "firing"), 1);
  EXPECT_EQ(value("page", "pending"), 0);
  EXPECT_EQ(value("page", "inactive"), 0);
  const std::string ticket_state(
      AlertStateName(ticket == AlertState::kResolved ? AlertState::kInactive : ticket));
  double ticket_sum = 0;
  for (const char* state : {"inactive", "pending", "firing"}) {
    ticket_sum += value("ticket", state);
    EXPECT_EQ(value("ticket", state), state == ticket_state ? 1 : 0) << state;
  }
  EXPECT_EQ(ticket_sum, 1);
}

// A no-data alert needs the SLO watched for its whole `for` before silence counts: a fresh start
// (or a restart, or a new rule) with no traffic yet must not page at the first evaluation.
TEST(EvaluatorTest, NoDataWaitsForItsWholeForBeforeFiring) {
  Slo slo = Availability();
  slo.alerting.no_data =
      NoDataAlert{.for_duration = milliseconds(60'000), .severity = Severity::kTicket};
  Harness h({slo});
  auto no_data = [&] {
    for (const AlertStatus& a : h.evaluator.Alerts()) {
      if (a.no_data) return a.state;
    }
    ADD_FAILURE() << "no no_data alert";
    return AlertState::kInactive;
  };
  // Evaluations at 10 s .. 50 s after the first one: watched for less than 60 s.
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(h.Step(0, 0).empty()) << i;
    EXPECT_EQ(no_data(), AlertState::kInactive) << i;
  }
  // The evaluation 60 s after the first: a whole minute watched, no event in it.
  const auto fired = h.Step(0, 0);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_TRUE(fired[0].status.no_data);
  EXPECT_EQ(fired[0].status.state, AlertState::kFiring);
  // Traffic resolves it at once.
  const auto resolved = h.Step(100, 0);
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].status.state, AlertState::kResolved);
}

}  // namespace
}  // namespace traceslo::slo
