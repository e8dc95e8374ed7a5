#include "traceslo/kafka/stage2_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "services/kafka/rdkafka_client.h"
#include "traceslo/common/mutex.h"

namespace traceslo::kafka {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr int kShortPollMs = 10;
// How long a snapshot's records may take to be delivered (and the producer's message timeout).
constexpr int kSnapshotFlushMs = 10'000;
// A handoff record larger than this is not written (librdkafka's message.max.bytes is 1 MB by
// default, and one that can never be delivered would hold the partition's handoff back).
constexpr size_t kMaxHandoffRecordBytes = 900 * 1024;

}  // namespace

class Stage2Consumer::Loop {
 public:
  Loop(Stage2ConsumerOptions options, const Clock& clock, pipeline::SeriesRegistry& registry,
       pipeline::DeltaSink& sink, Stage2Listener* listener, Logger& logger)
      : options_(std::move(options)),
        clock_(clock),
        registry_(registry),
        sink_(sink),
        listener_(listener),
        logger_(logger) {}
  ~Loop() {
    if (consumer_ != nullptr && !leak_consumer_) rd_kafka_destroy(consumer_);
    if (producer_ != nullptr) rd_kafka_destroy(producer_);
    if (state_reader_ != nullptr) rd_kafka_destroy(state_reader_);
  }

  absl::Status Init();
  absl::Status Start();
  void Shutdown(SteadyTime deadline);
  SteadyTime SteadyNow() const { return clock_.SteadyNow(); }
  Stage2ConsumerStats Stats() const {
    MutexLock lock(stats_mu_);
    return stats_;
  }

