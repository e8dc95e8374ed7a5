#include "traceslo/pipeline/sharded_pipeline.h"

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <thread>

namespace traceslo::pipeline {
namespace {

// Records what its shard saw. Touched only by its shard thread until Shutdown() joins it.
class RecordingProcessor final : public ShardProcessor {
 public:
  void Process(const ShardBatch& batch) override {
    for (const Span& span : batch.spans) {
      span_ids.push_back(span.span_id);
      trace_ids.push_back(span.trace_id);
      names.emplace_back(batch.Str(span.name));
    }
  }
  std::vector<uint64_t> span_ids;
  std::vector<TraceId> trace_ids;
  std::vector<std::string> names;
};

struct Fixture {
  explicit Fixture(uint32_t shards, uint32_t capacity, uint64_t capacity_bytes = 1ull << 30) {
    std::vector<std::unique_ptr<ShardProcessor>> processors;
    for (uint32_t i = 0; i < shards; ++i) {
      auto p = std::make_unique<RecordingProcessor>();
      recorders.push_back(p.get());
      processors.push_back(std::move(p));
    }
    pipeline = *ShardedPipeline::Create({.shards = shards,
                                         .queue_capacity_spans = capacity,
                                         .queue_capacity_bytes = capacity_bytes},
                                        std::move(processors), registry);
  }
  prometheus::Registry registry;
  std::vector<RecordingProcessor*> recorders;
  std::unique_ptr<ShardedPipeline> pipeline;
};

// A batch of `n` spans with ids first_id.. and trace ids derived from them.
SpanBatch MakeBatch(uint64_t first_id, size_t n) {
  SpanBatch batch;
  for (size_t i = 0; i < n; ++i) {
    Span span;
    uint64_t id = first_id + i;
    for (int b = 0; b < 8; ++b) span.trace_id[8 + b] = static_cast<uint8_t>(id >> (8 * b));
    span.trace_id[0] = 1;
    span.span_id = id;
    span.name = batch.Add("op-" + std::to_string(id), kMaxNameBytes);
    batch.spans.push_back(span);
  }
  return batch;
}

TEST(ShardedPipelineTest, EverySpanReachesItsShardExactlyOnceUnderConcurrentProducers) {
  constexpr uint32_t kShards = 3;
  constexpr int kThreads = 4;
  constexpr int kBatchesPerThread = 200;
  constexpr size_t kBatchSize = 37;
  Fixture f(kShards, 1u << 20);
  std::vector<std::thread> producers;
  std::atomic<int> refused{0};
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int b = 0; b < kBatchesPerThread; ++b) {
        uint64_t first = (static_cast<uint64_t>(t) * kBatchesPerThread + b) * kBatchSize + 1;
        SpanBatch batch = MakeBatch(first, kBatchSize);
        if (!f.pipeline->TryEnqueue(batch).ok()) refused.fetch_add(1);
      }
    });
  }
  for (auto& p : producers) p.join();
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(refused.load(), 0);

  const uint64_t expected_total = uint64_t{kThreads} * kBatchesPerThread * kBatchSize;
  std::set<uint64_t> seen;
  for (uint32_t s = 0; s < kShards; ++s) {
    const auto& r = *f.recorders[s];
    for (size_t i = 0; i < r.span_ids.size(); ++i) {
      EXPECT_EQ(ShardOf(r.trace_ids[i], kShards), s);
      EXPECT_EQ(r.names[i], "op-" + std::to_string(r.span_ids[i]));  // the arena travelled
      EXPECT_TRUE(seen.insert(r.span_ids[i]).second) << "span " << r.span_ids[i] << " twice";
    }
    EXPECT_GT(r.span_ids.size(), 0u) << "shard " << s << " got nothing";
  }
  EXPECT_EQ(seen.size(), expected_total);
  EXPECT_EQ(f.pipeline->spans_processed(), expected_total);
}

TEST(ShardedPipelineTest, FullQueueRefusesWholeBatchAndLeavesItIntact) {
  Fixture f(1, 100);
  f.pipeline->Pause();
  SpanBatch first = MakeBatch(1, 60);
  ASSERT_TRUE(f.pipeline->TryEnqueue(first).ok());
  EXPECT_TRUE(first.spans.empty());
  SpanBatch second = MakeBatch(100, 60);
  absl::Status status = f.pipeline->TryEnqueue(second);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(second.spans.size(), 60u);
  EXPECT_EQ(second.Str(second.spans[59].name), "op-159");
  SpanBatch third = MakeBatch(200, 40);  // exactly fills the queue
  EXPECT_TRUE(f.pipeline->TryEnqueue(third).ok());
  f.pipeline->Resume();
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(f.recorders[0]->span_ids.size(), 100u);
}

TEST(ShardedPipelineTest, EmptyQueueTakesABatchLargerThanItsCapacity) {
  Fixture f(1, 10);
  f.pipeline->Pause();
  SpanBatch big = MakeBatch(1, 25);
  EXPECT_TRUE(f.pipeline->TryEnqueue(big).ok());
  SpanBatch more = MakeBatch(100, 1);
  EXPECT_EQ(f.pipeline->TryEnqueue(more).code(), absl::StatusCode::kResourceExhausted);
  f.pipeline->Resume();
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(f.recorders[0]->span_ids.size(), 25u);
}

