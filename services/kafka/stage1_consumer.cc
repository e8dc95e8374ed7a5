#include "traceslo/kafka/stage1_consumer.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "services/kafka/rdkafka_client.h"
#include "traceslo/common/mutex.h"
#include "traceslo/kafka/stage1.h"

namespace traceslo::kafka {
namespace {

using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr char kSchemaHeader[] = "traceslo-schema";
constexpr char kSchemaVersion[] = "1";
// How long a blocked produce (queue full) or a wait for a state change polls at a time.
constexpr int kShortPollMs = 10;
// Messages handled per wake-up before the loop's housekeeping (acks, commits, idle partitions).
constexpr int kMessagesPerRound = 500;
// Epochs an idle partition's stream time moves per round of the loop at most.
constexpr int64_t kMaxIdleEpochsPerRound = 10;
// Stats() is refreshed once per round of the loop, and at most this often while records keep
// coming (each refresh reads every owned partition's watermarks and takes a lock).
constexpr std::chrono::milliseconds kBusyStatsInterval{5};

int64_t ToMillis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

int64_t UnixMillis(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::string ErrorName(rd_kafka_resp_err_t err) { return rd_kafka_err2str(err); }

}  // namespace

absl::StatusOr<ingest::OtlpFileFormat> ParseSpansEncoding(std::string_view encoding) {
  if (encoding == "otlp_proto") return ingest::OtlpFileFormat::kLengthPrefixedProtobuf;
  if (encoding == "otlp_json") return ingest::OtlpFileFormat::kJsonLines;
  return absl::InvalidArgumentError(absl::StrCat(
      "spans encoding must be otlp_proto or otlp_json, got '", std::string(encoding), "'"));
}

std::string Stage1Consumer::FormatCommitMetadata(const CommitMetadata& metadata) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%llx", static_cast<unsigned long long>(metadata.config_hash));
  std::string text =
      absl::StrCat("E=", metadata.last_epoch, ";H=", metadata.last_offset, ";cfg=", hash);
  if (metadata.seed_offset >= 0) absl::StrAppend(&text, ";S=", metadata.seed_offset);
  return text;
}

absl::StatusOr<Stage1Consumer::CommitMetadata> Stage1Consumer::ParseCommitMetadata(
    std::string_view text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("commit metadata '", std::string(text.substr(0, 100)),
                     "' is not E=<epoch>;H=<offset>;cfg=<hex>[;S=<offset>]"));
  };
  CommitMetadata out;
  std::string_view rest = text;
  // A field up to the next ';' (consumed too) or the end.
  const auto field = [&](std::string_view name, auto& value, int base) -> bool {
    if (rest.substr(0, name.size()) != name) return false;
    rest.remove_prefix(name.size());
    const size_t end = std::min(rest.find(';'), rest.size());
    if (end == 0 || (end < rest.size() && end + 1 == rest.size())) return false;
    const std::string_view digits = rest.substr(0, end);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
    rest.remove_prefix(std::min(end + 1, rest.size()));
    return true;
  };
  if (!field("E=", out.last_epoch, 10) || rest.empty() || !field("H=", out.last_offset, 10) ||
      rest.empty() || !field("cfg=", out.config_hash, 16) ||
      (!rest.empty() && (!field("S=", out.seed_offset, 10) || out.seed_offset < 0)) ||
      !rest.empty() || out.last_epoch < -1 || out.last_offset < -1) {
    return bad();
  }
  return out;
}

class Stage1Consumer::Loop {
 public:
  Loop(Stage1ConsumerOptions options, const Clock& clock, pipeline::SeriesRegistry& registry,
       Logger& logger)
      : options_(std::move(options)), clock_(clock), registry_(registry), logger_(logger) {}

  ~Loop() {
    if (deltas_topic_ != nullptr) rd_kafka_topic_destroy(deltas_topic_);
    if (producer_ != nullptr) rd_kafka_destroy(producer_);
    if (consumer_ != nullptr && !leak_consumer_) rd_kafka_destroy(consumer_);
  }

  absl::Status Init();
  absl::Status Start();
  void Shutdown(SteadyTime deadline);
  void ShutdownWithin(std::chrono::seconds timeout) { Shutdown(clock_.SteadyNow() + timeout); }
  Stage1ConsumerStats Stats() const {
    MutexLock lock(stats_mu_);
    return stats_;
  }

 private:
  // Hands a partition's sealed epochs to the producer.
  class Publisher final : public EpochPublisher {
   public:
    Publisher(Loop& loop, int32_t partition, uint64_t generation)
        : loop_(loop), partition_(partition), generation_(generation) {}
    // traceslo::kafka::EpochPublisher
    void Publish(int64_t epoch, std::vector<std::string> records) override {
      loop_.Produce(partition_, generation_, epoch, records);
    }

   private:
    Loop& loop_;
    const int32_t partition_;
    const uint64_t generation_;
  };

