#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "services/web/trace_page.h"
#include "traceslo/slo/evaluator.h"

namespace traceslo::web {

// The SLO overview (/) and its JSON (/api/v1/slos): pure rendering from an SloOverview, which
// SloOverviewOf builds from the evaluator. Service and SLO names and descriptions come from rule
// files and span data: they are escaped on output like any untrusted string.

// One window of one SLO at the last evaluation.
struct SloWindowView {
  std::chrono::milliseconds window{0};
  uint64_t total = 0;
  uint64_t bad = 0;
  double sli_ratio = 1;  // good / total; 1 without events
  double burn_rate = 0;
};

// One alert (severity, or the no-data alert) of an SLO.
struct SloAlertView {
  std::string severity;  // "page", "ticket" (slo::SeverityName)
  bool no_data = false;
  std::string state;                   // slo::AlertStateName: inactive, pending, firing, resolved
  int64_t active_since_unix_nano = 0;  // pending or firing since; 0 otherwise
  std::chrono::milliseconds long_window{0};
  std::chrono::milliseconds short_window{0};
  double burn_rate_long = 0;
  double burn_rate_short = 0;
  double threshold_burn_rate = 0;
};

struct SloView {
  std::string service;
  std::string slo;
  std::string description;
  std::string sli;             // slo::SliKindName: errors, latency, error_traces, ...
  double objective_ratio = 0;  // 0 for latency_quantile (a threshold alert, no budget)
  std::chrono::milliseconds compliance_window{0};
  bool evaluated = false;  // figures below are from an evaluation (not before the first)
  std::vector<SloWindowView> windows;       // the tiers' windows, then the compliance window
  double error_budget_remaining_ratio = 1;  // negative once overspent
  double seconds_to_exhaustion = 0;         // +inf (or NaN) when nothing burns
  // latency_quantile: the quantile, its threshold and its value over its window.
  double quantile = 0;
  std::chrono::milliseconds latency_threshold{0};
  double latency_quantile_seconds = 0;
  std::vector<SloAlertView> alerts;
  // The overall state: "firing" (an alert fires), "pending", "ok", or "unknown" (not evaluated).
  std::string state;
};

struct SloOverview {
  bool available = false;     // false: no evaluator wired in (the page says so)
  std::vector<SloView> slos;  // by service, then SLO name
};

// The SLOs of `evaluator`'s current rule set with their figures and alerts.
SloOverview SloOverviewOf(const slo::Evaluator& evaluator);

// "firing" when an alert fires, else "pending" when one is pending, else "ok"; "unknown" when
// not evaluated.
std::string OverallState(bool evaluated, const std::vector<SloAlertView>& alerts);

// The overview page, a complete HTML5 document (serve with kPageContentType and
// kPageContentSecurityPolicy, status 200): one row per SLO, class="slo" with data-service,
// data-slo and data-state, holding objective, SLI and burn rate per window, budget remaining,
// time to exhaustion and state. Without SLOs or without an evaluator, a line that says so.
std::string RenderSloPage(const SloOverview& overview, const PageContext& context);

// The JSON of GET /api/v1/slos: {"slos": [...]}, the page's figures; non-finite numbers (no
// exhaustion in sight) are null.
std::string SlosJson(const SloOverview& overview);

// "5m", "1h", "30d", "90s": a rule window as rule files write it.
std::string WindowText(std::chrono::milliseconds window);
// Time to exhaustion for people: "∞" (not burning), "exhausted", "3 d 4 h", "2 h 5 min",
// "12 min", "45 s".
std::string ExhaustionText(double seconds);

}  // namespace traceslo::web
