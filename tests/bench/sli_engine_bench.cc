// The SLI engine of one shard (pipeline::SliShardProcessor) on one thread, each rate next to a
// baseline of the same run:
//   sli/baseline/read_spans  a ShardProcessor that only reads every span's fields and sums the
//                     durations, fed by the same loop: the floor of any per-span work
//   sli/per_span      SliOptions.assemble_traces = false: per-span SLIs only (series look-up,
//                     error classification and signatures, per-(series, bucket) counters, classic
//                     histogram, latency sketch), published to an SliStore at every tick
//   sli/assembly/3200_traces_per_s  the same plus trace assembly: live traces, entry-span
//                     decisions, completion of idle traces on OnTick, trace-level SLIs, exemplars.
//                     3200 traces arrive per simulated second, so about 3200 x (idle timeout +
//                     tick) = 48k traces are live (the live_traces counter); tick_ns_per_span is
//                     the part of the figure spent in OnTick
//   memory/live_traces_8_spans  100k live traces of 8 spans, no tick: bytes per trace as the
//                     engine counts them (LiveTraceBytes / live_traces) and as malloc does
//                     (in-use bytes from mallinfo2 after minus before, / traces)
//   memory/store_1000_series_1h  an SliStore fed a full hour (360 buckets of 10 s) of 1000 series
//                     (100 services) with 50 log-normal requests per series and bucket: bytes per
//                     series by MemoryBytes() and by mallinfo2
// Traffic: MakeMeshOtlpProtoRequest (traces of 8 spans, a SERVER root and children of mixed kinds
// over 2-3 of 20 services with 10 operations each, 2 % error spans with exception messages that
// carry numbers, log-normal durations, children before parents) decoded by DecodeOtlpProto, so
// spans and string arena are what a shard receives. A pool of 32 such requests is replayed with
// new trace ids and times on every pass (the rewrite is outside the timer). One iteration = one
// request of 512 spans; before each, a fake clock moves 64 / rate seconds, and the processor ticks
// every simulated second as the pipeline's ticker does. Every processor runs on for the whole
// binary (warmed once, past trace_max_age), so each repetition measures the steady state.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "services/ingest/otlp_decode.h"
#include "tests/bench/bench_report.h"
#include "tests/bench/otlp_request.h"
#include "tests/fakes/fake_clock.h"
#include "traceslo/common/clock.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::bench {
namespace {

using pipeline::ShardBatch;
using pipeline::ShardProcessor;
using pipeline::SliShardProcessor;

constexpr uint32_t kPoolRequests = 32;
constexpr int64_t kSecondNanos = 1'000'000'000;
constexpr int64_t kTickNanos = kSecondNanos;  // PipelineConfig::tick_interval's default
constexpr uint32_t kBaselineRate = 3200;      // traces per simulated second
constexpr uint32_t kLiveTracesForMemory = 100'000;
constexpr double kLiveTraceGoalBytes = 256;

// malloc's bytes in use: small chunks (uordblks) and mmapped ones (hblkhd), all arenas.
double MallocInUse() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks) + static_cast<double>(info.hblkhd);
}

// kPoolRequests decoded mesh requests, all sent at FakeClock's start time.
absl::StatusOr<std::vector<ShardBatch>> BuildPool(size_t& proto_bytes) {
  std::vector<ShardBatch> pool;
  proto_bytes = 0;
  for (uint32_t i = 0; i < kPoolRequests; ++i) {
    MeshShape shape;
    shape.seed = 1000 + i;
    shape.sent_unix_nano =
        static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  fakes::FakeClock().Now().time_since_epoch())
                                  .count());
    const std::string request = MakeMeshOtlpProtoRequest(shape);
    proto_bytes += request.size();
    SpanBatch batch;
    ingest::DecodeResult result;
    if (absl::Status status = ingest::DecodeOtlpProto(request, {}, batch, result); !status.ok()) {
      return status;
    }
    if (result.accepted != shape.spans() || result.TotalRejected() != 0) {
      return absl::InternalError("mesh request not fully decoded: accepted " +
                                 std::to_string(result.accepted));
    }
    ShardBatch shard_batch;
    shard_batch.strings = std::make_shared<const std::string>(std::move(batch.strings));
    shard_batch.spans = std::move(batch.spans);
    pool.push_back(std::move(shard_batch));
  }
  proto_bytes /= kPoolRequests;
  return pool;
}