  // An owned otlp_spans partition.
  struct Owned {
    uint64_t generation = 0;  // tells this ownership from an earlier one of the same partition
    std::unique_ptr<Publisher> publisher;
    std::unique_ptr<Stage1Partition> stage;
    int64_t replay_until = -1;  // H of the commit resumed from
    int64_t last_offset = -1;   // H to commit: the last processed offset (or the resumed H)
    int64_t next_offset = -1;   // the position, -1 while unknown
    bool at_end = false;        // the last event was the end of the partition
    bool started = false;       // stream time was set (by a record or an idle advance)
    // What was last sent to be committed (or read at the assignment): unchanged points are not
    // sent again (an outstanding commit holds up librdkafka's reading of committed offsets).
    std::tuple<int64_t, int64_t, int64_t, int64_t> sent{-1, -1, -1, -1};  // (L, E, H, S)
    SteadyTime idle_since;
    int64_t idle_stream_ms = 0;  // the stream time at idle_since
  };

  // The outstanding records of one published epoch.
  struct Pending {
    int32_t partition = 0;
    uint64_t generation = 0;
    int64_t epoch = 0;
    size_t remaining = 0;
    bool failed = false;
  };
  struct Ack {
    int32_t partition;
    uint64_t generation;
    int64_t epoch;
  };

  // librdkafka callbacks; the opaque is the Loop.
  static void RebalanceCb(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<Loop*>(opaque)->Rebalance(rk, err, partitions);
  }
  static void CommitCb(rd_kafka_t*, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    static_cast<Loop*>(opaque)->OnCommitted(err, offsets, /*async=*/true);
  }
  static void SyncCommitCb(rd_kafka_t*, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* offsets, void* opaque) {
    static_cast<Loop*>(opaque)->OnCommitted(err, offsets, /*async=*/false);
  }
  static void DeliveryCb(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
    static_cast<Loop*>(opaque)->OnDelivery(message);
  }
  static void ErrorCb(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    static_cast<Loop*>(opaque)->OnError(rk, static_cast<rd_kafka_resp_err_t>(err), reason);
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

  absl::Status CreateProducer();     // producer_
  absl::Status CreateDeltasTopic();  // deltas_topic_, on producer_
  // After a fatal producer error: the records in flight are given up, a new producer replaces
  // the old one and every owned partition starts over from its committed point.
  void RebuildProducer();
  // Starts the partitions over from their committed points (L, E), as a new owner would.
  void Resync(const std::set<int32_t>& partitions);
  absl::Status ReadMetadata();
  void Run();
  void Finish(SteadyTime deadline);
  // `polled`: when the round's first message was polled (a record's partition is idle from then).
  void HandleMessage(const rd_kafka_message_t& message, SteadyTime polled);
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* list);
  // Sets up the partitions from their committed points and sets each list entry's offset to
  // where consumption resumes. `resync`: partitions already owned, started over.
  void Assign(rd_kafka_topic_partition_list_t* list, bool resync = false);
  void Revoke(rd_kafka_topic_partition_list_t* list, bool lost);
  void Produce(int32_t partition, uint64_t generation, int64_t epoch,
               const std::vector<std::string>& records);
  void OnDelivery(const rd_kafka_message_t* message);
  void OnCommitted(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets,
                   bool async);
  void OnError(rd_kafka_t* rk, rd_kafka_resp_err_t err, const char* reason);
  void ApplyAcks();
  // Polls the producer until no delivery of `partitions` (every owned one when empty) is
  // outstanding or `deadline` passes; applies the acks.
  void WaitForDeliveries(const std::set<int32_t>& partitions, SteadyTime deadline);
  // Commits (L, E) of `partitions` (every owned one when empty) that changed since last sent.
  // An asynchronous commit waits while an earlier one is outstanding.
  void CommitOwned(const std::set<int32_t>& partitions, bool sync);
  void Drop(int32_t partition);
  void AdvanceIdle(SteadyTime now);
  void PublishStats();
  // Handles one consumer event, discarding records (used while leaving).
  void PollDiscarding(int timeout_ms);

  const Stage1ConsumerOptions options_;
  const Clock& clock_;
  pipeline::SeriesRegistry& registry_;
  Logger& logger_;

  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  rd_kafka_topic_t* deltas_topic_ = nullptr;
  int32_t dst_partitions_ = 0;
  bool leak_consumer_ = false;
  bool subscribed_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> stop_deadline_ns_{0};
  bool started_ = false;  // by the controlling thread
  bool stopped_ = false;

