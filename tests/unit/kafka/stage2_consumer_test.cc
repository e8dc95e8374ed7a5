// Stage2Consumer against librdkafka's in-process mock cluster: every record of traceslo_deltas
// reaches the sink once, a restarted member resumes from the offsets in its files (nothing
// twice, nothing lost), a zombie's re-sent epochs are dropped, a member without files takes the
// partitions over from the traceslo_state changelog, and the settings stage 2 sets itself cannot
// be passed through.
#include "traceslo/kafka/stage2_consumer.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/common/mutex.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::kafka {
namespace {

constexpr uint64_t kHash = 0x5eed;
constexpr int32_t kSources = 3;
constexpr int32_t kDeltaPartitions = 2;
constexpr int64_t kFirstEpoch = 1'748'779'200;  // 2025-06-01T12:00:00Z in seconds

using testutil::HandlePtr;
using testutil::NewClient;

// Sums what reaches it, by service name. Thread-safe (the consumer thread applies).
class SummingSink final : public pipeline::DeltaSink {
 public:
  explicit SummingSink(const pipeline::SeriesRegistry& names) : names_(names) {}
  void Apply(pipeline::ShardDelta delta) override {
    MutexLock lock(mu_);
    for (const pipeline::SeriesDelta& d : delta.series) {
      requests_[std::string(names_.ServiceName(d.service))] += d.requests;
    }
  }
  std::map<std::string, uint64_t> requests() const {
    MutexLock lock(mu_);
    return requests_;
  }

 private:
  const pipeline::SeriesRegistry& names_;
  mutable Mutex mu_;
  std::map<std::string, uint64_t> requests_ ABSL_GUARDED_BY(mu_);
};

// The handoff side of a listener: what it reports pending and firing per partition (set by the
// test), what it was handed over, and the notifications it refuses to take. Thread-safe (the
// consumer thread calls it).
class HandoffListener final : public Stage2Listener {
 public:
  void SetPending(int32_t partition, std::vector<OutboxItem> items) {
    MutexLock lock(mu_);
    pending_[partition] = std::move(items);
  }
  void SetFiring(int32_t partition, std::vector<FiringAlert> alerts) {
    MutexLock lock(mu_);
    firing_[partition] = std::move(alerts);
  }
  void Refuse(std::string id) {
    MutexLock lock(mu_);
    refused_.insert(std::move(id));
  }
  std::map<int32_t, std::vector<OutboxItem>> handed() const {
    MutexLock lock(mu_);
    return handed_;
  }
  std::map<int32_t, std::vector<FiringAlert>> handed_alerts() const {
    MutexLock lock(mu_);
    return handed_alerts_;
  }

  // traceslo::kafka::Stage2Listener
  void OnAssigned(int32_t) override {}
  void OnReleased(int32_t) override {}
  absl::StatusOr<std::vector<OutboxItem>> PendingOutbox(int32_t partition) override {
    MutexLock lock(mu_);
    return pending_[partition];
  }
  std::vector<OutboxItem> OnOutboxHandedOver(int32_t partition,
                                             std::vector<OutboxItem> items) override {
    MutexLock lock(mu_);
    std::vector<OutboxItem> not_taken;
    for (OutboxItem& item : items) {
      if (refused_.contains(item.id)) {
        not_taken.push_back(std::move(item));
      } else {
        handed_[partition].push_back(std::move(item));
      }
    }
    return not_taken;
  }
  absl::StatusOr<std::vector<FiringAlert>> FiringAlerts(int32_t partition) override {
    MutexLock lock(mu_);
    return firing_[partition];
  }
  void OnAlertsHandedOver(int32_t partition, std::vector<FiringAlert> alerts) override {
    MutexLock lock(mu_);
    auto& into = handed_alerts_[partition];
    into.insert(into.end(), alerts.begin(), alerts.end());
  }