 private:
  struct Owned {
    std::unique_ptr<Stage2Partition> stage;
  };

  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<Loop*>(opaque)->Rebalance(rk, err, partitions);
  }
  static void ErrorCb(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<Loop*>(opaque)->logger_.Warn(
        "kafka stage 2: client error",
        {{"error", rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
  }
  static void LogCb(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
    if (auto* loop = static_cast<Loop*>(rd_kafka_opaque(rk))) {
      LogToLogger(loop->logger_, rk, level, facility, message);
    }
  }
  static int StatsCb(rd_kafka_t*, char* json, size_t json_len, void* opaque) {
    if (std::optional<bool> steady = GroupSteadyInStats(std::string_view(json, json_len))) {
      static_cast<Loop*>(opaque)->group_steady_ = *steady;
    }
    return 0;  // librdkafka frees the JSON
  }

  static void StateDeliveryCb(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<Loop*>(opaque)->StateDelivered(*message);
  }

  void Run();
  void Finish(SteadyTime deadline);
  absl::Status CreateStateClients();
  absl::Status CreateStateProducer();
  // The partition's file: the one on disk if it can go on from there, else restored from the
  // changelog (when there is one), else the one on disk or a new one. `handover`: what the
  // changelog says is pending in the partition's outbox and firing (empty when not read).
  struct Handover {
    bool read = false;  // the changelog was read whole
    std::vector<OutboxItem> outbox;
    std::vector<FiringAlert> alerts;
  };
  // Gives the listener what the changelog holds of the partition's outbox and alerts, and
  // records it as what the changelog holds.
  void TakeHandover(int32_t partition, Handover handover);
  absl::StatusOr<std::unique_ptr<Stage2Partition>> OpenPartition(int32_t partition,
                                                                 Stage2Options options,
                                                                 Handover& handover);
  absl::StatusOr<StateChangelogReader> ReadChangelog(int32_t partition, SteadyTime deadline);
  // Snapshots of the owned partitions that are surely ours (the group steady, in the assignment).
  void SnapshotOwned();
  void SendSnapshot(int32_t partition, Stage2Partition& stage);
  // The changes of the partition's pending notifications and firing alerts since the last
  // delivered ones (Stage2Listener::PendingOutbox, FiringAlerts).
  void SendHandoff(int32_t partition);
  // Produces `records` to the partition's changelog and waits for their delivery; false (all
  // given up) when one failed or the wait ran out.
  bool ProduceAndWait(int32_t partition, const std::vector<StateRecord>& records);
  void StateDelivered(const rd_kafka_message_t& message);
  void ApplyBatch(int32_t partition, const std::vector<rd_kafka_message_t*>& messages);
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list);
  void Assign(rd_kafka_topic_partition_list_t* list);
  void Release(rd_kafka_topic_partition_list_t* list, bool lost);
  void CommitHints();
  void SeekTo(int32_t partition, int64_t offset);
  void PublishStats();

  const Stage2ConsumerOptions options_;
  const Clock& clock_;
  pipeline::SeriesRegistry& registry_;
  pipeline::DeltaSink& sink_;
  Stage2Listener* const listener_;
  Logger& logger_;

  rd_kafka_t* consumer_ = nullptr;
  int32_t sources_ = 0;
  bool leak_consumer_ = false;
  bool subscribed_ = false;
  bool started_ = false;  // by the controlling thread
  bool stopped_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> stop_deadline_ns_{0};

  // The consumer thread's state (before Start(): the creating thread's).
  std::map<int32_t, Owned> owned_;
  Stage2ConsumerStats counts_;  // the loop's counters; owned/lag/final_through are computed
  SteadyTime next_commit_;
  bool group_steady_ = false;          // from the statistics (the consumer thread polls them)
  std::map<int32_t, int64_t> hinted_;  // the offsets last committed as hints
  // The changelog's clients (state_topic set): its producer, polled on the consumer thread, and
  // a consumer that reads one partition at a time outside any group.
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_t* state_reader_ = nullptr;
  SteadyTime next_snapshot_;
  std::set<int32_t> snapshot_failed_;  // partitions with an undelivered changelog record
  SteadyTime restore_deadline_;        // of the assignment being handled
  // Per owned partition, the handoff records (pending notifications, firing alerts) the
  // changelog holds as this owner last wrote or read them: key bytes → what they hold.
  struct Handed {
    bool alert = false;  // else a notification
    uint64_t value_hash = 0;
  };
  std::map<int32_t, std::map<std::string, Handed>> handed_;
  std::set<int32_t> handoff_unread_;  // owned partitions whose changelog is still to be read

  mutable Mutex stats_mu_;
  Stage2ConsumerStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

absl::Status Stage2Consumer::Loop::Init() {
  if (options_.brokers.empty()) return absl::InvalidArgumentError("kafka brokers are not set");
  if (options_.directory.empty()) {
    return absl::InvalidArgumentError("stage 2 needs a directory for its partition files");
  }
  if (options_.max_batch_records == 0 || options_.poll_timeout <= milliseconds(0) ||
      options_.commit_interval <= milliseconds(0)) {
    return absl::InvalidArgumentError(
        "stage 2: max batch records, poll timeout and commit interval must be positive");
  }
  absl::StatusOr<rd_kafka_t*> consumer =
      NewClient(RD_KAFKA_CONSUMER, "stage-2 consumer", options_.librdkafka, options_.brokers,
                {{"group.id", options_.group_id},
                 {"partition.assignment.strategy", "cooperative-sticky"},
                 {"enable.auto.commit", "false"},
                 {"enable.auto.offset.store", "false"},
                 {"auto.offset.reset", "earliest"},
                 {"statistics.interval.ms", kStatisticsIntervalMs}},
                this, &Loop::ErrorCb, &Loop::LogCb, [](rd_kafka_conf_t* conf) {
                  rd_kafka_conf_set_stats_cb(conf, &Loop::StatsCb);
                  rd_kafka_conf_set_rebalance_cb(conf, &Loop::RebalanceCb);
                });
  if (!consumer.ok()) return consumer.status();
  consumer_ = *consumer;
  rd_kafka_poll_set_consumer(consumer_);
  std::vector<std::string> topics = {options_.spans_topic, options_.deltas_topic};
  if (!options_.state_topic.empty()) topics.push_back(options_.state_topic);
  absl::StatusOr<std::vector<int32_t>> counts =
      PartitionCounts(consumer_, topics, options_.metadata_timeout, options_.brokers);
  if (!counts.ok()) return counts.status();
  sources_ = (*counts)[0];
  counts_.source_partitions = sources_;
  counts_.partitions = (*counts)[1];
  if (!options_.state_topic.empty()) {
    if ((*counts)[2] != (*counts)[1]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "kafka topic ", options_.state_topic, " has ", (*counts)[2], " partitions and ",
          options_.deltas_topic, " ", (*counts)[1],
          ": the changelog must have as many (partition N holds deltas partition N's state)"));
    }
    if (auto status = CreateStateClients(); !status.ok()) return status;
  }
  PublishStats();
  return absl::OkStatus();
}

absl::Status Stage2Consumer::Loop::CreateStateProducer() {
  // A record not delivered within the flush that waits for it fails (SendSnapshot), so none
  // can land after a later owner's.
  absl::StatusOr<rd_kafka_t*> producer = NewClient(
      RD_KAFKA_PRODUCER, "stage-2 changelog producer", options_.librdkafka, options_.brokers,
      {{"enable.idempotence", "true"}, {"message.timeout.ms", std::to_string(kSnapshotFlushMs)}},
      this, &Loop::ErrorCb, &Loop::LogCb,
      [](rd_kafka_conf_t* conf) { rd_kafka_conf_set_dr_msg_cb(conf, &Loop::StateDeliveryCb); });
  if (!producer.ok()) return producer.status();
  producer_ = *producer;
  return absl::OkStatus();
}