  // The consumer thread's state (before Start(): the creating thread's).
  std::map<int32_t, Owned> owned_;
  uint64_t next_generation_ = 1;
  std::map<uint64_t, Pending> pending_;  // by the id the records carry as their opaque
  uint64_t next_pending_id_ = 1;
  std::vector<Ack> acks_;
  std::set<int32_t> resync_;  // owned partitions with an epoch that can never be acknowledged
  bool replacing_producer_ = false;
  bool group_steady_ = false;  // from the consumer's statistics (GroupSteadyInStats)
  bool assignment_done_ = false;
  Stage1Counters retired_;      // counters of partitions no longer owned
  Stage1ConsumerStats counts_;  // the loop's own counters (the Stage1Counters ones excluded)
  SteadyTime next_commit_;
  int async_commits_ = 0;  // outstanding

  mutable Mutex stats_mu_;
  Stage1ConsumerStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

absl::Status Stage1Consumer::Loop::Init() {
  if (options_.brokers.empty()) return absl::InvalidArgumentError("kafka brokers are not set");
  if (options_.epoch_length <= milliseconds(0) || options_.commit_interval <= milliseconds(0) ||
      options_.idle_partition_timeout <= milliseconds(0) ||
      options_.poll_timeout <= milliseconds(0)) {
    return absl::InvalidArgumentError(
        "epoch length, commit interval, idle partition timeout and poll timeout must be positive");
  }
  {
    absl::StatusOr<rd_kafka_t*> consumer =
        NewClient(RD_KAFKA_CONSUMER, "consumer", options_.librdkafka, options_.brokers,
                  {{"group.id", options_.group_id},
                   {"partition.assignment.strategy", "cooperative-sticky"},
                   {"enable.auto.commit", "false"},
                   {"enable.auto.offset.store", "false"},
                   {"auto.offset.reset", "earliest"},
                   {"enable.partition.eof", "true"},
                   {"statistics.interval.ms", kStatisticsIntervalMs}},
                  this, &Loop::ErrorCb, &Loop::LogCb, [](rd_kafka_conf_t* conf) {
                    rd_kafka_conf_set_rebalance_cb(conf, &Loop::RebalanceCb);
                    rd_kafka_conf_set_stats_cb(conf, &Loop::StatsCb);
                    rd_kafka_conf_set_offset_commit_cb(conf, &Loop::CommitCb);
                  });
    if (!consumer.ok()) return consumer.status();
    consumer_ = *consumer;
    rd_kafka_poll_set_consumer(consumer_);
  }
  if (auto status = CreateProducer(); !status.ok()) return status;
  // The topics are checked before a topic handle is made (a handle's metadata request may
  // create a missing topic on brokers that allow it).
  if (auto status = ReadMetadata(); !status.ok()) return status;
  if (auto status = CreateDeltasTopic(); !status.ok()) return status;
  PublishStats();
  return absl::OkStatus();
}

absl::Status Stage1Consumer::Loop::CreateProducer() {
  // Never give up on a record (message.timeout.ms 0: no timeout): an epoch is acknowledged
  // only when all of its records are in, and the idempotent producer keeps their order.
  absl::StatusOr<rd_kafka_t*> producer = NewClient(
      RD_KAFKA_PRODUCER, "producer", options_.librdkafka, options_.brokers,
      {{"enable.idempotence", "true"}, {"message.timeout.ms", "0"}}, this, &Loop::ErrorCb,
      &Loop::LogCb,
      [](rd_kafka_conf_t* conf) { rd_kafka_conf_set_dr_msg_cb(conf, &Loop::DeliveryCb); });
  if (!producer.ok()) return producer.status();
  producer_ = *producer;
  return absl::OkStatus();
}

absl::Status Stage1Consumer::Loop::CreateDeltasTopic() {
  deltas_topic_ = rd_kafka_topic_new(producer_, options_.deltas_topic.c_str(), nullptr);
  if (deltas_topic_ == nullptr) {
    return absl::InternalError(absl::StrCat("kafka topic ", options_.deltas_topic, ": ",
                                            ErrorName(rd_kafka_last_error())));
  }
  return absl::OkStatus();
}

void Stage1Consumer::Loop::RebuildProducer() {
  char reason[512] = {0};
  const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(producer_, reason, sizeof reason);
  ApplyAcks();  // epochs delivered before the failure stay acknowledged
  // What is queued or in flight is given up: its delivery reports (errors) come with this poll.
  rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  replacing_producer_ = true;  // their failures are this one, logged below
  rd_kafka_poll(producer_, 0);
  replacing_producer_ = false;
  rd_kafka_topic_destroy(deltas_topic_);
  rd_kafka_destroy(producer_);
  deltas_topic_ = nullptr;
  producer_ = nullptr;
  pending_.clear();
  acks_.clear();
  ++counts_.producer_rebuilds;
  logger_.Error(
      "kafka stage 1: the producer failed for good; replacing it, the owned partitions "
      "start over from their committed points",
      {{"error", ErrorName(cause)}, {"detail", reason}});
  absl::Status status = CreateProducer();
  if (status.ok()) status = CreateDeltasTopic();
  if (!status.ok()) {
    // The settings made one before: not expected. Without a producer nothing can go on.
    logger_.Error("kafka stage 1: no new producer", {{"error", std::string(status.message())}});
    std::abort();
  }
  std::set<int32_t> all;
  for (const auto& [partition, owned] : owned_) all.insert(partition);
  Resync(all);
}

void Stage1Consumer::Loop::Resync(const std::set<int32_t>& partitions) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (int32_t partition : partitions) {
    if (!owned_.contains(partition)) continue;
    rd_kafka_topic_partition_list_add(list.get(), options_.spans_topic.c_str(), partition);
  }
  if (list->cnt == 0) return;
  Assign(list.get(), /*resync=*/true);
  const bool all_failed = [&] {
    rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_, list.get(), 10'000);
    if (error == nullptr) return false;
    logger_.Error("kafka stage 1: seek failed", {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
    return true;
  }();
  for (int i = 0; i < list->cnt; ++i) {
    if (!all_failed && list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    // Still reading from its old position: the new state would seal epochs with a gap. Given
    // up instead (its records are ignored) until the next rebalance hands it out again.
    const int32_t partition = list->elems[i].partition;
    ++counts_.resync_failures;
    logger_.Error(
        "kafka stage 1: a partition could not start over; it is not consumed until "
        "the next rebalance",
        {{"partition", std::to_string(partition)}, {"error", ErrorName(list->elems[i].err)}});
    Drop(partition);
  }
}

absl::Status Stage1Consumer::Loop::ReadMetadata() {
  absl::StatusOr<std::vector<int32_t>> counts =
      PartitionCounts(producer_, {options_.spans_topic, options_.deltas_topic},
                      options_.metadata_timeout, options_.brokers);
  if (!counts.ok()) return counts.status();
  dst_partitions_ = (*counts)[1];
  return absl::OkStatus();
}

absl::Status Stage1Consumer::Loop::Start() {
  if (started_ || stopped_) {
    return absl::FailedPreconditionError("stage-1 consumer started twice or after its shutdown");
  }
  started_ = true;
  PartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), options_.spans_topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  if (const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_, topics.get())) {
    return absl::UnavailableError(
        absl::StrCat("kafka subscribe to ", options_.spans_topic, ": ", ErrorName(err)));
  }
  subscribed_ = true;
  next_commit_ = clock_.SteadyNow() + options_.commit_interval;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Stage1Consumer::Loop::Shutdown(SteadyTime deadline) {
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) return;  // never started: the destructor closes the handles
  stop_deadline_ns_.store(deadline.time_since_epoch().count());
  stop_.store(true);
  thread_.join();
}

void Stage1Consumer::Loop::Run() {
  const int poll_ms = static_cast<int>(options_.poll_timeout.count());
  SteadyTime next_stats;
  while (!stop_.load()) {
    int handled = 0;
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_, poll_ms);
    const SteadyTime polled = clock_.SteadyNow();
    for (; message != nullptr; message = rd_kafka_consumer_poll(consumer_, 0)) {
      HandleMessage(*message, polled);
      rd_kafka_message_destroy(message);
      if (++handled == kMessagesPerRound) break;
    }
    rd_kafka_poll(producer_, 0);
    if (rd_kafka_fatal_error(producer_, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      RebuildProducer();
    }
    ApplyAcks();
    const SteadyTime now = clock_.SteadyNow();
    AdvanceIdle(now);
    if (now >= next_commit_) {
      // Not while the membership is changing (GroupSteadyInStats): the revoke commits then.
      if (group_steady_) CommitOwned({}, /*sync=*/false);
      // At most once per commit interval, so a destination that keeps refusing records does
      // not turn into a busy loop.
      if (!resync_.empty()) Resync(std::set<int32_t>(resync_));
      next_commit_ = now + options_.commit_interval;
    }
    if (handled < kMessagesPerRound || now >= next_stats) {
      PublishStats();
      next_stats = now + kBusyStatsInterval;
    }
  }
  Finish(SteadyTime(SteadyTime::duration(stop_deadline_ns_.load())));
  PublishStats();
}

void Stage1Consumer::Loop::PollDiscarding(int timeout_ms) {
  if (rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_, timeout_ms)) {
    rd_kafka_message_destroy(message);
  }
  rd_kafka_poll(producer_, 0);
}

