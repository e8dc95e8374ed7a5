#include "traceslo/slo/rule_file.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "services/slo/diagnostic_reader.h"
#include "traceslo/config/config.h"
#include "traceslo/config/yaml_document.h"

namespace traceslo::slo {
namespace {

using config::FormatDuration;
using config::QuoteForMessage;
using config::YamlKindName;
using config::YamlMark;
using config::YamlNode;
using std::chrono::milliseconds;
using Keys = std::initializer_list<std::string_view>;
using Kind = YamlNode::Kind;

// Rule files are a few levels deep; these bound the work a hostile or broken file can cause.
constexpr config::YamlLimits kYamlLimits{.max_depth = 64, .max_nodes = 100'000};
constexpr milliseconds kMaxComplianceWindow{366LL * 86'400'000};
constexpr milliseconds kMaxLatencyThreshold{3'600'000};  // the latency sketch's range
constexpr milliseconds kMaxQuantileWindow{86'400'000};
constexpr size_t kMaxTiersPerSeverity = 8;
constexpr size_t kMaxOperations = 256;
constexpr size_t kMaxMapEntries = 64;  // labels, annotations
constexpr size_t kMaxServiceBytes = 256;
constexpr size_t kMaxNameBytes = 64;
constexpr uint64_t kMaxMinEvents = 1'000'000'000;

// ---------------------------------------------------------------------------------------------
// Formatting.

// The shortest text that reads back as `value`: echoes what the user wrote (99.99999, 14.4).
std::string Shortest(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec != std::errc()) return "?";
  return std::string(buffer, end);
}

// A computed figure, to 4 significant digits (144, 0.2592, 13.44).
std::string Figure(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return buffer;
}

std::string Percent(double value) { return Shortest(value) + "%"; }

bool IsLabelNameStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool IsLabelNameChar(char c) { return IsLabelNameStart(c) || (c >= '0' && c <= '9'); }
bool IsLabelName(std::string_view name) {
  return !name.empty() && IsLabelNameStart(name[0]) &&
         std::all_of(name.begin(), name.end(), IsLabelNameChar);
}
bool IsSloNameChar(char c) { return IsLabelNameChar(c) || c == '-' || c == '.'; }

// ---------------------------------------------------------------------------------------------
// Reading one file's tree. Every problem is recorded and the walk goes on, so one run reports
// them all; checks that combine several keys run only when each of those keys was valid, so one
// mistake is reported once.

// What an SLO's alerting needs to know about the rest of the SLO.
struct SloContext {
  std::string path;  // "slos[0]"
  SliKind kind = SliKind::kErrors;
  std::optional<double> objective;  // valid objectives only
  const YamlNode* objective_node = nullptr;
  std::optional<milliseconds> window;  // valid compliance windows only (default included)
  const Labels* file_labels = nullptr;
};

struct ParsedFile {
  std::optional<RuleFile> file;  // set when the file had no problem
  std::optional<std::pair<std::string, YamlMark>>
      service;  // a valid service, for cross-file checks
  size_t slos_seen = 0;
};

class Reader : public DiagnosticReader {
 public:
  using DiagnosticReader::DiagnosticReader;

  ParsedFile ReadFile(const YamlNode* root);

 private:
  // Also explains a trailing "%" (objectives and ratios are percentages already).
  std::optional<double> Number(const YamlNode& node, std::string_view path);
  // A whole number of kResolution buckets, at least one, at most `max`.
  std::optional<milliseconds> Window(const YamlNode& node, std::string_view path, milliseconds max);
  // A duration > 0 and <= kMaxLatencyThreshold.
  std::optional<milliseconds> Threshold(const YamlNode& node, std::string_view path);
  std::optional<Severity> ReadSeverity(const YamlNode& node, std::string_view path);
  // A string or a list of strings, each non-empty.
  std::optional<std::vector<std::string>> Strings(const YamlNode& node, std::string_view path,
                                                  bool allow_single);
  // A mapping of label names to non-empty strings. `allow_severity`: only per-severity labels
  // may rename the severity label.
  std::optional<Labels> ReadLabels(const YamlNode& node, std::string_view path,
                                   bool allow_severity);
  std::optional<Labels> ReadAnnotations(const YamlNode& node, std::string_view path);