 private:
  mutable Mutex mu_;
  std::map<int32_t, std::vector<OutboxItem>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::vector<FiringAlert>> firing_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refused_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::vector<OutboxItem>> handed_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::vector<FiringAlert>> handed_alerts_ ABSL_GUARDED_BY(mu_);
};

class Stage2ConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    producer_ = NewClient(RD_KAFKA_PRODUCER,
                          {{"test.mock.num.brokers", "1"}, {"enable.idempotence", "true"}});
    ASSERT_NE(producer_, nullptr);
    rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(producer_.get());
    ASSERT_NE(cluster, nullptr);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "otlp_spans", kSources, 1), 0);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "traceslo_deltas", kDeltaPartitions, 1), 0);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "traceslo_state", kDeltaPartitions, 1), 0);
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "traceslo_state_3", 3, 1), 0);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster);
    dir_ = std::filesystem::temp_directory_path() /
           ("traceslo_stage2_consumer_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Epochs [first, last] of every source, as stage 1 writes them: one record per destination
  // partition; the requests of each service are added to `want`.
  void Produce(int64_t first, int64_t last, std::map<std::string, uint64_t>* want) {
    pipeline::SeriesRegistry names(100, 100);
    for (int64_t epoch = first; epoch <= last; ++epoch) {
      for (int32_t src = 0; src < kSources; ++src) {
        pipeline::ShardDelta delta;
        for (const char* service : {"checkout", "payment", "gateway"}) {
          const pipeline::SeriesRegistry::Ids ids = names.Resolve(service, "op");
          pipeline::SeriesDelta d;
          d.series = ids.series;
          d.service = ids.service;
          d.bucket = epoch / pipeline::kBucketSeconds;
          d.requests = 1 + static_cast<uint64_t>(src + epoch % 3);
          constexpr uint64_t kNanos = 3'000'000;
          d.sum_seconds = static_cast<double>(d.requests * kNanos) / 1e9;
          d.classic[pipeline::ClassicBucketOf(kNanos)] = d.requests;
          d.latency.Add(kNanos, d.requests);
          if (want != nullptr) (*want)[service] += d.requests;
          delta.series.push_back(std::move(d));
        }
        const DeltaBatchHeader header{.config_hash = kHash,
                                      .src_topic = "otlp_spans",
                                      .src_partition = src,
                                      .epoch = epoch,
                                      .stream_time_ms = (epoch + 1) * 1000,
                                      .dst_partition = 0};
        std::vector<std::string> records =
            EncodeDeltaBatches(header, delta, names, kDeltaPartitions);
        for (int32_t p = 0; p < kDeltaPartitions; ++p) {
          ASSERT_EQ(rd_kafka_producev(producer_.get(), RD_KAFKA_V_TOPIC("traceslo_deltas"),
                                      RD_KAFKA_V_PARTITION(p),
                                      RD_KAFKA_V_VALUE(records[p].data(), records[p].size()),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                    RD_KAFKA_RESP_ERR_NO_ERROR);
        }
      }
    }
    ASSERT_EQ(rd_kafka_flush(producer_.get(), 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  Stage2ConsumerOptions Options() const {
    Stage2ConsumerOptions options;
    options.brokers = bootstrap_;
    options.directory = dir_.string();
    options.librdkafka = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    options.partition.config_hashes = {kHash};
    options.partition.allowed_lateness = std::chrono::seconds(0);
    return options;
  }

  // Polls `stats` until `done` or 30 s pass.
  template <typename Done>
  Stage2ConsumerStats WaitFor(const Stage2Consumer& consumer, Done done) {
    const auto deadline = clock_.SteadyNow() + std::chrono::seconds(30);
    Stage2ConsumerStats stats = consumer.Stats();
    while (!done(stats) && clock_.SteadyNow() < deadline) {
      rd_kafka_poll(producer_.get(), 20);  // waits 20 ms, and serves the producer
      stats = consumer.Stats();
    }
    return stats;
  }

  SystemClock clock_;
  Logger logger_{clock_, LogFormat::kLogfmt, LogLevel::kWarn};
  HandlePtr producer_{nullptr, &rd_kafka_destroy};
  std::string bootstrap_;
  std::filesystem::path dir_;
};

TEST_F(Stage2ConsumerTest, AppliesEveryRecordOnceAndResumesFromItsFiles) {
  std::map<std::string, uint64_t> want;
  Produce(kFirstEpoch, kFirstEpoch + 29, &want);
  const uint64_t records = 30 * kSources * kDeltaPartitions;
  {
    pipeline::SeriesRegistry registry(100, 100);
    SummingSink sink(registry);
    auto consumer = Stage2Consumer::Create(Options(), clock_, registry, sink, nullptr, logger_);
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    ASSERT_TRUE((*consumer)->Start().ok());
    const Stage2ConsumerStats stats = WaitFor(
        **consumer, [&](const Stage2ConsumerStats& s) { return s.records.applied == records; });
    EXPECT_EQ(stats.records.applied, records);
    EXPECT_EQ(stats.records.duplicates, 0u);
    EXPECT_EQ(stats.owned, (std::vector<int32_t>{0, 1}));
    EXPECT_EQ(stats.source_partitions, kSources);
    EXPECT_TRUE(stats.assignment_done);
    EXPECT_EQ(stats.final_through_ms, (kFirstEpoch + 30) * 1000);
    EXPECT_EQ(stats.first_data_ms, kFirstEpoch * 1000);
    EXPECT_EQ(sink.requests(), want);
    (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));
    EXPECT_TRUE((*consumer)->Stats().owned.empty());
  }
  // A zombie's re-sent epochs (the last ten again) and ten new ones.
  Produce(kFirstEpoch + 20, kFirstEpoch + 29, nullptr);
  Produce(kFirstEpoch + 30, kFirstEpoch + 39, &want);
  pipeline::SeriesRegistry registry(100, 100);
  SummingSink sink(registry);
  auto consumer = Stage2Consumer::Create(Options(), clock_, registry, sink, nullptr, logger_);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Start().ok());
  const uint64_t resent = 10 * kSources * kDeltaPartitions;
  const Stage2ConsumerStats stats = WaitFor(**consumer, [&](const Stage2ConsumerStats& s) {
    return s.records.applied + s.records.duplicates == 2 * resent;
  });
  EXPECT_EQ(stats.records.duplicates, resent) << "the zombie's epochs";
  EXPECT_EQ(stats.records.applied, resent)
      << "only the new ones: reading resumed at the files' offsets";
  EXPECT_EQ(sink.requests(), want) << "restored from the files, plus the new epochs";
  EXPECT_EQ(stats.final_through_ms, (kFirstEpoch + 40) * 1000);
  EXPECT_EQ(stats.consumer_lag, 0);
}

// The owner leaves (its revoke sends a last snapshot); a member with an empty directory takes
// both partitions over from the changelog and reads only the deltas after the checkpoints.
TEST_F(Stage2ConsumerTest, AMemberWithoutFilesTakesOverFromTheChangelog) {
  std::map<std::string, uint64_t> want;
  Produce(kFirstEpoch, kFirstEpoch + 29, &want);
  const uint64_t first_records = 30 * kSources * kDeltaPartitions;
  Stage2ConsumerOptions options = Options();
  options.state_topic = "traceslo_state";
  options.snapshot_interval = std::chrono::milliseconds(200);
  {
    options.directory = (dir_ / "a").string();
    pipeline::SeriesRegistry registry(100, 100);
    SummingSink sink(registry);
    auto consumer = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    ASSERT_TRUE((*consumer)->Start().ok());
    const Stage2ConsumerStats stats = WaitFor(**consumer, [&](const Stage2ConsumerStats& s) {
      return s.records.applied == first_records && s.state.snapshots >= 2;
    });
    ASSERT_EQ(stats.records.applied, first_records);
    EXPECT_EQ(stats.state.restores_empty, 2u) << "a new changelog: nothing to restore";
    (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));
    const Stage2ConsumerStats after = (*consumer)->Stats();
    EXPECT_GT(after.state.records_written, 2u);
    EXPECT_EQ(after.state.delivery_errors, 0u);
  }
  Produce(kFirstEpoch + 30, kFirstEpoch + 39, &want);
  options.directory = (dir_ / "b").string();
  pipeline::SeriesRegistry registry(100, 100);
  SummingSink sink(registry);
  auto consumer = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Start().ok());
  const uint64_t later_records = 10 * kSources * kDeltaPartitions;
  // The stats are published after the sink is given the records: wait for both.
  const Stage2ConsumerStats stats = WaitFor(**consumer, [&](const Stage2ConsumerStats& s) {
    return sink.requests() == want && s.records.applied >= later_records;
  });
  EXPECT_EQ(sink.requests(), want) << "restored from the changelog, plus the new epochs";
  EXPECT_EQ(stats.state.restores, 2u);
  EXPECT_EQ(stats.state.restore_failures, 0u);
  EXPECT_EQ(stats.state.records_invalid, 0u);
  EXPECT_EQ(stats.state.records_cut_short, 0u);
  EXPECT_EQ(stats.records.applied, later_records)
      << "the deltas were read from the checkpoints' offsets, not from the start";
  EXPECT_EQ(stats.records.duplicates, 0u);
  EXPECT_EQ(stats.final_through_ms, (kFirstEpoch + 40) * 1000);
  EXPECT_TRUE(std::filesystem::exists(Stage2Partition::FilePath(options.directory, 1)));
  (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));

  // The first member comes back: its files are behind the changelog's checkpoints (the second
  // went on), so it restores from the changelog rather than pairing its older buckets with the
  // checkpoints it would write.
  Produce(kFirstEpoch + 40, kFirstEpoch + 44, &want);
  options.directory = (dir_ / "a").string();
  pipeline::SeriesRegistry registry_a(100, 100);
  SummingSink sink_a(registry_a);
  auto again = Stage2Consumer::Create(options, clock_, registry_a, sink_a, nullptr, logger_);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->Start().ok());
  const Stage2ConsumerStats back = WaitFor(**again, [&](const Stage2ConsumerStats& s) {
    return sink_a.requests() == want && s.records.applied >= 5u * kSources * kDeltaPartitions;
  });
  EXPECT_EQ(sink_a.requests(), want);
  EXPECT_EQ(back.state.restores, 2u) << "files behind the changelog are not used";
  EXPECT_EQ(back.records.applied, 5u * kSources * kDeltaPartitions);
}