// The pool's requests one after another, as one shard receives them, with the fake clock moved
// `interval` before each. Request g (counted from 0) gets trace ids whose first 8 bytes are g + 1
// and times moved by (g + 1) x interval, so that it was sent at the moment it arrives and no
// trace id comes back. Owned by the benchmark thread.
class MeshStream {
 public:
  MeshStream(const std::vector<ShardBatch>& pool, int64_t interval_nanos, fakes::FakeClock& clock)
      : pool_(pool), requests_(pool), interval_nanos_(interval_nanos), clock_(clock) {
    Restamp();
  }

  // The next request; its rewrite, once per pass over the pool, is kept out of `state`'s timer.
  const ShardBatch& Next(benchmark::State* state) {
    if (next_ == requests_.size()) {
      if (state != nullptr) state->PauseTiming();
      Restamp();
      if (state != nullptr) state->ResumeTiming();
    }
    clock_.Advance(std::chrono::nanoseconds(interval_nanos_));
    elapsed_nanos_ += interval_nanos_;
    return requests_[next_++];
  }

  int64_t elapsed_nanos() const { return elapsed_nanos_; }

 private:
  void Restamp() {
    for (size_t i = 0; i < requests_.size(); ++i) {
      const uint64_t request = sent_ + i + 1;
      const auto shift = static_cast<uint64_t>(request) * static_cast<uint64_t>(interval_nanos_);
      std::vector<Span>& spans = requests_[i].spans;
      const std::vector<Span>& original = pool_[i].spans;
      for (size_t k = 0; k < spans.size(); ++k) {
        std::memcpy(spans[k].trace_id.data(), &request, sizeof request);
        spans[k].start_unix_nano = original[k].start_unix_nano + shift;
        spans[k].end_unix_nano = original[k].end_unix_nano + shift;
      }
    }
    sent_ += requests_.size();
    next_ = 0;
  }

  const std::vector<ShardBatch>& pool_;
  std::vector<ShardBatch> requests_;
  const int64_t interval_nanos_;
  fakes::FakeClock& clock_;
  uint64_t sent_ = 0;
  size_t next_ = 0;
  int64_t elapsed_nanos_ = 0;
};

// Reads what any per-span work must read, and sums it.
class ReadSpansProcessor final : public ShardProcessor {
 public:
  // traceslo::pipeline::ShardProcessor
  void Process(const ShardBatch& batch) override {
    for (const Span& span : batch.spans) {
      sum_ += span.end_unix_nano - span.start_unix_nano;
      sum_ += span.span_id ^ span.parent_span_id ^ span.trace_id[0] ^ span.trace_id[15];
      sum_ += batch.Str(span.service).size() + batch.Str(span.name).size();
      sum_ += static_cast<uint64_t>(span.kind) + static_cast<uint64_t>(span.status) +
              static_cast<uint64_t>(span.http_status);
    }
    benchmark::DoNotOptimize(sum_);
  }

 private:
  uint64_t sum_ = 0;
};

enum class Engine { kReadSpans, kPerSpan, kAssembly };

// One processor fed by one stream for the whole binary: a clock, the registry and store the
// processor borrows, and the tick schedule. Owned by the benchmark thread.
class EngineRig {
 public:
  EngineRig(const std::vector<ShardBatch>& pool, Engine engine, uint32_t traces_per_second)
      : registry_(1000, 100),
        store_(pipeline::SliStoreOptions{.shards = 1}),
        stream_(pool,
                kSecondNanos * static_cast<int64_t>(pool.front().spans.size()) /
                    MeshShape::kSpansPerTrace / traces_per_second,
                clock_) {
    if (engine == Engine::kReadSpans) {
      processor_ = std::make_unique<ReadSpansProcessor>();
      return;
    }
    pipeline::SliOptions options;
    options.assemble_traces = engine == Engine::kAssembly;
    warm_up_nanos_ = options.trace_max_age.count() + 2 * kTickNanos;
    auto sli = std::make_unique<SliShardProcessor>(options, clock_, registry_, store_);
    sli_ = sli.get();
    processor_ = std::move(sli);
  }

