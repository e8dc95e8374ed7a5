// What SQLite persistence costs (issue: "CPU share of SQLite persistence at 10 k series"). One
// iteration is one storage flush: 10 s of traffic (one 10 s bucket per series, 20 log-normal
// requests each, 2 % errors) is applied to an SliStore, then
//   storage/flush_10k_series   StorageWriter::Flush(): the store's changed minutes (each whole:
//                              merged over its buckets), one SQLite transaction of UPSERTs of
//                              10k rows with their encoded latency sketches, and the retention
//                              check, into a WAL database file in a temp directory
//   storage/take_10k_series    the baseline: the same SliStore work (Apply of the deltas and
//                              TakeChangedMinutes) without SQLite
// Applying the deltas happens outside the timer in both, so each figure is the flush itself.
// Reported: ms per flush, and cpu_share_pct = the flush's CPU time / the 10 s flush interval it
// serves (one core), the figure the issue names; rows/s as the rate.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/bench/bench_report.h"
#include "tests/fakes/fake_clock.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/storage/sqlite_store.h"
#include "traceslo/storage/storage_writer.h"

namespace traceslo::bench {
namespace {

constexpr uint32_t kSeries = 10'000;
constexpr uint32_t kServices = 100;
constexpr int kRequestsPerBucket = 20;
constexpr double kFlushIntervalMs = 10'000;

// 10k series over 100 services, and a generator of one bucket of their traffic.
struct Traffic {
  Traffic() : registry(kServices, kSeries / kServices + 1) {
    for (uint32_t i = 0; i < kSeries; ++i) {
      ids.push_back(registry.Resolve("service-" + std::to_string(i % kServices),
                                     "GET /route/" + std::to_string(i / kServices)));
    }
  }
  pipeline::ShardDelta Bucket(int64_t bucket) {
    pipeline::ShardDelta delta;
    std::lognormal_distribution<double> duration(std::log(50e6), 1.0);
    for (const auto& id : ids) {
      pipeline::SeriesDelta d{.series = id.series, .service = id.service, .bucket = bucket};
      for (int r = 0; r < kRequestsPerBucket; ++r) {
        const auto nanos = static_cast<uint64_t>(duration(rng));
        ++d.requests;
        if (rng() % 50 == 0) ++d.errors;
        d.latency.Add(nanos);
      }
      delta.series.push_back(std::move(d));
    }
    return delta;
  }
  pipeline::SeriesRegistry registry;
  std::vector<pipeline::SeriesRegistry::Ids> ids;
  std::mt19937_64 rng{42};
};

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "traceslo-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return {};
  return pattern;
}

void SetFlushCounters(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * kSeries);
  state.counters["ms_per_flush"] =
      benchmark::Counter(static_cast<double>(state.iterations()) / 1e3,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["cpu_share_pct"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kFlushIntervalMs / 1e3 / 100,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void Flush(benchmark::State& state) {
  const std::string dir = TempDir();
  auto sqlite = storage::SqliteStore::Open(dir + "/traceslo.db");
  if (!sqlite.ok()) {
    state.SkipWithError(std::string(sqlite.status().message()).c_str());
    return;
  }
  Traffic traffic;
  pipeline::SliStore store(pipeline::SliStoreOptions{});
  fakes::FakeClock clock;
  storage::StorageWriter writer(storage::StorageWriterOptions{}, clock, store, traffic.registry,
                                **sqlite);
  int64_t bucket = pipeline::BucketOfUnixNanos(clock.Now().time_since_epoch().count());
  for (auto _ : state) {
    state.PauseTiming();
    store.Apply(traffic.Bucket(bucket++));
    clock.Advance(std::chrono::seconds(10));
    state.ResumeTiming();
    if (absl::Status status = writer.Flush(); !status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
  }
  SetFlushCounters(state);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void Take(benchmark::State& state) {
  Traffic traffic;
  pipeline::SliStore store(pipeline::SliStoreOptions{});
  int64_t bucket = 170'000'000;
  for (auto _ : state) {
    state.PauseTiming();
    store.Apply(traffic.Bucket(bucket++));
    state.ResumeTiming();
    benchmark::DoNotOptimize(store.TakeChangedMinutes());
  }
  SetFlushCounters(state);
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  benchmark::RegisterBenchmark("storage/flush_10k_series", Flush)->Iterations(60);
  benchmark::RegisterBenchmark("storage/take_10k_series", Take)->Iterations(60);
  const std::vector<Comparison> comparisons = {
      {"storage/flush_10k_series", "storage/take_10k_series",
       "series rows flushed to SQLite per second / rows only taken from the SLI store (no "
       "SQLite); one flush = 10k rows"},
  };
  return RunBenchmarksAndCompare(argc, argv, comparisons, {});
}