absl::Status Stage2Consumer::Loop::CreateStateClients() {
  if (options_.snapshot_interval <= milliseconds(0) ||
      options_.restore_timeout <= milliseconds(0)) {
    return absl::InvalidArgumentError(
        "stage 2: the snapshot interval and restore timeout must be positive");
  }
  if (auto status = CreateStateProducer(); !status.ok()) return status;
  // Outside any group: the legacy per-partition API, from the beginning, told of the end.
  absl::StatusOr<rd_kafka_t*> reader = NewClient(RD_KAFKA_CONSUMER, "stage-2 changelog reader",
                                                 options_.librdkafka, options_.brokers,
                                                 {{"enable.auto.commit", "false"},
                                                  {"enable.partition.eof", "true"},
                                                  {"auto.offset.reset", "earliest"}},
                                                 this, &Loop::ErrorCb, &Loop::LogCb);
  if (!reader.ok()) return reader.status();
  state_reader_ = *reader;
  return absl::OkStatus();
}

absl::Status Stage2Consumer::Loop::Start() {
  if (started_) return absl::FailedPreconditionError("stage-2 consumer started twice");
  started_ = true;
  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), options_.deltas_topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  if (const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_, topics.get())) {
    return absl::UnavailableError(
        absl::StrCat("kafka subscribe to ", options_.deltas_topic, ": ", rd_kafka_err2str(err)));
  }
  subscribed_ = true;
  next_commit_ = clock_.SteadyNow() + options_.commit_interval;
  next_snapshot_ = clock_.SteadyNow() + options_.snapshot_interval;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Stage2Consumer::Loop::Shutdown(SteadyTime deadline) {
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) return;
  stop_deadline_ns_.store(deadline.time_since_epoch().count());
  stop_.store(true);
  thread_.join();
}

void Stage2Consumer::Loop::Run() {
  const int poll_ms = static_cast<int>(options_.poll_timeout.count());
  while (!stop_.load()) {
    // Records by partition, in offset order; a rebalance may run inside a poll.
    std::map<int32_t, std::vector<rd_kafka_message_t*>> batch;
    size_t read = 0;
    for (rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_, poll_ms);
         message != nullptr; message = rd_kafka_consumer_poll(consumer_, 0)) {
      if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          ++counts_.consume_errors;
          logger_.Warn("kafka stage 2: consume error",
                       {{"error", rd_kafka_message_errstr(message)}});
        }
        rd_kafka_message_destroy(message);
      } else {
        batch[message->partition].push_back(message);
      }
      if (++read >= options_.max_batch_records) break;
    }
    for (auto& [partition, messages] : batch) {
      ApplyBatch(partition, messages);
      for (rd_kafka_message_t* message : messages) rd_kafka_message_destroy(message);
    }
    if (clock_.SteadyNow() >= next_commit_) {
      CommitHints();
      next_commit_ = clock_.SteadyNow() + options_.commit_interval;
    }
    if (producer_ != nullptr) {
      rd_kafka_poll(producer_, 0);
      char reason[256] = {0};
      if (const rd_kafka_resp_err_t fatal =
              rd_kafka_fatal_error(producer_, reason, sizeof reason)) {
        // The pending changes stay in the files: a new producer sends them.
        logger_.Error("kafka stage 2: the changelog producer failed for good; replacing it",
                      {{"error", rd_kafka_err2str(fatal)}, {"reason", reason}});
        rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(producer_, 0);
        rd_kafka_destroy(producer_);
        producer_ = nullptr;
        ++counts_.state.producer_rebuilds;
        if (absl::Status status = CreateStateProducer(); !status.ok()) {
          logger_.Error("kafka stage 2: no new changelog producer; snapshots stop",
                        {{"error", std::string(status.message())}});
        }
      }
    }
    if (producer_ != nullptr) {
      if (clock_.SteadyNow() >= next_snapshot_) {
        SnapshotOwned();
        next_snapshot_ = clock_.SteadyNow() + options_.snapshot_interval;
      }
    }
    PublishStats();
  }
  Finish(SteadyTime(SteadyTime::duration(stop_deadline_ns_.load())));
  PublishStats();
}

void Stage2Consumer::Loop::ApplyBatch(int32_t partition,
                                      const std::vector<rd_kafka_message_t*>& messages) {
  auto it = owned_.find(partition);
  if (it == owned_.end()) return;  // revoked while the batch was read
  Stage2Partition& stage = *it->second.stage;
  std::vector<Stage2Record> records;
  records.reserve(messages.size());
  for (const rd_kafka_message_t* message : messages) {
    // Read before an earlier failure's seek took effect, or before an assignment's seek.
    if (message->offset < stage.next_offset()) continue;
    records.push_back(Stage2Record{
        .offset = message->offset,
        .value = std::string_view(static_cast<const char*>(message->payload), message->len)});
  }
  if (records.empty()) return;
  absl::StatusOr<Stage2Counters> applied = stage.Apply(records);
  if (applied.ok()) {
    counts_.records += *applied;
    return;
  }
  ++counts_.apply_errors;
  logger_.Error("kafka stage 2: records not applied; read again",
                {{"partition", std::to_string(partition)},
                 {"error", std::string(applied.status().message())}});
  SeekTo(partition, stage.next_offset());
}

