#include "traceslo/slo/rule_loader.h"

#include <utility>

#include "traceslo/slo/rule_file.h"

namespace traceslo::slo {

RuleLoader::RuleLoader(std::vector<std::string> paths, Evaluator& evaluator, const Clock& clock)
    : paths_(std::move(paths)), evaluator_(evaluator), clock_(clock) {}

absl::Status RuleLoader::Reload() {
  MutexLock lock(mu_);
  CheckResult result = CheckRuleFiles(paths_);
  if (!result.ok()) {
    last_ok_ = false;
    ++failures_;
    std::string message;
    for (const Diagnostic& d : result.diagnostics) {
      if (!message.empty()) message += '\n';
      message += d.ToString();
    }
    return absl::InvalidArgumentError(message);
  }
  std::vector<Slo> slos;
  for (RuleFile& file : result.files) {
    for (Slo& slo : file.slos) slos.push_back(std::move(slo));
  }
  slos_ = slos.size();
  evaluator_.SetRules(slos);
  last_ok_ = true;
  ++successes_;
  last_success_seconds_ = std::chrono::duration<double>(clock_.Now().time_since_epoch()).count();
  return absl::OkStatus();
}

size_t RuleLoader::slo_count() const {
  MutexLock lock(mu_);
  return slos_;
}

std::vector<prometheus::MetricFamily> RuleLoader::Collect() const {
  using prometheus::ClientMetric;
  using prometheus::MetricFamily;
  using prometheus::MetricType;
  auto gauge = [](std::string name, std::string help, double value) {
    MetricFamily f{std::move(name), std::move(help), MetricType::Gauge, {}};
    ClientMetric m;
    m.gauge.value = value;
    f.metric.push_back(m);
    return f;
  };
  MutexLock lock(mu_);
  std::vector<MetricFamily> out;
  out.push_back(gauge("traceslo_rules_last_reload_successful",
                      "1 if the last load of the rule files succeeded, else 0.", last_ok_ ? 1 : 0));
  out.push_back(gauge("traceslo_rules_last_reload_success_timestamp_seconds",
                      "When the rule files were last loaded successfully (unix seconds).",
                      last_success_seconds_));
  out.push_back(gauge("traceslo_rules_slos", "SLOs in the running rule set (count).",
                      static_cast<double>(slos_)));
  MetricFamily reloads{"traceslo_rules_reloads_total",
                       "Loads of the rule files by result (count).",
                       MetricType::Counter,
                       {}};
  for (const auto& [result, value] : {std::pair{"success", successes_}, {"failure", failures_}}) {
    ClientMetric m;
    m.label = {{"result", result}};
    m.counter.value = static_cast<double>(value);
    reloads.metric.push_back(m);
  }
  out.push_back(std::move(reloads));
  return out;
}

}  // namespace traceslo::slo
