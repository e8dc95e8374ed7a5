#pragma once

// SLO rules as read from rule files (rules/*.yaml, one service per file; the format is in
// rules/README.md). Plain values: every default is filled in and every check has passed once a
// RuleFile exists, so the evaluator, `traceslo test`, reload and replay read them as they are.
//
// Units: durations are std::chrono::milliseconds; objectives are percents as written (99.9) with
// ratio accessors; burn rates are multiples of the rate that spends exactly the error budget over
// the compliance window (1 = budget-neutral).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::slo {

// SLIs are counted in 10 s buckets (pipeline::kBucketSeconds) and the evaluator ticks no faster,
// so every window in a rule is a whole number of buckets, and an error budget smaller than one
// bucket cannot be measured.
inline constexpr std::chrono::milliseconds kResolution{10'000};
inline constexpr std::chrono::milliseconds kDefaultComplianceWindow{30LL * 86'400'000};
inline constexpr uint64_t kDefaultMinEvents = 20;

enum class SliKind {
  // Good/total ratios over entry spans of the service's series (service, operation), filtered by
  // Slo::filter:
  kErrors,   // bad = entry spans that are errors (docs/sli-engine.md "Error")
  kLatency,  // bad = entry spans whose duration is greater than LatencySli::threshold
  // Good/total ratios over completed traces that touched the service (per service only, so these
  // take no filter):
  kErrorTraces,    // bad = error traces counted for the service in ErrorTracesSli::role
  kPartialTraces,  // bad = partial traces (a span's parent never arrived, or no root)
  // Not a ratio and no error budget: a plain threshold alert (Slo::objective_percent is 0,
  // Alerting::tiers is empty).
  kLatencyQuantile,
};
std::string_view SliKindName(SliKind kind);  // the YAML key: "errors", "latency", ...

struct LatencySli {
  std::chrono::milliseconds threshold{0};  // > 0 and <= 1 h (the latency sketch's range)
};

// Which count of traceslo_error_traces_total{role} an error_traces SLI uses.
enum class ErrorTraceRole {
  kRoot,    // the trace's root service: what the service's callers saw fail (default)
  kOrigin,  // the service of the deepest error span: errors this service caused
};

struct ErrorTracesSli {
  ErrorTraceRole role = ErrorTraceRole::kRoot;
};

// Alert when the `quantile` of entry-span latency over the trailing `window` stays above
// `threshold` for `for_duration` (0: at the first evaluation above it), with at least
// Alerting::min_events entry spans in the window.
struct LatencyQuantileSli {
  double quantile = 0;                        // in (0, 1), e.g. 0.99
  std::chrono::milliseconds threshold{0};     // > 0 and <= 1 h
  std::chrono::milliseconds window{300'000};  // a multiple of kResolution, <= 1 d; default 5m
  std::chrono::milliseconds for_duration{0};  // a multiple of kResolution, <= 1 d; default 0
};

// The SLI of one SLO: `kind` says which of the parameter structs is meaningful.
struct Sli {
  SliKind kind = SliKind::kErrors;
  LatencySli latency;                   // kLatency
  ErrorTracesSli error_traces;          // kErrorTraces
  LatencyQuantileSli latency_quantile;  // kLatencyQuantile
};

// Which operations (span names) of the service an SLO counts. Exact, case-sensitive names;
// operations folded into "other" (pipeline.max_operations_per_service) match only "other".
struct Filter {
  std::vector<std::string> operations;          // empty: every operation
  std::vector<std::string> exclude_operations;  // applied after `operations`
  bool empty() const { return operations.empty() && exclude_operations.empty(); }
  bool Matches(std::string_view operation) const {
    auto in = [operation](const std::vector<std::string>& list) {
      for (const std::string& item : list) {
        if (item == operation) return true;
      }
      return false;
    };
    return (operations.empty() || in(operations)) && !in(exclude_operations);
  }
};

enum class Severity { kPage, kTicket };
std::string_view SeverityName(Severity severity);  // "page", "ticket"

// One multiwindow burn-rate condition (Google SRE Workbook, chapter 5): it fires while the error
// ratio over `long_window` AND over `short_window` are both at least
// ErrorRatioThreshold() = burn_rate × (1 − objective), and the short window holds at least
// Alerting::min_events events. Checked: kResolution <= short < long <= the compliance window,
// both multiples of kResolution, and ErrorRatioThreshold() <= 1 (otherwise it could never fire).
struct BurnRateTier {
  Severity severity = Severity::kPage;
  std::chrono::milliseconds long_window{0};
  std::chrono::milliseconds short_window{0};
  double burn_rate = 0;  // > 0
};

using Labels = std::map<std::string, std::string>;

// Alert when the SLI has counted no events at all for `for_duration` (e.g. the service stopped
// sending spans). Burn-rate tiers cannot see that: no events means no errors.
struct NoDataAlert {
  std::chrono::milliseconds for_duration{0};  // a multiple of kResolution
  Severity severity = Severity::kTicket;
};

struct Alerting {
  // Burn-rate tiers: page tiers first, then ticket tiers, each in the order written (or
  // DefaultTiers()). Empty for kLatencyQuantile, or when both severities are disabled.
  std::vector<BurnRateTier> tiers;
  // Events (requests or traces) a tier's short window, or a latency_quantile window, must hold
  // before the alert may fire, so that one failure out of three requests cannot page.
  uint64_t min_events = kDefaultMinEvents;
  // kLatencyQuantile only: the severity of its alert (default ticket).
  Severity severity = Severity::kTicket;
  // Alert labels beyond service, slo and severity: the file's `labels` with the SLO's
  // `alerting.labels` over them. Never holds service, slo, severity or alertname.
  Labels labels;
  // Per-severity labels over `labels`; the only place the severity label may be renamed
  // (`page: {labels: {severity: critical}}`). Use AlertLabels() to combine.
  Labels page_labels;
  Labels ticket_labels;
  // Passed to notifications as written (runbook_url, summary, description, ...). Values are
  // templates for the notifier; they are not expanded here.
  Labels annotations;
  std::optional<NoDataAlert> no_data;
};

struct Slo {
  std::string service;      // the file's service (resource service.name)
  std::string name;         // unique within the service: (service, name) identifies the SLO
  std::string description;  // optional, free text
  // Percent of good events, in (0, 100); 0 for kLatencyQuantile.
  double objective_percent = 0;
  // The compliance period the error budget is spent over; a multiple of kResolution.
  // kLatencyQuantile: unused (kept at the default).
  std::chrono::milliseconds window = kDefaultComplianceWindow;
  Sli sli;
  Filter filter;  // always empty for kErrorTraces and kPartialTraces
  Alerting alerting;
  std::string source;  // "rules/checkout.yaml:5:5": where the SLO is written, for messages

  // Rounded to 1e-9 percent first, so 99.9 gives the double nearest 0.999 (99.9 / 100 does not).
  double objective_ratio() const { return std::round(objective_percent * 1e9) / 1e11; }
  // 1 − objective, from (100 − percent) rounded to 1e-9 percent.
  double error_budget_ratio() const { return std::round((100 - objective_percent) * 1e9) / 1e11; }
  // The error ratio at which `tier` fires: burn_rate × (1 − objective).
  double ErrorRatioThreshold(const BurnRateTier& tier) const {
    return tier.burn_rate * error_budget_ratio();
  }
};

// One rule file: one service and its SLOs, in file order.
struct RuleFile {
  std::string path;  // as given (the source name of every message)
  std::string service;
  Labels labels;  // the file's labels (already merged into each Slo's alerting.labels)
  std::vector<Slo> slos;
};

// The default tiers of `severity` for a compliance window: the SRE Workbook's multiwindow,
// multi-burn-rate policy with each tier spending the same fraction of the error budget whatever
// the window:
//   page:   2 % of the budget in 1 h (short 5 m),  5 % in 6 h (short 30 m)
//   ticket: 10 % in 1 d (short 2 h),              10 % in 3 d (short 6 h)
// burn_rate = fraction × window / long, which for 30 d gives 14.4, 6, 3 and 1. Tiers whose long
// window is longer than `window` are left out.
std::vector<BurnRateTier> DefaultTiers(Severity severity, std::chrono::milliseconds window);

// All labels of an alert of `slo` at `severity`: {service, slo, severity = SeverityName()},
// then slo.alerting.labels, then the severity's own labels (which may rename severity).
Labels AlertLabels(const Slo& slo, Severity severity);

// A problem found in a rule file, at a 1-based position (1:1 when the problem is with the whole
// file, or for a pattern that matched nothing).
struct Diagnostic {
  std::string file;
  int line = 1;
  int column = 1;
  std::string message;
  std::string ToString() const;  // "file:line:col: message"
};

}  // namespace traceslo::slo
