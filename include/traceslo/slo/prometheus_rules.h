#pragma once

// Prometheus recording and alerting rules for SLO rule files, over the counters traceslo exports
// on /metrics, named as Sloth names them (slo:sli_error:ratio_rate<window>, slo:objective:ratio,
// sloth_slo_info, ... with sloth_id, sloth_service, sloth_slo, sloth_window labels) so Sloth's
// and the community's SLO dashboards work. The mapping of each SLI kind and every difference from
// Sloth are in docs/prometheus-rules.md.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

struct PrometheusRulesOptions {
  // The rule files the rules come from, as named in the header comment (in this order).
  std::vector<std::string> source_files;
  // The generator's version, for the header and sloth_slo_info{sloth_version}.
  std::string version = "dev";
  // Refuse (instead of skipping with a warning) SLOs that cannot be computed from the exported
  // metrics.
  bool strict = false;
};

// An SLO that was left out of the rules: why, and where it is written.
struct PrometheusRulesWarning {
  std::string source;   // "rules/checkout.yaml:26:5" (Slo::source)
  std::string service;  // the SLO's service and name
  std::string slo;
  std::string message;
  // "rules/checkout.yaml:26:5: checkout/latency: <message>"
  std::string ToString() const;
};

struct PrometheusRules {
  std::string yaml;  // one YAML document: a header comment, then `groups:`
  std::vector<PrometheusRulesWarning> warnings;  // in rule file and SLO order
  size_t slos_generated = 0;
  size_t slos_skipped = 0;
  size_t rules = 0;  // recording and alerting rules in `yaml`
};

// The Prometheus rule file (the `groups:` format of `promtool check rules`) for the SLOs of
// `files` (in the order given; SLOs in file order): per SLO, the groups
// sloth-slo-sli-recordings-<id>, sloth-slo-meta-recordings-<id> and sloth-slo-alerts-<id>, where
// <id> is "<service>-<slo>". The same input gives the same bytes.
//
// An SLO that PromQL cannot compute as the evaluator does (a latency threshold that is not a
// bucket bound of traceslo_request_duration_seconds) is left out with a warning, named in the
// header comment; with `strict`, InvalidArgument with every such warning, one per line, instead.
// Pure: no file or clock reads; never throws.
absl::StatusOr<PrometheusRules> GeneratePrometheusRules(const std::vector<RuleFile>& files,
                                                        const PrometheusRulesOptions& options);

// Exposed for tests and docs: `duration` as Sloth writes windows (Prometheus' own duration format:
// 5m, 1h30m, 30d; weeks and years only when exact, so 7d is "1w" and 28d "4w"). A multiple of
// 1 ms; 0 gives "0s".
std::string PrometheusDuration(std::chrono::milliseconds duration);

// `value` as a PromQL double-quoted string literal: `"` and `\` escaped, control characters as
// \n, \t, \r or \xHH.
std::string PromQlString(std::string_view value);

}  // namespace traceslo::slo
