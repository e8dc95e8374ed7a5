#include "traceslo/slo/prometheus_rules.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "traceslo/common/json.h"
#include "traceslo/config/config.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::slo {
namespace {

using std::chrono::milliseconds;

// Sloth's conventions: metric and label names its dashboards read.
constexpr std::string_view kSliErrorMetric = "slo:sli_error:ratio_rate";
constexpr std::string_view kIdLabel = "sloth_id";
constexpr std::string_view kServiceLabel = "sloth_service";
constexpr std::string_view kSloLabel = "sloth_slo";
constexpr std::string_view kWindowLabel = "sloth_window";
constexpr std::string_view kSeverityLabel = "sloth_severity";
// Sloth's fastest page tier's short window: its dashboards read the SLI and the current burn rate
// over it, so it is recorded for every SLO whose compliance window is longer.
constexpr milliseconds kDashboardWindow{5 * 60'000};

// The metrics of traceslo's /metrics (services/pipeline/sli_collector.cc).
constexpr std::string_view kRequests = "traceslo_requests_total";
constexpr std::string_view kRequestErrors = "traceslo_request_errors_total";
constexpr std::string_view kDurationBucket = "traceslo_request_duration_seconds_bucket";
constexpr std::string_view kDurationCount = "traceslo_request_duration_seconds_count";
constexpr std::string_view kTraces = "traceslo_traces_total";
constexpr std::string_view kErrorTraces = "traceslo_error_traces_total";
constexpr std::string_view kPartialTraces = "traceslo_partial_traces_total";

// The shortest decimal that reads back as `value`, without an exponent in the range rule
// figures live in ("14.4", "0.0005", "30"; "1e-09").
std::string Number(double value) {
  char buffer[400];
  const double magnitude = std::fabs(value);
  const bool fixed = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
  auto [end, ec] =
      fixed ? std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed)
            : std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, end);
}

