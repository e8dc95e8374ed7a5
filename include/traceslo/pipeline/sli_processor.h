#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/error_signature.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::pipeline {

// Which spans with status UNSET are errors (status ERROR always is, status OK never is).
struct ErrorPolicy {
  int32_t http_status_min = 500;  // HTTP status >= this
  uint32_t grpc_code_mask = (1u << 2) | (1u << 4) | (1u << 12) | (1u << 13) | (1u << 14) |
                            (1u << 15);  // bit c set: gRPC code c
};
bool IsErrorSpan(const Span& span, const ErrorPolicy& policy);

struct SliOptions {
  uint32_t shard = 0;
  std::chrono::nanoseconds trace_idle_timeout = std::chrono::seconds(15);
  std::chrono::nanoseconds trace_max_age = std::chrono::seconds(60);
  std::chrono::nanoseconds max_lateness = std::chrono::minutes(5);
  uint32_t max_live_traces = 100'000;  // this shard's share
  uint32_t max_spans_per_trace = 1'000;
  uint32_t max_signatures = 10'000;  // distinct signatures per publication
  // Distinct signatures counted per (series, bucket) and publication (SeriesDelta::signatures);
  // the entry spans of later ones are counted under id 0.
  uint32_t max_signatures_per_series_bucket = 16;
  ErrorPolicy errors;
  // Off: per-span SLIs only (no trace-level SLIs, no exemplars, no late-span detection). For
  // benchmarks that measure the two halves apart.
  bool assemble_traces = true;
};

// The SLI engine of one shard: per-span SLIs at arrival, trace assembly, trace-level SLIs, error
// signatures and exemplar candidates, published to the SliStore as one delta per tick. Owned by
// its shard's thread (all methods). `clock`, `registry` and `store` are borrowed (both
// thread-safe) and must outlive the processor. Takes the registry's lock only for a (service,
// operation) pair it has not seen before, and the store's once per tick.
class SliShardProcessor final : public ShardProcessor {
 public:
  SliShardProcessor(const SliOptions& options, const Clock& clock, SeriesRegistry& registry,
                    SliStore& store);

  // traceslo::pipeline::ShardProcessor
  void Process(const ShardBatch& batch) override;
  // Completes traces idle for trace_idle_timeout or older than trace_max_age, then publishes.
  void OnTick() override;
  // Completes every live trace and publishes.
  void OnShutdown() override;

  size_t live_traces() const { return live_.size(); }
  // Heap and table bytes that live traces hold (records, tables, eviction order).
  size_t LiveTraceBytes() const;

  // One span of a live trace: 32 bytes.
  struct SpanRecord {
    uint64_t span_id;
    uint64_t parent_span_id;
    uint32_t series_flags;    // low 24 bits: series id; high 8: flags below
    uint32_t duration;        // EncodeDuration(): exact below 1.07 s, rounded up above
    int32_t start_offset_us;  // from LiveTrace::base_start_nanos
    uint32_t bucket;          // bucket time (clamped end) index
  };

 private:
  struct TraceIdHash {
    size_t operator()(const TraceId& id) const;
  };
  struct LiveTrace {
    std::vector<SpanRecord> spans;
    // (span index, signature) of error spans; most traces have none.
    std::unique_ptr<std::vector<std::pair<uint32_t, uint64_t>>> signatures;
    int64_t base_start_nanos = 0;
    int64_t first_arrival_nanos = 0;
    int64_t last_arrival_nanos = 0;
    uint32_t pending = 0;  // spans whose entry decision waits for their parent
  };

  SeriesRegistry::Ids Resolve(std::string_view service, std::string_view operation);
  uint32_t ServiceOfSeries(uint32_t series) const { return series_service_[series]; }
  // Counts one entry span; `signature` is the error signature of an error span (else unused).
  void CountRequest(uint32_t series, int64_t bucket, uint64_t duration_nanos, bool error,
                    uint64_t signature);
  // The signature of the error span trace.spans[index] (0 if it is not an error span).
  static uint64_t SignatureOfRecord(const LiveTrace& trace, size_t index);
  LiveTrace* FindOrCreate(const TraceId& trace_id, int64_t now);
  void ResolvePendingChildren(LiveTrace& trace, uint64_t parent_span_id, uint32_t parent_service);
  void Complete(const TraceId& trace_id, LiveTrace& trace);
  void CompleteExpired(int64_t now, bool all);
  void RememberCompleted(const TraceId& trace_id, int64_t now);
  void Publish(int64_t now);
  static size_t TraceHeapBytes(const LiveTrace& trace);
  size_t TableBytes() const;
  void AddSignature(const Span& span, const ShardBatch& batch, uint32_t series, uint64_t id,
                    int64_t now);

  const SliOptions options_;
  const Clock& clock_;
  SeriesRegistry& registry_;
  SliStore& store_;

  // (service, operation) → ids; cleared when it reaches kMaxCachedNames.
  absl::flat_hash_map<std::string, SeriesRegistry::Ids> names_;
  std::string key_scratch_;
  std::vector<uint32_t> series_service_;  // series id → service id, for series seen here

  absl::flat_hash_map<TraceId, LiveTrace, TraceIdHash> live_;
  std::deque<std::pair<TraceId, int64_t>> creation_order_;  // (id, first arrival); lazy
  absl::flat_hash_set<TraceId, TraceIdHash> completed_;
  std::deque<std::pair<TraceId, int64_t>> completed_order_;  // (id, completion time)
  size_t live_heap_bytes_ = 0;  // span records of the traces kept at the last scan

  // The delta being built, and where its entries are.
  ShardDelta delta_;
  absl::flat_hash_map<uint64_t, uint32_t> series_index_;   // (series, bucket) → delta_.series
  absl::flat_hash_map<uint64_t, uint32_t> service_index_;  // (service, bucket) → delta_.services
  absl::flat_hash_map<uint64_t, uint32_t> slowest_index_;  // (series, bucket) → delta_.exemplars
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, uint32_t> error_index_;
  absl::flat_hash_map<uint64_t, uint32_t> signature_index_;  // id → delta_.signatures

  SignatureScratch signature_scratch_;
  // Scratch for Complete().
  std::vector<int32_t> parent_index_;
  std::vector<int32_t> depth_;
  std::vector<uint32_t> touched_;
  absl::flat_hash_map<uint64_t, uint32_t> span_index_;
};

}  // namespace traceslo::pipeline
