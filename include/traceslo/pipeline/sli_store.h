#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "traceslo/common/mutex.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/latency_sketch.h"

namespace traceslo::pipeline {

// SLI buckets are 10 s wide and named by their index: unix seconds / 10.
inline constexpr int64_t kBucketSeconds = 10;
inline constexpr int64_t kBucketNanos = kBucketSeconds * 1'000'000'000;
inline int64_t BucketOfUnixNanos(int64_t unix_nanos) {
  return unix_nanos >= 0 ? unix_nanos / kBucketNanos
                         : (unix_nanos - kBucketNanos + 1) / kBucketNanos;
}

// Upper bounds (seconds) of traceslo_request_duration_seconds, plus +Inf.
inline constexpr std::array<double, 13> kClassicBoundsSeconds = {
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15};
inline constexpr size_t kClassicBuckets = kClassicBoundsSeconds.size() + 1;
// Index of the classic bucket (non-cumulative) that holds `nanos`.
size_t ClassicBucketOf(uint64_t nanos);

// One span of an exemplar trace, compact: names are series ids of the SeriesRegistry.
struct ExemplarSpan {
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;
  int64_t start_offset_nanos = 0;  // from ExemplarTrace::start_unix_nano
  uint64_t duration_nanos = 0;
  uint64_t signature = 0;  // error spans: their error signature id; otherwise 0
  uint32_t series = 0;
  SpanKind kind = SpanKind::kUnspecified;
  bool error = false;
  bool orphan = false;  // its parent never arrived
};

// A completed trace kept as an example for alerts and the trace page. Immutable once shared.
struct ExemplarTrace {
  TraceId trace_id{};
  int64_t start_unix_nano = 0;
  uint64_t duration_nanos = 0;
  std::vector<ExemplarSpan> spans;
  size_t MemoryBytes() const { return sizeof(*this) + spans.capacity() * sizeof(ExemplarSpan); }
};
using ExemplarRef = std::shared_ptr<const ExemplarTrace>;

// How many error entry spans of a window or bucket had one error signature. `id` 0 stands for
// the signatures a cap left out ("other").
struct SignatureCount {
  uint64_t id = 0;
  uint64_t count = 0;
  friend bool operator==(const SignatureCount&, const SignatureCount&) = default;
};

// Adds `n` to `id` in `counts`, which holds at most `cap` ids other than 0: a new id past the cap
// (and id 0 itself) is added to the entry of id 0 instead. Linear in counts.size(), for the small
// per-bucket lists of SeriesDelta and SliStore.
inline void AddSignatureCount(std::vector<SignatureCount>& counts, uint64_t id, uint64_t n,
                              size_t cap) {
  SignatureCount* other = nullptr;
  for (SignatureCount& c : counts) {
    if (c.id == id) {
      c.count += n;
      return;
    }
    if (c.id == 0) other = &c;
  }
  if (id != 0 && counts.size() - (other != nullptr ? 1 : 0) < cap) {
    counts.push_back({id, n});
  } else if (other != nullptr) {
    other->count += n;
  } else {
    counts.push_back({0, n});
  }
}

// Per (series, bucket): what one shard adds between two publications.
struct SeriesDelta {
  uint32_t series = 0;
  uint32_t service = 0;  // the series' service id
  int64_t bucket = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  double sum_seconds = 0;
  std::array<uint64_t, kClassicBuckets> classic{};  // non-cumulative
  LatencySketch latency;
  // The error signatures of the `errors` entry spans, first seen first; their counts sum to
  // `errors`. At most SliOptions::max_signatures_per_series_bucket ids, the rest under id 0.
  std::vector<SignatureCount> signatures;
};

// Per (service, bucket): trace-level SLIs of the traces a shard completed.
struct ServiceDelta {
  uint32_t service = 0;
  int64_t bucket = 0;
  uint64_t traces = 0;
  uint64_t error_traces_root = 0;
  uint64_t error_traces_origin = 0;
  uint64_t partial_traces = 0;
  uint64_t propagation_breaks = 0;
};

// An exemplar candidate: the slowest entry span of (series, bucket) (signature 0), or the latest
// error trace of (series, bucket, signature).
struct ExemplarDelta {
  uint32_t series = 0;
  int64_t bucket = 0;
  uint64_t signature = 0;
  uint64_t duration_nanos = 0;  // of the entry span (slowest) or of the error span
  int64_t end_unix_nano = 0;    // of that span (the latest wins for error exemplars)
  ExemplarRef trace;
};

// What a shard saw of one error signature since its last publication.
struct SignatureDelta {
  uint64_t id = 0;
  uint32_t series = 0;
  uint64_t count = 0;
  int64_t first_seen_unix_nano = 0;
  int64_t last_seen_unix_nano = 0;
  int32_t http_status = 0;
  int32_t rpc_status = -1;
  std::string exception_type;
  std::string normalized_message;
  std::string sample_message;  // as sent, truncated
  std::string top_frame;
  std::vector<TraceId> trace_ids;  // latest last, at most kMaxSignatureTraces
};
inline constexpr size_t kMaxSignatureTraces = 5;

// Everything one shard publishes at a tick.
struct ShardDelta {
  uint32_t shard = 0;
  std::vector<SeriesDelta> series;
  std::vector<ServiceDelta> services;
  std::vector<ExemplarDelta> exemplars;
  std::vector<SignatureDelta> signatures;
  uint64_t late_spans = 0;
  uint64_t evicted_traces = 0;
  uint64_t clock_skew_spans = 0;
  uint64_t truncated_spans = 0;  // spans beyond max_spans_per_trace, not kept for assembly
  uint64_t signature_overflow = 0;
  uint64_t live_traces = 0;  // a level, not a delta
  uint64_t live_trace_bytes = 0;
};

// One minute (unix minutes) of one series or service as the storage persists it: every bucket of
// the minute summed.
inline constexpr int64_t kBucketsPerMinute = 60 / kBucketSeconds;
inline int64_t MinuteOfBucket(int64_t bucket) {
  return bucket >= 0 ? bucket / kBucketsPerMinute
                     : (bucket - kBucketsPerMinute + 1) / kBucketsPerMinute;
}
struct SeriesMinute {
  uint32_t series = 0;
  uint32_t service = 0;  // the series' service id
  int64_t minute = 0;
  // The newest 10 s bucket of the minute that had data (0-5): Restore() puts the minute there,
  // so windows shorter than a minute still see the traffic just before a restart.
  int32_t last_offset = kBucketsPerMinute - 1;
  uint64_t requests = 0;
  uint64_t errors = 0;
  LatencySketch latency;
};
struct ServiceMinute {
  uint32_t service = 0;
  int64_t minute = 0;
  int32_t last_offset = kBucketsPerMinute - 1;  // as SeriesMinute's
  uint64_t traces = 0;
  uint64_t error_traces_root = 0;
  uint64_t error_traces_origin = 0;
  uint64_t partial_traces = 0;
  uint64_t propagation_breaks = 0;
};
struct MinuteRollups {
  std::vector<SeriesMinute> series;
  std::vector<ServiceMinute> services;
  bool empty() const { return series.empty() && services.empty(); }
};

struct SliStoreOptions {
  uint32_t shards = 1;
  std::chrono::milliseconds retention{3'600'000};
  std::chrono::milliseconds exemplar_retention{900'000};
  uint32_t max_signatures = 10'000;
  uint32_t max_signatures_per_bucket = 8;  // error exemplars per (series, bucket)
  // Error signatures counted per (series, bucket); the counts of later ones go to id 0.
  uint32_t max_signature_counts_per_bucket = 16;
};

// Sums over a window of buckets.
struct WindowStats {
  uint64_t requests = 0;
  uint64_t errors = 0;
  LatencySketch latency;
  uint64_t traces = 0;
  uint64_t error_traces_root = 0;
  uint64_t error_traces_origin = 0;
  uint64_t partial_traces = 0;
  uint64_t propagation_breaks = 0;
};

// A signature in the store's registry: the same fields, summed over every shard and tick.
using SignatureInfo = SignatureDelta;

// Where a shard's SLI engine publishes its deltas (once per tick): the SliStore in one process;
// in Kafka mode's stage 1, the encoder of traceslo_deltas records. Thread-safety: the
// implementation's; a processor calls it from its own thread.
class DeltaSink {
 public:
  virtual ~DeltaSink() = default;
  virtual void Apply(ShardDelta delta) = 0;
};

// Merges shard deltas into per-series rings of 10 s buckets (for windows up to `retention`),
// cumulative totals (for Prometheus counters), exemplar traces and the error signature registry.
// Series and service ids come from a SeriesRegistry. Thread-safe: one mutex, taken once per
// shard publication and once per query.
class SliStore final : public DeltaSink {
 public:
  explicit SliStore(const SliStoreOptions& options);

