#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/mutex.h"
#include "traceslo/slo/evaluator.h"

namespace traceslo::slo {

// Loads the rule files into the evaluator, all or nothing: a set with any problem leaves the
// running rules in place and is reported. Used at start-up, on SIGHUP and by POST /-/reload.
// Thread-safe. `evaluator` and `clock` are borrowed and must outlive the loader.
class RuleLoader final : public prometheus::Collectable {
 public:
  RuleLoader(std::vector<std::string> paths, Evaluator& evaluator, const Clock& clock);

  // InvalidArgument with every problem ("file:line:col: message", one per line) when the set
  // has any; then the evaluator keeps its rules.
  absl::Status Reload();

  size_t slo_count() const;

  // prometheus::Collectable: traceslo_rules_last_reload_successful,
  // traceslo_rules_last_reload_success_timestamp_seconds, traceslo_rules_reloads_total{result},
  // traceslo_rules_slos.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::vector<std::string> paths_;
  Evaluator& evaluator_;
  const Clock& clock_;
  mutable Mutex mu_;  // also serialises reloads
  bool last_ok_ ABSL_GUARDED_BY(mu_) = false;
  double last_success_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t successes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
  size_t slos_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace traceslo::slo