  void Run(benchmark::State& state, const std::string& name, Figures& figures) {
    // Past trace_max_age once, so that the live set and the completed-id memory are full.
    while (stream_.elapsed_nanos() < warm_up_nanos_) Step(nullptr);
    uint64_t ticks = 0;
    double live_sum = 0;
    size_t spans = 0;
    tick_nanos_ = 0;
    for (auto _ : state) {
      spans = Step(&state);
      if (sli_ != nullptr && stream_.elapsed_nanos() == last_tick_nanos_) {
        ++ticks;
        live_sum += static_cast<double>(sli_->live_traces());
      }
    }
    SetSpanCounters(state, spans, 0);
    // Wall time inside OnTick per span handled: the share of the per-span figure that completing
    // traces and publishing take (the rest is Process).
    state.counters["tick_ns_per_span"] =
        static_cast<double>(tick_nanos_) /
        (static_cast<double>(state.iterations()) * static_cast<double>(spans));
    if (sli_ == nullptr) return;
    const pipeline::SliStore::GlobalTotals totals = store_.Totals();
    // Every span of the traffic arrives in time, once, with its trace: anything else would
    // measure the wrong path.
    if (totals.late_spans != 0 || totals.clock_skew_spans != 0 || totals.truncated_spans != 0) {
      state.SkipWithError("traffic took an unexpected path: late, skewed or truncated spans");
      return;
    }
    if (ticks > 0) {
      const double live = live_sum / static_cast<double>(ticks);
      state.counters["live_traces"] = live;
      figures.Record(name + " live_traces", live);
    }
    if (sli_->live_traces() > 0) {
      const double per_trace =
          static_cast<double>(sli_->LiveTraceBytes()) / static_cast<double>(sli_->live_traces());
      state.counters["live_bytes_per_trace"] = per_trace;
      figures.Record(name + " live_bytes_per_trace", per_trace);
    }
    state.counters["evicted_traces"] = static_cast<double>(totals.evicted_traces);
  }

 private:
  // One request, and a tick when a simulated tick interval has passed; returns the spans.
  size_t Step(benchmark::State* state) {
    const ShardBatch& batch = stream_.Next(state);
    processor_->Process(batch);
    if (stream_.elapsed_nanos() - last_tick_nanos_ >= kTickNanos) {
      const auto start = wall_.SteadyNow();
      processor_->OnTick();
      tick_nanos_ +=
          std::chrono::duration_cast<std::chrono::nanoseconds>(wall_.SteadyNow() - start).count();
      last_tick_nanos_ = stream_.elapsed_nanos();
    }
    return batch.spans.size();
  }

  fakes::FakeClock clock_;
  pipeline::SeriesRegistry registry_;
  pipeline::SliStore store_;
  MeshStream stream_;
  std::unique_ptr<ShardProcessor> processor_;
  SliShardProcessor* sli_ = nullptr;
  int64_t warm_up_nanos_ = 2 * kTickNanos;
  int64_t last_tick_nanos_ = 0;
  SystemClock wall_;  // times the ticks
  int64_t tick_nanos_ = 0;
};