  // traceslo::pipeline::DeltaSink
  void Apply(ShardDelta delta) override;

  struct SeriesTotals {
    uint64_t requests = 0;
    uint64_t errors = 0;
    double sum_seconds = 0;
    std::array<uint64_t, kClassicBuckets> classic{};  // non-cumulative
  };
  struct ServiceTotals {
    uint64_t traces = 0;
    uint64_t error_traces_root = 0;
    uint64_t error_traces_origin = 0;
    uint64_t partial_traces = 0;
    uint64_t propagation_breaks = 0;
  };
  struct GlobalTotals {
    uint64_t late_spans = 0;
    uint64_t evicted_traces = 0;
    uint64_t clock_skew_spans = 0;
    uint64_t truncated_spans = 0;
    uint64_t signature_overflow = 0;
    uint64_t live_traces = 0;  // sum of the shards' latest levels
    uint64_t live_trace_bytes = 0;
    uint64_t signatures = 0;
  };

  // Copies under the lock; for the Prometheus collector. Indexed by id (absent ids are zero).
  std::vector<SeriesTotals> AllSeriesTotals() const;
  std::vector<ServiceTotals> AllServiceTotals() const;
  GlobalTotals Totals() const;

  // Buckets [first_bucket, last_bucket] of one series / of every series of one service, as far
  // as the ring still holds them (the newest `retention` of buckets seen by the store). Traces
  // are counted per service, so SeriesWindow leaves the trace-level fields zero.
  WindowStats SeriesWindow(uint32_t series, int64_t first_bucket, int64_t last_bucket) const;
  // Requests and errors of several series over the buckets, without merging sketches (for SLO
  // evaluation, which reads many windows at every tick).
  struct Counts {
    uint64_t requests = 0;
    uint64_t errors = 0;
  };
  Counts SeriesCounts(const std::vector<uint32_t>& series, int64_t first_bucket,
                      int64_t last_bucket) const;
  // The merged latency sketch of several series over the buckets.
  LatencySketch SeriesLatency(const std::vector<uint32_t>& series, int64_t first_bucket,
                              int64_t last_bucket) const;
  WindowStats ServiceWindow(uint32_t service, int64_t first_bucket, int64_t last_bucket) const;
  // For every service id: its latency sketch over [first_bucket, last_bucket].
  std::vector<LatencySketch> ServiceLatencies(int64_t first_bucket, int64_t last_bucket) const;
  // For every service id, one sketch per window: window w covers the window_buckets[w] buckets
  // ending at last_bucket (inclusive). Nested windows share one walk: each bucket is merged once
  // per service, not once per window. window_buckets must be ascending.
  std::vector<std::vector<LatencySketch>> ServiceLatencyWindows(
      const std::vector<int64_t>& window_buckets, int64_t last_bucket) const;

