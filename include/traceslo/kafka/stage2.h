#pragma once

// Kafka mode's stage 2 for one owned traceslo_deltas partition (docs/kafka.md): merges the
// DeltaBatch records of every source partition's epochs into 10 s buckets kept in its own SQLite
// file, exactly once per (source partition, epoch), and hands what it newly merged to a
// DeltaSink (the process's SliStore). The consumed offset is stored in the same transaction as
// the buckets, so a consumer seeks to next_offset() and redelivery, a zombie's epochs or a
// replaying stage 1's re-sent epochs change nothing.
//
// Watermarks. Each source partition's epochs are applied as they come; its contiguous epoch is
// the highest epoch such that every epoch from its first applied one up to it is applied. The
// global watermark is the minimum over the source partitions of the end of their contiguous
// epoch: every bucket ending allowed_lateness before it is final.
//
// Duplicates can be recognised for the applied_epoch_window epochs up to a source's newest
// applied epoch; an older epoch is refused as too late. A gap that falls out of that window can
// never be filled, so the contiguous epoch moves past it (counted in abandoned_epochs) rather
// than holding the watermark back for ever.
//
// Error-signature details (titles, sample messages, trace ids) of the newly applied records go to
// the sink with their counts but are not kept in the file: after a restart the restored buckets
// carry signature counts only and the SLI store's signature registry fills again from new
// records, as single-node mode's does after a restart (its persisted minutes carry no signatures).
//
// Changelog (options.changelog). The partition's state also goes, as snapshots of what changed,
// to the traceslo_state topic's partition of the same number (proto/traceslo/v1/state.proto), so
// an instance without the file (or whose file is older than traceslo_deltas still holds) takes
// the partition over from there: StateChangelogReader folds the topic's records and
// OpenRestored() writes them into a fresh file.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace SQLite {
class Database;
}

namespace traceslo::kafka {

// The schema version Stage2Partition writes; Open() refuses files written by a newer one.
inline constexpr int kStage2SchemaVersion = 3;

struct Stage2Options {
  int32_t partition = 0;          // this traceslo_deltas partition
  int32_t source_partitions = 1;  // otlp_spans partitions (P1); a record from another is invalid
  // The configuration hashes accepted: normally one; two during a two-step rollout.
  std::vector<uint64_t> config_hashes;
  DeltaBatchLimits limits;
  std::chrono::milliseconds epoch_length{1'000};  // as stage 1's
  // Buckets ending before watermark - retention are deleted (checked once a minute of watermark).
  std::chrono::milliseconds retention{std::chrono::hours(72)};
  // A record that adds to a bucket that was already final (ending at or before watermark -
  // allowed_lateness) is still merged and counted as late.
  std::chrono::milliseconds allowed_lateness{std::chrono::minutes(2)};
  // Epochs per source, back from its newest applied epoch, that duplicates are checked over.
  int64_t applied_epoch_window = 3'600;
  // Error signatures kept per (series, bucket) when merging; later ones are counted under id 0.
  uint32_t max_signatures_per_bucket = 16;
  int busy_timeout_ms = 5'000;
  // Entries per ShardDelta handed to the sink when restoring.
  size_t restore_batch = 4'096;
  // Keep the buckets changed since the last delivered snapshot (in the file, in the same
  // transaction as the change), for Snapshot(): on only when snapshots are taken and delivered,
  // or they pile up.
  bool changelog = false;
};

// One record of the traceslo_state changelog. An empty value is a tombstone.
struct StateRecord {
  std::string key;
  std::string value;
  friend bool operator==(const StateRecord&, const StateRecord&) = default;
};

struct StateReaderLimits {
  size_t max_record_bytes = 1 << 20;
  size_t max_keys = 5'000'000;  // buckets of the partition, as a full snapshot would send
  size_t max_outbox = 100'000;  // pending notifications handed over (as the outboxes allow)
  size_t max_alerts = 100'000;  // firing alerts handed over
};

// A notification pending in the outbox of a partition's owner, as the changelog hands it over:
// its receiver, its id and the notification in the outbox's stored form (alerting's codec; opaque
// here). Receiver and id are at most kMaxOutboxIdBytes, neither empty.
struct OutboxItem {
  std::string receiver;
  std::string id;
  std::string notification;
  int64_t enqueued_unix_nano = 0;  // when the owner's outbox took it (wall clock)
  friend bool operator==(const OutboxItem&, const OutboxItem&) = default;
};
inline constexpr size_t kMaxOutboxIdBytes = 256;

// The changelog record of `item` pending in `partition`'s outbox; with an empty notification,
// the tombstone that says it is no longer pending (delivered, failed or expired).
StateRecord OutboxStateRecord(int32_t partition, const OutboxItem& item);

// An alert firing in a partition's owner, as the changelog hands it over: which alert (names
// at most kMaxOutboxIdBytes, none empty; severity "page" or "ticket") and since when.
struct FiringAlert {
  std::string service;
  std::string slo;
  std::string severity;
  bool no_data = false;
  int64_t active_since_unix_nano = 0;
  int64_t fired_at_unix_nano = 0;
  friend bool operator==(const FiringAlert&, const FiringAlert&) = default;
};

// The changelog record of `alert` firing in `partition`'s owner; with `firing` false, the
// tombstone that says it no longer fires.
StateRecord AlertStateRecord(int32_t partition, const FiringAlert& alert, bool firing = true);

// Folds the records of one traceslo_state partition, read from its beginning in offset order, into
// the state as of its last checkpoint: the latest record of every bucket key before it. Records
// after the last checkpoint are a snapshot cut short: left out (cut_short()), and sent again by
// the partition opened from this state (OpenRestored). Outbox records are not bound to
// checkpoints: outbox() is the latest of each that is not a tombstone, whenever it was written.
// Record bytes are outside input: a record
// that does not decode, is of another schema or partition, or is over the limits, is counted in
// invalid() and skipped. Not thread-safe.
class StateChangelogReader {
 public:
  StateChangelogReader(int32_t partition, StateReaderLimits limits = {});