  std::optional<Slo> ReadSlo(const YamlNode& node, const std::string& path,
                             const Labels& file_labels);
  // `declared`: the kind named first, even when its parameters have problems.
  std::optional<Sli> ReadSli(const YamlNode& node, const std::string& path,
                             std::optional<SliKind>& declared);
  std::optional<Filter> ReadFilter(const YamlNode& node, const std::string& path);
  std::optional<Alerting> ReadAlerting(const YamlNode* node, const SloContext& slo);
  // Reads alerting.page / alerting.ticket into `alerting` (tiers and labels).
  // Default tiers it adds are appended to `defaults` too, for CheckDefaultTiers().
  bool ReadSeverityTiers(const YamlNode* node, Severity severity, const SloContext& slo,
                         Alerting& alerting, std::vector<BurnRateTier>& defaults);
  std::optional<BurnRateTier> ReadTier(const YamlNode& node, const std::string& path,
                                       Severity severity, const SloContext& slo);
  std::optional<NoDataAlert> ReadNoData(const YamlNode& node, const std::string& path);
  // Reports default tiers that cannot fire with this objective (at the objective).
  void CheckDefaultTiers(const std::vector<BurnRateTier>& tiers, const SloContext& slo);
};

std::optional<double> Reader::Number(const YamlNode& node, std::string_view path) {
  // Such text never parses as a number, so this only adds to the message the base would give.
  if (node.kind == Kind::kScalar && !node.value.empty() && node.value.back() == '%') {
    Error(node.mark, std::string(path) + " must be a number, got " + QuoteForMessage(node.value) +
                         " (it is a percentage already: write it without \"%\")");
    return std::nullopt;
  }
  return DiagnosticReader::Number(node, path);
}

std::optional<milliseconds> Reader::Window(const YamlNode& node, std::string_view path,
                                           milliseconds max) {
  std::optional<milliseconds> window = Duration(node, path);
  if (!window) return std::nullopt;
  const std::string resolution = FormatDuration(kResolution);
  if (*window < kResolution) {
    Error(node.mark, std::string(path) + " must be at least " + resolution +
                         " (the SLI bucket), got " + FormatDuration(*window));
    return std::nullopt;
  }
  if (window->count() % kResolution.count() != 0) {
    Error(node.mark, std::string(path) + " must be a multiple of " + resolution +
                         " (the SLI bucket), got " + FormatDuration(*window));
    return std::nullopt;
  }
  if (*window > max) {
    Error(node.mark, std::string(path) + " must be at most " + FormatDuration(max) + ", got " +
                         FormatDuration(*window));
    return std::nullopt;
  }
  return window;
}

std::optional<milliseconds> Reader::Threshold(const YamlNode& node, std::string_view path) {
  std::optional<milliseconds> threshold = Duration(node, path);
  if (!threshold) return std::nullopt;
  if (threshold->count() <= 0) {
    Error(node.mark,
          std::string(path) + " must be greater than 0, got " + QuoteForMessage(node.value));
    return std::nullopt;
  }
  if (*threshold > kMaxLatencyThreshold) {
    Error(node.mark, std::string(path) + " must be at most " +
                         FormatDuration(kMaxLatencyThreshold) +
                         " (the range of the latency sketch), got " + FormatDuration(*threshold));
    return std::nullopt;
  }
  return threshold;
}

std::optional<Severity> Reader::ReadSeverity(const YamlNode& node, std::string_view path) {
  if (node.kind == Kind::kScalar) {
    if (node.value == "page") return Severity::kPage;
    if (node.value == "ticket") return Severity::kTicket;
  }
  Error(node.mark, std::string(path) + " must be page or ticket, got " +
                       (node.kind == Kind::kScalar ? QuoteForMessage(node.value)
                                                   : std::string(YamlKindName(node.kind))));
  return std::nullopt;
}

std::optional<std::vector<std::string>> Reader::Strings(const YamlNode& node, std::string_view path,
                                                        bool allow_single) {
  if (allow_single && node.kind == Kind::kScalar) {
    if (node.value.empty()) {
      Error(node.mark, std::string(path) + " must not be empty");
      return std::nullopt;
    }
    return std::vector<std::string>{node.value};
  }
  if (node.kind != Kind::kSequence) {
    Error(node.mark, std::string(path) +
                         (allow_single ? " must be a string or a list of strings, got "
                                       : " must be a list of strings, got ") +
                         YamlKindName(node.kind));
    return std::nullopt;
  }
  if (node.items.size() > kMaxOperations) {
    Error(node.mark, std::string(path) + " has " + std::to_string(node.items.size()) +
                         " items; at most " + std::to_string(kMaxOperations) + " are allowed");
    return std::nullopt;
  }
  std::vector<std::string> values;
  bool ok = true;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const YamlNode& item = *node.items[i];
    const std::string item_path = Index(path, i);
    if (item.kind != Kind::kScalar || item.value.empty()) {
      Error(item.mark, item_path + " must be a non-empty string, got " +
                           (item.kind == Kind::kScalar ? std::string("an empty string")
                                                       : std::string(YamlKindName(item.kind))));
      ok = false;
      continue;
    }
    values.push_back(item.value);
  }
  if (!ok) return std::nullopt;
  return values;
}

std::optional<Labels> Reader::ReadLabels(const YamlNode& node, std::string_view path,
                                         bool allow_severity) {
  if (node.kind == Kind::kNull) return Labels{};
  if (node.kind != Kind::kMapping) {
    Error(node.mark, std::string(path) + " must be a mapping of label names to values, got " +
                         YamlKindName(node.kind));
    return std::nullopt;
  }
  if (node.entries.size() > kMaxMapEntries) {
    Error(node.mark, std::string(path) + " has " + std::to_string(node.entries.size()) +
                         " labels; at most " + std::to_string(kMaxMapEntries) + " are allowed");
    return std::nullopt;
  }
  Labels labels;
  std::map<std::string, YamlMark> seen;
  bool ok = true;
  for (const auto& [key_node, value] : node.entries) {
    if (key_node->kind != Kind::kScalar || !IsLabelName(key_node->value) ||
        key_node->value.starts_with("__")) {
      Error(key_node->mark,
            std::string(path) +
                ": label names must match [a-zA-Z_][a-zA-Z0-9_]* and not start "
                "with \"__\", got " +
                (key_node->kind == Kind::kScalar ? QuoteForMessage(key_node->value)
                                                 : std::string(YamlKindName(key_node->kind))));
      ok = false;
      continue;
    }
    const std::string& name = key_node->value;
    const std::string label_path = Child(path, name);
    if (name == "service" || name == "slo" || name == "alertname") {
      Error(key_node->mark,
            label_path + ": the " + name + " label is set by traceslo and cannot be overridden");
      ok = false;
      continue;
    }
    if (name == "severity" && !allow_severity) {
      Error(key_node->mark, label_path +
                                ": the severity label is set per tier (page or ticket); rename it "
                                "in alerting.page.labels or alerting.ticket.labels");
      ok = false;
      continue;
    }
    if (auto it = seen.find(name); it != seen.end()) {
      Error(key_node->mark,
            "duplicate label " + label_path + " (first set at " + Position(it->second) + ")");
      ok = false;
      continue;
    }
    seen.emplace(name, key_node->mark);
    if (value->kind != Kind::kScalar || value->value.empty() || !IsPrintable(value->value)) {
      Error(value->mark, label_path +
                             " must be a non-empty string without control characters, "
                             "got " +
                             (value->kind == Kind::kScalar
                                  ? (value->value.empty() ? std::string("an empty string")
                                                          : QuoteForMessage(value->value))
                                  : std::string(YamlKindName(value->kind))));
      ok = false;
      continue;
    }
    labels[name] = value->value;
  }
  if (!ok) return std::nullopt;
  return labels;
}

std::optional<Labels> Reader::ReadAnnotations(const YamlNode& node, std::string_view path) {
  if (node.kind == Kind::kNull) return Labels{};
  if (node.kind != Kind::kMapping) {
    Error(node.mark, std::string(path) + " must be a mapping of names to text, got " +
                         YamlKindName(node.kind));
    return std::nullopt;
  }
  if (node.entries.size() > kMaxMapEntries) {
    Error(node.mark, std::string(path) + " has " + std::to_string(node.entries.size()) +
                         " annotations; at most " + std::to_string(kMaxMapEntries) +
                         " are allowed");
    return std::nullopt;
  }
  Labels annotations;
  std::map<std::string, YamlMark> seen;
  bool ok = true;
  for (const auto& [key_node, value] : node.entries) {
    if (key_node->kind != Kind::kScalar || !IsLabelName(key_node->value)) {
      Error(key_node->mark,
            std::string(path) + ": annotation names must match [a-zA-Z_][a-zA-Z0-9_]*, got " +
                (key_node->kind == Kind::kScalar ? QuoteForMessage(key_node->value)
                                                 : std::string(YamlKindName(key_node->kind))));
      ok = false;
      continue;
    }
    const std::string& name = key_node->value;
    const std::string annotation_path = Child(path, name);
    if (auto it = seen.find(name); it != seen.end()) {
      Error(key_node->mark, "duplicate annotation " + annotation_path + " (first set at " +
                                Position(it->second) + ")");
      ok = false;
      continue;
    }
    seen.emplace(name, key_node->mark);
    std::optional<std::string> text = String(*value, annotation_path);
    if (!text) {
      ok = false;
      continue;
    }
    if (name == "runbook_url") {
      std::string_view rest = *text;
      bool http = rest.starts_with("http://");
      bool https = rest.starts_with("https://");
      rest.remove_prefix(http ? 7 : https ? 8 : 0);
      if ((!http && !https) || rest.empty() || rest.front() == '/' ||
          std::any_of(text->begin(), text->end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20; })) {
        Error(value->mark, annotation_path + " must be an absolute http:// or https:// URL, got " +
                               QuoteForMessage(*text));
        ok = false;
        continue;
      }
    }
    annotations[name] = std::move(*text);
  }
  if (!ok) return std::nullopt;
  return annotations;
}

