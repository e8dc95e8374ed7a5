#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "traceslo/common/mutex.h"
#include "traceslo/pipeline/latency_sketch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

// Good/bad events of one SLO's SLI.
struct Events {
  uint64_t total = 0;
  uint64_t bad = 0;
  Events& operator+=(const Events& o) {
    total += o.total;
    bad += o.bad;
    return *this;
  }
};

// The events of a latency SLI (kLatency, kLatencyQuantile) in a sketch: every duration is one;
// it is bad when its sketch bucket lies above the threshold's bucket (so a duration up to 1.09 %
// above the threshold can count as good).
Events LatencyEvents(const Slo& slo, const pipeline::LatencySketch& sketch);

// Where the evaluator reads SLIs, per 10 s bucket (pipeline::BucketOfUnixNanos). Thread-safe.
class SliSource {
 public:
  virtual ~SliSource() = default;
  // Events of `slo` over buckets [first_bucket, last_bucket], as far as the source still holds
  // them (the SLI store holds pipeline.sli_retention).
  virtual Events EventsIn(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const = 0;
  // Entry-span latency of the SLO's series over the buckets (kLatencyQuantile).
  virtual pipeline::LatencySketch LatencyIn(const Slo& slo, int64_t first_bucket,
                                            int64_t last_bucket) const = 0;
  // Events of each minute in [first_minute, last_minute] (unix minutes), oldest first: what the
  // evaluator rolls up once minutes have settled. The default asks EventsIn() once per minute;
  // a durable source answers a month at once.
  virtual std::vector<Events> MinuteEvents(const Slo& slo, int64_t first_minute,
                                           int64_t last_minute) const;
};

// Kafka mode's view of a source: nothing at or after the bucket of the evaluation time (set
// before each evaluation), as single-node mode evaluating live sees next to nothing of that
// bucket yet. An instance evaluating time t live, once every partition is final through t, may
// already hold some of t's bucket, one deriving alert states again later holds all of it: with
// the bucket hidden both get the same result. Thread-safe; `inner` is borrowed.
class HorizonSliSource final : public SliSource {
 public:
  explicit HorizonSliSource(const SliSource& inner) : inner_(inner) {}
  // Buckets at or after `bucket` are hidden; INT64_MAX (the default) hides none.
  void SetHorizon(int64_t bucket) { horizon_.store(bucket); }

  // traceslo::slo::SliSource
  Events EventsIn(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const override;
  pipeline::LatencySketch LatencyIn(const Slo& slo, int64_t first_bucket,
                                    int64_t last_bucket) const override;
  std::vector<Events> MinuteEvents(const Slo& slo, int64_t first_minute,
                                   int64_t last_minute) const override;

 private:
  int64_t LastVisible(int64_t last_bucket) const;  // last_bucket clipped below the horizon

  const SliSource& inner_;
  std::atomic<int64_t> horizon_{INT64_MAX};
};

// The series an SLO's errors and latency are read from: those of the SLO's service whose
// operation its filter matches (none while the service is unknown). For kErrorTraces and
// kPartialTraces, whose filter is empty, every series of the service.
std::vector<uint32_t> SloSeries(const Slo& slo, const pipeline::SeriesRegistry& registry);

// Reads the SLI store: errors and latency from the series of the SLO's service that its filter
// matches, error and partial traces from the service. A latency event is bad when its duration
// lies in a sketch bucket above the threshold's bucket, so a duration up to 1.09 % above the
// threshold can count as good. Thread-safe; `registry` and `store` are borrowed.
class StoreSliSource final : public SliSource {
 public:
  StoreSliSource(const pipeline::SeriesRegistry& registry, const pipeline::SliStore& store);

