#include "traceslo/slo/replay.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <tuple>

#include "traceslo/pipeline/span_sink.h"

namespace traceslo::slo {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// Span end times are capped here (about the year 2116), so that the time plus any interval or
// drain cannot overflow.
constexpr int64_t kLatestUsableNanos = std::numeric_limits<int64_t>::max() / 2;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point TimePoint(int64_t unix_nano) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(nanoseconds(unix_nano)));
}

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : (a - b + 1) / b; }

// The first whole multiple of `interval` after `t`.
int64_t NextMultiple(int64_t t, int64_t interval) { return (FloorDiv(t, interval) + 1) * interval; }

int64_t Nanos(milliseconds d) { return std::max<int64_t>(1, nanoseconds(d).count()); }

// The longest window a firing alert of `slo` reads signatures over.
milliseconds SignatureWindow(const Slo& slo) {
  if (slo.sli.kind == SliKind::kLatencyQuantile) return slo.sli.latency_quantile.window;
  milliseconds longest{0};
  for (const BurnRateTier& tier : slo.alerting.tiers) {
    longest = std::max(longest, tier.short_window);
  }
  return longest;
}

}  // namespace

milliseconds DefaultReplayDrain(const config::PipelineConfig& pipeline,
                                milliseconds evaluation_interval, const std::vector<Slo>& slos) {
  const milliseconds interval = std::max(evaluation_interval, milliseconds(1));
  milliseconds longest{0};
  for (const Slo& slo : slos) longest = std::max(longest, SignatureWindow(slo));
  const milliseconds drain =
      pipeline.trace_max_age + 2 * pipeline.tick_interval + longest + 2 * interval;
  return (drain + interval - milliseconds(1)) / interval * interval;
}

Replayer::Replayer(const config::PipelineConfig& pipeline, const ReplayOptions& options,
                   const std::vector<Slo>& slos)
    : options_(options),
      tick_interval_(pipeline.tick_interval),
      clock_(std::chrono::system_clock::time_point{}),
      engine_(pipeline, clock_),
      processors_(engine_.MakeProcessors()),
      evaluator_(engine_.evaluator_options(), engine_.source()) {
  evaluator_.SetRules(slos);
  for (const Slo& slo : slos) {
    slos_[{slo.service, slo.name}] = slo;
    signature_history_ = std::max(signature_history_, SignatureWindow(slo));
  }
  parts_.resize(processors_.size());
}

void Replayer::Feed(SpanBatch& batch) {
  assert(!finished_);
  ++stats_.requests;
  stats_.spans += batch.spans.size();
  if (batch.spans.empty()) {
    batch.Clear();
    return;
  }
  uint64_t latest_end = 0;
  for (const Span& span : batch.spans) latest_end = std::max(latest_end, span.end_unix_nano);
  const int64_t latest =
      static_cast<int64_t>(std::min<uint64_t>(latest_end, uint64_t{kLatestUsableNanos}));
  if (!stats_.started) {
    stats_.started = true;
    stats_.first_unix_nano = latest;
    clock_.AdvanceTo(TimePoint(latest));
    next_tick_ = NextMultiple(latest, tick_interval_.count() > 0 ? tick_interval_.count() : 1);
    next_evaluation_ = NextMultiple(latest, Nanos(options_.evaluation_interval));
  } else {
    const int64_t now = UnixNanos(clock_.Now());
    int64_t target = latest;
    if (target - now > nanoseconds(options_.max_gap).count()) {
      target = now + nanoseconds(options_.max_gap).count();
      ++stats_.time_jumps_capped;
    }
    if (target > now) RunUntil(target);
  }
  stats_.last_unix_nano = UnixNanos(clock_.Now());

  // Shard by trace id as ShardedPipeline does; the parts share the request's string arena.
  const auto strings = std::make_shared<const std::string>(std::move(batch.strings));
  const auto shards = static_cast<uint32_t>(processors_.size());
  for (pipeline::ShardBatch& part : parts_) {
    part.strings = strings;
    part.spans.clear();
  }
  for (const Span& span : batch.spans) {
    parts_[pipeline::ShardOf(span.trace_id, shards)].spans.push_back(span);
  }
  for (uint32_t s = 0; s < shards; ++s) {
    if (!parts_[s].spans.empty()) processors_[s]->Process(parts_[s]);
    parts_[s].strings.reset();
  }
  batch.Clear();
}