  // Exemplars of the window: the slowest per series and bucket, then error ones, newest first.
  std::vector<ExemplarRef> Exemplars(uint32_t series, int64_t first_bucket,
                                     int64_t last_bucket) const;
  // The exemplar trace with this id, if one is kept.
  ExemplarRef FindTrace(const TraceId& trace_id) const;

  // Exemplars for the Prometheus metrics (OpenMetrics): per series, the newest exemplar trace of
  // each classic duration bucket (from the slowest entry span of each 10 s bucket, placed by its
  // duration) and the newest error exemplar. Only traces FindTrace() still answers are listed,
  // so every trace id a dashboard shows opens on the trace page.
  struct MetricExemplar {
    TraceId trace_id{};
    double value = 0;       // duration buckets: the entry span's seconds; errors: 1
    int64_t unix_nano = 0;  // end of the span (duration) or of the error span (errors)
  };
  struct SeriesExemplars {
    std::array<std::optional<MetricExemplar>, kClassicBuckets> duration;  // non-cumulative index
    std::optional<MetricExemplar> error;
  };
  // Indexed by series id, like AllSeriesTotals().
  std::vector<SeriesExemplars> AllSeriesExemplars() const;

  // The error signatures of the entry spans of `series` over buckets [first_bucket,
  // last_bucket], summed, highest count first (then by id). An entry with id 0 holds the counts
  // that max_signature_counts_per_bucket (or a shard's own cap) left unnamed. For buckets that
  // only deltas filled, the counts sum to the errors of SeriesCounts() over the same series and
  // buckets; minutes put back by Restore() carry no signatures.
  std::vector<SignatureCount> SignatureCounts(const std::vector<uint32_t>& series,
                                              int64_t first_bucket, int64_t last_bucket) const;
  // For every service id: the propagation breaks recorded for it over the buckets (what
  // ServiceWindow() answers in `propagation_breaks`, without merging sketches).
  std::vector<uint64_t> PropagationBreaks(int64_t first_bucket, int64_t last_bucket) const;