TEST(ShardedPipelineTest, ShutdownDrainsWhatAPausedPipelineHolds) {
  Fixture f(2, 1000);
  f.pipeline->Pause();
  size_t sent = 0;
  for (int i = 0; i < 10; ++i) {
    SpanBatch batch = MakeBatch(1 + i * 50, 50);
    ASSERT_TRUE(f.pipeline->TryEnqueue(batch).ok());
    sent += 50;
  }
  EXPECT_EQ(f.pipeline->spans_processed(), 0u);
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(f.pipeline->spans_processed(), sent);
  SpanBatch late = MakeBatch(9999, 1);
  EXPECT_EQ(f.pipeline->TryEnqueue(late).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(late.spans.size(), 1u);
}

TEST(ShardedPipelineTest, RefusalReleasesReservationsOnOtherShards) {
  // Two shards, small capacity: fill one shard, then a batch spanning both is refused and must
  // not leave phantom reservations behind on the other shard.
  Fixture f(2, 10);
  f.pipeline->Pause();
  SpanBatch spread = MakeBatch(1, 8);
  ASSERT_TRUE(f.pipeline->TryEnqueue(spread).ok());
  std::array<uint32_t, 2> used{};
  for (const Span& span : MakeBatch(1, 8).spans) ++used[ShardOf(span.trace_id, 2)];
  for (int attempt = 0; attempt < 50; ++attempt) {
    SpanBatch batch = MakeBatch(1000 + attempt * 20, 20);
    EXPECT_FALSE(f.pipeline->TryEnqueue(batch).ok());
  }
  // Leaked reservations would make this exact fill fail.
  SpanBatch fill;
  std::array<uint32_t, 2> want{10 - used[0], 10 - used[1]};
  for (const Span& span : MakeBatch(5000, 200).spans) {
    uint32_t s = ShardOf(span.trace_id, 2);
    if (want[s] == 0) continue;
    --want[s];
    fill.spans.push_back(span);
    fill.spans.back().name = fill.Add("fill", kMaxNameBytes);
  }
  ASSERT_EQ(want[0] + want[1], 0u);
  EXPECT_TRUE(f.pipeline->TryEnqueue(fill).ok());
  f.pipeline->Resume();
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(f.pipeline->spans_processed(), 20u);
}

TEST(ShardedPipelineTest, EverySpanAcceptedWhileShuttingDownIsProcessed) {
  // Producers race Shutdown: whatever TryEnqueue answered OK must have been processed.
  for (int round = 0; round < 200; ++round) {
    Fixture f(2, 1u << 20);
    std::atomic<uint64_t> accepted{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> producers;
    for (int t = 0; t < 3; ++t) {
      producers.emplace_back([&, t] {
        while (!go.load()) {
        }
        for (int b = 0; b < 2000; ++b) {
          SpanBatch batch = MakeBatch((static_cast<uint64_t>(t) * 2000 + b) * 10 + 1, 10);
          if (f.pipeline->TryEnqueue(batch).ok()) accepted.fetch_add(10);
        }
      });
    }
    go.store(true);
    while (accepted.load() < 100) {  // shut down mid-stream
    }
    ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
    for (auto& p : producers) p.join();
    EXPECT_EQ(f.pipeline->spans_processed(), accepted.load()) << "round " << round;
  }
}

TEST(ShardedPipelineTest, ByteCapacityCountsTheStringsSpansPointInto) {
  // 10 spans of 1 KiB names each: ~10 KiB of arena plus the spans themselves.
  Fixture f(1, 1000, 16 * 1024);
  f.pipeline->Pause();
  auto big_batch = [](uint64_t first) {
    SpanBatch batch = MakeBatch(first, 10);
    for (Span& span : batch.spans) span.name = batch.Add(std::string(1024, 'x'), 2048);
    return batch;
  };
  SpanBatch first = big_batch(1);
  ASSERT_TRUE(f.pipeline->TryEnqueue(first).ok());  // an empty queue takes any batch
  SpanBatch second = big_batch(100);
  EXPECT_EQ(f.pipeline->TryEnqueue(second).code(), absl::StatusCode::kResourceExhausted);
  SpanBatch small = MakeBatch(200, 5);  // ~5 x 112 B of spans and a few bytes of names fit
  EXPECT_TRUE(f.pipeline->TryEnqueue(small).ok());
  f.pipeline->Resume();
  ASSERT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  EXPECT_EQ(f.pipeline->spans_processed(), 15u);
}

TEST(ShardedPipelineTest, PauseDuringShutdownDoesNotHoldTheDrain) {
  Fixture f(1, 1000);
  f.pipeline->Pause();
  SpanBatch batch = MakeBatch(1, 50);
  ASSERT_TRUE(f.pipeline->TryEnqueue(batch).ok());
  std::thread pauser([&] {
    for (int i = 0; i < 1000; ++i) f.pipeline->Pause();
  });
  EXPECT_TRUE(f.pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  pauser.join();
  EXPECT_EQ(f.pipeline->spans_processed(), 50u);
}

}  // namespace
}  // namespace traceslo::pipeline
