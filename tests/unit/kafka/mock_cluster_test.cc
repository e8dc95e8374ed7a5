// librdkafka's mock cluster as the tests use it: in process, and as the traceslo-kafka-mock
// helper process that several traceslo processes share. Records keyed like the Collector's land
// on the partition Fnv1aPartition() names.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/common/clock.h"
#include "traceslo/kafka/partitioning.h"

extern char** environ;

namespace traceslo::kafka {
namespace {

using testutil::HandlePtr;
using testutil::NewClient;

// Partitions of `topic` as the cluster's metadata reports them; -1 when the request fails.
int PartitionsOf(rd_kafka_t* client, const std::string& topic, int timeout_ms) {
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(client, 1, nullptr, &metadata, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return -1;
  }
  int partitions = -1;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (topic == metadata->topics[i].topic && metadata->topics[i].err == 0) {
      partitions = metadata->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(metadata);
  return partitions;
}

// Produces `count` records keyed by random trace ids with partitioner=fnv1a, then reads every
// partition from the start: each record is on Fnv1aPartition(key) and none is missing.
void ExpectCollectorPlacement(const std::string& bootstrap, const std::string& topic,
                              int partitions, int count) {
  HandlePtr producer = NewClient(
      RD_KAFKA_PRODUCER,
      {{"bootstrap.servers", bootstrap}, {"partitioner", "fnv1a"}, {"enable.idempotence", "true"}});
  std::mt19937_64 random(42);
  std::map<std::string, int32_t> expected;  // key → partition
  for (int i = 0; i < count; ++i) {
    TraceId id{};
    for (auto& byte : id) byte = static_cast<uint8_t>(random());
    const std::string key = TraceRecordKey(id);
    expected[key] = Fnv1aPartition(key, partitions);
    const std::string value = "spans of " + key;
    ASSERT_EQ(rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(producer.get(), 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);

  HandlePtr consumer = NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                     {"group.id", "placement-check"},
                                                     {"enable.auto.commit", "false"}});
  rd_kafka_topic_partition_list_t* all = rd_kafka_topic_partition_list_new(partitions);
  for (int32_t p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(all, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  ASSERT_EQ(rd_kafka_assign(consumer.get(), all), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(all);
  std::map<std::string, int32_t> seen;
  const SystemClock clock;
  const auto deadline = clock.SteadyNow() + std::chrono::seconds(30);
  while (seen.size() < expected.size() && clock.SteadyNow() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 100);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      seen[std::string(static_cast<const char*>(message->key), message->key_len)] =
          message->partition;
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer.get());
  EXPECT_EQ(seen.size(), expected.size());
  for (const auto& [key, partition] : expected) {
    auto it = seen.find(key);
    if (it == seen.end()) {
      ADD_FAILURE() << "record " << key << " (partition " << partition << ") never read";
    } else {
      EXPECT_EQ(it->second, partition) << key;
    }
  }
}

TEST(MockClusterTest, CollectorKeyedRecordsLandOnTheirFnv1aPartition) {
  HandlePtr owner = NewClient(RD_KAFKA_PRODUCER, {{"test.mock.num.brokers", "3"}});
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(owner.get());
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "otlp_spans", 12, 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  ExpectCollectorPlacement(rd_kafka_mock_cluster_bootstraps(cluster), "otlp_spans", 12, 300);
}

// The helper process, as the multi-process tests run it.
class MockProcess {
 public:
  explicit MockProcess(std::vector<std::string> args) {
    dir_ = std::filesystem::temp_directory_path() /
           ("traceslo-kafka-mock-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    std::vector<std::string> argv{TRACESLO_KAFKA_MOCK_BIN};
    for (std::string& arg : args) {
      if (arg == "@bootstrap") arg = bootstrap_path();
      argv.push_back(std::move(arg));
    }
    std::vector<char*> raw;
    for (std::string& arg : argv) raw.push_back(arg.data());
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string out = (dir_ / "stdout").string();
    const std::string err = (dir_ / "stderr").string();
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(posix_spawn(&pid_, raw[0], &actions, nullptr, raw.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~MockProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string bootstrap_path() const { return (dir_ / "bootstrap").string(); }
  std::string Read(const char* name) const {
    std::ifstream in(dir_ / name);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  void Signal(int signal) const { ::kill(pid_, signal); }
  // The exit status, waiting for it.
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Whether it exited, without waiting.
  bool Exited() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    exited_ = true;
    return true;
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

// Polls `condition` (each call waits on the cluster: a metadata request, a bounded poll) until it
// holds or 20 s have passed.
template <typename Condition>
bool Eventually(Condition condition) {
  const SystemClock clock;
  const auto deadline = clock.SteadyNow() + std::chrono::seconds(20);
  while (clock.SteadyNow() < deadline) {
    if (condition()) return true;
  }
  return condition();
}

TEST(MockClusterProcessTest, SharesItsBootstrapAndTakesBrokersDownAndUpOnSignals) {
  MockProcess mock({"--brokers", "3", "--topic", "otlp_spans:6", "--topic", "traceslo_deltas:4",
                    "--bootstrap-file", "@bootstrap"});
  HandlePtr probe = NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", "127.0.0.1:1"}});
  std::string bootstrap;
  // The file appears once the cluster is up (written atomically).
  ASSERT_TRUE(Eventually([&] {
    if (mock.Exited()) return true;
    std::ifstream in(mock.bootstrap_path());
    std::getline(in, bootstrap);
    if (!bootstrap.empty()) return true;
    PartitionsOf(probe.get(), "none", 200);  // a bounded wait on a closed port
    return false;
  })) << mock.Read("stderr");
  ASSERT_FALSE(bootstrap.empty()) << mock.Read("stderr");
  EXPECT_EQ(mock.Read("stdout"), "bootstrap=" + bootstrap + "\n");
  EXPECT_EQ(std::count(bootstrap.begin(), bootstrap.end(), ',') + 1, 3) << bootstrap;

  HandlePtr client = NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap}});
  EXPECT_TRUE(Eventually([&] { return PartitionsOf(client.get(), "otlp_spans", 200) == 6; }));
  EXPECT_EQ(PartitionsOf(client.get(), "traceslo_deltas", 2'000), 4);
  ExpectCollectorPlacement(bootstrap, "otlp_spans", 6, 100);

  mock.Signal(SIGUSR1);  // every broker down
  EXPECT_TRUE(Eventually([&] { return PartitionsOf(client.get(), "otlp_spans", 200) == -1; }));
  mock.Signal(SIGUSR2);  // back up
  EXPECT_TRUE(Eventually([&] { return PartitionsOf(client.get(), "otlp_spans", 200) == 6; }));

  mock.Signal(SIGTERM);
  EXPECT_EQ(mock.Wait(), 0) << mock.Read("stderr");
  EXPECT_NE(mock.Read("stderr").find("brokers down"), std::string::npos);
  EXPECT_NE(mock.Read("stderr").find("brokers up"), std::string::npos);
}

TEST(MockClusterProcessTest, BadFlagsAreNamedAndExit2) {
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--brokers", "0"}, "--brokers must be an integer between 1 and 16, got '0'"},
           {{"--topic", "otlp_spans"}, "--topic must be NAME:PARTITIONS with 1 to 1000 partitions"},
           {{"--topic", ":3"}, "--topic must be NAME:PARTITIONS"},
           {{"--bogus", "1"}, "unknown flag '--bogus'"},
           {{"--brokers"}, "--brokers needs a value"},
       }) {
    MockProcess mock(args);
    EXPECT_EQ(mock.Wait(), 2) << args[0];
    EXPECT_NE(mock.Read("stderr").find(message), std::string::npos) << mock.Read("stderr");
  }
}

}  // namespace
}  // namespace traceslo::kafka