  std::vector<SignatureInfo> Signatures() const;  // by count, highest first
  // One signature of the registry; nullopt when it was never seen or did not fit max_signatures.
  std::optional<SignatureInfo> Signature(uint64_t id) const;

  // The minutes that deltas changed since the last call, each one whole (every bucket of it the
  // rings still hold, summed), for the storage to write over its previous copy. Minutes whose
  // buckets have all left the rings are skipped.
  MinuteRollups TakeChangedMinutes();
  // Puts persisted minutes back after a restart, each into its newest bucket (last_offset), as
  // far as the rings reach back from the newest bucket given. Restored minutes are not
  // "changed", and the cumulative totals behind the Prometheus counters are not restored
  // (counters start again from zero, as after any restart). Minutes carry no error signatures,
  // so SignatureCounts() answers nothing for restored buckets. Call before the first Apply.
  void Restore(const MinuteRollups& rollups);
  // Drops everything held for these service ids and their series (buckets, totals, exemplars,
  // signature counts, unsaved minute changes), as if no delta had named them; the ids stay
  // registered. Kafka mode calls it when another instance takes over the services' deltas
  // partition, so a partition that comes back is restored from its file once, not on top of
  // what was held before.
  void ForgetServices(const std::vector<uint32_t>& services);
  // The oldest bucket the rings can hold now (they hold `retention` back from the newest bucket
  // seen); nothing older is answered by the window queries. INT64_MAX before any bucket is seen.
  int64_t OldestHeldBucket() const;

  // Approximate bytes held by the whole store (rings, totals, sketches, exemplar traces counted
  // once, signatures), for the benchmark.
  size_t MemoryBytes() const;