void Stage2Consumer::Loop::SeekTo(int32_t partition, int64_t offset) {
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), options_.deltas_topic.c_str(), partition)->offset =
      offset > 0 ? offset : RD_KAFKA_OFFSET_BEGINNING;
  if (rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list.get(), 1'000)) {
    logger_.Error("kafka stage 2: seek failed", {{"partition", std::to_string(partition)},
                                                 {"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
  }
}

void Stage2Consumer::Loop::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* list) {
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Assign(list);
  } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    Release(list, rd_kafka_assignment_lost(rk) != 0);
  } else {
    logger_.Error("kafka stage 2: rebalance failed", {{"error", rd_kafka_err2str(err)}});
  }
}

void Stage2Consumer::Loop::Assign(rd_kafka_topic_partition_list_t* list) {
  PartitionList assign(rd_kafka_topic_partition_list_new(list->cnt));
  // One budget for every restore of this assignment: it runs inside the rebalance callback,
  // which must return well within max.poll.interval.ms.
  restore_deadline_ = clock_.SteadyNow() + options_.restore_timeout;
  for (int i = 0; i < list->cnt; ++i) {
    const int32_t partition = list->elems[i].partition;
    Stage2Options options = options_.partition;
    options.partition = partition;
    options.source_partitions = sources_;
    options.changelog = state_reader_ != nullptr;
    Handover handover;
    absl::StatusOr<std::unique_ptr<Stage2Partition>> opened =
        OpenPartition(partition, std::move(options), handover);
    if (!opened.ok()) {
      // Not consumed by this member until the next rebalance: its lag shows it.
      ++counts_.open_errors;
      logger_.Error("kafka stage 2: partition file not opened; the partition is not consumed",
                    {{"partition", std::to_string(partition)},
                     {"error", std::string(opened.status().message())}});
      continue;
    }
    const int64_t next = (*opened)->next_offset();
    rd_kafka_topic_partition_list_add(assign.get(), list->elems[i].topic, partition)->offset =
        next > 0 ? next : RD_KAFKA_OFFSET_BEGINNING;
    owned_[partition].stage = *std::move(opened);
    TakeHandover(partition, std::move(handover));
    ++counts_.partitions_assigned;
    logger_.Info("kafka stage 2: partition assigned",
                 {{"partition", std::to_string(partition)}, {"offset", std::to_string(next)}});
    if (listener_ != nullptr) listener_->OnAssigned(partition);
  }
  if (rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_, assign.get())) {
    logger_.Error("kafka stage 2: assign failed", {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
  }
  counts_.assignment_done = true;
}

void Stage2Consumer::Loop::Release(rd_kafka_topic_partition_list_t* list, bool lost) {
  if (producer_ != nullptr && !lost) {
    // Still ours until this returns: the next owner restores from this snapshot.
    for (int i = 0; i < list->cnt; ++i) {
      if (auto it = owned_.find(list->elems[i].partition); it != owned_.end()) {
        SendSnapshot(it->first, *it->second.stage);
      }
    }
  }
  for (int i = 0; i < list->cnt; ++i) {
    const int32_t partition = list->elems[i].partition;
    hinted_.erase(partition);
    handed_.erase(partition);
    handoff_unread_.erase(partition);
    if (owned_.erase(partition) == 0) continue;
    ++(lost ? counts_.partitions_lost : counts_.partitions_revoked);
    logger_.Info(lost ? "kafka stage 2: partition lost" : "kafka stage 2: partition revoked",
                 {{"partition", std::to_string(partition)}});
    if (listener_ != nullptr) listener_->OnReleased(partition);
  }
  if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_, list)) {
    logger_.Error("kafka stage 2: unassign failed", {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
  }
}

void Stage2Consumer::Loop::CommitHints() {
  // Only while the membership is steady (GroupSteadyInStats), and only what moved.
  if (!group_steady_) return;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(owned_.size())));
  for (const auto& [partition, owned] : owned_) {
    if (owned.stage->next_offset() <= 0) continue;
    auto [hinted, fresh] = hinted_.try_emplace(partition, -1);
    if (!fresh && hinted->second == owned.stage->next_offset()) continue;
    hinted->second = owned.stage->next_offset();
    rd_kafka_topic_partition_list_add(list.get(), options_.deltas_topic.c_str(), partition)
        ->offset = owned.stage->next_offset();
  }
  if (list->cnt == 0) return;
  // Only a hint for lag monitoring: the offsets that count are in the partitions' files.
  (void)rd_kafka_commit(consumer_, list.get(), /*async=*/1);
}

