#include "traceslo/slo/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "traceslo/common/int_math.h"
#include "traceslo/common/metric_values.h"
#include "traceslo/config/config.h"

namespace traceslo::slo {
namespace {

using metrics::Gauge;

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using std::chrono::milliseconds;

using pipeline::kBucketsPerMinute;
constexpr int64_t kNanosPerMinute = 60'000'000'000;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

int64_t Buckets(milliseconds window) { return window.count() / (pipeline::kBucketSeconds * 1000); }

int64_t CeilDiv(int64_t a, int64_t b) { return -FloorDiv(-a, b); }

double BurnRate(const Events& e, double budget) {
  if (e.total == 0 || budget <= 0) return 0;
  return static_cast<double>(e.bad) / static_cast<double>(e.total) / budget;
}

// What makes an SLO's history incompatible with another definition of it.
std::string Identity(const Slo& slo) {
  std::string id = slo.service + '\0' + slo.name + '\0' + std::string(SliKindName(slo.sli.kind));
  id += '\0' + std::to_string(slo.sli.latency.threshold.count());
  id += '\0' + std::to_string(static_cast<int>(slo.sli.error_traces.role));
  for (const auto& op : slo.filter.operations) id += "\0+" + op;
  for (const auto& op : slo.filter.exclude_operations) id += "\0-" + op;
  return id;
}

}  // namespace

std::string_view AlertStateName(AlertState state) {
  switch (state) {
    case AlertState::kInactive:
      return "inactive";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
    case AlertState::kResolved:
      return "resolved";
  }
  return "unknown";
}

Events LatencyEvents(const Slo& slo, const pipeline::LatencySketch& sketch) {
  Events out;
  out.total = sketch.Count();
  const auto threshold_nanos =
      static_cast<uint64_t>(slo.sli.kind == SliKind::kLatency
                                ? slo.sli.latency.threshold.count()
                                : slo.sli.latency_quantile.threshold.count()) *
      1'000'000;
  const int32_t threshold_index = pipeline::LatencySketch::BucketIndex(std::clamp<uint64_t>(
      threshold_nanos, pipeline::LatencySketch::kLowNanos, pipeline::LatencySketch::kMaxNanos));
  sketch.ForEachBucket([&](int32_t index, uint64_t count) {
    if (index > threshold_index) out.bad += count;
  });
  return out;
}

// --- StoreSliSource ----------------------------------------------------------------------------

StoreSliSource::StoreSliSource(const pipeline::SeriesRegistry& registry,
                               const pipeline::SliStore& store)
    : registry_(registry), store_(store) {}

std::vector<uint32_t> SloSeries(const Slo& slo, const pipeline::SeriesRegistry& registry) {
  std::vector<uint32_t> out;
  const int64_t service = registry.FindService(slo.service);
  if (service < 0) return out;
  for (const auto& named : registry.SeriesOfService(static_cast<uint32_t>(service))) {
    if (slo.filter.Matches(named.operation)) out.push_back(named.series);
  }
  return out;
}

std::vector<uint32_t> StoreSliSource::SeriesOf(const Slo& slo) const {
  return SloSeries(slo, registry_);
}

Events StoreSliSource::EventsIn(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const {
  Events out;
  if (first_bucket > last_bucket) return out;
  switch (slo.sli.kind) {
    case SliKind::kErrors: {
      const auto counts = store_.SeriesCounts(SeriesOf(slo), first_bucket, last_bucket);
      out.total = counts.requests;
      out.bad = counts.errors;
      break;
    }
    case SliKind::kLatency:
    case SliKind::kLatencyQuantile:
      out = LatencyEvents(slo, LatencyIn(slo, first_bucket, last_bucket));
      break;
    case SliKind::kErrorTraces:
    case SliKind::kPartialTraces: {
      const int64_t service = registry_.FindService(slo.service);
      if (service < 0) break;
      const pipeline::WindowStats w =
          store_.ServiceWindow(static_cast<uint32_t>(service), first_bucket, last_bucket);
      out.total = w.traces;
      if (slo.sli.kind == SliKind::kPartialTraces) {
        out.bad = w.partial_traces;
      } else {
        out.bad = slo.sli.error_traces.role == ErrorTraceRole::kRoot ? w.error_traces_root
                                                                     : w.error_traces_origin;
      }
      break;
    }
  }
  return out;
}

pipeline::LatencySketch StoreSliSource::LatencyIn(const Slo& slo, int64_t first_bucket,
                                                  int64_t last_bucket) const {
  return store_.SeriesLatency(SeriesOf(slo), first_bucket, last_bucket);
}

std::vector<Events> SliSource::MinuteEvents(const Slo& slo, int64_t first_minute,
                                            int64_t last_minute) const {
  std::vector<Events> out;
  for (int64_t m = first_minute; m <= last_minute; ++m) {
    out.push_back(
        EventsIn(slo, m * kBucketsPerMinute, m * kBucketsPerMinute + kBucketsPerMinute - 1));
  }
  return out;
}

// --- Evaluator ---------------------------------------------------------------------------------

Evaluator::Evaluator(const EvaluatorOptions& options, const SliSource& source)
    : options_(options), source_(source) {}

void Evaluator::SetRules(const std::vector<Slo>& slos) {
  MutexLock lock(mu_);
  std::map<std::string, std::unique_ptr<SloState>> previous;
  for (auto& state : slos_) previous[state->identity] = std::move(state);
  slos_.clear();
  for (const Slo& slo : slos) {
    const std::string identity = Identity(slo);
    std::unique_ptr<SloState> state;
    if (auto it = previous.find(identity); it != previous.end()) {
      state = std::move(it->second);  // same SLI: history and alert state carry over
      previous.erase(it);
    } else {
      state = std::make_unique<SloState>();
      state->identity = identity;
      // A new SLO state: take what was kept for it before a restart.
      for (auto it = restored_.begin(); it != restored_.end();) {
        if (it->service == slo.service && it->slo == slo.name) {
          state->restored = true;
          state->alerts.push_back(std::move(*it));
          it = restored_.erase(it);
        } else {
          ++it;
        }
      }
    }
    state->slo = slo;
    // One alert per severity the SLO can raise; existing ones keep their state.
    std::vector<AlertStatus> alerts;
    auto keep = [&](Severity severity, bool no_data) {
      AlertStatus status;
      for (const AlertStatus& a : state->alerts) {
        if (a.severity == severity && a.no_data == no_data) status = a;
      }
      status.service = slo.service;
      status.slo = slo.name;
      status.severity = severity;
      status.no_data = no_data;
      alerts.push_back(status);
    };
    if (slo.sli.kind == SliKind::kLatencyQuantile) {
      keep(slo.alerting.severity, false);
    } else {
      for (Severity severity : {Severity::kPage, Severity::kTicket}) {
        if (std::any_of(slo.alerting.tiers.begin(), slo.alerting.tiers.end(),
                        [&](const BurnRateTier& t) { return t.severity == severity; })) {
          keep(severity, false);
        }
      }
    }
    if (slo.alerting.no_data) keep(slo.alerting.no_data->severity, true);
    state->alerts = std::move(alerts);
    slos_.push_back(std::move(state));
  }
}

void Evaluator::RestoreAlerts(std::vector<AlertStatus> alerts) {
  MutexLock lock(mu_);
  restored_ = std::move(alerts);
}

void Evaluator::Settle(SloState& state, int64_t now) {
  // Minutes that ended before now - settle_delay no longer change: roll them up once.
  const int64_t horizon =
      FloorDiv(now - options_.settle_delay.count() * 1'000'000, kNanosPerMinute) - 1;
  if (state.settled_through == INT64_MIN) {
    const int64_t reach = (options_.source_retention - options_.settle_delay).count() / 60'000;
    state.settled_through = horizon - std::max<int64_t>(reach, 0);
  }
  // Keep minutes for the longest tier window, hours for the compliance window.
  milliseconds minute_span{0};
  for (const BurnRateTier& tier : state.slo.alerting.tiers) {
    minute_span = std::max(minute_span, tier.long_window);
  }
  if (state.slo.sli.kind == SliKind::kLatencyQuantile) {
    minute_span = state.slo.sli.latency_quantile.window;
  }
  const int64_t keep_minutes = minute_span.count() / 60'000 + 60;
  const int64_t keep_hours = state.slo.window.count() / 3'600'000 + 1;
  const std::vector<Events> settled =
      state.settled_through < horizon
          ? source_.MinuteEvents(state.slo, state.settled_through + 1, horizon)
          : std::vector<Events>{};
  for (int64_t m = state.settled_through + 1; m <= horizon; ++m) {
    const size_t i = static_cast<size_t>(m - state.settled_through - 1);
    const Events e = i < settled.size() ? settled[i] : Events{};
    state.minutes.push_back(Minute{m, e});
    const int64_t hour = FloorDiv(m, 60);
    if (state.hours.empty() || state.hours.back().minute != hour) {
      state.hours.push_back(Minute{hour, {}});
    }
    state.hours.back().events += e;
    if (e.total > 0) {
      state.last_event_unix_nano = std::max(state.last_event_unix_nano, (m + 1) * kNanosPerMinute);
    }
  }
  state.settled_through = std::max(state.settled_through, horizon);
  // Trim whole hours only, so the minutes always start on an hour boundary once trimmed.
  const int64_t cutoff = FloorDiv(horizon - keep_minutes, 60) * 60;
  while (!state.minutes.empty() && state.minutes.front().minute < cutoff) {
    state.minutes.pop_front();
  }
  while (!state.hours.empty() && state.hours.front().minute < FloorDiv(horizon, 60) - keep_hours) {
    state.hours.pop_front();
  }
}

Events Evaluator::Window(SloState& state, int64_t now_bucket, milliseconds window) const {
  const int64_t first_bucket = now_bucket - Buckets(window) + 1;
  const int64_t settled_end = (state.settled_through + 1) * kBucketsPerMinute - 1;
  Events out;
  if (first_bucket > settled_end) {
    return source_.EventsIn(state.slo, first_bucket, now_bucket);
  }
  // Head: the part of the first minute inside the window, if the source still holds it.
  const int64_t first_minute = CeilDiv(first_bucket, kBucketsPerMinute);
  out += source_.EventsIn(state.slo, first_bucket, first_minute * kBucketsPerMinute - 1);
  // Settled minutes; hours wholly before the first kept minute.
  const int64_t oldest_minute =
      state.minutes.empty() ? state.settled_through + 1 : state.minutes.front().minute;
  for (const Minute& m : state.minutes) {
    if (m.minute >= first_minute) out += m.events;
  }
  for (const Minute& h : state.hours) {
    if (h.minute * 60 >= first_minute && (h.minute + 1) * 60 <= oldest_minute) out += h.events;
  }
  // Tail: buckets not yet settled.
  out += source_.EventsIn(state.slo, settled_end + 1, now_bucket);
  return out;
}

void Evaluator::Transition(AlertStatus& alert, bool active, milliseconds for_duration, int64_t now,
                           std::vector<AlertTransition>& out) {
  const AlertState from = alert.state;
  switch (alert.state) {
    case AlertState::kInactive:
    case AlertState::kResolved:
      if (!active) break;
      alert.active_since_unix_nano = now;
      if (for_duration.count() == 0) {
        alert.state = AlertState::kFiring;
        alert.fired_at_unix_nano = now;
      } else {
        alert.state = AlertState::kPending;
      }
      break;
    case AlertState::kPending:
      if (!active) {
        alert.state = AlertState::kInactive;
      } else if (now - alert.active_since_unix_nano >= for_duration.count() * 1'000'000) {
        alert.state = AlertState::kFiring;
        alert.fired_at_unix_nano = now;
      }
      break;
    case AlertState::kFiring:
      if (!active) {
        alert.state = AlertState::kResolved;
        alert.resolved_at_unix_nano = now;
      }
      break;
  }
  if (alert.state != from) out.push_back(AlertTransition{alert, from});
}

bool Evaluator::HeldAfterRestore(SloState& state, const AlertStatus& alert, int64_t now) {
  if (state.restored_at_unix_nano == 0) return false;
  // The shortest window the alert's condition reads: until it has been observed whole after the
  // restart, a firing alert keeps firing.
  milliseconds window{0};
  if (state.slo.sli.kind == SliKind::kLatencyQuantile) {
    window = state.slo.sli.latency_quantile.window;
  } else {
    for (const BurnRateTier& tier : state.slo.alerting.tiers) {
      if (tier.severity == alert.severity) window = std::max(window, tier.short_window);
    }
  }
  return now < state.restored_at_unix_nano + window.count() * 1'000'000;
}

void Evaluator::EvaluateOne(SloState& state, int64_t now, std::vector<AlertTransition>& out) {
  Settle(state, now);
  if (!state.evaluated) state.first_evaluated_unix_nano = now;
  state.evaluated = true;
  if (state.restored && state.restored_at_unix_nano == 0) state.restored_at_unix_nano = now;
  const Slo& slo = state.slo;
  const int64_t now_bucket = pipeline::BucketOfUnixNanos(now);
  const double budget = slo.error_budget_ratio();
  SloStatus& status = state.status;
  status = SloStatus{};
  status.service = slo.service;
  status.slo = slo.name;
  status.kind = slo.sli.kind;
  status.objective_ratio = slo.objective_ratio();

  // Every window once: tiers' short and long windows, then the compliance window.
  std::vector<milliseconds> windows;
  for (const BurnRateTier& t : slo.alerting.tiers) {
    windows.push_back(t.short_window);
    windows.push_back(t.long_window);
  }
  std::sort(windows.begin(), windows.end());
  windows.erase(std::unique(windows.begin(), windows.end()), windows.end());
  if (slo.sli.kind != SliKind::kLatencyQuantile) {
    windows.erase(std::remove(windows.begin(), windows.end(), slo.window), windows.end());
    windows.push_back(slo.window);
  }
  std::map<int64_t, WindowFigures> figures;
  for (milliseconds w : windows) {
    WindowFigures f;
    f.window = w;
    f.events = Window(state, now_bucket, w);
    f.sli_ratio = f.events.total == 0
                      ? 1
                      : 1 - static_cast<double>(f.events.bad) / static_cast<double>(f.events.total);
    f.burn_rate = BurnRate(f.events, budget);
    figures[w.count()] = f;
    status.windows.push_back(f);
  }

  for (AlertStatus& alert : state.alerts) {
    if (alert.no_data) {
      // Silence is only known once the SLO has been watched for the whole `for`: until then (a
      // fresh start, a restart, a new rule) the alert keeps the state it has.
      const milliseconds for_duration = slo.alerting.no_data->for_duration;
      if (now - state.first_evaluated_unix_nano < for_duration.count() * 1'000'000) continue;
      const Events recent = Window(state, now_bucket, for_duration);
      Transition(alert, recent.total == 0, milliseconds(0), now, out);
      continue;
    }
    if (slo.sli.kind == SliKind::kLatencyQuantile) {
      const LatencyQuantileSli& q = slo.sli.latency_quantile;
      const pipeline::LatencySketch sketch =
          source_.LatencyIn(slo, now_bucket - Buckets(q.window) + 1, now_bucket);
      const double value = sketch.Count() == 0 ? 0 : sketch.QuantileNanos(q.quantile) / 1e9;
      status.latency_quantile_seconds = value;
      const bool active =
          (sketch.Count() >= slo.alerting.min_events &&
           value > static_cast<double>(q.threshold.count()) / 1e3) ||
          (alert.state == AlertState::kFiring && HeldAfterRestore(state, alert, now));
      Transition(alert, active, q.for_duration, now, out);
      continue;
    }
    bool active = false;
    for (const BurnRateTier& tier : slo.alerting.tiers) {
      if (tier.severity != alert.severity) continue;
      const WindowFigures& l = figures[tier.long_window.count()];
      const WindowFigures& s = figures[tier.short_window.count()];
      if (l.burn_rate >= tier.burn_rate && s.burn_rate >= tier.burn_rate &&
          s.events.total >= slo.alerting.min_events) {
        active = true;
        alert.long_window = tier.long_window;
        alert.short_window = tier.short_window;
        alert.burn_rate_long = l.burn_rate;
        alert.burn_rate_short = s.burn_rate;
        alert.threshold_burn_rate = tier.burn_rate;
        break;
      }
    }
    if (!active && alert.state == AlertState::kFiring && HeldAfterRestore(state, alert, now)) {
      active = true;
    }
    alert.warming = false;
    for (const BurnRateTier& tier : slo.alerting.tiers) {
      if (active || tier.severity != alert.severity) continue;
      const WindowFigures& s = figures[tier.short_window.count()];
      if (s.burn_rate >= tier.burn_rate && s.events.total >= slo.alerting.min_events) {
        alert.warming = true;
      }
    }
    if (!active) {
      // The windows of the tier that fired last show where the burn stands now (so a resolve
      // reports the burn it resolved at, not the last firing one).
      if (auto l = figures.find(alert.long_window.count()); l != figures.end()) {
        alert.burn_rate_long = l->second.burn_rate;
      }
      if (auto s = figures.find(alert.short_window.count()); s != figures.end()) {
        alert.burn_rate_short = s->second.burn_rate;
      }
    }
    Transition(alert, active, milliseconds(0), now, out);
  }

  if (slo.sli.kind != SliKind::kLatencyQuantile) {
    const WindowFigures& compliance = figures[slo.window.count()];
    status.error_budget_remaining_ratio = 1 - compliance.burn_rate;
    // At the current burn (the shortest page tier's long window, else the shortest window).
    double burn = 0;
    milliseconds shortest_page = milliseconds::max();
    for (const BurnRateTier& t : slo.alerting.tiers) {
      if (t.severity == Severity::kPage && t.long_window < shortest_page) {
        shortest_page = t.long_window;
        burn = figures[t.long_window.count()].burn_rate;
      }
    }
    if (shortest_page == milliseconds::max() && !status.windows.empty()) {
      burn = status.windows.front().burn_rate;
    }
    const double window_seconds = static_cast<double>(slo.window.count()) / 1e3;
    status.seconds_to_exhaustion =
        burn <= 0 ? std::numeric_limits<double>::infinity()
                  : std::max(0.0, status.error_budget_remaining_ratio) * window_seconds / burn;
  }
}

std::vector<AlertTransition> Evaluator::Evaluate(std::chrono::system_clock::time_point now) {
  return Evaluate(now, [](std::string_view) { return true; });
}

std::vector<AlertTransition> Evaluator::Evaluate(
    std::chrono::system_clock::time_point now, const std::function<bool(std::string_view)>& owns) {
  std::vector<AlertTransition> out;
  const int64_t now_nanos = UnixNanos(now);
  MutexLock lock(mu_);
  for (auto& state : slos_) {
    state->owned = owns(state->slo.service);
    if (state->owned) EvaluateOne(*state, now_nanos, out);
  }
  ++evaluations_;
  return out;
}

int64_t HorizonSliSource::LastVisible(int64_t last_bucket) const {
  const int64_t horizon = horizon_.load();
  return horizon == INT64_MAX ? last_bucket : std::min(last_bucket, horizon - 1);
}

Events HorizonSliSource::EventsIn(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const {
  last_bucket = LastVisible(last_bucket);
  if (first_bucket > last_bucket) return {};
  return inner_.EventsIn(slo, first_bucket, last_bucket);
}

pipeline::LatencySketch HorizonSliSource::LatencyIn(const Slo& slo, int64_t first_bucket,
                                                    int64_t last_bucket) const {
  last_bucket = LastVisible(last_bucket);
  if (first_bucket > last_bucket) return {};
  return inner_.LatencyIn(slo, first_bucket, last_bucket);
}

std::vector<Events> HorizonSliSource::MinuteEvents(const Slo& slo, int64_t first_minute,
                                                   int64_t last_minute) const {
  return inner_.MinuteEvents(slo, first_minute, last_minute);  // settled: long before
}

void Evaluator::ResetSlos(const std::function<bool(std::string_view)>& services) {
  MutexLock lock(mu_);
  for (auto& state : slos_) {
    if (!services(state->slo.service)) continue;
    for (AlertStatus& alert : state->alerts) {
      AlertStatus fresh;
      fresh.service = alert.service;
      fresh.slo = alert.slo;
      fresh.severity = alert.severity;
      fresh.no_data = alert.no_data;
      alert = std::move(fresh);
    }
    state->minutes.clear();
    state->hours.clear();
    state->settled_through = INT64_MIN;
    state->status = SloStatus{};
    state->evaluated = false;
    state->first_evaluated_unix_nano = 0;
    state->last_event_unix_nano = 0;
    state->restored = false;
    state->restored_at_unix_nano = 0;
  }
}

size_t Evaluator::InheritEpisodes(const std::vector<AlertStatus>& previous,
                                  int64_t derived_from_unix_nano) {
  MutexLock lock(mu_);
  size_t inherited = 0;
  for (const AlertStatus& before : previous) {
    if (before.state != AlertState::kFiring) continue;
    for (auto& state : slos_) {
      if (state->slo.service != before.service || state->slo.name != before.slo) continue;
      for (AlertStatus& alert : state->alerts) {
        if (alert.severity != before.severity || alert.no_data != before.no_data) continue;
        if (alert.state == AlertState::kFiring &&
            alert.active_since_unix_nano <= derived_from_unix_nano &&
            before.fired_at_unix_nano < alert.fired_at_unix_nano) {
          alert.fired_at_unix_nano = before.fired_at_unix_nano;
          alert.active_since_unix_nano =
              std::min(alert.active_since_unix_nano, before.active_since_unix_nano);
          ++inherited;
        }
      }
    }
  }
  return inherited;
}

std::vector<AlertStatus> Evaluator::Alerts() const {
  MutexLock lock(mu_);
  std::vector<AlertStatus> out;
  for (const auto& state : slos_) out.insert(out.end(), state->alerts.begin(), state->alerts.end());
  return out;
}

std::optional<Slo> Evaluator::FindSlo(std::string_view service, std::string_view name) const {
  MutexLock lock(mu_);
  for (const auto& state : slos_) {
    if (state->slo.service == service && state->slo.name == name) return state->slo;
  }
  return std::nullopt;
}

std::vector<SloStatus> Evaluator::Slos() const {
  MutexLock lock(mu_);
  std::vector<SloStatus> out;
  for (const auto& state : slos_) {
    out.push_back(state->status);
    out.back().service = state->slo.service;  // also before the first evaluation
    out.back().slo = state->slo.name;
  }
  return out;
}

std::vector<MetricFamily> Evaluator::Collect() const {
  auto family = [](std::string name, std::string help, MetricType type = MetricType::Gauge) {
    return MetricFamily{std::move(name), std::move(help), type, {}};
  };
  MetricFamily objective = family("traceslo_slo_objective_ratio", "The SLO's objective (ratio).");
  MetricFamily sli = family("traceslo_slo_sli_ratio",
                            "Good events / all events of the SLO over the window (ratio; 1 "
                            "without events).");
  MetricFamily burn = family("traceslo_slo_burn_rate",
                             "Error ratio over the window divided by the error budget ratio.");
  MetricFamily remaining =
      family("traceslo_slo_error_budget_remaining_ratio",
             "Share of the compliance window's error budget left (ratio; negative when "
             "overspent).");
  MetricFamily exhaustion =
      family("traceslo_slo_error_budget_exhaustion_seconds",
             "Time until the error budget is spent at the current burn rate (seconds; absent "
             "while nothing burns).");
  MetricFamily quantile = family("traceslo_slo_latency_quantile_seconds",
                                 "latency_quantile SLOs: the quantile over the SLO's window "
                                 "(seconds).");
  MetricFamily firing = family("traceslo_slo_alert_firing",
                               "1 while the SLO's alert of this severity fires, else 0.");
  MetricFamily alerts = family("traceslo_alerts",
                               "1 for the state each SLO alert is in (inactive, pending, firing), "
                               "0 for the others; alert is slo or no_data.");
  MetricFamily evaluations =
      family("traceslo_slo_evaluations_total", "Rule evaluations (count).", MetricType::Counter);
  MutexLock lock(mu_);
  for (const auto& state : slos_) {
    if (!state->owned) continue;  // another instance evaluates it
    const SloStatus& s = state->status;
    const std::vector<ClientMetric::Label> base = {{"service", state->slo.service},
                                                   {"slo", state->slo.name}};
    if (!state->evaluated) {
      // Figures appear with the first evaluation; alert states are known before it.
    } else if (s.kind == SliKind::kLatencyQuantile) {
      quantile.metric.push_back(Gauge(base, s.latency_quantile_seconds));
    } else {
      objective.metric.push_back(Gauge(base, s.objective_ratio));
      for (const WindowFigures& w : s.windows) {
        auto labels = base;
        labels.push_back({"window", config::FormatDuration(w.window)});
        sli.metric.push_back(Gauge(labels, w.sli_ratio));
        burn.metric.push_back(Gauge(labels, w.burn_rate));
      }
      remaining.metric.push_back(Gauge(base, s.error_budget_remaining_ratio));
      if (std::isfinite(s.seconds_to_exhaustion)) {
        exhaustion.metric.push_back(Gauge(base, s.seconds_to_exhaustion));
      }
    }
    for (const AlertStatus& a : state->alerts) {
      auto labels = base;
      labels.push_back({"severity", std::string(SeverityName(a.severity))});
      labels.push_back({"alert", a.no_data ? "no_data" : "slo"});
      firing.metric.push_back(Gauge(labels, a.state == AlertState::kFiring ? 1 : 0));
      // Resolved is inactive again; the three states are always present, so a dashboard can
      // count them without absent series.
      const AlertState shown = a.state == AlertState::kResolved ? AlertState::kInactive : a.state;
      for (AlertState state : {AlertState::kInactive, AlertState::kPending, AlertState::kFiring}) {
        auto with_state = labels;
        with_state.push_back({"state", std::string(AlertStateName(state))});
        alerts.metric.push_back(Gauge(with_state, state == shown ? 1 : 0));
      }
    }
  }
  ClientMetric count;
  count.counter.value = static_cast<double>(evaluations_);
  evaluations.metric.push_back(count);
  std::vector<MetricFamily> out;
  for (MetricFamily* f : {&objective, &sli, &burn, &remaining, &exhaustion, &quantile, &firing,
                          &alerts, &evaluations}) {
    if (!f->metric.empty()) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace traceslo::slo