  // traceslo::slo::SliSource
  Events EventsIn(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const override;
  pipeline::LatencySketch LatencyIn(const Slo& slo, int64_t first_bucket,
                                    int64_t last_bucket) const override;

 private:
  std::vector<uint32_t> SeriesOf(const Slo& slo) const;

  const pipeline::SeriesRegistry& registry_;
  const pipeline::SliStore& store_;
};

// Alert state of one (SLO, severity).
enum class AlertState { kInactive, kPending, kFiring, kResolved };
std::string_view AlertStateName(AlertState state);

struct AlertStatus {
  std::string service;
  std::string slo;
  Severity severity = Severity::kPage;
  bool no_data = false;  // the SLO's no-data alert, not its burn-rate / threshold alert
  AlertState state = AlertState::kInactive;
  int64_t active_since_unix_nano = 0;  // pending or firing since
  int64_t fired_at_unix_nano = 0;      // last transition to firing
  int64_t resolved_at_unix_nano = 0;   // last transition to resolved
  // What made it fire or keeps it firing: the first tier whose condition holds.
  std::chrono::milliseconds long_window{0};
  std::chrono::milliseconds short_window{0};
  double burn_rate_long = 0;
  double burn_rate_short = 0;
  double threshold_burn_rate = 0;
  // Burn-rate alerts that do not fire: the short window of one of the alert's tiers burns at or
  // above the tier's rate with min_events, and only its long window has yet to confirm. The
  // router starts a group's group_wait from here (alerting.group_wait_start), so the wait runs
  // while the long window fills instead of after it.
  bool warming = false;
};

// A change of state, in evaluation order.
struct AlertTransition {
  AlertStatus status;  // after the change
  AlertState from = AlertState::kInactive;
};

// Per-window figures of one SLO at the last evaluation.
struct WindowFigures {
  std::chrono::milliseconds window{0};
  Events events;
  double sli_ratio = 1;  // good / total; 1 with no events
  double burn_rate = 0;  // (bad / total) / error budget ratio
};

struct SloStatus {
  std::string service;
  std::string slo;
  SliKind kind = SliKind::kErrors;
  double objective_ratio = 0;
  std::vector<WindowFigures> windows;       // the tiers' windows, then the compliance window
  double error_budget_remaining_ratio = 1;  // 1 − spent; negative once overspent
  // At the burn rate of the shortest page tier's long window: seconds until the budget is gone;
  // +inf when nothing is burning.
  double seconds_to_exhaustion = 0;
  double latency_quantile_seconds = 0;  // kLatencyQuantile: the quantile over its window
};

struct EvaluatorOptions {
  // Buckets younger than this may still change (late spans up to pipeline.max_lateness, traces
  // completing after trace_max_age): the evaluator reads them from the source at every
  // evaluation and rolls up only older minutes.
  std::chrono::milliseconds settle_delay{6 * 60'000};
  // How far back the source holds buckets (pipeline.sli_retention): on a new SLO, settled
  // minutes are taken from as far back as it reaches.
  std::chrono::milliseconds source_retention{3'600'000};
};

// Evaluates SLO rules: SLI and burn rate per window, error budget over the compliance window,
// and the alert state machine per (SLO, severity). Windows longer than the source holds are
// served from per-SLO minute rollups the evaluator keeps (taken from the source once a minute
// has settled). Burn-rate alerts go inactive → firing → resolved (a tier's condition is its own
// "for"); latency_quantile and no_data alerts pass through pending for their `for` duration.
// Thread-safe: Evaluate() and SetRules() from one thread at a time, queries from any.
// `source` is borrowed and must outlive the evaluator.
class Evaluator final : public prometheus::Collectable {
 public:
  Evaluator(const EvaluatorOptions& options, const SliSource& source);

  // Replaces the rule set. State and rollups of SLOs that keep their (service, name) and SLI
  // definition carry over; others start empty.
  void SetRules(const std::vector<Slo>& slos);

  // Alert states kept from before a restart: each is taken by the SLO (service, slo, severity,
  // no_data) it names when SetRules() next creates that SLO, without a transition, so a firing
  // alert goes on firing and is not fired again. A restored firing alert is not resolved before
  // its shortest window has passed since the first evaluation after the restart. Call before
  // SetRules().
  void RestoreAlerts(std::vector<AlertStatus> alerts);