void Replayer::Finish() {
  assert(!finished_);
  finished_ = true;
  if (stats_.started) {
    RunUntil(std::min(UnixNanos(clock_.Now()) + nanoseconds(options_.drain).count(),
                      kLatestUsableNanos + nanoseconds(options_.drain).count()));
    stats_.end_unix_nano = UnixNanos(clock_.Now());
  }
}

void Replayer::RunUntil(int64_t unix_nano) {
  const int64_t tick = tick_interval_.count() > 0 ? tick_interval_.count() : 1;
  const int64_t evaluation = Nanos(options_.evaluation_interval);
  while (true) {
    const int64_t t = std::min(next_tick_, next_evaluation_);
    if (t > unix_nano) break;
    clock_.AdvanceTo(TimePoint(t));
    if (next_tick_ == t) {
      Tick();
      next_tick_ += tick;
    }
    if (next_evaluation_ == t) {
      Evaluate(t);
      next_evaluation_ += evaluation;
    }
  }
  clock_.AdvanceTo(TimePoint(unix_nano));
}

void Replayer::Tick() {
  for (auto& processor : processors_) processor->OnTick();
  ++stats_.ticks;
}

void Replayer::Evaluate(int64_t now) {
  std::vector<AlertTransition> transitions = evaluator_.Evaluate(TimePoint(now));
  ++stats_.evaluations;
  if (signature_history_.count() > 0) SnapshotSignatures(now);
  if (transitions.empty()) return;

  std::sort(transitions.begin(), transitions.end(),
            [](const AlertTransition& a, const AlertTransition& b) {
              return std::tie(a.status.service, a.status.slo, a.status.severity, a.status.no_data) <
                     std::tie(b.status.service, b.status.slo, b.status.severity, b.status.no_data);
            });
  const std::vector<SloStatus> statuses = evaluator_.Slos();
  for (const AlertTransition& transition : transitions) {
    const AlertStatus& alert = transition.status;
    TimelineEntry entry{
        .unix_nano = now, .from = transition.from, .alert = alert, .in_drain = finished_};
    const auto slo = slos_.find({alert.service, alert.slo});
    const auto status = std::find_if(statuses.begin(), statuses.end(), [&](const SloStatus& s) {
      return s.service == alert.service && s.slo == alert.slo;
    });
    if (slo != slos_.end() && status != statuses.end() && !alert.no_data) {
      if (slo->second.sli.kind == SliKind::kLatencyQuantile) {
        entry.latency_quantile_seconds = status->latency_quantile_seconds;
      } else {
        for (const WindowFigures& figures : status->windows) {
          if (figures.window == alert.long_window) entry.burn_rate_long = figures.burn_rate;
          if (figures.window == alert.short_window) entry.burn_rate_short = figures.burn_rate;
        }
      }
      if (alert.state == AlertState::kFiring) {
        entry.signature_window = slo->second.sli.kind == SliKind::kLatencyQuantile
                                     ? slo->second.sli.latency_quantile.window
                                     : alert.short_window;
        entry.signatures = TopSignatures(slo->second, entry.signature_window, now);
      }
    }
    if (alert.state == AlertState::kFiring) ++stats_.alerts_fired;
    if (alert.state == AlertState::kResolved) ++stats_.alerts_resolved;
    timeline_.push_back(std::move(entry));
  }
}