void Stage1Consumer::Loop::Finish(SteadyTime deadline) {
  // librdkafka 2.0.2 crashes destroying a cooperative-sticky consumer that joined its group but
  // got no assignment yet (confluentinc/librdkafka#4381, fixed in 2.3.0): wait for the first one
  // and, failing that, leave the handle open rather than crash.
  while (subscribed_ && !assignment_done_ && clock_.SteadyNow() < deadline) {
    PollDiscarding(kShortPollMs);
  }
  if (subscribed_ && !assignment_done_) {
    // Its callbacks point at this object: only the log callback can still run (on librdkafka's
    // threads), and only for emergencies from now on.
    rd_kafka_set_log_level(consumer_, 0);
    leak_consumer_ = true;
    logger_.Warn(
        "kafka stage 1: no assignment before the shutdown deadline; the consumer is "
        "left open (librdkafka 2.0.2 crashes closing it, confluentinc/librdkafka#4381)");
  }
  WaitForDeliveries({}, deadline);
  CommitOwned({}, /*sync=*/true);
  if (!leak_consumer_) {
    // Leave through an explicit unsubscribe: the revoke commits again and drops the partitions
    // before the close (a cooperative consumer can hang closing while an assignment is pending).
    rd_kafka_unsubscribe(consumer_);
    while (!owned_.empty() && clock_.SteadyNow() < deadline) PollDiscarding(kShortPollMs);
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
    consumer_ = nullptr;
  }
  while (!owned_.empty()) Drop(owned_.begin()->first);
  const int64_t left_ms = std::max<int64_t>(0, ToMillis(deadline - clock_.SteadyNow()));
  rd_kafka_flush(producer_, static_cast<int>(left_ms));
  ApplyAcks();
}

