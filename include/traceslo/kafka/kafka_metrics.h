#pragma once

// Kafka mode's metrics on /metrics (docs/kafka.md lists them): both stages' counters and gauges,
// read from their Stats() at each scrape.

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "traceslo/kafka/stage1_consumer.h"
#include "traceslo/kafka/stage2_consumer.h"

namespace traceslo::kafka {

// Thread-safe (Stats() are). `stage1` and `stage2` are borrowed and must outlive it.
class KafkaCollector final : public prometheus::Collectable {
 public:
  KafkaCollector(const Stage1Consumer& stage1, const Stage2Consumer& stage2)
      : stage1_(stage1), stage2_(stage2) {}

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Stage1Consumer& stage1_;
  const Stage2Consumer& stage2_;
};

}  // namespace traceslo::kafka
