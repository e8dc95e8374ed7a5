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

#include "traceslo/common/manual_clock.h"
#include "traceslo/ingest/otlp_file.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::kafka {

// Where a partition's consumption resumes: read from `offset` (L); epochs up to `last_epoch` (E)
// were published already (-1: none).
struct CommitPoint {
  int64_t offset = 0;
  int64_t last_epoch = -1;
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

  // The record at `offset` (offsets increase, from the resume point's on), with its timestamp
  // (unix ms). Seals every epoch the record's stream time passed before decoding it.
  void Process(int64_t offset, int64_t timestamp_ms, std::string_view value);
  // Moves stream time to `stream_time_ms` without a record (an idle partition), sealing the
  // epochs it passes.
  void AdvanceTo(int64_t stream_time_ms);
  // Every record of `epoch` was acknowledged.
  void Acknowledge(int64_t epoch);
  // The commit point now (see the file comment).
  CommitPoint Commit() const;

  const Stage1Counters& counters() const { return counters_; }
  int64_t stream_time_ms() const { return stream_ms_; }

 private:
  // Captures what the processor publishes at a tick.
  class Capture final : public pipeline::DeltaSink {
   public:
    void Apply(pipeline::ShardDelta delta) override { delta_ = std::move(delta); }
    pipeline::ShardDelta Take() { return std::move(delta_); }

   private:
    pipeline::ShardDelta delta_;
  };

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
  SpanBatch batch_;

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
  Stage1Counters counters_;
};

}  // namespace traceslo::kafka