  void Add(std::string_view key, std::string_view value);

  bool has_checkpoint() const { return !checkpoint_.empty(); }
  // The last checkpoint's next deltas offset; nullopt without one.
  std::optional<int64_t> checkpoint_offset() const;
  uint64_t records() const { return records_; }
  uint64_t invalid() const { return invalid_; }
  // Records after the last checkpoint (so far).
  uint64_t cut_short() const { return tail_.size(); }
  // True once more than limits.max_keys keys were seen: the fold is then unusable.
  bool over_limit() const { return over_limit_; }
  // The notifications pending in the partition's outbox, by receiver and id (at most
  // limits.max_outbox: further ones are counted in invalid()).
  std::vector<OutboxItem> outbox() const;
  // The alerts firing in the partition's owner (at most limits.max_alerts, likewise).
  std::vector<FiringAlert> alerts() const;

 private:
  friend class Stage2Partition;

  const int32_t partition_;
  const StateReaderLimits limits_;
  std::map<std::string, std::string> keys_;  // bucket keys up to the last checkpoint
  std::map<std::string, std::string> tail_;  // after it
  std::string checkpoint_;                   // the last checkpoint's value
  // (receiver, id) → (notification, enqueued_unix_nano)
  std::map<std::pair<std::string, std::string>, std::pair<std::string, int64_t>> outbox_;
  std::map<std::string, FiringAlert> alerts_;  // by key bytes
  uint64_t records_ = 0;
  uint64_t invalid_ = 0;
  bool over_limit_ = false;
};

// One changelog snapshot of a partition: its bucket records (values or tombstones), then its
// checkpoint. Send the checkpoint only once every bucket record is delivered, and call
// Stage2Partition::SnapshotDelivered(through, offset) once the checkpoint is.
struct StateSnapshot {
  std::vector<StateRecord> buckets;
  StateRecord checkpoint;
  uint64_t through = 0;  // the pending changes up to this sequence are in it
  int64_t offset = 0;    // the checkpoint's next offset
};

// One traceslo_deltas record as the consumer read it. `value` is borrowed for the call.
struct Stage2Record {
  int64_t offset = 0;
  std::string_view value;
};

// Records by outcome. Every record is counted once in applied, duplicates or one of the
// refused_* counters; late counts applied records that reached a final bucket.
struct Stage2Counters {
  uint64_t applied = 0;
  uint64_t duplicates = 0;         // (source, epoch) already applied
  uint64_t refused_invalid = 0;    // not a valid DeltaBatch, or a source partition out of range
  uint64_t refused_config = 0;     // a config hash not accepted
  uint64_t refused_partition = 0;  // meant for another traceslo_deltas partition
  uint64_t refused_too_late = 0;   // older than the window of applied epochs
  uint64_t late = 0;               // applied, but added to a bucket already final
  uint64_t abandoned_epochs = 0;   // gaps the contiguous epochs moved past (not records)
  // Duplicates whose content differs from the applied record of their (source, epoch): a
  // replaying stage 1 decided otherwise than the first time (wall-clock advance of an idle
  // partition, out-of-order timestamps). The applied one stays; the difference is only counted.
  uint64_t divergent = 0;
  Stage2Counters& operator+=(const Stage2Counters& other);
  friend bool operator==(const Stage2Counters&, const Stage2Counters&) = default;
};

// One owned traceslo_deltas partition and its file. Owned by one thread (the partition's
// consumer). `registry` (thread-safe) and `sink` are borrowed and must outlive it. Errors of
// SQLite become a Status carrying the file's path; nothing throws. Record bytes are outside
// input: checked against options.limits, refused and counted, never trusted.
class Stage2Partition {
 public:
  // `directory`/stage2-p<partition>.db.
  static std::string FilePath(const std::string& directory, int32_t partition);

