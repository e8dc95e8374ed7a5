#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "traceslo/common/clock.h"

namespace traceslo {

// The command line of `traceslo replay`, as typed; validated by Replay().
struct ReplayFlags {
  std::vector<std::string> rules;  // empty: rules.files of the configuration (rules/*.yaml)
  std::string spans;               // the recording; "-": standard input
  std::string spans_format = "json";
  std::string config_file;
  std::string drain;  // empty: slo::DefaultReplayDrain
  std::string max_gap = "1h";
  std::string max_line_bytes = "64MiB";
  std::string format = "text";
  size_t top_signatures = 3;
  bool allow_bad_lines = false;
};

// Adds the `replay` subcommand and its flags to `app`; `flags` is filled when it parses.
CLI::App* AddReplayCommand(CLI::App& app, ReplayFlags& flags);

// `traceslo replay`: runs the SLI pipeline and the rules over recorded OTLP on recorded time
// (slo::Replayer) and prints the alert timeline and a summary to stdout, the same bytes on every
// run (docs/replay.md). Bad lines go to stderr as FILE:LINE: message and are skipped. `clock` is
// the wall clock, read only to pace the progress line shown when stderr is a terminal.
// Exit codes: 0 done; 1 bad lines were skipped (unless --allow-bad-lines) or the input could not
// be read to its end; 2 bad flags, configuration or rule files (file:line:col on stderr), or an
// input that cannot be opened.
int Replay(const ReplayFlags& flags, const Clock& clock);

}  // namespace traceslo
