#pragma once

// Replaying recorded spans through the real SLI pipeline and evaluator on recorded time, for
// `traceslo replay`: what would the rules have done during this recording?

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "traceslo/common/manual_clock.h"
#include "traceslo/common/span.h"
#include "traceslo/config/config.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule.h"
#include "traceslo/slo/sli_engine.h"

namespace traceslo::slo {

struct ReplayOptions {
  std::chrono::milliseconds evaluation_interval{10'000};  // rules.evaluation_interval, > 0
  // How long time keeps running after the last request, so that live traces complete and alerts
  // can resolve once the recorded traffic stops (DefaultReplayDrain()).
  std::chrono::milliseconds drain{0};
  // The furthest one request may move the replay time forward. A longer jump (a gap in the
  // recording, or a span with a wild end time) is cut to this, so a bad timestamp cannot make
  // the replay step through years of ticks; the spans then count as clock skew.
  std::chrono::milliseconds max_gap{3'600'000};
  size_t top_signatures = 3;  // per firing alert
};

// trace_max_age + two ticks (every trace completes and is published), then the longest window
// an alert of `slos` needs to see empty (a tier's short window, a latency_quantile window) plus
// two evaluation intervals, rounded up to whole evaluation intervals.
std::chrono::milliseconds DefaultReplayDrain(const config::PipelineConfig& pipeline,
                                             std::chrono::milliseconds evaluation_interval,
                                             const std::vector<Slo>& slos);

// An error signature with its count over a window.
struct SignatureCount {
  uint64_t id = 0;
  uint64_t count = 0;  // error spans that arrived in the window
  std::string operation;
  std::string exception_type;
  std::string normalized_message;
  int32_t http_status = 0;
  int32_t rpc_status = -1;
};

// One alert transition in the replay.
struct TimelineEntry {
  int64_t unix_nano = 0;  // the evaluation's recorded time
  AlertState from = AlertState::kInactive;
  AlertStatus alert;  // after the transition
  // Burn-rate alerts: the burn rates over the alert's tier windows at this evaluation (for a
  // resolved alert, the tier that last fired; its rates are the ones that let it resolve).
  double burn_rate_long = 0;
  double burn_rate_short = 0;
  // latency_quantile alerts: the quantile over its window at this evaluation.
  double latency_quantile_seconds = 0;
  // After the last request, in the drain: the recorded traffic has stopped (alerts resolve, and
  // no-data alerts may fire, because the recording ended).
  bool in_drain = false;
  // Firing (burn-rate and latency_quantile alerts): the error signatures of the alert's service
  // (and the SLO's operation filter) over the short window (latency_quantile: its window), by
  // count, highest first, then by id; at most ReplayOptions::top_signatures.
  std::chrono::milliseconds signature_window{0};
  std::vector<SignatureCount> signatures;
};

struct ReplayStats {
  uint64_t requests = 0;           // Feed() calls
  uint64_t spans = 0;              // spans fed
  uint64_t time_jumps_capped = 0;  // requests whose time jump was cut to max_gap
  bool started = false;            // some span has set the time
  int64_t first_unix_nano = 0;     // the replay's start: the first request's latest span end
  int64_t last_unix_nano = 0;      // the replay time after the last request
  int64_t end_unix_nano = 0;       // after the drain
  uint64_t ticks = 0;              // pipeline ticks (each ticks every shard)
  uint64_t evaluations = 0;
  uint64_t alerts_fired = 0;     // transitions to firing
  uint64_t alerts_resolved = 0;  // transitions to resolved
};

// Runs the SLI engine's shard processors (driven directly, in this thread, spans sharded by trace
// id as ShardedPipeline does), ticks them every pipeline.tick_interval, and evaluates the rules
// every evaluation_interval, all on a ManualClock that the data moves: each request moves the
// time to the latest span end seen so far (never backwards), after running every tick and
// evaluation due before that time. Ticks and evaluations fall on whole multiples of their
// intervals (unix time), ticks first when both fall together. With the same requests, the
// timeline and figures are the same, byte for byte: one thread, no wall clock, no randomness.
// Owned by one thread.
class Replayer {
 public:
  Replayer(const config::PipelineConfig& pipeline, const ReplayOptions& options,
           const std::vector<Slo>& slos);
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Replays one request's spans (consumed: `batch` is left empty).
  void Feed(SpanBatch& batch);
  // Runs the drain after the last request. Call once; Feed() must not follow.
  void Finish();

  // Every alert transition so far, in time order; within one evaluation by service, SLO,
  // severity, then burn-rate/threshold alert before no-data alert.
  const std::vector<TimelineEntry>& timeline() const { return timeline_; }
  // SLO figures at the last evaluation, in rule order.
  std::vector<SloStatus> Slos() const { return evaluator_.Slos(); }
  // Alert states at the last evaluation, in rule order.
  std::vector<AlertStatus> Alerts() const { return evaluator_.Alerts(); }
  const ReplayStats& stats() const { return stats_; }
  pipeline::SliStore::GlobalTotals PipelineTotals() { return engine_.store().Totals(); }
  std::chrono::system_clock::time_point Now() const { return clock_.Now(); }

 private:
  // Signature counts at one evaluation: (id, cumulative error spans) of the signatures whose
  // count changed since the previous snapshot, sorted by id. The oldest snapshot holds every
  // signature seen up to its time.
  struct SignatureSnapshot {
    int64_t unix_nano = 0;
    std::vector<std::pair<uint64_t, uint64_t>> changed;
  };
  // Snapshot entries kept at most (16 bytes each); past this, history is dropped oldest first and
  // a window reaching further back is counted from the oldest snapshot left.
  static constexpr size_t kMaxSignatureHistoryEntries = size_t{1} << 22;

  void RunUntil(int64_t unix_nano);
  void Tick();
  void Evaluate(int64_t unix_nano);
  void SnapshotSignatures(int64_t unix_nano);
  // Folds the oldest snapshot into the next one and drops it.
  void DropOldestSnapshot();
  std::vector<SignatureCount> TopSignatures(const Slo& slo, std::chrono::milliseconds window,
                                            int64_t now);

  const ReplayOptions options_;
  const std::chrono::nanoseconds tick_interval_;
  ManualClock clock_;
  SliEngine engine_;
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors_;
  Evaluator evaluator_;
  std::map<std::pair<std::string, std::string>, Slo> slos_;  // by (service, name)
  std::chrono::milliseconds signature_history_{0};  // the longest window signatures are read over
  std::deque<SignatureSnapshot> snapshots_;         // oldest first, covering signature_history_
  size_t snapshot_entries_ = 0;
  bool history_truncated_ = false;  // snapshots were dropped for kMaxSignatureHistoryEntries
  // The latest cumulative count per signature id (as many as the SLI store keeps:
  // pipeline.max_signatures).
  std::map<uint64_t, uint64_t> signature_counts_;
  std::vector<pipeline::ShardBatch> parts_;  // per shard, reused
  int64_t next_tick_ = 0;
  int64_t next_evaluation_ = 0;
  bool finished_ = false;
  ReplayStats stats_;
  std::vector<TimelineEntry> timeline_;
};

}  // namespace traceslo::slo
