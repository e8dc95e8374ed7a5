#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "services/loadgen/expectations.h"
#include "services/loadgen/incidents.h"

namespace traceslo::loadgen {

// What happened to one incident during a run.
struct IncidentRecord {
  uint64_t traces = 0;    // traces scheduled inside its window
  uint64_t affected = 0;  // spans it changed (or traces it dropped)
  // Unix nanoseconds at which the generator entered and left the window (the generation times
  // of the first trace inside it and of the first trace after it, or the end of the run);
  // nullopt when the run ended first.
  std::optional<int64_t> start_unix_nano;
  std::optional<int64_t> end_unix_nano;
};

struct Counts {
  uint64_t generated = 0;
  uint64_t dropped = 0;       // by traffic_drop incidents: never sent
  uint64_t sent = 0;          // put into at least one request
  uint64_t acknowledged = 0;  // spans: answered 200 / OK (minus rejected); traces: every span
  uint64_t failed = 0;        // spans: never acknowledged; traces: some span failed
  uint64_t rejected = 0;      // spans refused one by one in a partial success (traces: unused)
};

// The result of a run, written as JSON (docs/loadgen.md describes each field).
struct Report {
  // The settings.
  std::string endpoint;
  std::string protocol;
  uint64_t seed = 0;
  double rate = 0;
  uint64_t traces_planned = 0;
  uint32_t spans_per_trace = 0;
  uint32_t batch_size = 0;
  bool gzip = false;
  std::vector<Incident> incidents;

  int64_t start_unix_nano = 0;
  int64_t end_unix_nano = 0;
  double elapsed_seconds = 0;
  bool interrupted = false;

  Counts traces;
  Counts spans;
  struct Requests {
    uint64_t sent = 0;       // attempts, retries included
    uint64_t succeeded = 0;  // acknowledged
    uint64_t failed = 0;     // given up (permanent refusal or retries exhausted)
    uint64_t retries = 0;
    uint64_t bytes = 0;                        // request bodies as sent (after gzip)
    std::map<std::string, uint64_t> failures;  // every failed attempt, by reason
  } requests;

  // traceslo's SLIs for the acknowledged spans.
  Expectations expected;
  std::vector<IncidentRecord> incident_records;  // parallel to `incidents`

  // The expectations are exact when every sent span was acknowledged and none was rejected.
  bool exact() const { return spans.failed == 0 && spans.rejected == 0; }
};

std::string ReportToJson(const Report& report);

}  // namespace traceslo::loadgen
