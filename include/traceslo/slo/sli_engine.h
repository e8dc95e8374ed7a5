#pragma once

#include <memory>
#include <vector>

#include "traceslo/common/clock.h"
#include "traceslo/config/config.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"

namespace traceslo::slo {

// The SLI side of traceslo as `serve`, `test` and `replay` all wire it from the pipeline
// configuration: the series registry, the SLI store, the source the evaluator reads, and the
// evaluator options that match them. `clock` is borrowed and must outlive the engine.
// Not copyable or movable (the processors and the source hold references into it).
class SliEngine {
 public:
  SliEngine(const config::PipelineConfig& config, const Clock& clock);
  SliEngine(const SliEngine&) = delete;
  SliEngine& operator=(const SliEngine&) = delete;

  // The settings of one shard's SLI engine (shard 0, a shard's share of max_live_traces).
  pipeline::SliOptions sli_options() const;
  // One SliShardProcessor per configured shard, for a ShardedPipeline (or driven directly).
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> MakeProcessors();

  // Minutes settle once no late span or completing trace can change them any more:
  // max_lateness + trace_max_age + two ticks + 10 s, and at least a minute inside retention.
  EvaluatorOptions evaluator_options() const;

  const config::PipelineConfig& config() const { return config_; }
  pipeline::SeriesRegistry& series() { return series_; }
  pipeline::SliStore& store() { return store_; }
  StoreSliSource& source() { return source_; }

 private:
  const config::PipelineConfig config_;
  const Clock& clock_;
  pipeline::SeriesRegistry series_;
  pipeline::SliStore store_;
  StoreSliSource source_;
};

}  // namespace traceslo::slo