void Stage2Consumer::Loop::Finish(SteadyTime deadline) {
  // librdkafka 2.0.2 crashes destroying a cooperative-sticky consumer that joined its group but
  // got no assignment yet (confluentinc/librdkafka#4381, fixed in 2.3.0): wait for the first one
  // and, failing that, leave the handle open rather than crash.
  while (subscribed_ && !counts_.assignment_done && clock_.SteadyNow() < deadline) {
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, kShortPollMs)) {
      rd_kafka_message_destroy(m);
    }
  }
  if (subscribed_ && !counts_.assignment_done) {
    leak_consumer_ = true;
    logger_.Warn(
        "kafka stage 2: no assignment before the shutdown deadline; the consumer is "
        "left open (librdkafka 2.0.2 crashes closing it, confluentinc/librdkafka#4381)");
  } else {
    CommitHints();
    // Records read while leaving are dropped: their offsets are not in the files, so they are
    // read again by the next owner.
    rd_kafka_unsubscribe(consumer_);
    while (!owned_.empty() && clock_.SteadyNow() < deadline) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, kShortPollMs)) {
        rd_kafka_message_destroy(m);
      }
    }
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
    consumer_ = nullptr;
  }
  while (!owned_.empty()) {
    const int32_t partition = owned_.begin()->first;
    owned_.erase(owned_.begin());
    if (listener_ != nullptr) listener_->OnReleased(partition);
  }
}

absl::StatusOr<std::unique_ptr<Stage2Partition>> Stage2Consumer::Loop::OpenPartition(
    int32_t partition, Stage2Options options, Handover& handover) {
  auto open_file = [&] {
    return Stage2Partition::Open(options_.directory, options, registry_, sink_);
  };
  if (state_reader_ == nullptr) return open_file();
  absl::StatusOr<std::optional<int64_t>> stored =
      Stage2Partition::StoredOffset(options_.directory, partition);
  std::optional<int64_t> file_offset;
  if (stored.ok() && stored->has_value()) {
    file_offset = **stored;
    // The file can go on only if the deltas topic still holds every record after it.
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(
            consumer_, options_.deltas_topic.c_str(), partition, &low, &high,
            static_cast<int>(options_.metadata_timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        low > *file_offset) {
      logger_.Warn("kafka stage 2: the partition file is older than the deltas topic holds",
                   {{"partition", std::to_string(partition)},
                    {"file_offset", std::to_string(*file_offset)},
                    {"earliest_offset", std::to_string(low)}});
      file_offset.reset();
    }
  }
  // The changelog is read in any case: a file behind its last checkpoint (another owner went
  // on since) is not used, or this owner's snapshots would pair its checkpoints with the other
  // owner's newer buckets.
  absl::StatusOr<StateChangelogReader> reader = ReadChangelog(partition, restore_deadline_);
  if (reader.ok()) {
    counts_.state.records_read += reader->records();
    counts_.state.records_invalid += reader->invalid();
    counts_.state.records_cut_short += reader->cut_short();
    handover.read = true;
    handover.outbox = reader->outbox();
    handover.alerts = reader->alerts();
  }
  if (file_offset) {
    if (!reader.ok()) {
      logger_.Warn("kafka stage 2: the changelog could not be read; going on from the file",
                   {{"partition", std::to_string(partition)},
                    {"error", std::string(reader.status().message())}});
      return open_file();
    }
    const int64_t checkpoint = reader->checkpoint_offset().value_or(-1);
    if (checkpoint <= *file_offset) return open_file();
    logger_.Info("kafka stage 2: the partition file is behind the changelog; restoring",
                 {{"partition", std::to_string(partition)},
                  {"file_offset", std::to_string(*file_offset)},
                  {"checkpoint_offset", std::to_string(checkpoint)}});
  }
  if (reader.ok() && !reader->has_checkpoint() && !reader->over_limit()) {
    ++counts_.state.restores_empty;
    logger_.Info("kafka stage 2: no changelog checkpoint; the deltas are read from the start",
                 {{"partition", std::to_string(partition)}});
    return open_file();
  }
  absl::StatusOr<std::unique_ptr<Stage2Partition>> restored =
      reader.ok()
          ? Stage2Partition::OpenRestored(options_.directory, options, *reader, registry_, sink_)
          : absl::StatusOr<std::unique_ptr<Stage2Partition>>(reader.status());
  if (!restored.ok()) {
    ++counts_.state.restore_failures;
    logger_.Error("kafka stage 2: not restored from the changelog; the deltas are read instead",
                  {{"partition", std::to_string(partition)},
                   {"error", std::string(restored.status().message())}});
    return open_file();
  }
  ++counts_.state.restores;
  logger_.Info("kafka stage 2: partition restored from the changelog",
               {{"partition", std::to_string(partition)},
                {"records", std::to_string(reader->records())},
                {"offset", std::to_string((*restored)->next_offset())}});
  return restored;
}

absl::StatusOr<StateChangelogReader> Stage2Consumer::Loop::ReadChangelog(int32_t partition,
                                                                         SteadyTime deadline) {
  StateChangelogReader reader(partition, options_.state_limits);
  const std::string& topic = options_.state_topic;
  int64_t low = 0;
  int64_t high = 0;
  if (const rd_kafka_resp_err_t err =
          rd_kafka_query_watermark_offsets(state_reader_, topic.c_str(), partition, &low, &high,
                                           static_cast<int>(options_.metadata_timeout.count()))) {
    return absl::UnavailableError(
        absl::StrCat("kafka topic ", topic, " partition ", partition, ": ", rd_kafka_err2str(err)));
  }
  if (high <= low) return reader;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(state_reader_, topic.c_str(), nullptr);
  if (rkt == nullptr) {
    return absl::InternalError(
        absl::StrCat("kafka topic ", topic, ": ", rd_kafka_err2str(rd_kafka_last_error())));
  }
  absl::Status status;
  if (rd_kafka_consume_start(rkt, partition, low) != 0) {
    status = absl::UnavailableError(absl::StrCat("kafka topic ", topic, " partition ", partition,
                                                 ": ", rd_kafka_err2str(rd_kafka_last_error())));
  } else {
    int64_t next = low;
    while (next < high && status.ok()) {
      if (clock_.SteadyNow() >= deadline) {
        status = absl::DeadlineExceededError(absl::StrCat(
            "reading ", topic, " partition ", partition, " ran out of the assignment's ",
            options_.restore_timeout.count(), " ms (at offset ", next, " of ", high, ")"));
        break;
      }
      rd_kafka_message_t* message = rd_kafka_consume(rkt, partition, 100);
      if (message == nullptr) continue;
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        reader.Add(std::string_view(static_cast<const char*>(message->key), message->key_len),
                   std::string_view(static_cast<const char*>(message->payload),
                                    message->payload != nullptr ? message->len : 0));
        next = message->offset + 1;
      } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        next = std::max(next, message->offset);
      } else {
        status =
            absl::UnavailableError(absl::StrCat("kafka topic ", topic, " partition ", partition,
                                                ": ", rd_kafka_message_errstr(message)));
      }
      rd_kafka_message_destroy(message);
    }
    rd_kafka_consume_stop(rkt, partition);
  }
  rd_kafka_topic_destroy(rkt);
  if (!status.ok()) return status;
  return reader;
}

