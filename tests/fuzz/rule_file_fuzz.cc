// Feeds arbitrary bytes to the SLO rule file parser. It must never throw, crash or hang; it
// returns a RuleFile exactly when it reports no problem; every problem carries a position and a
// message, in document order; and every accepted rule file satisfies the documented checks.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/slo/rule.h"
#include "traceslo/slo/rule_file.h"

namespace {

using traceslo::slo::BurnRateTier;
using traceslo::slo::kResolution;
using traceslo::slo::SliKind;
using traceslo::slo::Slo;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

bool WholeBuckets(std::chrono::milliseconds window) {
  return window >= kResolution && window.count() % kResolution.count() == 0;
}

void CheckSlo(const Slo& slo, const std::string& service) {
  Check(slo.service == service);
  Check(!slo.name.empty());
  const std::chrono::milliseconds hour(3'600'000);
  switch (slo.sli.kind) {
    case SliKind::kLatencyQuantile: {
      const auto& q = slo.sli.latency_quantile;
      Check(q.quantile > 0 && q.quantile < 1);
      Check(q.threshold.count() > 0 && q.threshold <= hour);
      Check(WholeBuckets(q.window));
      Check(q.for_duration.count() % kResolution.count() == 0);
      Check(slo.alerting.tiers.empty());
      return;
    }
    case SliKind::kLatency:
      Check(slo.sli.latency.threshold.count() > 0 && slo.sli.latency.threshold <= hour);
      break;
    case SliKind::kErrorTraces:
    case SliKind::kPartialTraces:
      Check(slo.filter.empty());
      break;
    case SliKind::kErrors:
      break;
  }
  Check(slo.objective_percent > 0 && slo.objective_percent < 100);
  Check(WholeBuckets(slo.window));
  // The error budget covers at least one bucket of full outage.
  Check(slo.error_budget_ratio() * static_cast<double>(slo.window.count()) >=
        static_cast<double>(kResolution.count()));
  for (const BurnRateTier& tier : slo.alerting.tiers) {
    Check(WholeBuckets(tier.short_window) && WholeBuckets(tier.long_window));
    Check(tier.short_window < tier.long_window && tier.long_window <= slo.window);
    Check(tier.burn_rate > 0 && std::isfinite(tier.burn_rate));
    Check(slo.ErrorRatioThreshold(tier) <= 1 + 1e-9);
  }
  for (const auto& [name, value] : slo.alerting.labels) {
    Check(name != "service" && name != "slo" && name != "severity" && name != "alertname");
    Check(!value.empty());
  }
  if (slo.alerting.no_data) Check(WholeBuckets(slo.alerting.no_data->for_duration));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<traceslo::slo::Diagnostic> diagnostics;
    absl::StatusOr<traceslo::slo::RuleFile> file =
        traceslo::slo::ParseRuleFile(text, "fuzz.yaml", diagnostics);
    Check(file.ok() == diagnostics.empty());
    for (size_t i = 0; i < diagnostics.size(); ++i) {
      const traceslo::slo::Diagnostic& d = diagnostics[i];
      Check(d.file == "fuzz.yaml" && d.line >= 1 && d.column >= 1 && !d.message.empty());
      if (i > 0) {
        const traceslo::slo::Diagnostic& p = diagnostics[i - 1];
        Check(p.line < d.line || (p.line == d.line && p.column <= d.column));
      }
    }
    if (file.ok()) {
      Check(!file->service.empty() && !file->slos.empty());
      Check(file->slos.size() <= traceslo::slo::kMaxSlosPerFile);
      for (size_t i = 0; i < file->slos.size(); ++i) {
        CheckSlo(file->slos[i], file->service);
        for (size_t j = 0; j < i; ++j) Check(file->slos[j].name != file->slos[i].name);
      }
    } else {
      Check(file.status().code() == absl::StatusCode::kInvalidArgument);
      auto message = file.status().message();  // absl::string_view on Debian
      Check(std::string_view(message.data(), message.size()).starts_with("fuzz.yaml:"));
    }
  } catch (...) {
    __builtin_trap();  // ParseRuleFile promises never to throw
  }
  return 0;
}