// Bytes per live trace: 100k 8-span traces in a fresh processor, never ticked.
void LiveTraceMemory(benchmark::State& state, const std::vector<ShardBatch>& pool,
                     Figures& figures) {
  for (auto _ : state) {
    fakes::FakeClock clock;
    pipeline::SeriesRegistry registry(1000, 100);
    pipeline::SliStore store(pipeline::SliStoreOptions{.shards = 1});
    pipeline::SliOptions options;
    options.max_live_traces = 2 * kLiveTracesForMemory;
    MeshStream stream(pool, 20'000'000, clock);
    {
      // A first processor fills the registry and the store's rings, so that the measurement
      // sees only what the measured processor holds: live traces, plus its name cache and the
      // unpublished delta (a few hundred bytes per series and bucket; no tick publishes it).
      SliShardProcessor warm_up(options, clock, registry, store);
      for (uint32_t i = 0; i < kPoolRequests; ++i) warm_up.Process(stream.Next(nullptr));
      warm_up.OnShutdown();
    }
    const double before = MallocInUse();
    SliShardProcessor processor(options, clock, registry, store);
    while (processor.live_traces() < kLiveTracesForMemory) processor.Process(stream.Next(nullptr));
    const double after = MallocInUse();
    const auto live = static_cast<double>(processor.live_traces());
    const double engine = static_cast<double>(processor.LiveTraceBytes()) / live;
    const double malloc = (after - before) / live;
    state.counters["live_traces"] = live;
    state.counters["bytes_per_trace_engine"] = engine;
    state.counters["bytes_per_trace_malloc"] = malloc;
    figures.Record("live_traces", live);
    figures.Record("bytes_per_trace_engine", engine);
    figures.Record("bytes_per_trace_malloc", malloc);
  }
}

// Bytes per series of a store that holds an hour of 1000 series.
void StoreMemory(benchmark::State& state, Figures& figures) {
  constexpr uint32_t kSeries = 1000;
  constexpr uint32_t kOperationsPerService = 10;
  constexpr uint32_t kRequestsPerBucket = 50;
  constexpr int64_t kBuckets = 360;
  for (auto _ : state) {
    std::mt19937_64 rng(7);
    // Each series its own latency: a median between 2 ms and 500 ms, sigma 0.5 to 1.
    std::vector<std::lognormal_distribution<double>> latency;
    for (uint32_t s = 0; s < kSeries; ++s) {
      const double median = 2e6 * std::pow(250.0, std::uniform_real_distribution<>(0, 1)(rng));
      latency.emplace_back(std::log(median), std::uniform_real_distribution<>(0.5, 1.0)(rng));
    }
    std::bernoulli_distribution error(0.02);
    const double before = MallocInUse();
    auto store = std::make_unique<pipeline::SliStore>(pipeline::SliStoreOptions{.shards = 1});
    const int64_t first = pipeline::BucketOfUnixNanos(1'700'000'000'000'000'000);
    for (int64_t b = 0; b < kBuckets; ++b) {
      pipeline::ShardDelta delta;
      delta.series.reserve(kSeries);
      for (uint32_t s = 0; s < kSeries; ++s) {
        pipeline::SeriesDelta& d = delta.series.emplace_back();
        d.series = s;
        d.service = s / kOperationsPerService;
        d.bucket = first + b;
        for (uint32_t r = 0; r < kRequestsPerBucket; ++r) {
          const auto nanos = static_cast<uint64_t>(std::clamp(latency[s](rng), 1e3, 6e10));
          ++d.requests;
          d.errors += error(rng) ? 1 : 0;
          d.sum_seconds += static_cast<double>(nanos) * 1e-9;
          ++d.classic[pipeline::ClassicBucketOf(nanos)];
          d.latency.Add(nanos);
        }
      }
      for (uint32_t service = 0; service < kSeries / kOperationsPerService; ++service) {
        delta.services.push_back(pipeline::ServiceDelta{
            .service = service, .bucket = first + b, .traces = kRequestsPerBucket});
      }
      store->Apply(std::move(delta));
    }
    const double after = MallocInUse();
    const double by_store = static_cast<double>(store->MemoryBytes()) / kSeries;
    const double by_malloc = (after - before) / kSeries;
    state.counters["series"] = kSeries;
    state.counters["bytes_per_series_store"] = by_store;
    state.counters["bytes_per_series_malloc"] = by_malloc;
    state.counters["bytes_per_series_bucket"] = by_store / kBuckets;
    figures.Record("bytes_per_series_store", by_store);
    figures.Record("bytes_per_series_malloc", by_malloc);
  }
}