std::optional<Sli> Reader::ReadSli(const YamlNode& node, const std::string& path,
                                   std::optional<SliKind>& declared) {
  const Keys kKinds = {"errors", "latency", "error_traces", "partial_traces", "latency_quantile"};
  std::optional<Fields> fields = Mapping(node, path, kKinds);
  if (!fields) return std::nullopt;
  const std::vector<Fields::Entry>& kinds = fields->entries();
  if (kinds.empty()) {
    if (node.entries.empty()) {  // unknown keys were reported already
      Error(node.mark, path + " must name one kind: " + config::JoinKeys(kKinds));
    }
    return std::nullopt;
  }
  bool ok = true;
  if (kinds.size() > 1) {
    std::string names;
    for (const Fields::Entry& entry : kinds) {
      names += (names.empty() ? "" : ", ") + std::string(entry.key);
    }
    Error(kinds[1].key_node->mark, path + " names " + std::to_string(kinds.size()) + " kinds (" +
                                       names +
                                       "); an SLO has exactly one SLI: write one SLO per kind");
    ok = false;
  }
  Sli sli;
  for (size_t k = 0; k < kinds.size(); ++k) {
    const Fields::Entry& entry = kinds[k];
    const std::string kind_path = Child(path, entry.key);
    const YamlNode& params = *entry.value;
    SliKind kind = SliKind::kErrors;
    if (entry.key == "errors" || entry.key == "partial_traces") {
      kind = entry.key == "errors" ? SliKind::kErrors : SliKind::kPartialTraces;
      if (!Mapping(params, kind_path, {})) ok = false;
    } else if (entry.key == "latency") {
      kind = SliKind::kLatency;
      std::optional<Fields> p = Mapping(params, kind_path, {"threshold"});
      if (!p) {
        ok = false;
      } else if (const YamlNode* threshold = p->Value("threshold")) {
        std::optional<milliseconds> value = Threshold(*threshold, Child(kind_path, "threshold"));
        if (value) sli.latency.threshold = *value;
        ok = ok && value.has_value();
      } else {
        Required(*p, params, kind_path, "threshold");
        ok = false;
      }
    } else if (entry.key == "error_traces") {
      kind = SliKind::kErrorTraces;
      std::optional<Fields> p = Mapping(params, kind_path, {"role"});
      if (!p) {
        ok = false;
      } else if (const YamlNode* role = p->Value("role")) {
        if (role->kind == Kind::kScalar && role->value == "root") {
          sli.error_traces.role = ErrorTraceRole::kRoot;
        } else if (role->kind == Kind::kScalar && role->value == "origin") {
          sli.error_traces.role = ErrorTraceRole::kOrigin;
        } else {
          Error(role->mark,
                Child(kind_path, "role") + " must be root or origin, got " +
                    (role->kind == Kind::kScalar ? QuoteForMessage(role->value)
                                                 : std::string(YamlKindName(role->kind))));
          ok = false;
        }
      }
    } else {
      kind = SliKind::kLatencyQuantile;
      std::optional<Fields> p =
          Mapping(params, kind_path, {"quantile", "threshold", "window", "for"});
      if (!p) {
        ok = false;
      } else {
        LatencyQuantileSli& q = sli.latency_quantile;
        if (const YamlNode* quantile = p->Value("quantile")) {
          const std::string quantile_path = Child(kind_path, "quantile");
          std::optional<double> value = Number(*quantile, quantile_path);
          if (value && (*value <= 0 || *value >= 1)) {
            Error(
                quantile->mark,
                quantile_path + " must be between 0 and 1 (exclusive), got " + Shortest(*value) +
                    (*value > 1 && *value < 100 ? " (write " + Figure(*value / 100) + " for the " +
                                                      Shortest(*value) + "th percentile)"
                                                : std::string()));
            value.reset();
          }
          if (value) q.quantile = *value;
          ok = ok && value.has_value();
        } else {
          Required(*p, params, kind_path, "quantile");
          ok = false;
        }
        if (const YamlNode* threshold = p->Value("threshold")) {
          std::optional<milliseconds> value = Threshold(*threshold, Child(kind_path, "threshold"));
          if (value) q.threshold = *value;
          ok = ok && value.has_value();
        } else {
          Required(*p, params, kind_path, "threshold");
          ok = false;
        }
        if (const YamlNode* window = p->Value("window")) {
          std::optional<milliseconds> value =
              Window(*window, Child(kind_path, "window"), kMaxQuantileWindow);
          if (value) q.window = *value;
          ok = ok && value.has_value();
        }
        if (const YamlNode* for_node = p->Value("for")) {
          const std::string for_path = Child(kind_path, "for");
          std::optional<milliseconds> value = Duration(*for_node, for_path);
          if (value && value->count() % kResolution.count() != 0) {
            Error(for_node->mark,
                  for_path + " must be a multiple of " + FormatDuration(kResolution) +
                      " (the evaluation resolution), got " + FormatDuration(*value));
            value.reset();
          } else if (value && *value > kMaxQuantileWindow) {
            Error(for_node->mark, for_path + " must be at most " +
                                      FormatDuration(kMaxQuantileWindow) + ", got " +
                                      FormatDuration(*value));
            value.reset();
          }
          if (value) q.for_duration = *value;
          ok = ok && value.has_value();
        }
      }
    }
    if (k == 0) {
      sli.kind = kind;
      declared = kind;
    }
  }
  if (!ok) return std::nullopt;
  return sli;
}

