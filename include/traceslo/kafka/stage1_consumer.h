#pragma once

// Kafka mode's stage 1 against a cluster (docs/kafka.md): a member of the stage-1 consumer group
// on otlp_spans that runs one Stage1Partition per owned partition and produces their sealed
// epochs to traceslo_deltas with an idempotent producer.
//
// Offsets are committed explicitly, never automatically: every commit_interval, and on a graceful
// revoke or shutdown, each owned partition commits its CommitPoint — offset L and the metadata
// "E=<last acknowledged epoch>;H=<last processed offset>;cfg=<config hash, hex>;S=<seed offset>".
// An epoch is
// acknowledged once every one of its traceslo_deltas records was delivered; a delivery that
// failed for good never acknowledges (the partition's commit point stops there, and the next
// owner republishes from it). A new owner reads the committed point, reads [S, L) in seed mode
// (Stage1Partition), resumes from L and suppresses the epochs up to E. A lost partition (session
// expired, fenced) is dropped without a commit.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/ingest/otlp_file.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_processor.h"

namespace traceslo::kafka {

// "otlp_proto" or "otlp_json" (the Collector's Kafka exporter's `encoding`); InvalidArgument
// otherwise.
absl::StatusOr<ingest::OtlpFileFormat> ParseSpansEncoding(std::string_view encoding);

struct Stage1ConsumerOptions {
  std::string brokers;  // bootstrap.servers
  std::string spans_topic = "otlp_spans";
  std::string deltas_topic = "traceslo_deltas";
  std::string group_id = "traceslo-stage1";
  ingest::OtlpFileFormat encoding = ingest::OtlpFileFormat::kLengthPrefixedProtobuf;
  // librdkafka settings for both the consumer and the producer (SASL, TLS, timeouts). The
  // settings stage 1's correctness rests on are refused here (see Create()).
  std::map<std::string, std::string> librdkafka;
  std::chrono::milliseconds epoch_length{1'000};
  std::chrono::milliseconds commit_interval{1'000};
  // A partition without records for this long whose position is at its end offset moves its
  // stream time on by the clock's elapsed time.
  std::chrono::milliseconds idle_partition_timeout{10'000};
  uint64_t config_hash = 0;
  uint32_t max_spans_per_request = 1'000'000;
  pipeline::SliOptions sli;
  // Bounds Create()'s metadata request and each read of committed offsets at an assignment.
  std::chrono::milliseconds metadata_timeout{10'000};
  // How long a revoke waits for the revoked partitions' in-flight deliveries before it commits.
  std::chrono::milliseconds revoke_flush_timeout{5'000};
  // The longest the consumer thread blocks in one poll (also the delay of a delivery's ack and
  // of noticing Shutdown()).
  std::chrono::milliseconds poll_timeout{50};
};

// A snapshot of counters (totals since Create()) and gauges.
struct Stage1ConsumerStats {
  uint64_t records = 0;
  uint64_t bad_records = 0;  // not an export request: counted and skipped
  uint64_t spans = 0;
  uint64_t rejected_spans = 0;
  // Spans of records at or before the last processed offset read from the commit metadata at an
  // assignment: work a previous owner had done already.
  uint64_t replayed_spans = 0;
  uint64_t published_epochs = 0;
  uint64_t suppressed_epochs = 0;   // recomputed up to a resume point's E, not published
  uint64_t clamped_timestamps = 0;  // records stamped beyond Stage1Options::max_stream_jump
  uint64_t seed_records = 0;        // read in seed mode (before a resume point's L)
  // Late spans after a resume point recognised through the seed range (without it: new traces).
  uint64_t late_spans_after_replay = 0;
  uint64_t seed_overflow = 0;      // seed-range spans whose trace was not remembered (cap)
  uint64_t published_records = 0;  // traceslo_deltas records delivered
  uint64_t published_bytes = 0;    // their values' bytes
  uint64_t delivery_errors = 0;    // records whose delivery failed for good
  uint64_t idle_advances = 0;      // stream-time moves of idle partitions
  uint64_t commits = 0;            // offset commits that succeeded
  uint64_t commit_errors = 0;      // offset commits that failed
  // Assigned partitions whose committed metadata was missing or garbled (resumed from the
  // committed offset with E = -1), and those committed under another config hash (resumed as
  // committed).
  uint64_t bad_commit_metadata = 0;
  uint64_t config_hash_changes = 0;
  uint64_t partitions_assigned = 0;
  uint64_t partitions_revoked = 0;
  uint64_t partitions_lost = 0;
  // The idempotent producer failed for good (a fatal error) and was replaced; and owned
  // partitions started over from their committed point, as a new owner would, because a record
  // of theirs could not be delivered (its epoch can never be acknowledged) or the producer was
  // replaced. Stage 2 drops the epochs they publish again.
  uint64_t producer_rebuilds = 0;
  uint64_t partition_resyncs = 0;
  uint64_t resync_failures = 0;  // a partition that could not seek back: dropped until a rebalance
  int64_t consumer_lag = 0;      // sum over owned partitions of high watermark - position
  int32_t owned_partitions = 0;
  bool assignment_done = false;  // the first assignment was handled (readiness)
};

// One stage-1 group member. Owns one thread (Start() to Shutdown()) that polls the consumer and
// the producer and runs every owned partition's Stage1Partition, so all librdkafka callbacks and
// all partition state live on it. Stats() is thread-safe; Start() and Shutdown() are called from
// one controlling thread. `clock`, `registry` (thread-safe) and `logger` are borrowed and must
// outlive the consumer. `clock` must be a real one: librdkafka waits in real time.
class Stage1Consumer {
 public:
  // Builds the consumer and producer and reads the cluster's metadata: InvalidArgument naming the
  // key for a librdkafka setting librdkafka refuses or stage 1 sets itself (group.id,
  // bootstrap.servers, enable.auto.commit, enable.auto.offset.store, auto.offset.reset,
  // partition.assignment.strategy, enable.partition.eof, enable.idempotence, message.timeout.ms,
  // delivery.timeout.ms); NotFound when a topic does not exist; Unavailable when the metadata
  // request fails.
  static absl::StatusOr<std::unique_ptr<Stage1Consumer>> Create(Stage1ConsumerOptions options,
                                                                const Clock& clock,
                                                                pipeline::SeriesRegistry& registry,
                                                                Logger& logger);
  // Shuts down (deadline 10 s) if still running.
  ~Stage1Consumer();
  Stage1Consumer(const Stage1Consumer&) = delete;
  Stage1Consumer& operator=(const Stage1Consumer&) = delete;

  // Subscribes to the spans topic and starts the thread. FailedPrecondition when called twice or
  // after Shutdown(); the subscription's error otherwise.
  absl::Status Start();
  // Graceful stop: waits for in-flight deliveries, commits every owned partition's (L, E), leaves
  // the group, flushes the producer and joins the thread, each wait bounded by `deadline`.
  // Idempotent. A member still waiting for its first assignment waits for it (librdkafka 2.0.2
  // crashes closing a cooperative consumer before it, confluentinc/librdkafka#4381); one that
  // gets none by the deadline is left open, with a warning, until the process exits.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

  Stage1ConsumerStats Stats() const;

  // The committed offsets' metadata and its parse (E, H and S are -1 when absent; S absent: no
  // seed range).
  struct CommitMetadata {
    int64_t last_epoch = -1;
    int64_t last_offset = -1;
    uint64_t config_hash = 0;
    int64_t seed_offset = -1;
    friend bool operator==(const CommitMetadata&, const CommitMetadata&) = default;
  };
  // "E=<int>;H=<int>;cfg=<hex>;S=<int>", without ";S=" when seed_offset is -1.
  static std::string FormatCommitMetadata(const CommitMetadata& metadata);
  // InvalidArgument unless `text` is exactly "E=<int>;H=<int>;cfg=<hex>" with E, H >= -1,
  // optionally followed by ";S=<int>" with S >= 0 (written since seed ranges exist; the form
  // without it is accepted as committed by older versions).
  static absl::StatusOr<CommitMetadata> ParseCommitMetadata(std::string_view text);

 private:
  class Loop;  // the thread's state (librdkafka handles, owned partitions)

  explicit Stage1Consumer(std::unique_ptr<Loop> loop);

  std::unique_ptr<Loop> loop_;
};

}  // namespace traceslo::kafka
