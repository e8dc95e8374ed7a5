#pragma once

// Kafka mode's stage 2 against a cluster (docs/kafka.md): a member of the stage-2 consumer group
// on traceslo_deltas that keeps one Stage2Partition (and its SQLite file) per owned partition and
// applies the records it reads to it, so the process's SLI store holds the merged SLIs of the
// services those partitions carry.
//
// Offsets live in each partition's file, in the same transaction as its buckets: on assignment
// the consumer seeks to the file's next offset, so redelivery changes nothing. Kafka's committed
// offsets are only a hint for lag monitoring (committed every few seconds). A revoked or lost
// partition's file is closed; what it put into the sink stays there (the listener is told, so the
// owner of the sink can drop it).
//
// The traceslo_state changelog (state_topic set; docs/kafka.md): every snapshot_interval, and
// when a partition is revoked, each owned partition's changes go to the state topic's partition
// of the same number, but only while the group is steady and the partition is in the consumer's
// assignment (a check that narrows, not closes, a zombie's window). An assigned partition
// without a usable file (none, or one older than what the deltas topic still holds) is restored
// from its changelog, then reads the deltas from the checkpoint's offset; with no checkpoint
// there, it reads the deltas from their beginning.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/kafka/stage2.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::kafka {

struct Stage2ConsumerOptions {
  std::string brokers;                     // bootstrap.servers
  std::string spans_topic = "otlp_spans";  // its partition count is the number of sources (P1)
  std::string deltas_topic = "traceslo_deltas";
  std::string group_id = "traceslo-stage2";
  // librdkafka settings (SASL, TLS, timeouts); the ones stage 2 sets itself are refused.
  std::map<std::string, std::string> librdkafka;
  std::string directory;  // where the stage2-p<N>.db files are kept
  // Per partition; `partition` and `source_partitions` are set by the consumer.
  Stage2Options partition;
  size_t max_batch_records = 1'000;                  // records per Stage2Partition::Apply
  std::chrono::milliseconds commit_interval{5'000};  // the committed-offset hint
  std::chrono::milliseconds metadata_timeout{10'000};
  std::chrono::milliseconds poll_timeout{50};
  // The changelog topic, co-partitioned with deltas_topic; empty: no changelog.
  std::string state_topic;
  std::chrono::milliseconds snapshot_interval{60'000};
  // Reading the changelog partitions of one assignment (in the rebalance callback, so well
  // under max.poll.interval.ms); a partition not read in time reads the deltas instead.
  std::chrono::milliseconds restore_timeout{60'000};
  StateReaderLimits state_limits;
};

// The changelog's counters.
struct Stage2StateStats {
  uint64_t restores = 0;            // partitions taken over from their changelog
  uint64_t restores_empty = 0;      // no checkpoint there: the deltas read from the beginning
  uint64_t restore_failures = 0;    // changelog unreadable or unusable: the deltas read instead
  uint64_t records_read = 0;        // changelog records read while restoring
  uint64_t records_invalid = 0;     // of them, not decodable (skipped)
  uint64_t records_cut_short = 0;   // of them, after the last checkpoint (left out)
  uint64_t snapshots = 0;           // snapshots handed to the producer
  uint64_t snapshots_skipped = 0;   // not sent: the group was not steady or the partition gone
  uint64_t snapshots_failed = 0;    // not delivered whole (their changes go with the next one)
  uint64_t producer_rebuilds = 0;   // the changelog producer failed for good and was replaced
  uint64_t records_queued = 0;      // changelog records handed to the producer
  uint64_t records_written = 0;     // of them, delivered
  uint64_t bytes_written = 0;       // their key and value bytes
  uint64_t delivery_errors = 0;     // records not delivered (the next snapshot sends all)
  uint64_t outbox_written = 0;      // pending notifications written to the changelog
  uint64_t outbox_finished = 0;     // tombstones of notifications no longer pending, written
  uint64_t outbox_handed_over = 0;  // pending notifications read on assignment, given on
  uint64_t outbox_not_taken = 0;    // of them, not taken (left pending for a later owner)
  uint64_t alerts_written = 0;      // firing alerts written (new, or firing since another time)
  uint64_t alerts_finished = 0;     // tombstones of alerts no longer firing, written
  uint64_t alerts_handed_over = 0;  // firing alerts read on assignment, given on
};

struct Stage2ConsumerStats {
  Stage2Counters records;       // applied / duplicate / refused records, since Create()
  uint64_t apply_errors = 0;    // Apply() calls that failed (their records are read again)
  uint64_t open_errors = 0;     // assigned partitions whose file could not be opened
  uint64_t consume_errors = 0;  // errors the consumer reported
  uint64_t partitions_assigned = 0;
  uint64_t partitions_revoked = 0;
  uint64_t partitions_lost = 0;
  int64_t consumer_lag = 0;    // records: sum over owned partitions of high watermark - next offset
  std::vector<int32_t> owned;  // owned traceslo_deltas partitions, ascending
  int32_t source_partitions = 0;
  int32_t partitions = 0;  // of the deltas topic (P2)
  // Unix ms through which every owned partition's buckets are final (the minimum of their
  // Stage2Partition::FinalThroughMs); nullopt while nothing is owned or a partition has no
  // watermark yet.
  std::optional<int64_t> final_through_ms;
  // Unix ms where the owned partitions' data begins: the earliest first applied epoch of any
  // source; nullopt before any.
  std::optional<int64_t> first_data_ms;
  bool assignment_done = false;  // the first assignment was handled (readiness)
  Stage2StateStats state;
};

// Told of ownership changes, on the consumer thread: after an assigned partition's file was
// restored into the sink, and after a revoked or lost partition's file was closed. With a
// changelog, it also hands the outbox and the alert states over (docs/kafka.md, "Outbox
// handoff"): at every snapshot of a partition the consumer asks for the notifications pending
// and the alerts firing for its services and writes what changed since the last one (tombstones
// for those no longer pending or firing); an assignment gives the listener what the partition's
// changelog holds of both.
class Stage2Listener {
 public:
  virtual ~Stage2Listener() = default;
  virtual void OnAssigned(int32_t partition) = 0;
  virtual void OnReleased(int32_t partition) = 0;
  // The notifications pending in this instance's outbox whose service's deltas partition is
  // `partition`. An error leaves the changelog as it is until the next snapshot; Unimplemented
  // (the default): this listener takes no part in the outbox handoff.
  virtual absl::StatusOr<std::vector<OutboxItem>> PendingOutbox(int32_t /*partition*/) {
    return absl::UnimplementedError("no outbox handoff");
  }
  // Before OnAssigned: what the changelog of `partition` says is pending (the previous owner's
  // unsent notifications; ones already here are dropped by their ids). Returns those it could
  // not take: they stay pending in the changelog for a later owner.
  virtual std::vector<OutboxItem> OnOutboxHandedOver(int32_t /*partition*/,
                                                     std::vector<OutboxItem> items) {
    return items;
  }
  // The alerts firing here of the services of `partition`, and since when; like PendingOutbox.
  virtual absl::StatusOr<std::vector<FiringAlert>> FiringAlerts(int32_t /*partition*/) {
    return absl::UnimplementedError("no alert handoff");
  }
  // Before OnAssigned: the alerts the changelog of `partition` says were firing at the previous
  // owner, and since when (their episodes).
  virtual void OnAlertsHandedOver(int32_t /*partition*/, std::vector<FiringAlert> /*alerts*/) {}
};

// One stage-2 group member. Owns one thread (Start() to Shutdown()) that polls the consumer and
// applies records; all partition state lives on it. Stats() is thread-safe. `clock`, `registry`,
// `sink` (called from the consumer thread), `listener` and `logger` are borrowed and must
// outlive the consumer; `listener` may be null.
class Stage2Consumer {
 public:
  // InvalidArgument for a librdkafka setting it refuses or stage 2 sets itself, or an empty
  // directory; NotFound when a topic does not exist; FailedPrecondition when the state topic's
  // partition count is not the deltas topic's; Unavailable when the metadata request fails.
  static absl::StatusOr<std::unique_ptr<Stage2Consumer>> Create(
      Stage2ConsumerOptions options, const Clock& clock, pipeline::SeriesRegistry& registry,
      pipeline::DeltaSink& sink, Stage2Listener* listener, Logger& logger);
  ~Stage2Consumer();  // Shuts down (deadline 10 s) if still running.
  Stage2Consumer(const Stage2Consumer&) = delete;
  Stage2Consumer& operator=(const Stage2Consumer&) = delete;

  // Subscribes and starts the thread. FailedPrecondition when called twice.
  absl::Status Start();
  // Leaves the group (commits the offset hints, closes every file) and joins the thread, each
  // wait bounded by `deadline`. Idempotent.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

  Stage2ConsumerStats Stats() const;

  class Loop;  // the thread's state; private to the .cc

 private:
  explicit Stage2Consumer(std::unique_ptr<Loop> loop);
  std::unique_ptr<Loop> loop_;
};

}  // namespace traceslo::kafka