std::optional<Filter> Reader::ReadFilter(const YamlNode& node, const std::string& path) {
  std::optional<Fields> fields = Mapping(node, path, {"operation", "exclude_operations"});
  if (!fields) return std::nullopt;
  Filter filter;
  bool ok = true;
  if (const YamlNode* operation = fields->Value("operation")) {
    auto operations = Strings(*operation, Child(path, "operation"), /*allow_single=*/true);
    if (operations) filter.operations = std::move(*operations);
    ok = ok && operations.has_value();
  }
  const YamlNode* exclude = fields->Value("exclude_operations");
  if (exclude != nullptr) {
    auto operations = Strings(*exclude, Child(path, "exclude_operations"), /*allow_single=*/false);
    if (operations) filter.exclude_operations = std::move(*operations);
    ok = ok && operations.has_value();
  }
  if (ok && exclude != nullptr) {
    for (size_t i = 0; i < filter.exclude_operations.size(); ++i) {
      const std::string& name = filter.exclude_operations[i];
      if (std::find(filter.operations.begin(), filter.operations.end(), name) !=
          filter.operations.end()) {
        Error(exclude->items[i]->mark, Index(Child(path, "exclude_operations"), i) + ": " +
                                           QuoteForMessage(name) +
                                           " is also listed in operation; the SLO would count "
                                           "none of it");
        ok = false;
      }
    }
  }
  if (!ok) return std::nullopt;
  return filter;
}

