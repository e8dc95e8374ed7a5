#pragma once

// Kafka mode's stage 1 for one owned otlp_spans partition (docs/kafka.md): decodes each record
// with the receivers' decoder, runs the SLI engine (trace assembly included) on the partition's
// stream time, and seals an epoch (epoch_length of stream time) by handing its deltas, one
// traceslo_deltas record per destination partition, to an EpochPublisher. Stream time is the
// largest record timestamp seen, so with the broker's LogAppendTime (monotonic per partition) the
// output is a function of the records alone: replaying from a commit point reproduces every
// epoch after it.
//
// Commit rule: after the epochs up to E are acknowledged, Commit() gives (L, E) where L is the
// lowest offset that a replay needs to recompute every later epoch exactly: no later than the
// first record of any unacknowledged epoch, nor than the first record of any trace that was live
// when such an epoch (or the current one) was sealed. A new owner resumes with that point: it
// reads from L, recomputes epochs up to E without publishing them, and publishes from E + 1.
//
// Seed range: the SLI engine remembers completed trace ids for trace_max_age, so that a late span
// of a classified trace counts as late and never as a second trace. A trace with a record before
// L completed by the seal of E (every trace live at a later seal, or at the commit, has its first
// record at or after L), possibly after the record at L was processed; a new owner reading from L
// alone would count its late spans as new one-span partial traces. The
// commit point therefore also carries S <= L: the lowest offset whose records tell a new owner
// every trace id the old one could still know when it processed the record at L (the first record
// of each such trace: 2 x (trace_max_age + epoch_length) of stream time before L's epoch, see
// SeedOffsetFor()). A new owner reads [S, L) in seed mode: the records are decoded and their
// trace ids followed by the engine's idle and age rules (ticks at epoch boundaries), nothing is
// counted, stream time does not move and no epoch is sealed; the engine then starts with that
// memory (SliShardProcessor::Seed): traces still open there take their spans until they complete,
// completed ones make theirs late spans until they are forgotten.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "traceslo/common/manual_clock.h"
#include "traceslo/common/span.h"
#include "traceslo/ingest/otlp_file.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/pipeline/span_sink.h"

namespace traceslo::kafka {

// Where a partition's consumption resumes: read from `offset` (L); epochs up to `last_epoch` (E)
// were published already (-1: none). Records from `seed_offset` (S) up to L are read in seed mode
// (see the file comment); -1, or not below L: none.
struct CommitPoint {
  int64_t offset = 0;
  int64_t last_epoch = -1;
  int64_t seed_offset = -1;
  friend bool operator==(const CommitPoint&, const CommitPoint&) = default;
};

// Takes the records of each sealed epoch, in epoch order. Called on the partition's thread.
class EpochPublisher {
 public:
  virtual ~EpochPublisher() = default;
  // `records[p]` goes to traceslo_deltas partition p. Stage1Partition::Acknowledge(epoch) once
  // all of them are acknowledged by the cluster.
  virtual void Publish(int64_t epoch, std::vector<std::string> records) = 0;
};

struct Stage1Options {
  std::string topic = "otlp_spans";
  int32_t partition = 0;
  int32_t dst_partitions = 1;  // traceslo_deltas partitions
  uint64_t config_hash = 0;
  std::chrono::milliseconds epoch_length{1000};
  // The record encoding: otlp_proto (one ExportTraceServiceRequest, kLengthPrefixedProtobuf
  // without the prefix) or otlp_json (kJsonLines: one request as JSON).
  ingest::OtlpFileFormat format = ingest::OtlpFileFormat::kLengthPrefixedProtobuf;
  uint32_t max_spans_per_request = 1'000'000;
  pipeline::SliOptions sli;  // trace assembly settings, as in single-node mode
  // The furthest one record moves stream time forward: a record stamped later (a producer's
  // clock far ahead) moves it this far only, so one bad timestamp cannot seal millions of
  // epochs at once. Deterministic: a replay clamps the same records the same way.
  std::chrono::milliseconds max_stream_jump{600'000};
};

struct Stage1Counters {
  uint64_t records = 0;
  uint64_t bad_records = 0;  // not an export request (skipped; their offsets still count)
  uint64_t spans = 0;
  uint64_t rejected_spans = 0;
  uint64_t published_epochs = 0;
  uint64_t suppressed_epochs = 0;   // recomputed at or before the resume point's E, not published
  uint64_t clamped_timestamps = 0;  // records stamped more than max_stream_jump ahead
  uint64_t seed_records = 0;        // read in seed mode (before the resume point's L)
  // Late spans (at or after L) of traces known only from the seed range: without it they would
  // have counted as new traces (SliShardProcessor::seeded_late_spans()).
  uint64_t late_spans_after_replay = 0;
  // Spans of the seed range whose trace the seed memory had no room for (it holds at most
  // SliShardProcessor::kMaxSeededPerLive * max_live_traces traces): their late spans after L may
  // count as new traces.
  uint64_t seed_overflow = 0;
  Stage1Counters& operator+=(const Stage1Counters& other);
};

// One owned partition. Owned by one thread. `registry` (thread-safe) and `publisher` are borrowed
// and must outlive it.
class Stage1Partition {
 public:
  Stage1Partition(Stage1Options options, pipeline::SeriesRegistry& registry,
                  EpochPublisher& publisher, CommitPoint resume);
  Stage1Partition(const Stage1Partition&) = delete;
  Stage1Partition& operator=(const Stage1Partition&) = delete;