void Stage1Consumer::Loop::HandleMessage(const rd_kafka_message_t& message, SteadyTime polled) {
  if (message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (auto it = owned_.find(message.partition); it != owned_.end()) {
      it->second.at_end = true;
      it->second.next_offset = message.offset;
    }
    return;
  }
  if (message.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger_.Warn("kafka stage 1: consumer error", {{"error", ErrorName(message.err)},
                                                   {"detail", rd_kafka_message_errstr(&message)}});
    return;
  }
  auto it = owned_.find(message.partition);
  if (it == owned_.end() || message.rkt == nullptr ||
      options_.spans_topic != rd_kafka_topic_name(message.rkt)) {
    return;  // a record of a partition given up meanwhile
  }
  Owned& owned = it->second;
  int64_t timestamp_ms = rd_kafka_message_timestamp(&message, nullptr);
  if (timestamp_ms < 0) timestamp_ms = owned.stage->stream_time_ms();
  const uint64_t spans_before = owned.stage->counters().spans;
  owned.stage->Process(message.offset, timestamp_ms,
                       std::string_view(static_cast<const char*>(message.payload),
                                        message.payload ? message.len : 0));
  if (message.offset <= owned.replay_until) {
    counts_.replayed_spans += owned.stage->counters().spans - spans_before;
  }
  owned.last_offset = std::max(owned.last_offset, message.offset);
  owned.next_offset = message.offset + 1;
  owned.at_end = false;
  owned.idle_since = polled;
  if (owned.stage->started()) {  // not in seed mode: stream time is set
    owned.started = true;
    owned.idle_stream_ms = owned.stage->stream_time_ms();
  }
}

void Stage1Consumer::Loop::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                     rd_kafka_topic_partition_list_t* list) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Assign(list);
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk, list)) {
        logger_.Error("kafka stage 1: incremental assign failed",
                      {{"error", rd_kafka_error_string(error)}});
        rd_kafka_error_destroy(error);
      }
    } else if (const rd_kafka_resp_err_t e = rd_kafka_assign(rk, list)) {
      logger_.Error("kafka stage 1: assign failed", {{"error", ErrorName(e)}});
    }
    assignment_done_ = true;
    return;
  }
  const bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
  Revoke(list, lost);
  if (cooperative) {
    if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk, list)) {
      logger_.Error("kafka stage 1: incremental unassign failed",
                    {{"error", rd_kafka_error_string(error)}});
      rd_kafka_error_destroy(error);
    }
  } else {
    rd_kafka_assign(rk, nullptr);
  }
}

