#pragma once

// Building blocks for prometheus::Collectable::Collect(): a family and its samples, so each
// collector writes what it exports, not how prometheus-cpp's structs are filled in.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace traceslo::metrics {

inline prometheus::MetricFamily Family(std::string name, std::string help,
                                       prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

inline prometheus::ClientMetric Counter(std::vector<prometheus::ClientMetric::Label> labels,
                                        double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  return metric;
}

inline prometheus::ClientMetric Gauge(std::vector<prometheus::ClientMetric::Label> labels,
                                      double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

// An OpenMetrics exemplar: the labels that name an example (trace_id), its value and when.
struct Exemplar {
  std::vector<prometheus::ClientMetric::Label> labels;
  double value = 0;
  std::optional<double> timestamp_seconds;
};

// A family with the exemplars of its samples (prometheus-cpp has no exemplars). exemplars[i]
// belongs to family.metric[i]: for a histogram, exemplars[i][b] to its bucket b; for a counter,
// exemplars[i][0]. A missing index or nullopt: no exemplar.
struct ExemplarFamily {
  prometheus::MetricFamily family;
  std::vector<std::vector<std::optional<Exemplar>>> exemplars;
};

// A collectable that can also give its exemplars; /metrics uses them when the scraper asks for
// OpenMetrics. Collect() answers the same families without them.
class ExemplarCollectable : public prometheus::Collectable {
 public:
  virtual std::vector<ExemplarFamily> CollectWithExemplars() const = 0;

  std::vector<prometheus::MetricFamily> Collect() const final {
    std::vector<prometheus::MetricFamily> families;
    for (ExemplarFamily& f : CollectWithExemplars()) families.push_back(std::move(f.family));
    return families;
  }
};

}  // namespace traceslo::metrics
