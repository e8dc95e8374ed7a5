// Record placement on otlp_spans: our FNV-1a partitioner against published FNV test vectors and
// against librdkafka's own `fnv1a` partitioner, which places the Collector's keys as Sarama does.
#include "traceslo/kafka/partitioning.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <random>
#include <string>

namespace traceslo::kafka {
namespace {

// FNV-1a 32-bit test vectors of the FNV reference (draft-eastlake-fnv, test_fnv.c) and the one
// librdkafka's unit test pins for "kafka".
TEST(Fnv1aTest, KnownVectors) {
  EXPECT_EQ(Fnv1a32(""), 0x811c9dc5u);
  EXPECT_EQ(Fnv1a32("a"), 0xe40c292cu);
  EXPECT_EQ(Fnv1a32("foobar"), 0xbf9cf968u);
  EXPECT_EQ(Fnv1a32("kafka"), 0x0d33c4e1u);
}

TEST(Fnv1aTest, TraceRecordKeyIsLowerCaseHex) {
  TraceId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(0xa0 + i);
  EXPECT_EQ(TraceRecordKey(id), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
}

// Sarama takes the hash as a signed 32-bit value: a hash with the top bit set must land where the
// Go code puts it (|int32(h) % n|), not at h % n.
TEST(Fnv1aTest, NegativeHashesFollowSarama) {
  int checked = 0;
  for (int i = 0; i < 1000 && checked < 20; ++i) {
    const std::string key = "trace-" + std::to_string(i);
    const uint32_t hash = Fnv1a32(key);
    if ((hash & 0x80000000u) == 0) continue;
    const int64_t signed_hash = static_cast<int64_t>(hash) - (int64_t{1} << 32);
    const int64_t expected = signed_hash % 48 < 0 ? -(signed_hash % 48) : signed_hash % 48;
    EXPECT_EQ(Fnv1aPartition(key, 48), expected) << key;
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

// The same placement as librdkafka's partitioner=fnv1a for Collector-style keys (32 hex digits)
// and other keys, over partition counts from 1 to 1000.
TEST(Fnv1aTest, MatchesLibrdkafkasFnv1aPartitioner) {
  std::mt19937_64 random(20261203);
  for (int32_t partitions : {1, 2, 3, 7, 12, 48, 100, 1000}) {
    for (int i = 0; i < 5000; ++i) {
      TraceId id{};
      for (auto& byte : id) byte = static_cast<uint8_t>(random());
      std::string key = TraceRecordKey(id);
      if (i % 5 == 0) key = key.substr(0, static_cast<size_t>(random() % 33));
      const int32_t expected = rd_kafka_msg_partitioner_fnv1a(nullptr, key.data(), key.size(),
                                                              partitions, nullptr, nullptr);
      ASSERT_EQ(Fnv1aPartition(key, partitions), expected)
          << "key '" << key << "', " << partitions << " partitions";
    }
  }
}

}  // namespace
}  // namespace traceslo::kafka