void Stage1Consumer::Loop::Assign(rd_kafka_topic_partition_list_t* list, bool resync) {
  // The committed offsets and their metadata, retried within the metadata timeout.
  PartitionList committed(rd_kafka_topic_partition_list_copy(list));
  const SteadyTime deadline = clock_.SteadyNow() + options_.metadata_timeout;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  do {
    err = rd_kafka_committed(consumer_, committed.get(),
                             static_cast<int>(options_.metadata_timeout.count()));
  } while (err != RD_KAFKA_RESP_ERR_NO_ERROR && clock_.SteadyNow() < deadline);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    logger_.Error(
        "kafka stage 1: reading committed offsets failed; the partitions resume from the "
        "committed offset with no epoch known to be published (stage 2 drops the repeats)",
        {{"error", ErrorName(err)}});
  }
  for (int i = 0; i < list->cnt; ++i) {
    rd_kafka_topic_partition_t& wanted = list->elems[i];
    const rd_kafka_topic_partition_t& point = committed->elems[i];
    CommitPoint resume;
    int64_t replay_until = -1;
    // None committed: from the start, as auto.offset.reset says (given explicitly, so that
    // librdkafka need not read the committed offset again).
    wanted.offset = RD_KAFKA_OFFSET_BEGINNING;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && point.err == RD_KAFKA_RESP_ERR_NO_ERROR &&
        point.offset >= 0) {
      wanted.offset = point.offset;
      resume.offset = point.offset;
      const std::string_view text(static_cast<const char*>(point.metadata),
                                  point.metadata ? point.metadata_size : 0);
      absl::StatusOr<CommitMetadata> metadata = ParseCommitMetadata(text);
      if (metadata.ok()) {
        resume.last_epoch = metadata->last_epoch;
        replay_until = metadata->last_offset;
        if (metadata->seed_offset >= 0 && metadata->seed_offset < point.offset) {
          // The seed range first (Stage1Partition reads it in seed mode).
          resume.seed_offset = metadata->seed_offset;
          wanted.offset = metadata->seed_offset;
        }
        if (metadata->config_hash != options_.config_hash) ++counts_.config_hash_changes;
      } else {
        ++counts_.bad_commit_metadata;
        logger_.Warn("kafka stage 1: committed metadata unusable; resuming with no epoch done",
                     {{"partition", std::to_string(wanted.partition)},
                      {"error", std::string(metadata.status().message())}});
      }
    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR || point.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Unreadable: librdkafka reads the committed offset itself; E unknown.
      wanted.offset = RD_KAFKA_OFFSET_STORED;
      ++counts_.bad_commit_metadata;
    }
    const int32_t partition = wanted.partition;
    if (owned_.contains(partition)) Drop(partition);  // assigned twice: start over
    Owned& owned = owned_[partition];
    owned.generation = next_generation_++;
    owned.publisher = std::make_unique<Publisher>(*this, partition, owned.generation);
    Stage1Options stage;
    stage.topic = options_.spans_topic;
    stage.partition = partition;
    stage.dst_partitions = dst_partitions_;
    stage.config_hash = options_.config_hash;
    stage.epoch_length = options_.epoch_length;
    stage.format = options_.encoding;
    stage.max_spans_per_request = options_.max_spans_per_request;
    stage.sli = options_.sli;
    owned.stage =
        std::make_unique<Stage1Partition>(std::move(stage), registry_, *owned.publisher, resume);
    owned.replay_until = replay_until;
    owned.last_offset = replay_until;
    owned.next_offset = wanted.offset >= 0 ? wanted.offset : -1;
    owned.idle_since = clock_.SteadyNow();
    // Idle from the start: stream time follows the clock from where the last owner sealed (a
    // resumed partition), or from now (a partition that never had a commit).
    owned.idle_stream_ms = resume.last_epoch >= 0
                               ? (resume.last_epoch + 1) * options_.epoch_length.count()
                               : UnixMillis(clock_.Now());
    owned.sent = {resume.offset, resume.last_epoch, replay_until,
                  resume.seed_offset >= 0 ? resume.seed_offset : resume.offset};
    resync_.erase(partition);
    ++(resync ? counts_.partition_resyncs : counts_.partitions_assigned);
    logger_.Info(
        resync ? "kafka stage 1: partition started over" : "kafka stage 1: partition assigned",
        {{"partition", std::to_string(partition)},
         {"offset", std::to_string(resume.offset)},
         {"epoch", std::to_string(resume.last_epoch)}});
  }
}

void Stage1Consumer::Loop::Revoke(rd_kafka_topic_partition_list_t* list, bool lost) {
  std::set<int32_t> partitions;
  for (int i = 0; i < list->cnt; ++i) {
    if (owned_.contains(list->elems[i].partition)) partitions.insert(list->elems[i].partition);
  }
  if (lost) {
    // Another member may own them already: no commit (docs/kafka.md, "Lost").
    counts_.partitions_lost += static_cast<uint64_t>(list->cnt);
  } else {
    counts_.partitions_revoked += static_cast<uint64_t>(list->cnt);
    if (!partitions.empty()) {
      WaitForDeliveries(partitions, clock_.SteadyNow() + options_.revoke_flush_timeout);
      CommitOwned(partitions, /*sync=*/true);
    }
  }
  for (int32_t partition : partitions) Drop(partition);
  logger_.Info(lost ? "kafka stage 1: partitions lost" : "kafka stage 1: partitions revoked",
               {{"count", std::to_string(list->cnt)}});
}

void Stage1Consumer::Loop::Drop(int32_t partition) {
  auto it = owned_.find(partition);
  if (it == owned_.end()) return;
  retired_ += it->second.stage->counters();
  owned_.erase(it);  // open traces and unsealed epochs go unpublished
}