// `text` as RE2 matches it literally (Go's regexp.QuoteMeta set).
std::string RegexQuote(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (std::string_view("\\.+*?()|[]{}^$").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Annotation text shown as written: Prometheus expands annotations as Go templates, so every
// "{{" becomes an action printing "{{".
std::string TemplateLiteral(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "{{") == 0) {
      out += R"({{ "{{" }})";
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

// One line of the header comment: control characters would end the comment.
std::string CommentText(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// The `le` matcher of the bucket whose bound is `threshold`, if there is one. /metrics writes
// bounds as "0.5", "1", "2.5"; Prometheus 3 stores whole numbers as "1.0", so those match both.
std::optional<std::string> BucketMatcher(milliseconds threshold) {
  for (double bound : pipeline::kClassicBoundsSeconds) {
    if (std::llround(bound * 1000) != threshold.count()) continue;
    const std::string text = Number(bound);
    if (text.find_first_not_of("0123456789") == std::string::npos) {
      return "le=~" + PromQlString(text + "|" + text + "\\.0");
    }
    return "le=" + PromQlString(text);
  }
  return std::nullopt;
}

// 0.99 → "99", 0.999 → "99.9".
std::string Percentile(double quantile) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", quantile * 100);
  return buffer;
}

std::string BucketBoundsText() {
  std::string out;
  for (double bound : pipeline::kClassicBoundsSeconds) {
    if (!out.empty()) out += ", ";
    const int64_t ms = std::llround(bound * 1000);
    out += ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
  }
  return out;
}

// The label matchers of the SLO's series, without braces: service, then the operation filter
// (`operation` first, then `exclude_operations`, as Filter::Matches applies them).
std::string SeriesMatchers(const Slo& slo) {
  std::string out = "service=" + PromQlString(slo.service);
  const Filter& filter = slo.filter;
  if (filter.operations.size() == 1) {
    out += ",operation=" + PromQlString(filter.operations.front());
  } else if (filter.operations.size() > 1) {
    std::string alternatives;
    for (const std::string& op : filter.operations) {
      if (!alternatives.empty()) alternatives += '|';
      alternatives += RegexQuote(op);
    }
    out += ",operation=~" + PromQlString(alternatives);
  }
  for (const std::string& op : filter.exclude_operations) {
    out += ",operation!=" + PromQlString(op);
  }
  return out;
}

std::string Selector(std::string_view metric, const std::string& matchers) {
  return std::string(metric) + "{" + matchers + "}";
}

// What an SLI counts, as PromQL over the exported counters.
struct SliQueries {
  std::string bad;    // counter of bad events (selector); empty for kLatency
  std::string total;  // counter of all events (selector)
  std::string good;   // kLatency: counter of good events (selector)
};

SliQueries QueriesOf(const Slo& slo, const std::string& le_matcher) {
  const std::string series = SeriesMatchers(slo);
  const std::string service = "service=" + PromQlString(slo.service);
  switch (slo.sli.kind) {
    case SliKind::kErrors:
      return {.bad = Selector(kRequestErrors, series), .total = Selector(kRequests, series)};
    case SliKind::kLatency:
    case SliKind::kLatencyQuantile:
      return {.total = Selector(kDurationCount, series),
              .good = Selector(kDurationBucket, series + "," + le_matcher)};
    case SliKind::kErrorTraces:
      return {.bad = Selector(
                  kErrorTraces,
                  service + ",role=" +
                      PromQlString(slo.sli.error_traces.role == ErrorTraceRole::kRoot ? "root"
                                                                                      : "origin")),
              .total = Selector(kTraces, service)};
    case SliKind::kPartialTraces:
      return {.bad = Selector(kPartialTraces, service), .total = Selector(kTraces, service)};
  }
  return {};
}

std::string Rate(const std::string& selector, const std::string& window) {
  return "sum(rate(" + selector + "[" + window + "]))";
}

std::string Increase(const std::string& selector, const std::string& window) {
  return "sum(increase(" + selector + "[" + window + "]))";
}

// Bad events / all events over `window`: the SLI's error ratio.
std::string ErrorRatioExpr(const SliQueries& q, const std::string& window) {
  if (!q.good.empty()) {
    return "(\n  " + Rate(q.total, window) + "\n  -\n  " + Rate(q.good, window) + "\n)\n/\n" +
           Rate(q.total, window);
  }
  return Rate(q.bad, window) + "\n/\n" + Rate(q.total, window);
}

std::string Indent(const std::string& text, std::string_view prefix) {
  std::string out(prefix);
  for (char c : text) {
    out += c;
    if (c == '\n') out += prefix;
  }
  return out;
}

// --- Rules and their YAML ------------------------------------------------------------------

struct Rule {
  std::string record;  // or
  std::string alert;
  std::string expr;
  milliseconds for_duration{0};
  Labels labels;
  Labels annotations;
};

struct Group {
  std::string name;
  std::vector<Rule> rules;
};

void EmitMap(YAML::Emitter& out, const Labels& map) {
  out << YAML::BeginMap;
  // Always quoted: a value like "true" or "99.9" stays a string for every YAML reader.
  for (const auto& [name, value] : map) {
    out << YAML::Key << name << YAML::Value << YAML::DoubleQuoted << value;
  }
  out << YAML::EndMap;
}

void EmitGroups(YAML::Emitter& out, const std::vector<Group>& groups) {
  out << YAML::BeginMap << YAML::Key << "groups" << YAML::Value;
  if (groups.empty()) out << YAML::Flow;  // "groups: []"
  out << YAML::BeginSeq;
  for (const Group& group : groups) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << group.name;
    out << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
    for (const Rule& rule : group.rules) {
      out << YAML::BeginMap;
      if (!rule.record.empty()) {
        out << YAML::Key << "record" << YAML::Value << rule.record;
      } else {
        out << YAML::Key << "alert" << YAML::Value << rule.alert;
      }
      out << YAML::Key << "expr" << YAML::Value;
      if (rule.expr.find('\n') != std::string::npos) out << YAML::Literal;
      out << rule.expr;
      if (rule.for_duration.count() > 0) {
        out << YAML::Key << "for" << YAML::Value << PrometheusDuration(rule.for_duration);
      }
      if (!rule.labels.empty()) {
        out << YAML::Key << "labels" << YAML::Value;
        EmitMap(out, rule.labels);
      }
      if (!rule.annotations.empty()) {
        out << YAML::Key << "annotations" << YAML::Value;
        EmitMap(out, rule.annotations);
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

// --- One SLO ---------------------------------------------------------------------------------

class SloRules {
 public:
  SloRules(const Slo& slo, const std::string& le_matcher, const PrometheusRulesOptions& options)
      : slo_(slo), queries_(QueriesOf(slo, le_matcher)), options_(options) {
    id_ = slo.service + "-" + slo.name;
    id_labels_ = {{std::string(kIdLabel), id_},
                  {std::string(kServiceLabel), slo.service},
                  {std::string(kSloLabel), slo.name}};
    id_filter_ = "{" + std::string(kIdLabel) + "=" + PromQlString(id_) + "," +
                 std::string(kServiceLabel) + "=" + PromQlString(slo.service) + "," +
                 std::string(kSloLabel) + "=" + PromQlString(slo.name) + "}";
  }

  const std::string& id() const { return id_; }

  // Prometheus expands alert labels as templates, like annotations: keep them as written.
  static Labels LiteralLabels(Labels labels) {
    for (auto& [name, value] : labels) value = TemplateLiteral(value);
    return labels;
  }

  // The SLI's error ratio over every window its tiers read, the dashboards' 5m and the
  // compliance window; shortest first.
  std::vector<Rule> SliRecordings() const {
    std::vector<Rule> rules;
    for (milliseconds window : Windows()) {
      const std::string w = PrometheusDuration(window);
      Rule rule;
      rule.record = SliMetric(window);
      rule.expr = ErrorRatioExpr(queries_, w);
      rule.labels = SeriesLabels();
      rule.labels[std::string(kWindowLabel)] = w;
      rules.push_back(std::move(rule));
    }
    return rules;
  }

  std::vector<Rule> MetadataRecordings() const {
    const Labels labels = SeriesLabels();
    std::vector<Rule> rules;
    auto record = [&](std::string name, std::string expr, Labels extra = {}) {
      Rule rule;
      rule.record = std::move(name);
      rule.expr = std::move(expr);
      rule.labels = labels;
      for (auto& [k, v] : extra) rule.labels[k] = v;
      rules.push_back(std::move(rule));
    };
    const std::vector<milliseconds> windows = Windows();
    const milliseconds current =
        std::find(windows.begin(), windows.end(), kDashboardWindow) != windows.end()
            ? kDashboardWindow
            : windows.front();
    const std::string on = "on(" + std::string(kIdLabel) + ", " + std::string(kSloLabel) + ", " +
                           std::string(kServiceLabel) + ") group_left\n";
    record("slo:objective:ratio", "vector(" + Number(slo_.objective_ratio()) + ")");
    record("slo:error_budget:ratio", "vector(" + Number(slo_.error_budget_ratio()) + ")");
    record("slo:time_period:days",
           "vector(" + Number(static_cast<double>(slo_.window.count()) / 86'400'000.0) + ")");
    record("slo:current_burn_rate:ratio",
           SliMetric(current) + id_filter_ + "\n/ " + on + "slo:error_budget:ratio" + id_filter_);
    record("slo:period_burn_rate:ratio", SliMetric(slo_.window) + id_filter_ + "\n/ " + on +
                                             "slo:error_budget:ratio" + id_filter_);
    record("slo:period_error_budget_remaining:ratio",
           "1 - slo:period_burn_rate:ratio" + id_filter_);
    record("sloth_slo_info", "vector(1)",
           {{"sloth_version", options_.version},
            {"sloth_mode", "cli-gen-prom"},
            {"sloth_spec", "traceslo/v1"},
            {"sloth_objective", Number(slo_.objective_percent)}});
    return rules;
  }

  // One alert per severity that has tiers: any tier's long AND short window at or above
  // burn_rate × (1 − objective), with min_events in the short window.
  std::optional<Rule> BurnRateAlert(Severity severity) const {
    std::vector<const BurnRateTier*> tiers;
    for (const BurnRateTier& tier : slo_.alerting.tiers) {
      if (tier.severity == severity) tiers.push_back(&tier);
    }
    if (tiers.empty()) return std::nullopt;
    const std::string budget = Number(slo_.error_budget_ratio());
    std::string body;
    for (const BurnRateTier* tier : tiers) {
      const std::string threshold = "(" + Number(tier->burn_rate) + " * " + budget + ")";
      std::string condition = "(" + SliMetric(tier->short_window) + id_filter_ +
                              " >= " + threshold + ")\nand ignoring (" + std::string(kWindowLabel) +
                              ")\n(" + SliMetric(tier->long_window) + id_filter_ +
                              " >= " + threshold + ")";
      if (slo_.alerting.min_events > 0) {
        condition += "\nand on ()\n(" +
                     Increase(queries_.total, PrometheusDuration(tier->short_window)) +
                     " >= " + std::to_string(slo_.alerting.min_events) + ")";
      }
      if (!body.empty()) body += "\nor ignoring (" + std::string(kWindowLabel) + ")\n";
      body += "(\n" + Indent(condition, "  ") + "\n)";
    }
    Rule rule;
    rule.alert = "SloBurnRate";
    rule.expr = "max without (" + std::string(kWindowLabel) + ") (\n" + Indent(body, "  ") + "\n)";
    rule.labels = AlertLabels(slo_, severity);
    for (const auto& [k, v] : id_labels_) rule.labels[k] = v;
    rule.labels[std::string(kSeverityLabel)] = std::string(SeverityName(severity));
    rule.labels = LiteralLabels(std::move(rule.labels));
    rule.annotations =
        Annotations(slo_.service + " " + slo_.name + ": the error budget is burning too fast (" +
                    std::string(SeverityName(severity)) + " tiers)");
    return rule;
  }

  // latency_quantile: the quantile over the window above the threshold, i.e. fewer than
  // `quantile` of the requests at or under it (exact at a bucket bound), with min_events.
  Rule LatencyQuantileAlert() const {
    const LatencyQuantileSli& q = slo_.sli.latency_quantile;
    const std::string w = PrometheusDuration(q.window);
    const std::string matchers = SeriesMatchers(slo_);
    std::string expr = "histogram_quantile(" + Number(q.quantile) + ", sum by (le) (rate(" +
                       Selector(kDurationBucket, matchers) + "[" + w + "])))\nand on ()\n(\n  " +
                       Rate(queries_.good, w) + "\n  /\n  " + Rate(queries_.total, w) + "\n  < " +
                       Number(q.quantile) + "\n)";
    if (slo_.alerting.min_events > 0) {
      expr += "\nand on ()\n(" + Increase(queries_.total, w) +
              " >= " + std::to_string(slo_.alerting.min_events) + ")";
    }
    Rule rule;
    rule.alert = "SloLatencyQuantile";
    rule.expr = std::move(expr);
    rule.for_duration = q.for_duration;
    rule.labels = AlertLabels(slo_, slo_.alerting.severity);
    for (const auto& [k, v] : id_labels_) rule.labels[k] = v;
    rule.labels = LiteralLabels(std::move(rule.labels));
    rule.annotations = Annotations(slo_.service + " " + slo_.name + ": p" + Percentile(q.quantile) +
                                   " above " + config::FormatDuration(q.threshold) + " over " +
                                   config::FormatDuration(q.window));
    return rule;
  }

  // No event at all over `for` (the SLI's total counter did not move).
  std::optional<Rule> NoDataRule() const {
    if (!slo_.alerting.no_data) return std::nullopt;
    const slo::NoDataAlert& no_data = *slo_.alerting.no_data;
    Rule rule;
    rule.alert = "SloNoData";
    rule.expr = Increase(queries_.total, PrometheusDuration(no_data.for_duration)) + " == 0";
    rule.labels = AlertLabels(slo_, no_data.severity);
    for (const auto& [k, v] : id_labels_) rule.labels[k] = v;
    rule.labels = LiteralLabels(std::move(rule.labels));
    rule.annotations = Annotations(slo_.service + " " + slo_.name + ": no events for " +
                                   config::FormatDuration(no_data.for_duration));
    return rule;
  }

 private:
  std::string SliMetric(milliseconds window) const {
    return std::string(kSliErrorMetric) + PrometheusDuration(window);
  }

  // The labels of every recorded series: the rule's labels, service and slo (as on traceslo's
  // own metrics, for joins), then Sloth's id labels.
  Labels SeriesLabels() const {
    Labels labels = slo_.alerting.labels;
    labels["service"] = slo_.service;
    labels["slo"] = slo_.name;
    for (const auto& [k, v] : id_labels_) labels[k] = v;
    return labels;
  }

  std::vector<milliseconds> Windows() const {
    std::vector<milliseconds> windows;
    for (const BurnRateTier& tier : slo_.alerting.tiers) {
      windows.push_back(tier.short_window);
      windows.push_back(tier.long_window);
    }
    if (kDashboardWindow < slo_.window) windows.push_back(kDashboardWindow);
    windows.push_back(slo_.window);
    std::sort(windows.begin(), windows.end());
    windows.erase(std::unique(windows.begin(), windows.end()), windows.end());
    return windows;
  }

  Labels Annotations(const std::string& default_summary) const {
    Labels annotations;
    for (const auto& [name, text] : slo_.alerting.annotations) {
      annotations[name] = TemplateLiteral(text);
    }
    if (!annotations.contains("summary")) annotations["summary"] = TemplateLiteral(default_summary);
    if (!slo_.description.empty() && !annotations.contains("description")) {
      annotations["description"] = TemplateLiteral(slo_.description);
    }
    return annotations;
  }

  const Slo& slo_;
  const SliQueries queries_;
  const PrometheusRulesOptions& options_;
  std::string id_;
  Labels id_labels_;
  std::string id_filter_;
};

// Why `slo` cannot be computed from the exported metrics, if it cannot.
std::optional<std::string> Unsupported(const Slo& slo) {
  std::optional<milliseconds> threshold;
  if (slo.sli.kind == SliKind::kLatency) threshold = slo.sli.latency.threshold;
  if (slo.sli.kind == SliKind::kLatencyQuantile) threshold = slo.sli.latency_quantile.threshold;
  if (threshold && !BucketMatcher(*threshold)) {
    return "latency threshold " + config::FormatDuration(*threshold) +
           " is not a bucket bound of traceslo_request_duration_seconds (" + BucketBoundsText() +
           "), so Prometheus cannot count the requests above it; SLO skipped (use one of those "
           "thresholds to generate it)";
  }
  return std::nullopt;
}

std::string Header(const PrometheusRulesOptions& options,
                   const std::vector<PrometheusRulesWarning>& warnings) {
  std::string out = "# Generated by traceslo " + CommentText(options.version) +
                    " (traceslo generate prometheus-rules). DO NOT EDIT: change the rule files\n"
                    "# and generate again. Reference: docs/prometheus-rules.md\n";
  if (!options.source_files.empty()) {
    out += "# From:\n";
    for (const std::string& file : options.source_files) out += "#   " + CommentText(file) + "\n";
  }
  if (!warnings.empty()) {
    out += "# Skipped:\n";
    for (const PrometheusRulesWarning& w : warnings) {
      out += "#   " + CommentText(w.ToString()) + "\n";
    }
  }
  return out;
}

}  // namespace

std::string PrometheusRulesWarning::ToString() const {
  return source + ": " + service + "/" + slo + ": " + message;
}

std::string PrometheusDuration(milliseconds duration) {
  // Prometheus writes whole years and weeks as such (28d is "4w"); the rest as config durations.
  constexpr int64_t kWeek = 7 * 86'400'000, kYear = 365 * 86'400'000LL;
  const int64_t ms = duration.count();
  if (ms <= 0) return "0s";
  if (ms % kYear == 0) return std::to_string(ms / kYear) + "y";
  if (ms % kWeek == 0) return std::to_string(ms / kWeek) + "w";
  return config::FormatDuration(duration);
}

// PromQL string literals take Go's escapes, of which JSON's (\", \\, \n, \r, \t, \uXXXX) are a
// subset: a JSON string is a valid PromQL string.
std::string PromQlString(std::string_view value) {
  std::string out;
  AppendJsonString(out, value);
  return out;
}

absl::StatusOr<PrometheusRules> GeneratePrometheusRules(const std::vector<RuleFile>& files,
                                                        const PrometheusRulesOptions& options) {
  PrometheusRules result;
  std::vector<Group> groups;
  std::set<std::string> group_names;
  // Group names must be unique in a rule file; "<service>-<slo>" can repeat ("a-b"/"c" and
  // "a"/"b-c"), so a repeat gets a number.
  auto unique_name = [&group_names](const std::string& name) {
    std::string candidate = name;
    for (int n = 2; !group_names.insert(candidate).second; ++n) {
      candidate = name + "-" + std::to_string(n);
    }
    return candidate;
  };
  for (const RuleFile& file : files) {
    for (const Slo& slo : file.slos) {
      if (std::optional<std::string> why = Unsupported(slo)) {
        result.warnings.push_back({slo.source, slo.service, slo.name, *why});
        ++result.slos_skipped;
        continue;
      }
      const milliseconds threshold = slo.sli.kind == SliKind::kLatencyQuantile
                                         ? slo.sli.latency_quantile.threshold
                                         : slo.sli.latency.threshold;
      SloRules rules(slo, BucketMatcher(threshold).value_or(""), options);
      std::vector<Rule> alerts;
      if (slo.sli.kind == SliKind::kLatencyQuantile) {
        alerts.push_back(rules.LatencyQuantileAlert());
      } else {
        groups.push_back(
            {unique_name("sloth-slo-sli-recordings-" + rules.id()), rules.SliRecordings()});
        groups.push_back(
            {unique_name("sloth-slo-meta-recordings-" + rules.id()), rules.MetadataRecordings()});
        for (Severity severity : {Severity::kPage, Severity::kTicket}) {
          if (std::optional<Rule> alert = rules.BurnRateAlert(severity)) {
            alerts.push_back(*std::move(alert));
          }
        }
      }
      if (std::optional<Rule> alert = rules.NoDataRule()) alerts.push_back(*std::move(alert));
      if (!alerts.empty()) {
        groups.push_back({unique_name("sloth-slo-alerts-" + rules.id()), std::move(alerts)});
      }
      ++result.slos_generated;
    }
  }
  if (options.strict && !result.warnings.empty()) {
    std::string message;
    for (const PrometheusRulesWarning& w : result.warnings) {
      if (!message.empty()) message += '\n';
      message += w.ToString();
    }
    return absl::InvalidArgumentError(message);
  }
  for (const Group& group : groups) result.rules += group.rules.size();
  try {
    YAML::Emitter out;
    out.SetIndent(2);
    EmitGroups(out, groups);
    if (!out.good()) return absl::InternalError("YAML emitter: " + out.GetLastError());
    result.yaml = Header(options, result.warnings) + out.c_str() + "\n";
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory while writing the rules");
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("YAML emitter: ") + e.what());
  }
  return result;
}

}  // namespace traceslo::slo