void Stage2Consumer::Loop::SnapshotOwned() {
  // The pre-send check: only while the membership is steady, and only partitions still in the
  // consumer's assignment. A zombie that has not heard of its loss yet still passes it.
  std::set<int32_t> assigned;
  rd_kafka_topic_partition_list_t* current = nullptr;
  if (group_steady_ && rd_kafka_assignment(consumer_, &current) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      current != nullptr) {
    for (int i = 0; i < current->cnt; ++i) {
      if (options_.deltas_topic == current->elems[i].topic) {
        assigned.insert(current->elems[i].partition);
      }
    }
  }
  if (current != nullptr) rd_kafka_topic_partition_list_destroy(current);
  for (auto& [partition, owned] : owned_) {
    if (!assigned.contains(partition)) {
      ++counts_.state.snapshots_skipped;
      continue;
    }
    SendSnapshot(partition, *owned.stage);
  }
}

void Stage2Consumer::Loop::TakeHandover(int32_t partition, Handover handover) {
  std::map<std::string, Handed>& handed = handed_[partition];
  handed.clear();
  if (!handover.read) {
    // Not read (no changelog, or it failed or ran out of time): nothing is written for the
    // partition until a later snapshot reads it, so what the previous owner left pending stays.
    if (state_reader_ != nullptr) handoff_unread_.insert(partition);
    return;
  }
  handoff_unread_.erase(partition);
  // What the changelog says is pending or firing: this owner's snapshots write tombstones for
  // what of it is not pending or firing here (delivered since, finished here before, resolved),
  // except the notifications the listener could not take (they stay pending for a later owner).
  std::vector<OutboxItem> not_taken;
  if (listener_ != nullptr && !handover.alerts.empty()) {
    counts_.state.alerts_handed_over += handover.alerts.size();
    listener_->OnAlertsHandedOver(partition, handover.alerts);
  }
  if (listener_ != nullptr && !handover.outbox.empty()) {
    counts_.state.outbox_handed_over += handover.outbox.size();
    logger_.Info("kafka stage 2: pending notifications handed over",
                 {{"partition", std::to_string(partition)},
                  {"notifications", std::to_string(handover.outbox.size())}});
    not_taken = listener_->OnOutboxHandedOver(partition, handover.outbox);
    counts_.state.outbox_not_taken += not_taken.size();
  }
  std::set<std::pair<std::string, std::string>> left;
  for (const OutboxItem& item : not_taken) left.emplace(item.receiver, item.id);
  for (const OutboxItem& item : handover.outbox) {
    if (left.contains({item.receiver, item.id})) continue;
    StateRecord r = OutboxStateRecord(partition, item);
    handed[std::move(r.key)] = {.alert = false, .value_hash = std::hash<std::string>{}(r.value)};
  }
  for (const FiringAlert& alert : handover.alerts) {
    StateRecord r = AlertStateRecord(partition, alert);
    handed[std::move(r.key)] = {.alert = true, .value_hash = std::hash<std::string>{}(r.value)};
  }
}

