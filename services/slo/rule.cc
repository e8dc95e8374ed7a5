#include "traceslo/slo/rule.h"

#include <array>

namespace traceslo::slo {

std::string_view SliKindName(SliKind kind) {
  switch (kind) {
    case SliKind::kErrors:
      return "errors";
    case SliKind::kLatency:
      return "latency";
    case SliKind::kErrorTraces:
      return "error_traces";
    case SliKind::kPartialTraces:
      return "partial_traces";
    case SliKind::kLatencyQuantile:
      return "latency_quantile";
  }
  return "?";
}

std::string_view SeverityName(Severity severity) {
  return severity == Severity::kPage ? "page" : "ticket";
}

std::vector<BurnRateTier> DefaultTiers(Severity severity, std::chrono::milliseconds window) {
  using std::chrono::milliseconds;
  struct Default {
    Severity severity;
    milliseconds long_window;
    milliseconds short_window;
    int64_t budget_percent;  // of the error budget spent over long_window when the tier fires
  };
  constexpr int64_t kMinute = 60'000;
  constexpr int64_t kHour = 60 * kMinute;
  constexpr std::array<Default, 4> kDefaults = {{
      {Severity::kPage, milliseconds(kHour), milliseconds(5 * kMinute), 2},
      {Severity::kPage, milliseconds(6 * kHour), milliseconds(30 * kMinute), 5},
      {Severity::kTicket, milliseconds(24 * kHour), milliseconds(2 * kHour), 10},
      {Severity::kTicket, milliseconds(72 * kHour), milliseconds(6 * kHour), 10},
  }};
  std::vector<BurnRateTier> tiers;
  for (const Default& d : kDefaults) {
    if (d.severity != severity || d.long_window > window) continue;
    // burn = (percent / 100) × window / long. Numerator and denominator are exact integers in a
    // double (< 2^53 for any window the parser accepts), so the quotient is correctly rounded:
    // 14.4, 6, 3 and 1 exactly for 30 d.
    double burn_rate = static_cast<double>(d.budget_percent * window.count()) /
                       static_cast<double>(100 * d.long_window.count());
    tiers.push_back(BurnRateTier{.severity = d.severity,
                                 .long_window = d.long_window,
                                 .short_window = d.short_window,
                                 .burn_rate = burn_rate});
  }
  return tiers;
}

Labels AlertLabels(const Slo& slo, Severity severity) {
  Labels labels = slo.alerting.labels;
  labels["service"] = slo.service;
  labels["slo"] = slo.name;
  labels["severity"] = std::string(SeverityName(severity));
  const Labels& own =
      severity == Severity::kPage ? slo.alerting.page_labels : slo.alerting.ticket_labels;
  for (const auto& [name, value] : own) labels[name] = value;
  return labels;
}

std::string Diagnostic::ToString() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

}  // namespace traceslo::slo