 private:
  struct Bucket {
    int64_t bucket = INT64_MIN;  // INT64_MIN: empty slot
    uint64_t requests = 0;
    uint64_t errors = 0;
    LatencySketch latency;
  };
  // Per service and bucket: the trace-level SLIs, and the requests, errors and latency of all
  // the service's series merged at Apply time (so service windows merge one sketch per bucket).
  struct TraceBucket {
    int64_t bucket = INT64_MIN;
    uint64_t requests = 0;
    uint64_t errors = 0;
    LatencySketch latency;
    uint64_t traces = 0;
    uint64_t error_traces_root = 0;
    uint64_t error_traces_origin = 0;
    uint64_t partial_traces = 0;
    uint64_t propagation_breaks = 0;
  };
  struct ExemplarSlot {
    int64_t bucket = INT64_MIN;
    uint64_t slowest_nanos = 0;
    ExemplarRef slowest;
    // At most max_signatures_per_bucket; when full, a newer exemplar replaces the oldest.
    struct Error {
      uint64_t signature;
      int64_t end_unix_nano;
      ExemplarRef trace;
    };
    std::vector<Error> errors;
    // Every trace shown on /metrics from this bucket (at most kMaxShownPerSlot), so each trace id
    // Prometheus has stored opens until the bucket leaves exemplar_retention, even after a slower
    // trace took `slowest` or a newer one replaced it on /metrics.
    std::vector<ExemplarRef> shown;
  };
  static constexpr size_t kMaxShownPerSlot = 16;
  // The exemplar /metrics shows for one (series, classic bucket) or the series' errors. Its
  // trace is held by the exemplar slot of `bucket` (ExemplarSlot::shown).
  struct ShownExemplar {
    int64_t bucket = INT64_MIN;  // INT64_MIN: none
    int64_t unix_nano = 0;
    double value = 0;
    TraceId trace_id{};
  };
  // Error signatures of one series and bucket: at most max_signature_counts_per_bucket ids,
  // plus id 0 for the rest.
  struct SignatureBucket {
    int64_t bucket = INT64_MIN;
    std::vector<SignatureCount> counts;
  };
  struct SeriesState {
    bool known = false;  // a SeriesDelta has named its service
    uint32_t service = 0;
    SeriesTotals totals;
    std::vector<Bucket> ring;  // retention / 10 s slots, allocated on first use
    // Like `ring`, allocated only once the series has had an error span.
    std::vector<SignatureBucket> signature_ring;
    std::vector<ExemplarSlot> exemplars;  // exemplar_retention / 10 s slots
    // [0, kClassicBuckets): duration buckets; [kClassicBuckets]: errors. Allocated on first use.
    std::unique_ptr<std::array<ShownExemplar, kClassicBuckets + 1>> shown;
    int64_t changed_first = INT64_MAX;  // minutes changed since TakeChangedMinutes()
    int64_t changed_last = INT64_MIN;
  };
  struct ServiceState {
    ServiceTotals totals;
    std::vector<TraceBucket> ring;
    std::vector<uint32_t> series;       // series of this service
    int64_t changed_first = INT64_MAX;  // minutes whose trace-level SLIs changed
    int64_t changed_last = INT64_MIN;
  };

  static void ResetTraceBucket(TraceBucket& slot, int64_t at);  // keeps the sketch's memory
  SeriesState& SeriesAt(uint32_t series) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds to the rings (not the totals).
  void AddSeriesBucket(SeriesState& s, const SeriesDelta& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddServiceBucket(ServiceState& s, const ServiceDelta& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NameSeries(SeriesState& s, uint32_t series, uint32_t service)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shows `trace` as the exemplar of `index` of s.shown if it is newer than the one there and
  // `slot` (its bucket's exemplar slot) can hold one more shown trace.
  static void Show(SeriesState& s, ExemplarSlot& slot, size_t index, int64_t unix_nano,
                   double value, const ExemplarRef& trace);
  bool ShownLive(const ShownExemplar& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ServiceState& ServiceAt(uint32_t service) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SliStoreOptions options_;
  const int64_t ring_slots_;
  const int64_t exemplar_slots_;
  mutable Mutex mu_;
  // Series ids reach the store through deltas only, in any order: grown on demand.
  std::vector<SeriesState> series_ ABSL_GUARDED_BY(mu_);
  std::vector<ServiceState> services_ ABSL_GUARDED_BY(mu_);
  // The newest bucket of any delta so far: rings hold the buckets (newest - slots, newest].
  int64_t newest_bucket_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
  GlobalTotals totals_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> live_traces_ ABSL_GUARDED_BY(mu_);  // per shard
  std::vector<uint64_t> live_bytes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, SignatureInfo> signatures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::pipeline
