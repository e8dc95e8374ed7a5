#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
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

// A trace known from spans that a processor did not process (Kafka stage 1's records before a
// resume point, docs/kafka.md): the arrival times (clock time, unix ns) of its first and last span
// there and, if it completed there, the tick it completed at.
struct SeededTrace {
  TraceId trace_id{};
  int64_t first_arrival_nanos = 0;
  int64_t last_arrival_nanos = 0;
  std::optional<int64_t> completed_nanos;
};

struct SliOptions {
  uint32_t shard = 0;
  std::chrono::nanoseconds trace_idle_timeout = std::chrono::seconds(15);
  std::chrono::nanoseconds trace_max_age = std::chrono::seconds(60);
  // Longer than SliShardProcessor::kMaxLateness (90 h) acts as 90 h.
  std::chrono::nanoseconds max_lateness = std::chrono::minutes(5);
  uint32_t max_live_traces = 100'000;    // this shard's share
  uint32_t max_spans_per_trace = 1'000;  // at most SliShardProcessor::kMaxSpansPerTrace
  uint32_t max_signatures = 10'000;      // distinct signatures per publication
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
                    DeltaSink& store);
  SliShardProcessor(const SliShardProcessor&) = delete;
  SliShardProcessor& operator=(const SliShardProcessor&) = delete;

  // traceslo::pipeline::ShardProcessor
  void Process(const ShardBatch& batch) override;
  // Completes traces idle for trace_idle_timeout or older than trace_max_age, then publishes.
  void OnTick() override;
  // Completes every live trace and publishes.
  void OnShutdown() override;

  // Takes over what an earlier processor of the same spans knew of `traces` (before the first
  // Process()). A seeded trace that has not completed completes at a tick by the idle and age
  // rules, as a live one would; until then its spans extend it and count as spans only (its first
  // spans were never seen here, so it is neither assembled nor counted as a trace). After it
  // completed, for trace_max_age, its spans are late spans, exactly as for a trace completed here,
  // and also counted in seeded_late_spans(). Seeded traces are neither live traces nor in the
  // commit point's OldestLiveArrivalNanos(). At most kMaxSeededPerLive * max_live_traces are kept
  // (the live set and the completed-id memory, each capped at max_live_traces); returns how many
  // of `traces` were not.
  size_t Seed(std::vector<SeededTrace> traces);
  // Late spans recognised through Seed()'s memory (cumulative).
  uint64_t seeded_late_spans() const { return seeded_late_spans_; }
  static constexpr uint32_t kMaxSeededPerLive = 2;

  size_t live_traces() const { return index_.size(); }
  // The first arrival (clock time, unix ns, rounded up to the millisecond) of the oldest live
  // trace; nullopt with none live. O(live traces): for Kafka stage 1's commit point, once per
  // epoch.
  std::optional<int64_t> OldestLiveArrivalNanos() const;
  // Bytes that the live-trace storage holds: span blocks (free ones too), the trace slab, its
  // index, the side entries and the eviction queue. O(number of size classes).
  size_t LiveTraceBytes() const;

  // Spans kept per trace at most, whatever SliOptions::max_spans_per_trace says (a parent
  // reference holds a span index in 17 bits).
  static constexpr uint32_t kMaxSpansPerTrace = (1u << 17) - 1;
  // max_lateness at most (a span's bucket is stored as a 16-bit difference from its trace's).
  static constexpr std::chrono::hours kMaxLateness{90};

 private:
  static constexpr uint32_t kNone = ~uint32_t{0};

  // One kept span: 16 bytes. Its 64-bit span id is in its block's id array, at the same index.
  struct SpanRecord {
    uint16_t parent_low;      // low 16 bits of the parent reference (kRef* in the .cc)
    int16_t bucket_delta;     // bucket (clamped end) minus the trace's base bucket
    uint32_t series_flags;    // low 24 bits: series id; then flags, kind, parent reference's top
    uint32_t duration;        // EncodeDuration(): exact below 1.07 s, rounded up above
    int32_t start_offset_us;  // from LiveTrace's base start
  };
  // A live trace: 44 bytes in the slab. Its spans are an arena block of capacity
  // bit_ceil(span count): [capacity span ids][capacity SpanRecords].
  struct LiveTrace {
    TraceId trace_id;
    uint32_t base_start_low;   // base start (first kept span's start, unix ns) in two words,
    uint32_t base_start_high;  // so that the entry needs 4-byte alignment only
    uint32_t block;            // arena block in the trace's size class; next free slot when free
    int32_t first_arrival_ms;  // arrival times: ms after epoch_nanos_, rounded up
    int32_t last_arrival_ms;
    uint32_t side_head;  // the trace's missing parent ids and error signatures (side_), or kNone
    uint32_t state;      // span count (low 17 bits) and kState* flags
  };
  // A missing parent's id (tag: its number k in parent references) or an error span's signature
  // (tag: kSideSignature | span index), linked from its trace. 16 bytes.
  struct SideEntry {
    uint64_t value;
    uint32_t next;
    uint32_t tag;
  };
  // Span blocks by size class (capacity 2^c spans, 24 bytes each). Blocks below 1024 spans are
  // carved from chunks of up to 64 and kept, when freed, on a free list threaded through them;
  // larger ones have a chunk each, returned when freed.
  class SpanArena {
   public:
    static constexpr int kClasses = 18;  // 2^17 >= kMaxSpansPerTrace
    struct SizeClass {
      std::vector<std::unique_ptr<std::byte[]>> chunks;
      uint32_t blocks = 0;  // carved so far (small classes)
      uint32_t used = 0;    // blocks handed out and not freed
      uint32_t free_head = kNone;
    };
    uint32_t Allocate(int size_class);
    void Free(int size_class, uint32_t block);
    std::byte* Block(int size_class, uint32_t block) const {
      return BlockIn(classes_[size_class], size_class, block);
    }
    static std::byte* BlockIn(const SizeClass& c, int size_class, uint32_t block);
    // Whether most of the class's carved blocks (and at least kCompactBytes) are free.
    bool Sparse(int size_class) const;
    // Hands the class's storage over (to move its live blocks out of); the class starts anew.
    SizeClass Take(int size_class);
    size_t Bytes() const;
    void Clear();

   private:
    std::array<SizeClass, kClasses> classes_;
    size_t chunk_bytes_ = 0;
  };
  // Hash and equality of the index: slab slots, looked up by TraceId (read from the slab).
  struct SlotHash {
    using is_transparent = void;
    const SliShardProcessor* owner;
    size_t operator()(uint32_t slot) const;
    size_t operator()(const TraceId& id) const;
  };
  struct SlotEq {
    using is_transparent = void;
    const SliShardProcessor* owner;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t slot, const TraceId& id) const;
    bool operator()(const TraceId& id, uint32_t slot) const { return (*this)(slot, id); }
  };
  struct TraceIdHash {
    size_t operator()(const TraceId& id) const;
  };
  struct TraceIdEq {
    bool operator()(const TraceId& a, const TraceId& b) const;
  };
  // Eviction at max_live_traces: the oldest live traces by (first arrival, id), found by one
  // scan per batch of evictions.
  struct EvictionCandidate {
    int32_t first_arrival_ms;
    uint32_t slot;
    TraceId trace_id;
  };

  SeriesRegistry::Ids Resolve(std::string_view service, std::string_view operation);
  uint32_t ServiceOfSeries(uint32_t series) const { return series_service_[series]; }
  // Counts one entry span; `signature` is the error signature of an error span (else unused).
  void CountRequest(uint32_t series, int64_t bucket, uint64_t duration_nanos, bool error,
                    uint64_t signature);
  LiveTrace& Slot(uint32_t slot) const {
    return slab_[slot >> kSlabChunkShift][slot & (kSlabChunk - 1)];
  }
  SideEntry& Side(uint32_t entry) const {
    return side_[entry >> kSideChunkShift][entry & (kSideChunk - 1)];
  }
  static int64_t BaseStartNanos(const LiveTrace& trace);
  int64_t BaseBucket(const LiveTrace& trace) const;
  int64_t ArrivalNanos(int32_t arrival_ms) const;
  int32_t ArrivalMs(int64_t now);  // rebases the epoch first when `now` is far past it
  void Rebase(int64_t now);
  uint64_t* SpanIds(const LiveTrace& trace) const;
  SpanRecord* Records(const LiveTrace& trace) const;
  // The signature of the error span `index` of `trace` (0 if it has none).
  uint64_t SignatureOfRecord(const LiveTrace& trace, uint32_t index) const;
  uint32_t AllocateSide(uint64_t value, uint32_t tag);
  // The live trace's slab slot, created if new (evicting the oldest at max_live_traces).
  uint32_t FindOrCreate(const TraceId& trace_id, int32_t now_ms, int64_t now);
  void EvictOldest(int64_t now);
  // Points the spans (before `parent_index`) whose missing parent is `span_id` at the span
  // `parent_index`, and decides the pending ones among them.
  void ResolveMissingParent(LiveTrace& trace, uint64_t span_id, uint32_t parent_index,
                            uint32_t parent_service);
  // Completes, forgets and remembers as completed the trace in `slot`.
  void Retire(uint32_t slot, int64_t now);
  void Complete(const LiveTrace& trace);
  void ReleaseStorage(uint32_t slot);
  void CompleteExpired(int64_t now, bool all);
  // After a tick: storage mostly free (after a burst of traces) is compacted and released.
  void CompactSparseStorage();
  void RememberCompleted(const TraceId& trace_id, int64_t now);
  void Publish(int64_t now);
  void AddSignature(const Span& span, const ShardBatch& batch, uint32_t series, uint64_t id,
                    int64_t now);

  static constexpr uint32_t kSlabChunkShift = 10;
  static constexpr uint32_t kSlabChunk = 1u << kSlabChunkShift;
  static constexpr uint32_t kSideChunkShift = 10;
  static constexpr uint32_t kSideChunk = 1u << kSideChunkShift;

  const SliOptions options_;
  const Clock& clock_;
  SeriesRegistry& registry_;
  DeltaSink& store_;

  // (service, operation) → ids; cleared when it reaches kMaxCachedNames.
  absl::flat_hash_map<std::string, SeriesRegistry::Ids> names_;
  std::string key_scratch_;
  std::vector<uint32_t> series_service_;  // series id → service id, for series seen here

  // Live traces: slab slots (chunks of kSlabChunk; free ones linked through `block`), indexed
  // by trace id; their spans in arena_, their side entries in side_.
  int64_t epoch_nanos_;  // arrival times are relative to it; moved forward before they overflow
  std::vector<std::unique_ptr<LiveTrace[]>> slab_;
  uint32_t slab_used_ = 0;  // slots ever handed out (the scan bound)
  uint32_t slab_free_ = kNone;
  absl::flat_hash_set<uint32_t, SlotHash, SlotEq> index_;
  SpanArena arena_;
  std::vector<std::unique_ptr<SideEntry[]>> side_;  // chunks of kSideChunk
  uint32_t side_used_ = 0;
  uint32_t side_free_ = kNone;
  std::vector<EvictionCandidate> eviction_queue_;
  size_t eviction_next_ = 0;

  absl::flat_hash_set<TraceId, TraceIdHash, TraceIdEq> completed_;
  std::deque<std::pair<TraceId, int64_t>> completed_order_;  // (id, completion time)
  // Seed()'s traces, until trace_max_age after their completion. Never grows after Seed().
  struct Seeded {
    int64_t first_arrival_nanos;
    int64_t last_arrival_nanos;
    int64_t completed_nanos;  // -1 while not completed
  };
  absl::flat_hash_map<TraceId, Seeded, TraceIdHash, TraceIdEq> seeded_;
  uint64_t seeded_late_spans_ = 0;

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
  std::vector<uint64_t> missing_ids_;                      // by number k
  std::vector<std::pair<uint32_t, uint64_t>> signatures_;  // (span index, signature)
};

}  // namespace traceslo::pipeline
