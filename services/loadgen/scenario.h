#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/loadgen/incidents.h"

namespace traceslo::loadgen {

// A scenario file: a description and the incidents of a run.
//
//   description: payment breaks for a minute
//   incidents:
//     - {type: error_burst, start: 10s, duration: 1m, service: payment, ratio: 0.3}
//     - {type: latency_regression, start: 30s, service: inventory, factor: 3}
struct Scenario {
  std::string description;
  std::vector<Incident> incidents;
};

inline constexpr size_t kMaxScenarioBytes = 64 * 1024;

// Parses a scenario. Unknown keys are errors; every error is InvalidArgument and starts with
// "<source_name>:<line>:<column>: ". Never throws. Pure, safe on any thread.
absl::StatusOr<Scenario> ParseScenario(std::string_view yaml, std::string_view source_name);

// Reads (at most kMaxScenarioBytes) and parses a file; errors name the path.
absl::StatusOr<Scenario> LoadScenarioFile(const std::string& path);

}  // namespace traceslo::loadgen