  // Opens or creates the file of options.partition in `directory` (WAL). With an existing file,
  // hands every stored bucket to `sink` once, and loads the offset, watermarks and applied
  // epochs. InvalidArgument for bad options; FailedPrecondition for a file of a newer schema,
  // another partition or another epoch length; DataLoss for a damaged bucket (checked before
  // the sink is given any); Unavailable for SQLite failures.
  static absl::StatusOr<std::unique_ptr<Stage2Partition>> Open(const std::string& directory,
                                                               Stage2Options options,
                                                               pipeline::SeriesRegistry& registry,
                                                               pipeline::DeltaSink& sink);
  // Replaces the file of options.partition in `directory` with the state `reader` folded (as of
  // its last checkpoint), then opens it as Open() does. The keys of a snapshot that the reader
  // found cut short are sent again (restored value or tombstone) by the first Snapshot().
  // FailedPrecondition when the reader has no checkpoint, or its checkpoint is of another epoch
  // length; ResourceExhausted when the reader went over its limits; DataLoss for a bucket that
  // does not decode; Unavailable for SQLite failures.
  static absl::StatusOr<std::unique_ptr<Stage2Partition>> OpenRestored(
      const std::string& directory, Stage2Options options, const StateChangelogReader& reader,
      pipeline::SeriesRegistry& registry, pipeline::DeltaSink& sink);
  // The next offset stored in the file of `partition` in `directory`; nullopt when there is no
  // such file (or it holds nothing applied). Reads only; Unavailable when it cannot.
  static absl::StatusOr<std::optional<int64_t>> StoredOffset(const std::string& directory,
                                                             int32_t partition);
  ~Stage2Partition();
  Stage2Partition(const Stage2Partition&) = delete;
  Stage2Partition& operator=(const Stage2Partition&) = delete;

  // Applies `records` (in offset order) in one SQLite transaction: each is decoded, checked and,
  // if its (source, epoch) is new, merged and marked applied; next_offset() becomes the last
  // record's offset + 1 (it never goes back). After the commit, what was newly applied goes to
  // the sink as one ShardDelta, with the applied records' signature details (duplicates and
  // refused records give none). Returns this call's counters. On a SQLite error nothing is
  // changed (file, offset, watermarks, counters), nothing reaches the sink, and the Status is
  // Unavailable (the caller retries the same records or gives the partition up), or DataLoss
  // for a damaged stored bucket.
  absl::StatusOr<Stage2Counters> Apply(std::span<const Stage2Record> records);