// An owner's pending notifications and firing alerts go to the changelog with its snapshots,
// a delivered notification and a resolved alert as tombstones, an alert firing since another
// time again; the next owner is handed exactly what was still pending and firing, per
// partition, and tombstones what it took and does not hold itself; a notification it could not
// take stays pending, and a third owner is handed only that.
TEST_F(Stage2ConsumerTest, PendingNotificationsAndFiringAlertsAreHandedOverThroughTheChangelog) {
  const OutboxItem page{.receiver = "hook", .id = "page-1", .notification = "{\"n\":1}"};
  const OutboxItem resolve{.receiver = "hook", .id = "resolve-1", .notification = "{\"n\":2}"};
  const OutboxItem other{.receiver = "pager", .id = "page-7", .notification = "{\"n\":7}"};
  const FiringAlert burn{.service = "checkout",
                         .slo = "availability",
                         .severity = "page",
                         .active_since_unix_nano = 100,
                         .fired_at_unix_nano = 100};
  FiringAlert refired = burn;
  refired.active_since_unix_nano = refired.fired_at_unix_nano = 900;
  const FiringAlert ticket{.service = "checkout",
                           .slo = "availability",
                           .severity = "ticket",
                           .active_since_unix_nano = 50,
                           .fired_at_unix_nano = 60};
  Stage2ConsumerOptions options = Options();
  options.state_topic = "traceslo_state";
  options.snapshot_interval = std::chrono::milliseconds(200);
  pipeline::SeriesRegistry registry(100, 100);
  SummingSink sink(registry);
  {
    options.directory = (dir_ / "a").string();
    HandoffListener a;
    a.SetPending(0, {page, resolve});
    a.SetPending(1, {other});
    a.SetFiring(1, {burn, ticket});
    auto consumer = Stage2Consumer::Create(options, clock_, registry, sink, &a, logger_);
    ASSERT_TRUE(consumer.ok()) << consumer.status();
    ASSERT_TRUE((*consumer)->Start().ok());
    Stage2ConsumerStats stats = WaitFor(**consumer, [](const Stage2ConsumerStats& s) {
      return s.state.outbox_written == 3 && s.state.alerts_written == 2;
    });
    EXPECT_EQ(stats.state.outbox_written, 3u);
    EXPECT_EQ(stats.state.alerts_written, 2u);
    EXPECT_EQ(stats.state.outbox_handed_over, 0u) << "a new changelog";
    a.SetPending(0, {resolve});  // the page was delivered
    a.SetFiring(1, {refired});   // the page alert resolved and fired again; the ticket resolved
    stats = WaitFor(**consumer, [](const Stage2ConsumerStats& s) {
      return s.state.outbox_finished == 1 && s.state.alerts_written == 3 &&
             s.state.alerts_finished == 1;
    });
    EXPECT_EQ(stats.state.outbox_finished, 1u);
    EXPECT_EQ(stats.state.outbox_written, 3u) << "what was written once is not written again";
    EXPECT_EQ(stats.state.alerts_written, 3u);
    EXPECT_EQ(stats.state.alerts_finished, 1u);
    (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));
  }
  // The next owner (no files) is handed what was pending and firing. It refuses `other` and
  // reports nothing pending or firing of its own, as if it delivered the rest at once.
  options.directory = (dir_ / "b").string();
  HandoffListener b;
  b.Refuse(other.id);
  auto consumer = Stage2Consumer::Create(options, clock_, registry, sink, &b, logger_);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Start().ok());
  Stage2ConsumerStats stats = WaitFor(**consumer, [](const Stage2ConsumerStats& s) {
    return s.state.outbox_handed_over == 2 && s.state.outbox_finished == 1 &&
           s.state.alerts_finished == 1;
  });
  EXPECT_EQ(b.handed(), (std::map<int32_t, std::vector<OutboxItem>>{{0, {resolve}}}));
  EXPECT_EQ(b.handed_alerts(), (std::map<int32_t, std::vector<FiringAlert>>{{1, {refired}}}));
  EXPECT_EQ(stats.state.outbox_handed_over, 2u);
  EXPECT_EQ(stats.state.outbox_not_taken, 1u);
  EXPECT_EQ(stats.state.outbox_finished, 1u) << "the one it took; not the one it refused";
  EXPECT_EQ(stats.state.alerts_handed_over, 1u);
  EXPECT_EQ(stats.state.alerts_finished, 1u);
  EXPECT_EQ(stats.state.outbox_written, 0u);
  (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));

  // A third owner is handed only the notification the second could not take.
  options.directory = (dir_ / "c").string();
  HandoffListener c;
  auto third = Stage2Consumer::Create(options, clock_, registry, sink, &c, logger_);
  ASSERT_TRUE(third.ok()) << third.status();
  ASSERT_TRUE((*third)->Start().ok());
  stats = WaitFor(**third, [](const Stage2ConsumerStats& s) {
    return s.state.outbox_handed_over == 1 && s.state.outbox_finished == 1;
  });
  EXPECT_EQ(c.handed(), (std::map<int32_t, std::vector<OutboxItem>>{{1, {other}}}));
  EXPECT_TRUE(c.handed_alerts().empty());
  EXPECT_EQ(stats.state.outbox_handed_over, 1u);
  (*third)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(10));
}

TEST_F(Stage2ConsumerTest, RefusesSettingsItOwnsAndMissingTopics) {
  pipeline::SeriesRegistry registry(100, 100);
  SummingSink sink(registry);
  Stage2ConsumerOptions options = Options();
  options.librdkafka["enable.auto.commit"] = "true";
  auto refused = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("enable.auto.commit"), std::string::npos);

  options = Options();
  options.librdkafka["no.such.property"] = "1";
  refused = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("no.such.property"), std::string::npos);

  options = Options();
  options.state_topic = "traceslo_state_3";
  refused = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("as many"), std::string::npos);

  options = Options();
  options.deltas_topic = "missing";
  refused = Stage2Consumer::Create(options, clock_, registry, sink, nullptr, logger_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(refused.status().message().find("'missing'"), std::string::npos);
}

}  // namespace
}  // namespace traceslo::kafka
