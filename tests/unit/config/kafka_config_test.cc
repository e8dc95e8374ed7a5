// The kafka section: defaults (off), every key, and a located error for each bad value.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "config_test_util.h"

namespace traceslo::config {
namespace {

using ::testing::HasSubstr;

TEST(KafkaConfigTest, OffByDefaultWithTheDesignsNames) {
  const Config config = ParsedOrDie("");
  EXPECT_FALSE(config.kafka.enabled);
  EXPECT_TRUE(config.kafka.brokers.empty());
  EXPECT_EQ(config.kafka.topics.spans, "otlp_spans");
  EXPECT_EQ(config.kafka.topics.deltas, "traceslo_deltas");
  EXPECT_EQ(config.kafka.topics.state, "traceslo_state");
  EXPECT_EQ(config.kafka.group_ids.stage1, "traceslo-stage1");
  EXPECT_EQ(config.kafka.group_ids.stage2, "traceslo-stage2");
  EXPECT_EQ(config.kafka.encoding, "otlp_proto");
  EXPECT_TRUE(config.kafka.librdkafka.empty());
  EXPECT_EQ(config.kafka.epoch_length, std::chrono::milliseconds(1'000));
}

TEST(KafkaConfigTest, EveryKeyIsParsed) {
  ::setenv("TRACESLO_TEST_SASL_PASSWORD", "s3cret", 1);
  const Config config = ParsedOrDie(Lines({
      "kafka:",
      "  enabled: true",
      "  brokers: [kafka-1:9092, 10.0.0.2:9093]",
      "  topics: {spans: spans.v1, deltas: d_1, state: st-1}",
      "  group_ids: {stage1: g1, stage2: g2}",
      "  encoding: otlp_json",
      "  librdkafka:",
      "    security.protocol: SASL_SSL",
      "    sasl.mechanism: SCRAM-SHA-512",
      "    sasl.password: ${TRACESLO_TEST_SASL_PASSWORD}",
      "  epoch_length: 2s",
      "  commit_interval: 500ms",
      "  idle_partition_timeout: 30s",
      "  allowed_lateness: 5s",
      "  snapshot_interval: 30s",
  }));
  const KafkaConfig& kafka = config.kafka;
  EXPECT_TRUE(kafka.enabled);
  EXPECT_EQ(kafka.brokers, (std::vector<std::string>{"kafka-1:9092", "10.0.0.2:9093"}));
  EXPECT_EQ(kafka.topics.spans, "spans.v1");
  EXPECT_EQ(kafka.topics.deltas, "d_1");
  EXPECT_EQ(kafka.topics.state, "st-1");
  EXPECT_EQ(kafka.group_ids.stage1, "g1");
  EXPECT_EQ(kafka.group_ids.stage2, "g2");
  EXPECT_EQ(kafka.encoding, "otlp_json");
  EXPECT_EQ(kafka.librdkafka,
            (std::map<std::string, std::string>{{"security.protocol", "SASL_SSL"},
                                                {"sasl.mechanism", "SCRAM-SHA-512"},
                                                {"sasl.password", "s3cret"}}));
  EXPECT_EQ(kafka.epoch_length, std::chrono::milliseconds(2'000));
  EXPECT_EQ(kafka.commit_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(kafka.idle_partition_timeout, std::chrono::milliseconds(30'000));
  EXPECT_EQ(kafka.allowed_lateness, std::chrono::milliseconds(5'000));
  EXPECT_EQ(kafka.snapshot_interval, std::chrono::milliseconds(30'000));
}

TEST(KafkaConfigTest, BadValuesAreLocated) {
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  enabled: true"})),
            "t.yaml:2:3: kafka.brokers must name at least one broker (host:port) when "
            "kafka.enabled is true");
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  brokers: [ok:1, nope]"})),
            "t.yaml:2:19: kafka.brokers[1]: \"nope\" is not host:port");
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  topics: {spans: \"a b\"}"})),
            "t.yaml:2:19: kafka.topics.spans: \"a b\" is not a Kafka topic name (1-249 of "
            "[A-Za-z0-9._-])");
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  group_ids: {stage1: \"\"}"})),
            "t.yaml:2:23: kafka.group_ids.stage1 must be 1 to 255 characters");
  EXPECT_THAT(ErrorOf(Lines({"kafka:", "  topics: {span: x}"})),
              HasSubstr("t.yaml:2:12: unknown key 'span' in kafka.topics; did you mean 'spans'?"));
  EXPECT_THAT(ErrorOf(Lines({"kafka:", "  encoding: avro"})),
              HasSubstr("t.yaml:2:13: kafka.encoding"));
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  librdkafka:", "    group.id: mine"})),
            "t.yaml:3:5: kafka.librdkafka.group.id is set by traceslo and cannot be configured");
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  librdkafka:", "    Bad Key: x"})),
            "t.yaml:3:5: kafka.librdkafka: \"Bad Key\" is not a librdkafka property name");
  EXPECT_EQ(ErrorOf(Lines({"kafka:", "  librdkafka:", "    ssl.ca: [a]"})),
            "t.yaml:3:13: kafka.librdkafka.ssl.ca must be a string, got a list");
  EXPECT_THAT(ErrorOf(Lines({"kafka:", "  epoch_length: 10ms"})),
              HasSubstr("t.yaml:2:17: kafka.epoch_length"));
  EXPECT_THAT(ErrorOf(Lines({"kafka:", "  enabled: maybe"})),
              HasSubstr("t.yaml:2:12: kafka.enabled"));
}

}  // namespace
}  // namespace traceslo::config