void Stage2Consumer::Loop::SendHandoff(int32_t partition) {
  if (listener_ == nullptr) return;
  if (handoff_unread_.contains(partition)) {
    absl::StatusOr<StateChangelogReader> reader =
        ReadChangelog(partition, clock_.SteadyNow() + options_.restore_timeout);
    if (!reader.ok()) {
      logger_.Warn(
          "kafka stage 2: the changelog could not be read for the handoff; tried again "
          "at the next snapshot",
          {{"partition", std::to_string(partition)},
           {"error", std::string(reader.status().message())}});
      return;
    }
    TakeHandover(partition,
                 Handover{.read = true, .outbox = reader->outbox(), .alerts = reader->alerts()});
  }
  // A kind the listener does not take part in (Unimplemented) is left as the changelog has it.
  absl::StatusOr<std::vector<OutboxItem>> items = listener_->PendingOutbox(partition);
  absl::StatusOr<std::vector<FiringAlert>> alerts = listener_->FiringAlerts(partition);
  const bool outbox_part = !absl::IsUnimplemented(items.status());
  const bool alerts_part = !absl::IsUnimplemented(alerts.status());
  if (!outbox_part) items = std::vector<OutboxItem>{};
  if (!alerts_part) alerts = std::vector<FiringAlert>{};
  if (!items.ok() || !alerts.ok()) {
    logger_.Warn(
        "kafka stage 2: the outbox or the alert states could not be read for the "
        "changelog",
        {{"partition", std::to_string(partition)},
         {"error", std::string((items.ok() ? alerts.status() : items.status()).message())}});
    return;
  }
  std::map<std::string, Handed> now;
  std::vector<StateRecord> records;
  uint64_t outbox_written = 0;
  uint64_t alerts_written = 0;
  std::map<std::string, Handed>& handed = handed_[partition];
  auto add = [&](StateRecord record, bool alert) {
    if (record.key.size() + record.value.size() > kMaxHandoffRecordBytes) {
      logger_.Warn("kafka stage 2: a notification too large for the changelog is not handed over",
                   {{"partition", std::to_string(partition)},
                    {"bytes", std::to_string(record.key.size() + record.value.size())}});
      return;
    }
    const Handed h{.alert = alert, .value_hash = std::hash<std::string>{}(record.value)};
    auto it = handed.find(record.key);
    if (it == handed.end() || it->second.value_hash != h.value_hash) {
      ++(alert ? alerts_written : outbox_written);
      now[record.key] = h;
      records.push_back(std::move(record));
    } else {
      now[std::move(record.key)] = h;
    }
  };
  for (const OutboxItem& item : *items) {
    if (item.receiver.empty() || item.id.empty() || item.notification.empty() ||
        item.receiver.size() > kMaxOutboxIdBytes || item.id.size() > kMaxOutboxIdBytes) {
      continue;  // not one a reader would take
    }
    add(OutboxStateRecord(partition, item), false);
  }
  for (const FiringAlert& alert : *alerts) {
    if (alert.service.empty() || alert.slo.empty() || alert.service.size() > kMaxOutboxIdBytes ||
        alert.slo.size() > kMaxOutboxIdBytes ||
        (alert.severity != "page" && alert.severity != "ticket")) {
      continue;
    }
    add(AlertStateRecord(partition, alert), true);
  }
  uint64_t outbox_finished = 0;
  uint64_t alerts_finished = 0;
  for (const auto& [key, h] : handed) {
    if (now.contains(key)) continue;
    if (!(h.alert ? alerts_part : outbox_part)) {
      now.emplace(key, h);
      continue;
    }
    records.push_back(StateRecord{.key = key});
    ++(h.alert ? alerts_finished : outbox_finished);
  }
  if (records.empty()) return;
  if (!ProduceAndWait(partition, records)) {
    // Some may have landed: what was written counts as written (a pending record that landed
    // gets its tombstone later), and tombstones are sent again until they are delivered.
    for (auto& [key, h] : now) handed[key] = h;
    logger_.Warn(
        "kafka stage 2: outbox and alert changes not delivered to the changelog; they go again",
        {{"partition", std::to_string(partition)}});
    return;
  }
  counts_.state.outbox_written += outbox_written;
  counts_.state.outbox_finished += outbox_finished;
  counts_.state.alerts_written += alerts_written;
  counts_.state.alerts_finished += alerts_finished;
  handed = std::move(now);
}

void Stage2Consumer::Loop::SendSnapshot(int32_t partition, Stage2Partition& stage) {
  SendHandoff(partition);
  absl::StatusOr<std::optional<StateSnapshot>> snapshot = stage.Snapshot();
  if (!snapshot.ok()) {
    logger_.Error("kafka stage 2: no changelog snapshot",
                  {{"partition", std::to_string(partition)},
                   {"error", std::string(snapshot.status().message())}});
    return;
  }
  if (!snapshot->has_value()) return;
  // The checkpoint only after every bucket record is in (the idempotent producer may leave a gap
  // after a failed record), and the changes no longer pending only after the checkpoint is.
  if (!ProduceAndWait(partition, (*snapshot)->buckets) ||
      !ProduceAndWait(partition, {(*snapshot)->checkpoint})) {
    ++counts_.state.snapshots_failed;
    logger_.Warn("kafka stage 2: changelog snapshot not delivered; its changes go again",
                 {{"partition", std::to_string(partition)}});
    return;
  }
  if (absl::Status status = stage.SnapshotDelivered(**snapshot); !status.ok()) {
    logger_.Error(
        "kafka stage 2: delivered changes not cleared (they go again)",
        {{"partition", std::to_string(partition)}, {"error", std::string(status.message())}});
  }
  ++counts_.state.snapshots;
}

