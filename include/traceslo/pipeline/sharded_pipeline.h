#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "traceslo/common/mutex.h"
#include "traceslo/pipeline/span_sink.h"

namespace traceslo::pipeline {

// What a shard does with its spans. One instance per shard, called only from that shard's
// thread.
class ShardProcessor {
 public:
  virtual ~ShardProcessor() = default;
  virtual void Process(const ShardBatch& batch) = 0;
  // Periodic work (completing idle traces, publishing deltas), in queue order with the spans.
  virtual void OnTick() {}
  // After the queue drained at shutdown: last chance to publish.
  virtual void OnShutdown() {}
};

struct PipelineOptions {
  uint32_t shards = 2;
  uint32_t queue_capacity_spans = 1u << 16;  // per shard
  // Per shard: spans plus their share of the requests' string arenas, so a few spans with huge
  // strings cannot pin unbounded memory.
  uint64_t queue_capacity_bytes = 256ull << 20;
};

// Shards by trace id: one worker thread and one bounded queue (counted in spans) per shard.
// Ingest threads enqueue whole batches; only the queue hand-off takes a lock, once per shard per
// request. Thread-safe. Owns its threads; Shutdown() drains the queues and joins them.
class ShardedPipeline final : public SpanSink {
 public:
  // `registry` is borrowed and must outlive the pipeline; metric handles are resolved here once.
  static absl::StatusOr<std::unique_ptr<ShardedPipeline>> Create(
      const PipelineOptions& options, std::vector<std::unique_ptr<ShardProcessor>> processors,
      prometheus::Registry& registry);
  ~ShardedPipeline() override;

  // traceslo::pipeline::SpanSink
  absl::Status TryEnqueue(SpanBatch& batch) override;

  // Queues a tick to every shard (ShardProcessor::OnTick), after the spans already queued. A
  // shard with a tick still queued gets no second one. Called by the ticker thread and tests.
  void Tick();

  // Stops taking spans and holds the workers (queues fill); for tests and operators.
  void Pause();
  void Resume();
  // Refuses new spans, lets the workers process everything queued, and joins them. Returns
  // false if `deadline` passed first (workers are still joined once they finish their batch).
  bool Shutdown(std::chrono::steady_clock::time_point deadline);

  uint64_t spans_processed() const;
  uint32_t shard_count() const { return static_cast<uint32_t>(shards_.size()); }

 private:
  struct Shard {
    Mutex mu;
    CondVar cv;
    std::deque<ShardBatch> queue ABSL_GUARDED_BY(mu);
    bool paused ABSL_GUARDED_BY(mu) = false;
    bool stopping ABSL_GUARDED_BY(mu) = false;
    bool abandon ABSL_GUARDED_BY(mu) = false;
    bool tick_queued ABSL_GUARDED_BY(mu) = false;
    std::atomic<uint64_t> queued_spans{0};  // reserved by producers before they push
    std::atomic<uint64_t> queued_bytes{0};
    std::atomic<uint64_t> processed{0};
    std::unique_ptr<ShardProcessor> processor;
    prometheus::Gauge* queue_gauge = nullptr;
    prometheus::Counter* processed_counter = nullptr;
    std::thread thread;
  };

  ShardedPipeline(const PipelineOptions& options, prometheus::Registry& registry);
  void Run(Shard& shard);
  bool Reserve(Shard& shard, uint64_t spans, uint64_t bytes);
  void Release(Shard& shard, uint64_t spans, uint64_t bytes);

  const PipelineOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
  // Producers hold it shared for a whole TryEnqueue; Shutdown takes it exclusively to stop
  // accepting, so no request is answered OK and then left in a queue nobody drains.
  std::shared_mutex producers_mu_;
  std::atomic<bool> accepting_{true};
};

// Counts spans and nothing else; the processor until the SLI engine exists.
class CountingProcessor final : public ShardProcessor {
 public:
  void Process(const ShardBatch& batch) override { spans_ += batch.spans.size(); }
  uint64_t spans() const { return spans_; }

 private:
  uint64_t spans_ = 0;
};

}  // namespace traceslo::pipeline