  // Evaluates every SLO at `now`; returns the alert transitions of this evaluation.
  std::vector<AlertTransition> Evaluate(std::chrono::system_clock::time_point now);
  // Evaluates only the SLOs of the services `owns` answers true for (Kafka mode: those whose
  // deltas partition this instance owns). The others keep their alert states as they were,
  // unevaluated, and show no figures on /metrics until they are evaluated again.
  std::vector<AlertTransition> Evaluate(std::chrono::system_clock::time_point now,
                                        const std::function<bool(std::string_view)>& owns);

  // Kafka mode, for the services another instance evaluated until now: forgets what this
  // evaluator held of their SLOs (alert states back to inactive, rollups, figures) so that
  // evaluating them again over the past, from the SLI store, derives the states the previous
  // owner had.
  void ResetSlos(const std::function<bool(std::string_view)>& services);
  // Kafka mode, after such a derivation (evaluations from `derived_from_unix_nano` on): an alert
  // active since that first evaluation (so perhaps since before it) and firing now, which
  // `previous` (the previous owner's states, by service, SLO, severity and no_data) shows firing
  // since earlier, takes that earlier start (fired_at, active_since): its episode, and so its
  // notifications' ids, stay the previous owner's, however long ago the episode began. Returns
  // how many alerts took one.
  size_t InheritEpisodes(const std::vector<AlertStatus>& previous, int64_t derived_from_unix_nano);

  std::vector<AlertStatus> Alerts() const;
  std::vector<SloStatus> Slos() const;
  // The current definition of the SLO (service, name), if the rule set has it.
  std::optional<Slo> FindSlo(std::string_view service, std::string_view name) const;

  // prometheus::Collectable: traceslo_slo_objective_ratio, traceslo_slo_sli_ratio,
  // traceslo_slo_burn_rate, traceslo_slo_error_budget_remaining_ratio, and friends.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Minute {
    int64_t minute = 0;  // unix minutes
    Events events;
  };
  struct SloState {
    Slo slo;
    std::string identity;        // changes when the SLI definition changes
    std::deque<Minute> minutes;  // settled minutes, oldest first, covering the longest window
    std::deque<Minute> hours;    // settled minutes summed per hour (`minute` holds the hour)
    int64_t settled_through = INT64_MIN;  // last settled minute
    std::vector<AlertStatus> alerts;      // one per severity the SLO can raise
    SloStatus status;
    bool evaluated = false;  // status holds figures (not before the first evaluation)
    bool owned = true;       // evaluated by the last Evaluate(); figures shown only then
    int64_t first_evaluated_unix_nano = 0;
    int64_t last_event_unix_nano = 0;  // for no_data
    // Alert states came from before a restart: until the alert's shortest window has been
    // observed again since the first evaluation (restored_at), a firing alert is not resolved,
    // since minutes restored from disk place their events only to the minute.
    bool restored = false;
    int64_t restored_at_unix_nano = 0;
  };

  Events Window(SloState& state, int64_t now_bucket, std::chrono::milliseconds window) const;
  void Settle(SloState& state, int64_t now_unix_nano);
  void EvaluateOne(SloState& state, int64_t now_unix_nano, std::vector<AlertTransition>& out);
  static bool HeldAfterRestore(SloState& state, const AlertStatus& alert, int64_t now);
  static void Transition(AlertStatus& alert, bool active, std::chrono::milliseconds for_duration,
                         int64_t now, std::vector<AlertTransition>& out);

  const EvaluatorOptions options_;
  const SliSource& source_;
  mutable Mutex mu_;
  std::vector<std::unique_ptr<SloState>> slos_ ABSL_GUARDED_BY(mu_);
  uint64_t evaluations_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<AlertStatus> restored_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::slo