  // The record at `offset` (offsets increase, from the resume point's S, or L without one), with
  // its timestamp (unix ms). Seals every epoch the record's stream time passed before decoding it.
  // Records before L are read in seed mode.
  void Process(int64_t offset, int64_t timestamp_ms, std::string_view value);
  // Moves stream time to `stream_time_ms` without a record (an idle partition), sealing the
  // epochs it passes.
  void AdvanceTo(int64_t stream_time_ms);
  // Every record of `epoch` was acknowledged.
  void Acknowledge(int64_t epoch);
  // The commit point now (see the file comment).
  CommitPoint Commit() const;

  const Stage1Counters& counters() const { return counters_; }
  // Valid once started(): the first record at or after L, or AdvanceTo(), sets it.
  int64_t stream_time_ms() const { return stream_ms_; }
  bool started() const { return started_; }

 private:
  // Captures what the processor publishes at a tick.
  class Capture final : public pipeline::DeltaSink {
   public:
    void Apply(pipeline::ShardDelta delta) override { delta_ = std::move(delta); }
    pipeline::ShardDelta Take() { return std::move(delta_); }

   private:
    pipeline::ShardDelta delta_;
  };

  // A trace id followed through the seed range (times: stream time, unix ns).
  struct SeedTrace {
    int64_t first_ns;
    int64_t last_ns;
    int64_t completed_ns;  // -1 while not completed
  };

  void ProcessSeed(int64_t offset, int64_t timestamp_ms, std::string_view value);
  // Completes `trace` if a tick at an epoch boundary up to `at_ns` would have; true when its
  // memory ran out by then (trace_max_age after completion).
  bool SeedForgotten(SeedTrace& trace, int64_t at_ns) const;
  // Hands the seed memory to the new processor, as of stream time `at_ms`.
  void HandOverSeeds(int64_t at_ms);
  void NoteEpochOffset(int64_t stream_ms, int64_t offset);
  // S for a commit at offset L (<= L): the first offset of the epoch seed_horizon_epochs_ before
  // the epoch of the record at L, or the earliest offset read (seed mode's included) when that is
  // earlier.
  int64_t SeedOffsetFor(int64_t offset) const;
  void SealThrough(int64_t stream_ms);
  // The first offset whose stream time was at least `arrival_ms` (a conservative bound on the
  // first record of a trace that arrived then).
  int64_t OffsetAtStreamTime(int64_t arrival_ms) const;
  int64_t EpochOf(int64_t stream_ms) const;

  const Stage1Options options_;
  pipeline::SeriesRegistry& registry_;
  EpochPublisher& publisher_;
  const CommitPoint resume_;

  ManualClock clock_;
  Capture capture_;
  std::unique_ptr<pipeline::SliShardProcessor> processor_;
  ingest::OtlpRecordDecoder decoder_;
  SpanBatch batch_;  // the record being decoded; its buffers are kept from record to record
  // What processor_ reads: batch_'s arena and spans, swapped in for the call. strings_ is the
  // arena's owner (shard_batch_.strings is the same string, read-only).
  std::shared_ptr<std::string> strings_;
  pipeline::ShardBatch shard_batch_;

  int64_t stream_ms_ = 0;  // valid once started_
  bool started_ = false;
  int64_t epoch_ = 0;        // the open (unsealed) epoch
  int64_t next_offset_ = 0;  // after the last record processed
  // The lowest offset each unacknowledged epoch needs replayed (the open one included).
  std::map<int64_t, int64_t> needs_;
  std::set<int64_t> sealed_unacked_;  // sealed epochs not yet acknowledged
  int64_t last_acked_;                // E: every epoch up to it is acknowledged
  int64_t last_sealed_;
  std::deque<std::pair<int64_t, int64_t>> stream_offsets_;  // (stream ms, first offset at it)
  // (epoch, first offset in it) for every epoch with a record, seed mode's included, back to the
  // current S: at most seed_horizon_epochs_ + the epochs since L's (SeedOffsetFor()).
  std::deque<std::pair<int64_t, int64_t>> epoch_offsets_;
  const int64_t seed_horizon_epochs_;
  const int64_t resume_seed_;  // S of the resume point (L when it has none)
  // Seed mode: its own stream time (the largest timestamp read there) and the trace ids it saw,
  // capped at kMaxSeededPerLive * max_live_traces. Emptied once the processor has them.
  bool seeding_ = false;
  int64_t seed_ms_ = 0;
  absl::flat_hash_map<TraceId, SeedTrace> seeds_;
  Stage1Counters counters_;
};

}  // namespace traceslo::kafka
