// The librdkafka settings the stages set themselves are refused twice: by the config parser,
// with the key's file:line:col, and by the stages' Create() for callers of the API. The two lists
// live on either side of the module boundary (config does not depend on kafka): this test keeps
// them equal.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace traceslo::kafka
