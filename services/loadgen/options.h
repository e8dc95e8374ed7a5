#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "services/loadgen/http_client.h"
#include "services/loadgen/incidents.h"

namespace traceslo::loadgen {

enum class Protocol { kGrpc, kHttpProtobuf, kHttpJson };
std::string_view ProtocolName(Protocol protocol);

// The command line of traceslo-loadgen, validated.
struct LoadgenOptions {
  std::string endpoint;  // host:port
  Protocol protocol = Protocol::kGrpc;
  double rate = 10;  // traces per second
  std::optional<std::chrono::milliseconds> duration;
  uint64_t traces = 0;  // from --traces, or duration x rate
  uint32_t spans_per_trace = 20;
  uint32_t batch_size = 512;
  std::optional<uint64_t> seed;     // nullopt: pick one at random (and report it)
  std::vector<Incident> incidents;  // the scenario's, then the --incident flags'
  std::string scenario_file;
  std::string report_file = "-";  // "-": stdout
  // --record: every request also goes to this file as one OTLP/JSON line. Without --endpoint
  // nothing is sent (`send` false) and the run uses simulated time from `start_time` (default:
  // now), so it takes no real time and, with --seed and --start-time, writes the same bytes.
  std::string record_file;
  bool send = true;
  std::optional<std::chrono::system_clock::time_point> start_time;
  HttpHeaders headers;  // --header, in order (lower-case names for gRPC)
  bool gzip = false;
  bool quiet = false;
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds max_retry_time{30'000};
};

// What the command line asks for: a run with `options`, or to exit at once with `exit_code`
// after printing `output` (the help text to stdout with 0, or a one-line error to stderr with 2).
struct ParsedFlags {
  bool run = false;
  int exit_code = 0;
  std::string output;
  LoadgenOptions options;
};

// Parses and validates argv (the scenario file is read here, so its errors are usage errors
// too). Never throws; never exits.
ParsedFlags ParseFlags(int argc, const char* const* argv);

}  // namespace traceslo::loadgen
