// Feeds arbitrary bytes to the loadgen scenario parser. It must return a Status for every input
// (never throw, crash or hang), every error must carry the "source:line:col: " prefix, and every
// accepted scenario must satisfy the documented limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/loadgen/scenario.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

bool HasLocationPrefix(std::string_view message) {
  constexpr std::string_view kSource = "fuzz.yaml:";
  if (message.substr(0, kSource.size()) != kSource) return false;
  message.remove_prefix(kSource.size());
  for (int field = 0; field < 2; ++field) {
    size_t digits = 0;
    while (digits < message.size() && message[digits] >= '0' && message[digits] <= '9') ++digits;
    if (digits == 0 || digits >= message.size() || message[digits] != ':') return false;
    message.remove_prefix(digits + 1);
  }
  return message.substr(0, 1) == " ";
}

void CheckIncident(const traceslo::loadgen::Incident& i) {
  using traceslo::loadgen::IncidentType;
  Check(i.ratio >= 0 && i.ratio <= 1);
  Check(i.service < traceslo::loadgen::kServiceCount);
  Check(i.start.count() >= 0 && i.start <= traceslo::loadgen::kMaxOffset);
  Check(!i.duration || (i.duration->count() > 0 && *i.duration <= traceslo::loadgen::kMaxOffset));
  Check(i.exception_type.size() <= traceslo::loadgen::kMaxNameBytes);
  Check(i.message.size() <= traceslo::loadgen::kMaxMessageBytes);
  if (i.type == IncidentType::kLatencyRegression) {
    Check(i.factor > 0 && i.factor <= traceslo::loadgen::kMaxLatencyFactor);
    Check(i.add.count() >= 0 && i.add <= traceslo::loadgen::kMaxLatencyAdd);
  }
  if (!i.operation.empty()) {
    bool found = false;
    for (std::string_view op : traceslo::loadgen::EntryOperations(i.service)) {
      found = found || op == i.operation;
    }
    Check(found);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    absl::StatusOr<traceslo::loadgen::Scenario> scenario =
        traceslo::loadgen::ParseScenario(text, "fuzz.yaml");
    if (scenario.ok()) {
      Check(scenario->incidents.size() <= traceslo::loadgen::kMaxIncidents);
      for (const auto& incident : scenario->incidents) CheckIncident(incident);
    } else {
      Check(scenario.status().code() == absl::StatusCode::kInvalidArgument);
      auto message = scenario.status().message();  // absl::string_view on Debian
      Check(HasLocationPrefix(std::string_view(message.data(), message.size())));
    }
    // The compact --incident form on the same bytes: any answer but an exception is fine.
    absl::StatusOr<traceslo::loadgen::Incident> incident =
        traceslo::loadgen::ParseIncidentFlag(text, "fuzz");
    if (incident.ok()) CheckIncident(*incident);
  } catch (...) {
    __builtin_trap();  // ParseScenario promises never to throw
  }
  return 0;
}
