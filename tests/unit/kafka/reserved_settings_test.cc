// The librdkafka settings the stages set themselves are refused twice: by the config parser,
// with the key's file:line:col, and by the stages' Create() for callers of the API. The two lists
// live on either side of the module boundary (config does not depend on kafka): this test keeps
// them equal.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "services/kafka/rdkafka_client.h"
#include "traceslo/config/config.h"

namespace traceslo::kafka {
namespace {

TEST(ReservedSettingsTest, TheConfigRefusesEveryKeyTheStagesSetThemselves) {
  for (const std::string& key : ReservedSettings()) {
    const absl::StatusOr<config::Config> config =
        config::ParseConfig("kafka:\n  librdkafka:\n    " + key + ": x\n", "t.yaml");
    ASSERT_FALSE(config.ok()) << key;
    EXPECT_EQ(config.status().message(), "t.yaml:3:5: kafka.librdkafka." + key +
                                             " is set by traceslo and cannot be configured");
    EXPECT_FALSE(CheckNoReservedSettings({{key, "x"}}).ok()) << key;
  }
  EXPECT_TRUE(CheckNoReservedSettings({{"security.protocol", "SASL_SSL"}}).ok());
}

TEST(ReservedSettingsTest, TheStagesAcceptEveryKeyTheConfigPassesThrough) {
  // A key the config lets through is one no stage refuses: ParseConfig accepted it.
  const absl::StatusOr<config::Config> config = config::ParseConfig(
      "kafka:\n  librdkafka:\n    security.protocol: SASL_SSL\n    sasl.mechanism: PLAIN\n"
      "    socket.timeout.ms: \"30000\"\n",
      "t.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(CheckNoReservedSettings(config->kafka.librdkafka).ok());
}

// The consumers commit only while their group is steady, read from their statistics JSON.
TEST(GroupSteadyInStatsTest, ReadsTheJoinState) {
  EXPECT_EQ(GroupSteadyInStats(R"({"name":"c","cgrp":{"state":"up","join_state":"steady"}})"),
            std::optional<bool>(true));
  // As librdkafka 2.0.2 writes it.
  EXPECT_EQ(GroupSteadyInStats(R"({"cgrp": { "state": "up", "join_state": "steady", "x": 1}})"),
            std::optional<bool>(true));
  EXPECT_EQ(GroupSteadyInStats(R"({"cgrp": { "join_state": "wait-join", "rebalance_age": 0}})"),
            std::optional<bool>(false));
  EXPECT_EQ(GroupSteadyInStats(R"({"cgrp":{"state":"up","join_state":"wait-join"}})"),
            std::optional<bool>(false));
  EXPECT_EQ(GroupSteadyInStats(R"({"cgrp":{"join_state":"wait-incr-unassign-to-complete"}})"),
            std::optional<bool>(false));
  EXPECT_EQ(GroupSteadyInStats(R"({"name":"producer","type":"producer"})"), std::nullopt);
  EXPECT_EQ(GroupSteadyInStats(R"({"cgrp":{"join_state":"stea)"), std::nullopt);
}

}  // namespace
}  // namespace traceslo::kafka