  // A changelog snapshot (options.changelog): every bucket changed or deleted since the last
  // delivered snapshot (kept in the file: a crash, a failed delivery or a restart sends them
  // again), then the checkpoint (offset, applied epochs, counters). nullopt when nothing changed
  // and the last delivered checkpoint is current. Unavailable for SQLite failures;
  // FailedPrecondition without options.changelog.
  absl::StatusOr<std::optional<StateSnapshot>> Snapshot();
  // The snapshot's checkpoint was delivered: its changes are no longer pending.
  absl::Status SnapshotDelivered(const StateSnapshot& snapshot);

  // Where the consumer resumes: the offset after the last applied call's last record (0 for a
  // new file).
  int64_t next_offset() const { return next_offset_; }
  // Totals since the file was created.
  const Stage2Counters& counters() const { return counters_; }

  // Unix ms up to which every source partition 0 .. sources-1 is contiguously applied: the
  // minimum of (contiguous epoch + 1) * epoch_length. nullopt while a source has none applied.
  std::optional<int64_t> WatermarkMs(int32_t sources) const;
  // Buckets ending at or before this (unix ms) are final: WatermarkMs - allowed_lateness.
  std::optional<int64_t> FinalThroughMs(int32_t sources,
                                        std::chrono::milliseconds allowed_lateness) const;
  // A source partition's first applied epoch (where its data begins); nullopt before it.
  std::optional<int64_t> FirstEpoch(int32_t source) const;
  // A source partition's contiguous epoch; nullopt before its first applied epoch.
  std::optional<int64_t> ContiguousEpoch(int32_t source) const;
  // The oldest epoch of `source` that is still checked for duplicates (older ones are refused
  // as too late); nullopt before its first applied epoch.
  std::optional<int64_t> OldestCheckedEpoch(int32_t source) const;

 private:
  // The applied epochs of one source partition.
  struct Source {
    int64_t first = 0;         // the first applied epoch
    int64_t contiguous = 0;    // every epoch in [first, contiguous] applied (or abandoned)
    int64_t newest = 0;        // the highest applied epoch
    std::set<int64_t> ahead;   // applied epochs above contiguous
    std::set<int64_t> before;  // applied epochs below first, not older than the horizon
  };
  using Sources = absl::flat_hash_map<int32_t, Source>;

  Stage2Partition(std::string path, Stage2Options options, pipeline::SeriesRegistry& registry,
                  pipeline::DeltaSink& sink, std::unique_ptr<SQLite::Database> db);

  // Opens (creating) the file at `path`: WAL, migrated. Nothing loaded.
  static absl::StatusOr<std::unique_ptr<Stage2Partition>> OpenFile(
      const std::string& directory, const std::string& path, Stage2Options options,
      pipeline::SeriesRegistry& registry, pipeline::DeltaSink& sink);
  absl::Status Migrate();
  absl::Status WriteRestored(const StateChangelogReader& reader);
  // Restore()'s first pass only: every stored bucket decodes.
  absl::Status CheckBuckets();
  std::string EncodeCheckpoint() const;
  absl::Status Load();
  absl::Status Restore();
  // Checks every stored bucket decodes (with `deliver`, also hands them to the sink).
  absl::Status ScanBuckets(bool deliver);
  std::optional<int64_t> WatermarkOf(const Sources& sources, int32_t count) const;
  // The content digest stored with an applied (source, epoch); 0 when not known.
  uint64_t StoredDigest(int32_t source, int64_t epoch) const;
  // The oldest epoch still checked for duplicates.
  int64_t Horizon(const Source& source) const;
  static bool IsApplied(const Source& source, int64_t epoch);
  // Marks `epoch` applied; moves the contiguous epoch past gaps older than the horizon.
  void MarkApplied(Source& source, int64_t epoch, Stage2Counters& counters) const;

  const std::string path_;
  const Stage2Options options_;
  const int64_t epoch_ms_;
  pipeline::SeriesRegistry& registry_;
  pipeline::DeltaSink& sink_;
  std::unique_ptr<SQLite::Database> db_;

  int64_t next_offset_ = 0;
  Stage2Counters counters_;
  Sources sources_;
  int64_t pruned_before_bucket_ = INT64_MIN;  // buckets below it were deleted

  // With options.changelog: the sequence of the last change kept pending, and the offset of
  // the last delivered checkpoint (-1: none since the file was opened).
  uint64_t change_seq_ = 0;
  int64_t delivered_offset_ = -1;
};

}  // namespace traceslo::kafka
