// Scenario files: what they can say, and that every mistake is reported at file:line:col.
#include "services/loadgen/scenario.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace traceslo::loadgen {
namespace {

std::string Error(std::string_view yaml) {
  absl::StatusOr<Scenario> scenario = ParseScenario(yaml, "scenario.yaml");
  EXPECT_FALSE(scenario.ok()) << yaml;
  if (scenario.ok()) return "";
  EXPECT_EQ(scenario.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(scenario.status().message());
}

TEST(ScenarioTest, ParsesEveryIncidentType) {
  absl::StatusOr<Scenario> scenario = ParseScenario(R"(
description: payment breaks, then inventory slows down
incidents:
  - type: error_burst
    start: 10s
    duration: 1m
    service: payment
    ratio: 0.3
    exception_type: CardDeclinedException
    message: "card {int} declined: issuer {hex} said no"
  - {type: latency_regression, start: 30s, service: inventory, factor: 3}
  - {type: latency_regression, service: database, add: 250ms}
  - {type: propagation_break, service: checkout, ratio: 0.1}
  - {type: traffic_drop, start: 2m, duration: 30s, ratio: 0.5}
)",
                                                    "scenario.yaml");
  ASSERT_TRUE(scenario.ok()) << scenario.status();
  EXPECT_EQ(scenario->description, "payment breaks, then inventory slows down");
  ASSERT_EQ(scenario->incidents.size(), 5u);
  const Incident& burst = scenario->incidents[0];
  EXPECT_EQ(burst.type, IncidentType::kErrorBurst);
  EXPECT_EQ(burst.start, std::chrono::seconds(10));
  EXPECT_EQ(burst.duration, std::optional<std::chrono::milliseconds>(std::chrono::minutes(1)));
  EXPECT_EQ(burst.service, kPayment);
  EXPECT_EQ(burst.ratio, 0.3);
  EXPECT_EQ(burst.exception_type, "CardDeclinedException");
  EXPECT_EQ(burst.message, "card {int} declined: issuer {hex} said no");
  EXPECT_EQ(burst.origin, "scenario.yaml:4:5");
  EXPECT_EQ(scenario->incidents[1].factor, 3);
  EXPECT_EQ(scenario->incidents[1].origin, "scenario.yaml:11:5");
  EXPECT_EQ(scenario->incidents[2].add, std::chrono::milliseconds(250));
  EXPECT_EQ(scenario->incidents[3].type, IncidentType::kPropagationBreak);
  EXPECT_EQ(scenario->incidents[4].type, IncidentType::kTrafficDrop);

  absl::StatusOr<Scenario> empty = ParseScenario("incidents: []\n", "s.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->incidents.empty());
}

TEST(ScenarioTest, ErrorsCarryFileLineAndColumn) {
  EXPECT_EQ(Error("incidents:\n"
                  "  - type: error_burst\n"
                  "    service: payment\n"
                  "    ratio: 1.5\n"),
            "scenario.yaml:4:12: ratio must be between 0 and 1, got '1.5'");
  EXPECT_EQ(Error("incidents:\n"
                  "  - type: error_burst\n"
                  "    service: payment\n"
                  "    ratoi: 0.5\n"),
            "scenario.yaml:4:5: unknown key 'ratoi' for error_burst (expected one of type, start, "
            "duration, service, operation, ratio, exception_type, message)");
  EXPECT_EQ(Error("incidents:\n"
                  "  - {type: latency_regression, service: payment, factor: 2, add: 1s}\n"),
            "scenario.yaml:2:61: latency_regression needs exactly one of factor (e.g. 3) or add "
            "(e.g. 200ms)");
  EXPECT_EQ(Error("incidents:\n  - type: error_burst\n"),
            "scenario.yaml:2:5: error_burst needs a service (one of gateway, checkout, payment, "
            "inventory, database, email, analytics)");
  EXPECT_EQ(Error("incidents:\n  - service: payment\n"),
            "scenario.yaml:2:5: incident has no type (expected one of error_burst, "
            "latency_regression, propagation_break, traffic_drop)");
  EXPECT_EQ(Error("incidents:\n  - {type: outage, service: payment}\n"),
            "scenario.yaml:2:12: unknown incident type 'outage' (expected one of error_burst, "
            "latency_regression, propagation_break, traffic_drop)");
  EXPECT_EQ(Error("incidents:\n  - {type: traffic_drop, ratio: [1]}\n"),
            "scenario.yaml:2:33: ratio must be a scalar, got a list");
  EXPECT_EQ(Error("incidents:\n  - traffic_drop\n"),
            "scenario.yaml:2:5: an incident must be a mapping, got a scalar");
  EXPECT_EQ(Error("incidents: {type: traffic_drop}\n"),
            "scenario.yaml:1:12: incidents must be a list, got a mapping");
  EXPECT_EQ(Error("incident:\n  - {type: traffic_drop}\n"),
            "scenario.yaml:1:1: unknown key 'incident' (expected description or incidents)");
  EXPECT_EQ(Error("description: x\n"),
            "scenario.yaml:1:1: a scenario needs incidents (a list, may be empty)");
  EXPECT_EQ(Error("incidents: []\nincidents: []\n"),
            "scenario.yaml:2:1: duplicate key 'incidents'");
  EXPECT_EQ(Error("incidents:\n  - {type: traffic_drop, ratio: 0.1, ratio: 0.2}\n"),
            "scenario.yaml:2:38: duplicate key 'ratio'");
  EXPECT_EQ(Error("- a\n- b\n"),
            "scenario.yaml:1:1: a scenario must be a mapping with incidents, got a list");
  EXPECT_EQ(Error(""), "scenario.yaml:1:1: empty scenario (expected a mapping with incidents)");
  EXPECT_EQ(Error("incidents: []\n---\nincidents: []\n"),
            "scenario.yaml:2:1: unexpected content after the end of the document (a scenario file "
            "holds one YAML document)");
  EXPECT_EQ(Error("incidents:\n  - {type: traffic_drop, start: 5 s}\n"),
            "scenario.yaml:2:33: start: invalid duration \"5 s\": unknown unit \" s\" (use ms, s, "
            "m, h, d)");
  // yaml-cpp's own errors keep their position.
  const std::string syntax = Error("incidents:\n  - {type: traffic_drop\n");
  EXPECT_TRUE(syntax.starts_with("scenario.yaml:")) << syntax;
  EXPECT_NE(syntax.find(":3:"), std::string::npos) << syntax;
}

TEST(ScenarioTest, Limits) {
  std::string many = "incidents:\n";
  for (size_t i = 0; i <= kMaxIncidents; ++i) many += "  - {type: traffic_drop, ratio: 0.1}\n";
  EXPECT_EQ(Error(many), "scenario.yaml:2:3: more than 100 incidents");
  std::string big = "description: \"" + std::string(kMaxScenarioBytes, 'x') + "\"\nincidents: []\n";
  EXPECT_EQ(Error(big), "scenario.yaml:1:1: scenario is larger than 65536 bytes");
  EXPECT_EQ(Error("incidents:\n  - {type: error_burst, service: payment, exception_type: " +
                  std::string(300, 'E') + "}\n"),
            "scenario.yaml:2:59: exception_type is longer than 256 bytes");
  // Aliases may not point at enclosing nodes; expansions count against the node limit.
  EXPECT_EQ(Error("incidents: &a [*a]\n"),
            "scenario.yaml:1:16: alias refers to a node that contains it (recursive alias)");
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'f'; ++c) {
    laughs += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) laughs += std::string(i ? ", *" : "*") + static_cast<char>(c - 1);
    laughs += "]\n";
  }
  laughs += "incidents: []\n";
  const std::string too_many = Error(laughs);
  EXPECT_NE(too_many.find("nodes (counting alias expansions)"), std::string::npos) << too_many;
}

TEST(ScenarioTest, LoadsFiles) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("loadgen_scenario_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "s.yaml").string();
  std::ofstream(path) << "incidents:\n  - {type: traffic_drop, ratio: 2}\n";
  absl::StatusOr<Scenario> scenario = LoadScenarioFile(path);
  ASSERT_FALSE(scenario.ok());
  EXPECT_EQ(scenario.status().message(), path + ":2:33: ratio must be between 0 and 1, got '2'");
  EXPECT_EQ(LoadScenarioFile((dir / "missing.yaml").string()).status().code(),
            absl::StatusCode::kNotFound);
  // Only regular files are read (a FIFO could block the start forever).
  const absl::Status directory = LoadScenarioFile(dir.string()).status();
  EXPECT_FALSE(directory.ok());
  EXPECT_TRUE(std::string(directory.message()).starts_with(dir.string() + ": ")) << directory;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace traceslo::loadgen