void Stage1Consumer::Loop::Produce(int32_t partition, uint64_t generation, int64_t epoch,
                                   const std::vector<std::string>& records) {
  const uint64_t id = next_pending_id_++;
  Pending& pending = pending_[id];
  pending = Pending{.partition = partition,
                    .generation = generation,
                    .epoch = epoch,
                    .remaining = records.size()};
  for (size_t p = 0; p < records.size(); ++p) {
    const std::string& value = records[p];
    rd_kafka_resp_err_t err;
    for (;;) {
      err = rd_kafka_producev(
          producer_, RD_KAFKA_V_RKT(deltas_topic_), RD_KAFKA_V_PARTITION(static_cast<int32_t>(p)),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_HEADER(kSchemaHeader, kSchemaVersion, 1),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(id))), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
      // Wait for room, unless shutting down past the deadline (the epoch then stays
      // unacknowledged: the next owner republishes it).
      if (stop_.load() &&
          clock_.SteadyNow().time_since_epoch().count() >= stop_deadline_ns_.load()) {
        break;
      }
      rd_kafka_poll(producer_, kShortPollMs);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++counts_.delivery_errors;
      logger_.Error("kafka stage 1: producing a delta record failed",
                    {{"partition", std::to_string(partition)},
                     {"epoch", std::to_string(epoch)},
                     {"error", ErrorName(err)}});
      auto it = pending_.find(id);
      it->second.failed = true;
      if (--it->second.remaining == 0) {
        resync_.insert(partition);
        pending_.erase(it);
      }
    }
  }
}

void Stage1Consumer::Loop::OnDelivery(const rd_kafka_message_t* message) {
  const auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(message->_private));
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending& pending = it->second;
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++counts_.delivery_errors;
    // Logged once per ownership until it starts over (the epochs in flight fail together);
    // failures of an earlier ownership of the partition change nothing.
    auto owner = owned_.find(pending.partition);
    const bool current = owner != owned_.end() && owner->second.generation == pending.generation;
    if (!pending.failed && !replacing_producer_ && current &&
        resync_.insert(pending.partition).second) {
      logger_.Error(
          "kafka stage 1: a delta record was not delivered; its epoch stays unacknowledged and "
          "the partition starts over from its committed point",
          {{"partition", std::to_string(pending.partition)},
           {"epoch", std::to_string(pending.epoch)},
           {"error", ErrorName(message->err)}});
    }
    pending.failed = true;
  } else {
    ++counts_.published_records;
    counts_.published_bytes += message->len;
  }
  if (--pending.remaining > 0) return;
  if (!pending.failed) {
    acks_.push_back({pending.partition, pending.generation, pending.epoch});
  } else if (auto owner = owned_.find(pending.partition);
             owner != owned_.end() && owner->second.generation == pending.generation) {
    resync_.insert(pending.partition);  // this ownership's commits cannot move past the epoch
  }
  pending_.erase(it);
}

void Stage1Consumer::Loop::ApplyAcks() {
  for (const Ack& ack : acks_) {
    auto it = owned_.find(ack.partition);
    if (it != owned_.end() && it->second.generation == ack.generation) {
      it->second.stage->Acknowledge(ack.epoch);
    }
  }
  acks_.clear();
}

void Stage1Consumer::Loop::WaitForDeliveries(const std::set<int32_t>& partitions,
                                             SteadyTime deadline) {
  const auto outstanding = [&] {
    return std::any_of(pending_.begin(), pending_.end(), [&](const auto& entry) {
      return partitions.empty() || partitions.contains(entry.second.partition);
    });
  };
  rd_kafka_poll(producer_, 0);
  while (outstanding() && clock_.SteadyNow() < deadline) rd_kafka_poll(producer_, kShortPollMs);
  ApplyAcks();
}

void Stage1Consumer::Loop::CommitOwned(const std::set<int32_t>& partitions, bool sync) {
  if (consumer_ == nullptr || (!sync && async_commits_ > 0)) return;
  PartitionList offsets(rd_kafka_topic_partition_list_new(static_cast<int>(owned_.size())));
  for (auto& [partition, owned] : owned_) {
    if (!partitions.empty() && !partitions.contains(partition)) continue;
    const CommitPoint point = owned.stage->Commit();
    const std::tuple<int64_t, int64_t, int64_t, int64_t> sent{point.offset, point.last_epoch,
                                                              owned.last_offset, point.seed_offset};
    if (!sync && sent == owned.sent) continue;
    owned.sent = sent;
    const std::string metadata = FormatCommitMetadata({.last_epoch = point.last_epoch,
                                                       .last_offset = owned.last_offset,
                                                       .config_hash = options_.config_hash,
                                                       .seed_offset = point.seed_offset});
    rd_kafka_topic_partition_t* entry =
        rd_kafka_topic_partition_list_add(offsets.get(), options_.spans_topic.c_str(), partition);
    entry->offset = point.offset;
    // Freed by the list (librdkafka frees metadata with free()).
    entry->metadata = std::malloc(metadata.size());
    std::memcpy(entry->metadata, metadata.data(), metadata.size());
    entry->metadata_size = metadata.size();
  }
  if (offsets->cnt == 0) return;
  if (sync) {
    // A temporary queue: the result is served (SyncCommitCb) before this returns.
    rd_kafka_commit_queue(consumer_, offsets.get(), nullptr, &Loop::SyncCommitCb, this);
  } else if (const rd_kafka_resp_err_t err = rd_kafka_commit(consumer_, offsets.get(), 1)) {
    OnCommitted(err, offsets.get(), /*async=*/false);
  } else {
    ++async_commits_;
  }
}

