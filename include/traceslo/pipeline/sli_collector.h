#pragma once

#include <vector>

#include "traceslo/common/clock.h"
#include "traceslo/common/metric_values.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::pipeline {

// Exports the SLI store as the Prometheus metrics that dashboards and users rely on (names are a
// contract, listed in README.md). Quantile gauges are read from merged sketches at scrape time.
// The duration histogram's buckets and the request error counters carry trace_id exemplars (the
// store's exemplar traces, which the trace page opens). Thread-safe. `clock`, `registry` and
// `store` are borrowed and must outlive the collector.
class SliCollector final : public metrics::ExemplarCollectable {
 public:
  SliCollector(const Clock& clock, const SeriesRegistry& registry, const SliStore& store);

  // metrics::ExemplarCollectable
  std::vector<metrics::ExemplarFamily> CollectWithExemplars() const override;

 private:
  const Clock& clock_;
  const SeriesRegistry& registry_;
  const SliStore& store_;
};

}  // namespace traceslo::pipeline
