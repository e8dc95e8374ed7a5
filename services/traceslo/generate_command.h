#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace traceslo {

// The command line of `traceslo generate prometheus-rules`, as typed.
struct GenerateFlags {
  std::vector<std::string> rules;  // files, directories, globs; empty: rules/*.yaml
  std::string output;              // empty or "-": standard output
  bool strict = false;
  // Set when the command line parses: which subcommand ran, and arguments it did not know.
  bool prometheus_rules = false;
  std::vector<std::string> unknown;
};

// Adds `generate` and its subcommand `prometheus-rules` to `app`; `flags` is filled when it
// parses. Returns the `generate` command (parsed() says whether to run Generate()).
CLI::App* AddGenerateCommand(CLI::App& app, GenerateFlags& flags);

// `traceslo generate prometheus-rules`: reads the rule files as `traceslo check` does and writes
// Prometheus recording and alerting rules for them (slo::GeneratePrometheusRules,
// docs/prometheus-rules.md) to --output (replaced atomically) or stdout. SLOs that cannot be
// computed from the exported metrics are skipped with a warning on stderr (file:line:col:
// service/slo: why), or refused with --strict.
// Exit codes: 0 written (perhaps with warnings); 1 the rule files have problems (every one on
// stderr as file:line:col: message) or --strict refused an SLO, and nothing was written; 2 a
// usage error (no subcommand, an unknown argument, --output a directory) or the output cannot be
// written.
int Generate(const GenerateFlags& flags);

}  // namespace traceslo