void Stage1Consumer::Loop::OnCommitted(rd_kafka_resp_err_t err,
                                       const rd_kafka_topic_partition_list_t* offsets, bool async) {
  if (async) --async_commits_;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  bool failed = err != RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; offsets != nullptr && i < offsets->cnt; ++i) {
    const rd_kafka_topic_partition_t& entry = offsets->elems[i];
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && entry.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    failed = true;
    if (entry.err != RD_KAFKA_RESP_ERR_NO_ERROR) err = entry.err;
    // Sent again at the next interval.
    if (auto it = owned_.find(entry.partition); it != owned_.end()) {
      it->second.sent = {-1, -1, -1, -1};
    }
  }
  if (failed) {
    ++counts_.commit_errors;
    logger_.Warn("kafka stage 1: offset commit failed", {{"error", ErrorName(err)}});
  } else {
    ++counts_.commits;
  }
}

void Stage1Consumer::Loop::OnError(rd_kafka_t* rk, rd_kafka_resp_err_t err, const char* reason) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal[512] = {0};
    const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    logger_.Error("kafka stage 1: fatal client error",
                  {{"client", rd_kafka_name(rk)}, {"error", ErrorName(cause)}, {"detail", fatal}});
    return;
  }
  logger_.Warn("kafka stage 1: client error",
               {{"client", rd_kafka_name(rk)}, {"error", ErrorName(err)}, {"detail", reason}});
}

void Stage1Consumer::Loop::AdvanceIdle(SteadyTime now) {
  for (auto& [partition, owned] : owned_) {
    if (!owned.at_end || now - owned.idle_since < options_.idle_partition_timeout) continue;
    int64_t target = owned.idle_stream_ms + ToMillis(now - owned.idle_since);
    if (owned.started && target <= owned.stage->stream_time_ms()) continue;
    // A few epochs per round, so the loop stays responsive (polls, acks, shutdown) however far
    // behind the clock the partition is.
    if (owned.started) {
      target = std::min(target, owned.stage->stream_time_ms() +
                                    kMaxIdleEpochsPerRound * options_.epoch_length.count());
    }
    owned.stage->AdvanceTo(target);
    owned.started = true;
    ++counts_.idle_advances;
  }
}

void Stage1Consumer::Loop::PublishStats() {
  Stage1ConsumerStats s = counts_;
  Stage1Counters c = retired_;
  s.consumer_lag = 0;
  for (const auto& [partition, owned] : owned_) {
    c += owned.stage->counters();
    int64_t low = -1, high = -1;
    if (consumer_ != nullptr && owned.next_offset >= 0 &&
        rd_kafka_get_watermark_offsets(consumer_, options_.spans_topic.c_str(), partition, &low,
                                       &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0) {
      s.consumer_lag += std::max<int64_t>(0, high - owned.next_offset);
    }
  }
  s.records = c.records;
  s.bad_records = c.bad_records;
  s.spans = c.spans;
  s.rejected_spans = c.rejected_spans;
  s.published_epochs = c.published_epochs;
  s.suppressed_epochs = c.suppressed_epochs;
  s.clamped_timestamps = c.clamped_timestamps;
  s.seed_records = c.seed_records;
  s.late_spans_after_replay = c.late_spans_after_replay;
  s.seed_overflow = c.seed_overflow;
  s.owned_partitions = static_cast<int32_t>(owned_.size());
  s.assignment_done = assignment_done_;
  MutexLock lock(stats_mu_);
  stats_ = s;
}

absl::StatusOr<std::unique_ptr<Stage1Consumer>> Stage1Consumer::Create(
    Stage1ConsumerOptions options, const Clock& clock, pipeline::SeriesRegistry& registry,
    Logger& logger) {
  auto loop = std::make_unique<Loop>(std::move(options), clock, registry, logger);
  if (absl::Status status = loop->Init(); !status.ok()) return status;
  return std::unique_ptr<Stage1Consumer>(new Stage1Consumer(std::move(loop)));
}

Stage1Consumer::Stage1Consumer(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}

Stage1Consumer::~Stage1Consumer() { loop_->ShutdownWithin(std::chrono::seconds(10)); }

absl::Status Stage1Consumer::Start() { return loop_->Start(); }

void Stage1Consumer::Shutdown(std::chrono::steady_clock::time_point deadline) {
  loop_->Shutdown(deadline);
}

Stage1ConsumerStats Stage1Consumer::Stats() const { return loop_->Stats(); }

}  // namespace traceslo::kafka
