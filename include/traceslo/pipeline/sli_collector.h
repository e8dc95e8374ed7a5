#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "traceslo/common/clock.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::pipeline {

// Exports the SLI store as the Prometheus metrics that dashboards and users rely on (names are a
// contract, listed in README.md). Quantile gauges are read from merged sketches at scrape time.
// Thread-safe. `clock`, `registry` and `store` are borrowed and must outlive the collector.
class SliCollector final : public prometheus::Collectable {
 public:
  SliCollector(const Clock& clock, const SeriesRegistry& registry, const SliStore& store);

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Clock& clock_;
  const SeriesRegistry& registry_;
  const SliStore& store_;
};

}  // namespace traceslo::pipeline
