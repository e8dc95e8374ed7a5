#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/loadgen/topology.h"

namespace traceslo::loadgen {

enum class IncidentType : uint8_t {
  kErrorBurst,         // entry spans of a service (and operation) fail with an exception
  kLatencyRegression,  // a service gets slower: `factor` on its own time, or `add` per entry
  kPropagationBreak,   // a service's entry spans lose their parent (it is never sent)
  kTrafficDrop,        // a share of the traces is never sent
};
std::string_view IncidentTypeName(IncidentType type);

// One incident on the schedule, relative to the start of the run.
struct Incident {
  IncidentType type = IncidentType::kErrorBurst;
  std::chrono::milliseconds start{0};
  std::optional<std::chrono::milliseconds> duration;  // nullopt: until the end of the run
  uint8_t service = 0;                                // all types but traffic_drop
  std::string operation;  // error_burst: one entry operation, empty for all of them
  double ratio = 1;       // error_burst, propagation_break, traffic_drop: share affected
  std::string exception_type = "ServiceError";                  // error_burst
  std::string message = "request {int} failed after {int} ms";  // error_burst, a template
  double factor = 1;                                            // latency_regression
  std::chrono::milliseconds add{0};                             // latency_regression
  std::string origin;  // where it was defined, e.g. "scenario.yaml:3:5" or "--incident #1"

  // Whether a trace scheduled `offset` after the start of the run falls into the incident.
  bool ActiveAt(std::chrono::nanoseconds offset) const {
    if (offset < start) return false;
    return !duration.has_value() || offset < start + *duration;
  }
};

// Limits on what a scenario may ask for, so a broken file cannot make the generator crawl.
inline constexpr size_t kMaxIncidents = 100;
inline constexpr size_t kMaxNameBytes = 256;      // service, operation, exception_type
inline constexpr size_t kMaxMessageBytes = 1024;  // message template
inline constexpr double kMaxLatencyFactor = 1000;
inline constexpr std::chrono::milliseconds kMaxLatencyAdd = std::chrono::hours(1);
inline constexpr std::chrono::milliseconds kMaxOffset = std::chrono::hours(24 * 365);

// One `key: value` of an incident as written, with where each half was written (the prefix of
// error messages: "scenario.yaml:4:7" or "--incident 'error_burst:ratio=2'").
struct IncidentField {
  std::string key;
  std::string value;
  std::string key_location;
  std::string value_location;
};

// Builds an incident from its fields (`type` among them). `location` is where the incident as a
// whole was written (for a missing key). The same rules apply to scenario files and to the
// --incident flag. InvalidArgument "<location>: <problem>" on the first problem.
absl::StatusOr<Incident> BuildIncident(const std::vector<IncidentField>& fields,
                                       std::string_view location);

// Parses the compact form of --incident: `type:key=value,key=value,...`. A value may be written
// in double quotes (with \" and \\ escapes) to hold commas. `origin` names it in the report.
absl::StatusOr<Incident> ParseIncidentFlag(std::string_view text, std::string origin);

// What the incidents active at `offset` do to a trace generated then. The effects point into
// `incidents`, which must outlive them.
Effects EffectsAt(const std::vector<Incident>& incidents, std::chrono::nanoseconds offset);

}  // namespace traceslo::loadgen