void PrintFigures(const Figures& figures) {
  const std::string assembly = "sli/assembly/" + std::to_string(kBaselineRate) + "_traces_per_s";
  if (figures.Has(assembly + " live_traces")) {
    std::printf(
        "%s: %.0f live traces on average at the ticks, %.0f B per live trace "
        "(LiveTraceBytes / live_traces)\n",
        assembly.c_str(), figures.Median(assembly + " live_traces"),
        figures.Median(assembly + " live_bytes_per_trace"));
  }
  if (figures.Has("bytes_per_trace_engine")) {
    const double engine = figures.Median("bytes_per_trace_engine");
    const double malloc = figures.Median("bytes_per_trace_malloc");
    std::printf(
        "memory/live_traces_8_spans: %.0f live traces: %.1f B per trace by LiveTraceBytes, "
        "%.1f B by mallinfo2 (in-use after - before)\n",
        figures.Median("live_traces"), engine, malloc);
    std::printf(
        "goal bytes per live 8-span trace <= %.0f B (exemplars aside): %.1f B (malloc) "
        "-> %s\n",
        kLiveTraceGoalBytes, malloc,
        std::max(engine, malloc) <= kLiveTraceGoalBytes ? "met" : "NOT met");
  }
  if (figures.Has("bytes_per_series_store")) {
    std::printf(
        "memory/store_1000_series_1h: %.0f B per series by SliStore::MemoryBytes, %.0f B "
        "by mallinfo2 (360 buckets of 50 requests; %.0f B per series and bucket)\n",
        figures.Median("bytes_per_series_store"), figures.Median("bytes_per_series_malloc"),
        figures.Median("bytes_per_series_store") / 360);
  }
  std::fflush(stdout);
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  size_t proto_bytes = 0;
  auto pool = BuildPool(proto_bytes);
  if (!pool.ok()) {
    std::fprintf(stderr, "cannot build the traffic: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "traffic: %u requests of %zu spans (%zu protobuf bytes on average), traces of %u spans "
      "over 2-3 of 20 services; rates are spans per second of the benchmark thread's CPU\n",
      kPoolRequests, pool->front().spans.size(), proto_bytes, MeshShape::kSpansPerTrace);

  Figures figures;
  struct Rig {
    std::string name;
    Engine engine;
    uint32_t rate;
  };
  const std::string baseline = "sli/baseline/read_spans";
  const std::string per_span = "sli/per_span";
  const std::string assembly = "sli/assembly/" + std::to_string(kBaselineRate) + "_traces_per_s";
  std::vector<std::unique_ptr<EngineRig>> rigs;
  for (const Rig& r : {Rig{baseline, Engine::kReadSpans, kBaselineRate},
                       Rig{per_span, Engine::kPerSpan, kBaselineRate},
                       Rig{assembly, Engine::kAssembly, kBaselineRate}}) {
    EngineRig* rig = rigs.emplace_back(std::make_unique<EngineRig>(*pool, r.engine, r.rate)).get();
    // Registered as lambdas: RegisterBenchmark would copy extra arguments.
    benchmark::RegisterBenchmark(r.name.c_str(),
                                 [rig, name = r.name, &figures](benchmark::State& state) {
                                   rig->Run(state, name, figures);
                                 });
  }
  const std::vector<traceslo::pipeline::ShardBatch>* p = &*pool;
  benchmark::RegisterBenchmark(
      "memory/live_traces_8_spans",
      [p, &figures](benchmark::State& state) { LiveTraceMemory(state, *p, figures); })
      ->Iterations(1)
      ->Repetitions(1);
  benchmark::RegisterBenchmark("memory/store_1000_series_1h",
                               [&figures](benchmark::State& state) { StoreMemory(state, figures); })
      ->Iterations(1)
      ->Repetitions(1);

  const std::vector<Comparison> comparisons = {
      {per_span, baseline, "share of the read-only loop's rate kept by per-span SLIs"},
      {assembly, baseline, "share of the read-only loop's rate kept by SLIs + trace assembly"},
      {assembly, per_span, "share of the per-span rate kept when trace assembly is added"},
  };
  const int status = RunBenchmarksAndCompare(argc, argv, comparisons, {});
  PrintFigures(figures);
  return status;
}
