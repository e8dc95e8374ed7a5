#include "traceslo/slo/sli_engine.h"

#include <algorithm>

#include "traceslo/pipeline/sli_processor.h"

namespace traceslo::slo {

SliEngine::SliEngine(const config::PipelineConfig& config, const Clock& clock)
    : config_(config),
      clock_(clock),
      series_(config.max_services, config.max_operations_per_service),
      store_(pipeline::SliStoreOptions{.shards = config.shards,
                                       .retention = config.sli_retention,
                                       .exemplar_retention = config.exemplar_retention,
                                       .max_signatures = config.max_signatures}),
      source_(series_, store_) {}

pipeline::SliOptions SliEngine::sli_options() const {
  pipeline::SliOptions options{
      .trace_idle_timeout = config_.trace_idle_timeout,
      .trace_max_age = config_.trace_max_age,
      .max_lateness = config_.max_lateness,
      .max_live_traces = std::max<uint32_t>(1, config_.max_live_traces / config_.shards),
      .max_spans_per_trace = config_.max_spans_per_trace,
      .max_signatures = config_.max_signatures,
      .errors = {.http_status_min = config_.errors.http_status_min, .grpc_code_mask = 0},
  };
  for (int32_t code : config_.errors.grpc_codes) options.errors.grpc_code_mask |= 1u << code;
  return options;
}

std::vector<std::unique_ptr<pipeline::ShardProcessor>> SliEngine::MakeProcessors() {
  pipeline::SliOptions options = sli_options();
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors;
  for (uint32_t i = 0; i < config_.shards; ++i) {
    options.shard = i;
    processors.push_back(
        std::make_unique<pipeline::SliShardProcessor>(options, clock_, series_, store_));
  }
  return processors;
}

EvaluatorOptions SliEngine::evaluator_options() const {
  const auto settle =
      std::min<std::chrono::milliseconds>(config_.max_lateness + config_.trace_max_age +
                                              2 * config_.tick_interval + std::chrono::seconds(10),
                                          config_.sli_retention - std::chrono::minutes(1));
  return EvaluatorOptions{.settle_delay = settle, .source_retention = config_.sli_retention};
}

}  // namespace traceslo::slo