bool Stage2Consumer::Loop::ProduceAndWait(int32_t partition,
                                          const std::vector<StateRecord>& records) {
  if (records.empty()) return true;
  snapshot_failed_.erase(partition);
  const SteadyTime deadline = clock_.SteadyNow() + milliseconds(kSnapshotFlushMs);
  bool ok = true;
  for (const StateRecord& record : records) {
    rd_kafka_resp_err_t err;
    for (;;) {
      err = rd_kafka_producev(
          producer_, RD_KAFKA_V_TOPIC(options_.state_topic.c_str()),
          RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
          RD_KAFKA_V_VALUE(record.value.empty() ? nullptr : const_cast<char*>(record.value.data()),
                           record.value.size()),
          RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || clock_.SteadyNow() >= deadline) break;
      rd_kafka_poll(producer_, kShortPollMs);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++counts_.state.delivery_errors;
      logger_.Error("kafka stage 2: changelog record not produced",
                    {{"partition", std::to_string(partition)}, {"error", rd_kafka_err2str(err)}});
      ok = false;
      break;
    }
    ++counts_.state.records_queued;
  }
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock_.SteadyNow());
  if (rd_kafka_flush(producer_, static_cast<int>(std::max<int64_t>(0, left.count()))) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Given up, so none of them can land after a later snapshot (of this owner or the next).
    rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer_, 0);
    ok = false;
  }
  return ok && !snapshot_failed_.contains(partition);
}

void Stage2Consumer::Loop::StateDelivered(const rd_kafka_message_t& message) {
  if (message.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++counts_.state.delivery_errors;
    snapshot_failed_.insert(message.partition);
    return;
  }
  ++counts_.state.records_written;
  counts_.state.bytes_written += message.len + message.key_len;
}

void Stage2Consumer::Loop::PublishStats() {
  Stage2ConsumerStats stats = counts_;
  stats.owned.clear();
  stats.consumer_lag = 0;
  stats.final_through_ms.reset();
  stats.first_data_ms.reset();
  bool all_final = !owned_.empty();
  for (const auto& [partition, owned] : owned_) {
    stats.owned.push_back(partition);
    int64_t low = 0;
    int64_t high = 0;
    if (consumer_ != nullptr &&
        rd_kafka_get_watermark_offsets(consumer_, options_.deltas_topic.c_str(), partition, &low,
                                       &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0) {
      stats.consumer_lag += std::max<int64_t>(0, high - std::max(low, owned.stage->next_offset()));
    }
    for (int32_t source = 0; source < sources_; ++source) {
      if (const std::optional<int64_t> first = owned.stage->FirstEpoch(source)) {
        const int64_t ms = *first * options_.partition.epoch_length.count();
        if (!stats.first_data_ms || ms < *stats.first_data_ms) stats.first_data_ms = ms;
      }
    }
    const std::optional<int64_t> final_through =
        owned.stage->FinalThroughMs(sources_, options_.partition.allowed_lateness);
    if (!final_through) {
      all_final = false;
    } else if (!stats.final_through_ms || *final_through < *stats.final_through_ms) {
      stats.final_through_ms = final_through;
    }
  }
  if (!all_final) stats.final_through_ms.reset();
  MutexLock lock(stats_mu_);
  stats_ = std::move(stats);
}

absl::StatusOr<std::unique_ptr<Stage2Consumer>> Stage2Consumer::Create(
    Stage2ConsumerOptions options, const Clock& clock, pipeline::SeriesRegistry& registry,
    pipeline::DeltaSink& sink, Stage2Listener* listener, Logger& logger) {
  auto loop = std::make_unique<Loop>(std::move(options), clock, registry, sink, listener, logger);
  if (absl::Status status = loop->Init(); !status.ok()) return status;
  return std::unique_ptr<Stage2Consumer>(new Stage2Consumer(std::move(loop)));
}

Stage2Consumer::Stage2Consumer(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}

Stage2Consumer::~Stage2Consumer() {
  loop_->Shutdown(loop_->SteadyNow() + std::chrono::seconds(10));
}

absl::Status Stage2Consumer::Start() { return loop_->Start(); }

void Stage2Consumer::Shutdown(std::chrono::steady_clock::time_point deadline) {
  loop_->Shutdown(deadline);
}

Stage2ConsumerStats Stage2Consumer::Stats() const { return loop_->Stats(); }

}  // namespace traceslo::kafka
