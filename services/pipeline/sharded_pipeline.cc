#include "traceslo/pipeline/sharded_pipeline.h"

#include <string>
#include <utility>

namespace traceslo::pipeline {

absl::StatusOr<std::unique_ptr<ShardedPipeline>> ShardedPipeline::Create(
    const PipelineOptions& options, std::vector<std::unique_ptr<ShardProcessor>> processors,
    prometheus::Registry& registry) {
  if (options.shards == 0) return absl::InvalidArgumentError("pipeline needs at least 1 shard");
  if (processors.size() != options.shards) {
    return absl::InvalidArgumentError("pipeline needs one processor per shard");
  }
  std::unique_ptr<ShardedPipeline> pipeline(new ShardedPipeline(options, registry));
  for (uint32_t i = 0; i < options.shards; ++i) {
    pipeline->shards_[i]->processor = std::move(processors[i]);
  }
  for (auto& shard : pipeline->shards_) {
    Shard* s = shard.get();
    s->thread = std::thread([p = pipeline.get(), s] { p->Run(*s); });
  }
  return pipeline;
}

ShardedPipeline::ShardedPipeline(const PipelineOptions& options, prometheus::Registry& registry)
    : options_(options) {
  auto& queue_family = prometheus::BuildGauge()
                           .Name("traceslo_pipeline_queue_spans")
                           .Help("Spans waiting in a shard's queue.")
                           .Register(registry);
  auto& processed_family = prometheus::BuildCounter()
                               .Name("traceslo_pipeline_spans_processed_total")
                               .Help("Spans a shard has taken from its queue and processed.")
                               .Register(registry);
  auto& capacity_family = prometheus::BuildGauge()
                              .Name("traceslo_pipeline_queue_capacity_spans")
                              .Help("Capacity of each shard's queue, in spans.")
                              .Register(registry);
  capacity_family.Add({}).Set(static_cast<double>(options.queue_capacity_spans));
  for (uint32_t i = 0; i < options.shards; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->queue_gauge = &queue_family.Add({{"shard", std::to_string(i)}});
    shard->processed_counter = &processed_family.Add({{"shard", std::to_string(i)}});
    shards_.push_back(std::move(shard));
  }
}

ShardedPipeline::~ShardedPipeline() { Shutdown(std::chrono::steady_clock::time_point::max()); }

bool ShardedPipeline::Reserve(Shard& shard, uint64_t spans, uint64_t bytes) {
  // An empty queue takes any batch, so one request larger than the queue still progresses.
  uint64_t current = shard.queued_spans.load(std::memory_order_relaxed);
  do {
    if (current != 0 && current + spans > options_.queue_capacity_spans) return false;
  } while (!shard.queued_spans.compare_exchange_weak(current, current + spans,
                                                     std::memory_order_relaxed));
  uint64_t current_bytes = shard.queued_bytes.load(std::memory_order_relaxed);
  do {
    if (current_bytes != 0 && current_bytes + bytes > options_.queue_capacity_bytes) {
      shard.queued_spans.fetch_sub(spans, std::memory_order_relaxed);
      return false;
    }
  } while (!shard.queued_bytes.compare_exchange_weak(current_bytes, current_bytes + bytes,
                                                     std::memory_order_relaxed));
  return true;
}

void ShardedPipeline::Release(Shard& shard, uint64_t spans, uint64_t bytes) {
  shard.queued_spans.fetch_sub(spans, std::memory_order_relaxed);
  shard.queued_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

absl::Status ShardedPipeline::TryEnqueue(SpanBatch& batch) {
  std::shared_lock producers(producers_mu_);
  if (!accepting_.load(std::memory_order_acquire)) {
    return absl::UnavailableError("shutting down");
  }
  if (batch.spans.empty()) return absl::OkStatus();
  const uint32_t n = shard_count();
  // Count per shard, reserve room in each (all or nothing), then cut and hand over.
  thread_local std::vector<uint32_t> shard_of;
  thread_local std::vector<uint64_t> counts;
  thread_local std::vector<uint64_t> bytes;
  shard_of.resize(batch.spans.size());
  counts.assign(n, 0);
  bytes.assign(n, 0);
  for (size_t i = 0; i < batch.spans.size(); ++i) {
    shard_of[i] = ShardOf(batch.spans[i].trace_id, n);
    ++counts[shard_of[i]];
  }
  // Each shard carries its spans and its share of the arena they point into.
  const uint64_t total = batch.spans.size();
  for (uint32_t s = 0; s < n; ++s) {
    bytes[s] = counts[s] * sizeof(Span) + batch.strings.size() * counts[s] / total;
  }
  for (uint32_t s = 0; s < n; ++s) {
    if (counts[s] == 0 || Reserve(*shards_[s], counts[s], bytes[s])) continue;
    for (uint32_t r = 0; r < s; ++r) {
      if (counts[r] != 0) Release(*shards_[r], counts[r], bytes[r]);
    }
    return absl::ResourceExhaustedError("pipeline queue of shard " + std::to_string(s) +
                                        " is full");
  }
  auto strings = std::make_shared<const std::string>(std::move(batch.strings));
  std::vector<ShardBatch> parts(n);
  for (uint32_t s = 0; s < n; ++s) {
    if (counts[s] == 0) continue;
    parts[s].strings = strings;
    parts[s].charged_bytes = bytes[s];
    parts[s].spans.reserve(counts[s]);
  }
  for (size_t i = 0; i < batch.spans.size(); ++i)
    parts[shard_of[i]].spans.push_back(batch.spans[i]);
  batch.Clear();
  for (uint32_t s = 0; s < n; ++s) {
    if (counts[s] == 0) continue;
    Shard& shard = *shards_[s];
    bool was_empty;
    {
      MutexLock lock(shard.mu);
      was_empty = shard.queue.empty();
      shard.queue.push_back(std::move(parts[s]));
    }
    shard.queue_gauge->Increment(static_cast<double>(counts[s]));
    if (was_empty) shard.cv.NotifyAll();  // a busy worker finds the batch without a wake-up
  }
  return absl::OkStatus();
}

void ShardedPipeline::Run(Shard& shard) {
  while (true) {
    ShardBatch batch;
    {
      MutexLock lock(shard.mu);
      shard.cv.Wait(shard.mu, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return shard.abandon || (!shard.paused && !shard.queue.empty()) ||
               (shard.stopping && shard.queue.empty());
      });
      if (shard.abandon || shard.queue.empty()) break;  // stopping and drained
      batch = std::move(shard.queue.front());
      shard.queue.pop_front();
      if (batch.tick) shard.tick_queued = false;
    }
    if (batch.tick) {
      shard.processor->OnTick();
      continue;
    }
    shard.processor->Process(batch);
    const uint64_t n = batch.spans.size();
    Release(shard, n, batch.charged_bytes);
    shard.processed.fetch_add(n, std::memory_order_relaxed);
    shard.queue_gauge->Decrement(static_cast<double>(n));
    shard.processed_counter->Increment(static_cast<double>(n));
    shard.cv.NotifyAll();
  }
  bool drained;
  {
    MutexLock lock(shard.mu);
    drained = !shard.abandon;
  }
  if (drained) shard.processor->OnShutdown();
  shard.cv.NotifyAll();
}

void ShardedPipeline::Tick() {
  for (auto& shard : shards_) {
    bool was_empty;
    {
      MutexLock lock(shard->mu);
      if (shard->tick_queued || shard->stopping) continue;
      shard->tick_queued = true;
      was_empty = shard->queue.empty();
      ShardBatch tick;
      tick.tick = true;
      shard->queue.push_back(std::move(tick));
    }
    if (was_empty) shard->cv.NotifyAll();
  }
}

void ShardedPipeline::Pause() {
  for (auto& shard : shards_) {
    MutexLock lock(shard->mu);
    if (shard->stopping) continue;  // a drain in progress is not held up
    shard->paused = true;
  }
}

void ShardedPipeline::Resume() {
  for (auto& shard : shards_) {
    {
      MutexLock lock(shard->mu);
      shard->paused = false;
    }
    shard->cv.NotifyAll();
  }
}

bool ShardedPipeline::Shutdown(std::chrono::steady_clock::time_point deadline) {
  {
    // Waits for producers inside TryEnqueue: after this, nothing new reaches a queue.
    std::unique_lock producers(producers_mu_);
    accepting_.store(false, std::memory_order_release);
  }
  bool drained = true;
  for (auto& shard : shards_) {
    {
      MutexLock lock(shard->mu);
      shard->stopping = true;
      shard->paused = false;
    }
    shard->cv.NotifyAll();
  }
  for (auto& shard : shards_) {
    if (!shard->thread.joinable()) continue;
    {
      MutexLock lock(shard->mu);
      auto queue_empty = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return shard->queue.empty(); };
      bool empty = true;
      if (deadline == std::chrono::steady_clock::time_point::max()) {
        shard->cv.Wait(shard->mu, queue_empty);  // wait_until(max) overflows in libstdc++
      } else {
        empty = shard->cv.WaitUntil(shard->mu, deadline, queue_empty);
      }
      if (!empty) {
        shard->abandon = true;
        drained = false;
      }
    }
    shard->cv.NotifyAll();
    shard->thread.join();
  }
  return drained;
}

uint64_t ShardedPipeline::spans_processed() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) total += shard->processed.load(std::memory_order_relaxed);
  return total;
}

}  // namespace traceslo::pipeline