void Replayer::SnapshotSignatures(int64_t now) {
  SignatureSnapshot snapshot{.unix_nano = now};
  for (const pipeline::SignatureInfo& info : engine_.store().Signatures()) {
    uint64_t& last = signature_counts_[info.id];
    if (info.count == last) continue;
    last = info.count;
    snapshot.changed.emplace_back(info.id, info.count);
  }
  std::sort(snapshot.changed.begin(), snapshot.changed.end());
  snapshot_entries_ += snapshot.changed.size();
  snapshots_.push_back(std::move(snapshot));
  // Keep the newest snapshot at least signature_history_ old, and every later one.
  const int64_t horizon = now - nanoseconds(signature_history_).count();
  while (snapshots_.size() >= 2 && snapshots_[1].unix_nano <= horizon) DropOldestSnapshot();
  while (snapshots_.size() >= 2 && snapshot_entries_ > kMaxSignatureHistoryEntries) {
    DropOldestSnapshot();
    history_truncated_ = true;
  }
}

void Replayer::DropOldestSnapshot() {
  SignatureSnapshot& oldest = snapshots_[0];
  SignatureSnapshot& next = snapshots_[1];
  // `next` changes win; the oldest adds the signatures that did not change since.
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  merged.reserve(oldest.changed.size() + next.changed.size());
  auto a = oldest.changed.begin();
  auto b = next.changed.begin();
  while (a != oldest.changed.end() || b != next.changed.end()) {
    if (b == next.changed.end() || (a != oldest.changed.end() && a->first < b->first)) {
      merged.push_back(*a++);
    } else {
      if (a != oldest.changed.end() && a->first == b->first) ++a;
      merged.push_back(*b++);
    }
  }
  snapshot_entries_ += merged.size();
  snapshot_entries_ -= oldest.changed.size() + next.changed.size();
  next.changed = std::move(merged);
  snapshots_.pop_front();
}

std::vector<SignatureCount> Replayer::TopSignatures(const Slo& slo, milliseconds window,
                                                    int64_t now) {
  std::vector<SignatureCount> out;
  const int64_t service = engine_.series().FindService(slo.service);
  if (service < 0 || options_.top_signatures == 0) return out;
  // The counts at the start of the window: as of the newest snapshot at least `window` old. With
  // none, the replay is younger than the window and every count is in it (or, if history was
  // dropped for its size, the oldest snapshot left is the start).
  const int64_t start = now - nanoseconds(window).count();
  std::map<uint64_t, uint64_t> baseline;
  for (size_t i = 0; i < snapshots_.size(); ++i) {
    if (snapshots_[i].unix_nano > start && (i > 0 || !history_truncated_)) break;
    for (const auto& [id, count] : snapshots_[i].changed) baseline[id] = count;
  }
  const bool filtered = slo.sli.kind == SliKind::kErrors || slo.sli.kind == SliKind::kLatency ||
                        slo.sli.kind == SliKind::kLatencyQuantile;
  pipeline::SeriesRegistry& series = engine_.series();
  for (pipeline::SignatureInfo& info : engine_.store().Signatures()) {
    if (series.ServiceOf(info.series) != static_cast<uint32_t>(service)) continue;
    const std::string_view operation = series.OperationName(info.series);
    if (filtered && !slo.filter.Matches(operation)) continue;
    const auto it = baseline.find(info.id);
    const uint64_t before = it == baseline.end() ? 0 : it->second;
    if (info.count <= before) continue;
    out.push_back(SignatureCount{.id = info.id,
                                 .count = info.count - before,
                                 .operation = std::string(operation),
                                 .exception_type = std::move(info.exception_type),
                                 .normalized_message = std::move(info.normalized_message),
                                 .http_status = info.http_status,
                                 .rpc_status = info.rpc_status});
  }
  std::sort(out.begin(), out.end(), [](const SignatureCount& a, const SignatureCount& b) {
    return a.count != b.count ? a.count > b.count : a.id < b.id;
  });
  if (out.size() > options_.top_signatures) out.resize(options_.top_signatures);
  return out;
}

}  // namespace traceslo::slo