std::optional<BurnRateTier> Reader::ReadTier(const YamlNode& node, const std::string& path,
                                             Severity severity, const SloContext& slo) {
  std::optional<Fields> fields = Mapping(node, path, {"long", "short", "burn_rate"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with long, short and burn_rate, got null");
    return std::nullopt;
  }
  const YamlNode* long_node = fields->Value("long");
  const YamlNode* short_node = fields->Value("short");
  const YamlNode* burn_node = fields->Value("burn_rate");
  std::optional<milliseconds> long_window, short_window;
  // Plain values rather than std::optional<double>: GCC 12 warns of a maybe-uninitialized read.
  double burn_rate = 0;
  bool burn_ok = false;
  if (long_node != nullptr) {
    long_window = Window(*long_node, Child(path, "long"), kMaxComplianceWindow);
  } else {
    Required(*fields, node, path, "long");
  }
  if (short_node != nullptr) {
    short_window = Window(*short_node, Child(path, "short"), kMaxComplianceWindow);
  } else {
    Required(*fields, node, path, "short");
  }
  if (burn_node != nullptr) {
    if (std::optional<double> value = Number(*burn_node, Child(path, "burn_rate"))) {
      burn_rate = *value;
      burn_ok = burn_rate > 0;
      if (!burn_ok) {
        Error(burn_node->mark,
              Child(path, "burn_rate") + " must be greater than 0, got " + Shortest(burn_rate));
      }
    }
  } else {
    Required(*fields, node, path, "burn_rate");
  }
  bool ok = long_window && short_window && burn_ok;
  if (long_window && short_window && *short_window >= *long_window) {
    Error(short_node->mark, Child(path, "short") + " window " + FormatDuration(*short_window) +
                                " must be shorter than the long window " +
                                FormatDuration(*long_window));
    ok = false;
  }
  if (long_window && slo.window && *long_window > *slo.window) {
    Error(long_node->mark, Child(path, "long") + " window " + FormatDuration(*long_window) +
                               " is longer than the compliance window " +
                               FormatDuration(*slo.window) + " (" + slo.path + ".window)");
    ok = false;
  }
  if (burn_ok && slo.objective) {
    const double budget = (100 - *slo.objective) / 100;
    const double needed = burn_rate * budget;
    if (needed > 1 + 1e-9) {
      Error(burn_node->mark, Child(path, "burn_rate") + " " + Shortest(burn_rate) +
                                 " can never fire with objective " + Percent(*slo.objective) +
                                 ": it needs an error ratio of " + Figure(needed * 100) + "% (" +
                                 Shortest(burn_rate) + " × the " + Figure(budget * 100) +
                                 "% error budget), and at most 100% of events can fail");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return BurnRateTier{.severity = severity,
                      .long_window = *long_window,
                      .short_window = *short_window,
                      .burn_rate = burn_rate};
}

void Reader::CheckDefaultTiers(const std::vector<BurnRateTier>& tiers, const SloContext& slo) {
  if (!slo.objective) return;
  const double budget = (100 - *slo.objective) / 100;
  std::vector<const BurnRateTier*> impossible;
  for (const BurnRateTier& tier : tiers) {
    if (tier.burn_rate * budget > 1 + 1e-9) impossible.push_back(&tier);
  }
  if (impossible.empty()) return;
  // One message for all of them: they share one cause, the objective.
  const BurnRateTier& first = *impossible.front();
  const bool both = impossible.front()->severity != impossible.back()->severity;
  const std::string severity(SeverityName(first.severity));
  std::string message = slo.path + ".objective " + Percent(*slo.objective) + " leaves a " +
                        Figure(budget * 100) + "% error budget: the default " + severity +
                        " tier (" + Figure(first.burn_rate) + "× over " +
                        FormatDuration(first.long_window) + "/" +
                        FormatDuration(first.short_window) + ") needs an error ratio of " +
                        Figure(first.burn_rate * budget * 100) + "% and can never fire";
  if (impossible.size() > 1) {
    message += " (nor can " + std::to_string(impossible.size() - 1) + " more default tier" +
               (impossible.size() > 2 ? "s" : "") + ")";
  }
  if (both) {
    message +=
        "; set alerting.page.windows and alerting.ticket.windows with lower burn rates, "
        "or enabled: false";
  } else {
    message += "; set alerting." + severity + ".windows with lower burn rates, or alerting." +
               severity + ".enabled: false";
  }
  Error(slo.objective_node->mark, std::move(message));
}

bool Reader::ReadSeverityTiers(const YamlNode* node, Severity severity, const SloContext& slo,
                               Alerting& alerting, std::vector<BurnRateTier>& defaults) {
  const std::string path = slo.path + ".alerting." + std::string(SeverityName(severity));
  std::optional<Fields> fields;
  if (node != nullptr) {
    fields = Mapping(*node, path, {"enabled", "windows", "labels"});
    if (!fields) return false;
  }
  bool ok = true;
  bool enabled = true;
  if (const YamlNode* enabled_node = fields ? fields->Value("enabled") : nullptr) {
    std::optional<bool> value = Bool(*enabled_node, Child(path, "enabled"));
    if (value) enabled = *value;
    ok = ok && value.has_value();
  }
  if (const YamlNode* labels_node = fields ? fields->Value("labels") : nullptr) {
    std::optional<Labels> labels =
        ReadLabels(*labels_node, Child(path, "labels"), /*allow_severity=*/true);
    if (labels) {
      (severity == Severity::kPage ? alerting.page_labels : alerting.ticket_labels) =
          std::move(*labels);
    }
    ok = ok && labels.has_value();
  }
  std::vector<BurnRateTier> tiers;
  if (const YamlNode* windows = fields ? fields->Value("windows") : nullptr) {
    const std::string windows_path = Child(path, "windows");
    if (windows->kind != Kind::kSequence) {
      Error(windows->mark, windows_path + " must be a list of {long, short, burn_rate}, got " +
                               YamlKindName(windows->kind));
      return false;
    }
    if (windows->items.empty() && enabled) {
      Error(windows->mark, windows_path + " must not be empty (to turn " +
                               std::string(SeverityName(severity)) + " alerts off, write " + path +
                               ".enabled: false)");
      return false;
    }
    if (windows->items.size() > kMaxTiersPerSeverity) {
      Error(windows->mark, windows_path + " has " + std::to_string(windows->items.size()) +
                               " windows; at most " + std::to_string(kMaxTiersPerSeverity) +
                               " are allowed");
      return false;
    }
    for (size_t i = 0; i < windows->items.size(); ++i) {
      std::optional<BurnRateTier> tier =
          ReadTier(*windows->items[i], Index(windows_path, i), severity, slo);
      if (tier) tiers.push_back(*tier);
      ok = ok && tier.has_value();
    }
  } else if (enabled && slo.window) {
    tiers = DefaultTiers(severity, *slo.window);
    defaults.insert(defaults.end(), tiers.begin(), tiers.end());
  }
  if (!ok) return false;
  if (enabled) alerting.tiers.insert(alerting.tiers.end(), tiers.begin(), tiers.end());
  return true;
}

std::optional<NoDataAlert> Reader::ReadNoData(const YamlNode& node, const std::string& path) {
  std::optional<Fields> fields = Mapping(node, path, {"for", "severity"});
  if (!fields) return std::nullopt;
  NoDataAlert no_data;
  bool ok = true;
  if (const YamlNode* for_node = fields->Value("for")) {
    std::optional<milliseconds> value = Window(*for_node, Child(path, "for"), kMaxComplianceWindow);
    if (value) no_data.for_duration = *value;
    ok = ok && value.has_value();
  } else {
    Required(*fields, node, path, "for");
    ok = false;
  }
  if (const YamlNode* severity = fields->Value("severity")) {
    std::optional<Severity> value = ReadSeverity(*severity, Child(path, "severity"));
    if (value) no_data.severity = *value;
    ok = ok && value.has_value();
  }
  if (!ok) return std::nullopt;
  return no_data;
}

std::optional<Alerting> Reader::ReadAlerting(const YamlNode* node, const SloContext& slo) {
  const std::string path = slo.path + ".alerting";
  const bool quantile = slo.kind == SliKind::kLatencyQuantile;
  std::optional<Fields> fields;
  if (node != nullptr) {
    fields =
        Mapping(*node, path,
                {"page", "ticket", "min_events", "labels", "annotations", "no_data", "severity"});
    if (!fields) return std::nullopt;
  }
  Alerting alerting;
  bool ok = true;
  auto value = [&](std::string_view key) { return fields ? fields->Value(key) : nullptr; };
  auto key_mark = [&](std::string_view key) { return fields->Find(key)->key_node->mark; };

  if (quantile) {
    for (std::string_view key : {"page", "ticket"}) {
      if (fields && fields->Find(key) != nullptr) {
        Error(key_mark(key), Child(path, key) +
                                 " does not apply to a latency_quantile SLO: it has no error "
                                 "budget to burn; set " +
                                 path + ".severity instead");
        ok = false;
      }
    }
    if (const YamlNode* severity = value("severity")) {
      std::optional<Severity> parsed = ReadSeverity(*severity, Child(path, "severity"));
      if (parsed) alerting.severity = *parsed;
      ok = ok && parsed.has_value();
    }
  } else {
    if (fields && fields->Find("severity") != nullptr) {
      Error(key_mark("severity"),
            Child(path, "severity") +
                " applies only to latency_quantile SLOs; burn-rate alerts take their severity "
                "from " +
                path + ".page and " + path + ".ticket");
      ok = false;
    }
    std::vector<BurnRateTier> defaults;
    ok = ReadSeverityTiers(value("page"), Severity::kPage, slo, alerting, defaults) && ok;
    ok = ReadSeverityTiers(value("ticket"), Severity::kTicket, slo, alerting, defaults) && ok;
    const size_t errors_before = errors();
    CheckDefaultTiers(defaults, slo);
    ok = ok && errors() == errors_before;
  }
  if (const YamlNode* min_events = value("min_events")) {
    std::optional<uint64_t> parsed = Uint(*min_events, Child(path, "min_events"), 0, kMaxMinEvents);
    if (parsed) alerting.min_events = *parsed;
    ok = ok && parsed.has_value();
  }
  alerting.labels = *slo.file_labels;
  if (const YamlNode* labels = value("labels")) {
    std::optional<Labels> parsed =
        ReadLabels(*labels, Child(path, "labels"), /*allow_severity=*/false);
    if (parsed) {
      for (auto& [name, label_value] : *parsed) alerting.labels[name] = std::move(label_value);
    }
    ok = ok && parsed.has_value();
  }
  if (const YamlNode* annotations = value("annotations")) {
    std::optional<Labels> parsed = ReadAnnotations(*annotations, Child(path, "annotations"));
    if (parsed) alerting.annotations = std::move(*parsed);
    ok = ok && parsed.has_value();
  }
  if (const YamlNode* no_data = value("no_data")) {
    std::optional<NoDataAlert> parsed = ReadNoData(*no_data, Child(path, "no_data"));
    if (parsed) alerting.no_data = *parsed;
    ok = ok && parsed.has_value();
  }
  if (!ok) return std::nullopt;
  return alerting;
}

std::optional<Slo> Reader::ReadSlo(const YamlNode& node, const std::string& path,
                                   const Labels& file_labels) {
  std::optional<Fields> fields = Mapping(
      node, path, {"name", "description", "objective", "window", "sli", "filter", "alerting"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with name, objective and sli, got null");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  Slo slo;
  slo.source = std::string(source()) + ":" + Position(node.mark);

  if (const YamlNode* name = fields->Value("name")) {
    if (std::optional<std::string> value = String(*name, Child(path, "name"))) {
      if (value->empty() || value->size() > kMaxNameBytes ||
          !std::all_of(value->begin(), value->end(), IsSloNameChar)) {
        Error(name->mark, Child(path, "name") + " must be 1 to " + std::to_string(kMaxNameBytes) +
                              " letters, digits, '_', '-' or '.', got " + QuoteForMessage(*value));
      } else {
        slo.name = std::move(*value);
      }
    }
  } else {
    Required(*fields, node, path, "name");
  }
  if (const YamlNode* description = fields->Value("description")) {
    if (std::optional<std::string> value = String(*description, Child(path, "description"))) {
      slo.description = std::move(*value);
    }
  }

  std::optional<Sli> sli;
  std::optional<SliKind> kind;  // as declared, even if its parameters have problems
  if (const YamlNode* sli_node = fields->Value("sli")) {
    sli = ReadSli(*sli_node, Child(path, "sli"), kind);
  } else {
    Required(*fields, node, path, "sli");
  }
  // Without a kind, the SLO is checked as a ratio SLO.
  const bool quantile = kind == SliKind::kLatencyQuantile;

  SloContext context{.path = path, .file_labels = &file_labels};
  if (kind) context.kind = *kind;
  if (quantile) {
    for (std::string_view key : {"objective", "window"}) {
      if (const Fields::Entry* entry = fields->Find(key)) {
        Error(entry->key_node->mark,
              Child(path, key) +
                  " does not apply to a latency_quantile SLO: it alerts when the "
                  "quantile stays above its threshold" +
                  (key == "window" ? "; its window is " + Child(path, "sli.latency_quantile.window")
                                   : std::string()));
      }
    }
  } else {
    if (const YamlNode* objective = fields->Value("objective")) {
      const std::string objective_path = Child(path, "objective");
      std::optional<double> value = Number(*objective, objective_path);
      if (value && (*value <= 0 || *value >= 100)) {
        Error(objective->mark, objective_path +
                                   " must be a percentage between 0 and 100 (exclusive), got " +
                                   Shortest(*value));
        value.reset();
      }
      if (value) {
        slo.objective_percent = *value;
        context.objective = value;
        context.objective_node = objective;
      }
    } else {
      Required(*fields, node, path, "objective");
    }
    context.window = kDefaultComplianceWindow;
    if (const YamlNode* window = fields->Value("window")) {
      context.window = Window(*window, Child(path, "window"), kMaxComplianceWindow);
      if (context.window) slo.window = *context.window;
    }
    // The error budget must be measurable: at least one SLI bucket of full outage.
    if (context.objective && context.window) {
      double budget_ms =
          (100 - *context.objective) / 100 * static_cast<double>(context.window->count());
      if (budget_ms < static_cast<double>(kResolution.count())) {
        Error(context.objective_node->mark,
              Child(path, "objective") + " " + Percent(*context.objective) + " over " +
                  FormatDuration(*context.window) + " leaves an error budget of " +
                  Figure(budget_ms / 1000) + "s of full outage, less than the " +
                  FormatDuration(kResolution) +
                  " evaluation resolution; lower the objective or lengthen the window");
        context.objective.reset();  // the tiers' checks would only repeat this
      }
    }
  }

  std::optional<Filter> filter;
  if (const Fields::Entry* entry = fields->Find("filter")) {
    filter = ReadFilter(*entry->value, Child(path, "filter"));
    if (filter && !filter->empty() &&
        (kind == SliKind::kErrorTraces || kind == SliKind::kPartialTraces)) {
      Error(entry->key_node->mark, Child(path, "filter") + " does not apply to " +
                                       std::string(SliKindName(*kind)) +
                                       " SLIs: traces are counted per service, not per operation");
    }
    if (filter) slo.filter = std::move(*filter);
  }

  const Fields::Entry* alerting_entry = fields->Find("alerting");
  std::optional<Alerting> alerting =
      ReadAlerting(alerting_entry ? alerting_entry->value : nullptr, context);
  if (alerting) slo.alerting = std::move(*alerting);

  if (errors() != errors_before || !sli) return std::nullopt;
  slo.sli = *sli;
  return slo;
}

ParsedFile Reader::ReadFile(const YamlNode* root) {
  ParsedFile parsed;
  if (root == nullptr || root->kind == Kind::kNull) {
    Error(root ? root->mark : YamlMark{},
          "the rule file is empty; it needs service and slos (see rules/README.md)");
    return parsed;
  }
  if (root->kind != Kind::kMapping) {
    Error(root->mark, std::string("the top level must be a mapping with service, labels and "
                                  "slos, got ") +
                          YamlKindName(root->kind));
    return parsed;
  }
  std::optional<Fields> fields = Mapping(*root, "", {"service", "labels", "slos"});
  RuleFile file;
  file.path = std::string(source());
  if (const YamlNode* service = fields->Value("service")) {
    if (std::optional<std::string> value = String(*service, "service")) {
      if (value->empty() || value->size() > kMaxServiceBytes || !IsPrintable(*value)) {
        Error(service->mark, "service must be 1 to " + std::to_string(kMaxServiceBytes) +
                                 " bytes without control characters, got " +
                                 QuoteForMessage(*value));
      } else {
        file.service = *value;
        parsed.service.emplace(std::move(*value), service->mark);
      }
    }
  } else {
    Required(*fields, *root, "", "service");
  }
  if (const YamlNode* labels = fields->Value("labels")) {
    if (std::optional<Labels> value = ReadLabels(*labels, "labels", /*allow_severity=*/false)) {
      file.labels = std::move(*value);
    }
  }
  const YamlNode* slos = fields->Value("slos");
  if (slos == nullptr) {
    Required(*fields, *root, "", "slos");
  } else if (slos->kind != Kind::kSequence) {
    Error(slos->mark, "slos must be a list of SLOs, got " + std::string(YamlKindName(slos->kind)));
  } else if (slos->items.empty()) {
    Error(slos->mark, "slos must list at least one SLO");
  } else {
    size_t count = slos->items.size();
    if (count > kMaxSlosPerFile) {
      Error(slos->mark, "slos has " + std::to_string(count) + " SLOs; at most " +
                            std::to_string(kMaxSlosPerFile) +
                            " are allowed per file (only the first " +
                            std::to_string(kMaxSlosPerFile) + " were checked)");
      count = kMaxSlosPerFile;
    }
    parsed.slos_seen = count;
    std::map<std::string, YamlMark> names;
    for (size_t i = 0; i < count; ++i) {
      const YamlNode& item = *slos->items[i];
      // Duplicate names are found even when the SLO has other problems.
      if (item.kind == Kind::kMapping) {
        for (const auto& [key, value] : item.entries) {
          if (key->kind != Kind::kScalar || key->value != "name") continue;
          if (value->kind != Kind::kScalar || value->value.empty()) break;
          auto [it, inserted] = names.emplace(value->value, value->mark);
          if (!inserted) {
            Error(value->mark, Child(Index("slos", i), "name") + ": duplicate SLO name " +
                                   QuoteForMessage(value->value) + " (first defined at " +
                                   Position(it->second) + ")");
          }
          break;
        }
      }
      std::optional<Slo> slo = ReadSlo(item, Index("slos", i), file.labels);
      if (slo) {
        slo->service = file.service;
        file.slos.push_back(std::move(*slo));
      }
    }
  }
  if (errors() == 0) parsed.file = std::move(file);
  return parsed;
}

// One file's text to a ParsedFile, its problems appended to `diagnostics` in document order.
ParsedFile ParseText(std::string_view text, std::string_view source,
                     std::vector<Diagnostic>& diagnostics) {
  const size_t first = diagnostics.size();
  ParsedFile parsed;
  if (text.size() > kMaxRuleFileBytes) {
    diagnostics.push_back(
        Diagnostic{.file = std::string(source), .message = "the file is larger than 1 MiB"});
    return parsed;
  }
  Reader reader(source, diagnostics);
  config::YamlParseResult document = config::ParseYamlDocument(text, kYamlLimits, "a rule file");
  if (document.error) {
    reader.Error(document.error->mark, document.error->message);
    return parsed;
  }
  parsed = reader.ReadFile(document.root.get());
  std::stable_sort(diagnostics.begin() + static_cast<std::ptrdiff_t>(first), diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Finding the files.

bool HasGlobChars(std::string_view path) {
  return path.find_first_of("*?[") != std::string_view::npos;
}

bool IsRuleFileName(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  if (name.empty() || name.front() == '.') return false;  // as the shell's `*.yaml` does
  const std::string extension = path.extension().string();
  return extension == ".yaml" || extension == ".yml";
}

void AddFileDiagnostic(std::vector<Diagnostic>& diagnostics, std::string file,
                       std::string message) {
  diagnostics.push_back(Diagnostic{.file = std::move(file), .message = std::move(message)});
}

CheckResult CheckRuleFilesOrThrow(const std::vector<std::string>& paths) {
  CheckResult result;
  std::vector<std::string> files =
      ResolveYamlPaths(paths, kMaxRuleFiles, "rule files", result.diagnostics);
  // service -> where it was first defined
  std::map<std::string, std::string> services;
  for (const std::string& path : files) {
    ++result.files_checked;
    std::string contents;
    if (std::optional<config::FileReadError> failure =
            config::ReadFileCapped(path, kMaxRuleFileBytes, contents)) {
      AddFileDiagnostic(result.diagnostics, path, "cannot read: " + failure->reason);
      continue;
    }
    ParsedFile parsed = ParseText(contents, path, result.diagnostics);
    result.slos_checked += parsed.slos_seen;
    bool duplicate = false;
    if (parsed.service) {
      const auto& [service, mark] = *parsed.service;
      std::string here = path + ":" + Position(mark);
      auto [it, inserted] = services.emplace(service, here);
      if (!inserted) {
        result.diagnostics.push_back(Diagnostic{.file = path,
                                                .line = mark.DisplayLine(),
                                                .column = mark.DisplayColumn(),
                                                .message = "service " + QuoteForMessage(service) +
                                                           " is already defined in " + it->second +
                                                           " (one service per rule file)"});
        duplicate = true;
      }
    }
    if (parsed.file && !duplicate) result.files.push_back(std::move(*parsed.file));
  }
  std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
                   });
  return result;
}

}  // namespace

std::vector<std::string> ResolveYamlPaths(const std::vector<std::string>& args, size_t max_files,
                                          std::string_view noun,
                                          std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> files;
  for (const std::string& arg : args) {
    if (arg.empty()) {
      AddFileDiagnostic(diagnostics, "\"\"", "empty path");
      continue;
    }
    struct stat st {};
    const bool exists = ::stat(arg.c_str(), &st) == 0;
    if (!exists && HasGlobChars(arg)) {
      glob_t matches{};
      int result = ::glob(arg.c_str(), 0, nullptr, &matches);
      if (result == 0) {
        for (size_t i = 0; i < matches.gl_pathc; ++i) files.emplace_back(matches.gl_pathv[i]);
      } else if (result == GLOB_NOMATCH) {
        AddFileDiagnostic(diagnostics, arg, "no files match this pattern");
      } else {
        AddFileDiagnostic(diagnostics, arg, "cannot expand this pattern");
      }
      ::globfree(&matches);
      continue;
    }
    if (exists && S_ISDIR(st.st_mode)) {
      std::error_code ec;
      std::vector<std::string> found;
      for (const auto& entry : std::filesystem::directory_iterator(arg, ec)) {
        std::error_code type_ec;
        if (IsRuleFileName(entry.path()) && entry.is_regular_file(type_ec)) {
          found.push_back((std::filesystem::path(arg) / entry.path().filename()).string());
        }
      }
      if (ec) {
        AddFileDiagnostic(diagnostics, arg, "cannot list this directory: " + ec.message());
      } else if (found.empty()) {
        AddFileDiagnostic(diagnostics, arg,
                          "no " + std::string(noun) + " (*.yaml, *.yml) in this directory");
      }
      files.insert(files.end(), found.begin(), found.end());
      continue;
    }
    files.push_back(arg);  // read errors (missing, unreadable, not a file) are reported later
  }
  // Each file once, whichever way it was named ("rules/./a.yaml" is "rules/a.yaml"), in path
  // order.
  for (std::string& file : files) file = std::filesystem::path(file).lexically_normal().string();
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  std::vector<std::string> unique = std::move(files);
  if (unique.size() > max_files) {
    AddFileDiagnostic(diagnostics, unique[max_files],
                      "more than " + std::to_string(max_files) + " " + std::string(noun) +
                          "; this one and the " + std::to_string(unique.size() - max_files - 1) +
                          " after it were not checked");
    unique.resize(max_files);
  }
  return unique;
}

absl::StatusOr<RuleFile> ParseRuleFile(std::string_view yaml, std::string_view source_name,
                                       std::vector<Diagnostic>& diagnostics) {
  const size_t first = diagnostics.size();
  try {
    ParsedFile parsed = ParseText(yaml, source_name, diagnostics);
    if (parsed.file && diagnostics.size() == first) return *std::move(parsed.file);
  } catch (const std::bad_alloc&) {
    diagnostics.push_back(Diagnostic{.file = std::string(source_name),
                                     .message = "out of memory while reading the rule file"});
    return absl::ResourceExhaustedError(diagnostics.back().ToString());
  } catch (const std::exception& e) {
    diagnostics.push_back(
        Diagnostic{.file = std::string(source_name),
                   .message = std::string("cannot read the rule file: ") + e.what()});
  }
  return ProblemsStatus(diagnostics, first, source_name, "rule file");
}

CheckResult CheckRuleFiles(const std::vector<std::string>& paths) {
  try {
    return CheckRuleFilesOrThrow(paths);
  } catch (const std::bad_alloc&) {
    CheckResult result;
    AddFileDiagnostic(result.diagnostics, paths.empty() ? std::string("rules") : paths.front(),
                      "out of memory while checking rule files");
    return result;
  } catch (const std::exception& e) {
    CheckResult result;
    AddFileDiagnostic(result.diagnostics, paths.empty() ? std::string("rules") : paths.front(),
                      std::string("cannot check rule files: ") + e.what());
    return result;
  }
}

}  // namespace traceslo::slo
