// LatencySketch (the per-span latency SLI), each figure next to a baseline of the same run:
//   add/*       LatencySketch::Add per value vs appending it to a preallocated std::vector (what
//               exact storage of every duration would cost); log-normal values, median 50 ms,
//               sigma 1, 4096 per iteration, sketch warmed (its window already covers them)
//   merge/*     merging a typical sketch (10k log-normal samples) into an accumulating one vs
//               appending the same 10k samples to exact storage; one merge per iteration
//   quantile/*  QuantileNanos on a 100k-sample sketch vs nth_element over a copy of the 100k
//               samples (exact storage's quantile); one quantile per iteration
//   quantile_error/<distribution>  counters only: relative error (%) of p50/p95/p99 against the
//               exact nearest-rank quantile of the same 100k samples, the proven bound, and the
//               sketch's bytes
// In the summary, "spans" means values added, merges or quantiles, as the meaning line says.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tests/bench/bench_report.h"
#include "traceslo/pipeline/latency_sketch.h"

namespace traceslo::bench {
namespace {

using pipeline::LatencySketch;

uint64_t ToNanos(double v) { return static_cast<uint64_t>(std::clamp(v, 0.0, 1e13)); }

std::vector<uint64_t> LogNormal(size_t n, double median_nanos, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(median_nanos), sigma);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = ToNanos(dist(rng));
  return out;
}

std::vector<uint64_t> Uniform(size_t n, uint64_t lo, uint64_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> dist(lo, hi);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = dist(rng);
  return out;
}

// 80 % around 2 ms, 20 % around 400 ms.
std::vector<uint64_t> Bimodal(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> fast(std::log(2e6), 0.3);
  std::lognormal_distribution<double> slow(std::log(4e8), 0.5);
  std::bernoulli_distribution is_slow(0.2);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = ToNanos(is_slow(rng) ? slow(rng) : fast(rng));
  return out;
}

LatencySketch SketchOf(const std::vector<uint64_t>& samples) {
  LatencySketch sketch;
  for (uint64_t v : samples) sketch.Add(v);
  return sketch;
}

const std::vector<uint64_t>& AddValues() {
  static const std::vector<uint64_t> values = LogNormal(4096, 5e7, 1.0, 1);
  return values;
}

void AddSketch(benchmark::State& state) {
  const std::vector<uint64_t>& values = AddValues();
  LatencySketch sketch = SketchOf(values);  // warm: the window covers the values
  for (auto _ : state) {
    for (uint64_t v : values) sketch.Add(v);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(sketch.Count());
  state.counters["sketch_bytes"] = static_cast<double>(sketch.MemoryBytes());
  SetSpanCounters(state, values.size(), values.size() * sizeof(uint64_t));
}

void AddVector(benchmark::State& state) {
  const std::vector<uint64_t>& values = AddValues();
  std::vector<uint64_t> stored;
  stored.reserve(values.size());
  for (auto _ : state) {
    stored.clear();
    for (uint64_t v : values) stored.push_back(v);
    benchmark::DoNotOptimize(stored.data());
    benchmark::ClobberMemory();
  }
  SetSpanCounters(state, values.size(), values.size() * sizeof(uint64_t));
}

const std::vector<uint64_t>& MergeSamples() {
  static const std::vector<uint64_t> samples = LogNormal(10000, 5e7, 1.0, 2);
  return samples;
}

void MergeSketch(benchmark::State& state) {
  const LatencySketch typical = SketchOf(MergeSamples());
  LatencySketch accumulator = typical;
  for (auto _ : state) {
    accumulator.Merge(typical);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(accumulator.Count());
  state.counters["sketch_bytes"] = static_cast<double>(typical.MemoryBytes());
  SetSpanCounters(state, 1, 0);
}

void MergeExact(benchmark::State& state) {
  const std::vector<uint64_t>& samples = MergeSamples();
  std::vector<uint64_t> accumulator;
  accumulator.reserve(samples.size() * 64);
  for (auto _ : state) {
    if (accumulator.size() + samples.size() > accumulator.capacity()) accumulator.clear();
    accumulator.insert(accumulator.end(), samples.begin(), samples.end());
    benchmark::DoNotOptimize(accumulator.data());
    benchmark::ClobberMemory();
  }
  SetSpanCounters(state, 1, 0);
}

const std::vector<uint64_t>& QuantileSamples() {
  static const std::vector<uint64_t> samples = LogNormal(100000, 5e7, 1.0, 3);
  return samples;
}

void QuantileSketch(benchmark::State& state, double q) {
  const LatencySketch sketch = SketchOf(QuantileSamples());
  for (auto _ : state) benchmark::DoNotOptimize(sketch.QuantileNanos(q));
  SetSpanCounters(state, 1, 0);
}

void QuantileExact(benchmark::State& state, double q) {
  const std::vector<uint64_t>& samples = QuantileSamples();
  std::vector<uint64_t> scratch(samples.size());
  for (auto _ : state) {
    std::copy(samples.begin(), samples.end(), scratch.begin());
    const uint64_t rank = LatencySketch::NearestRank(q, scratch.size());
    std::nth_element(scratch.begin(), scratch.begin() + static_cast<ptrdiff_t>(rank - 1),
                     scratch.end());
    benchmark::DoNotOptimize(scratch[rank - 1]);
  }
  SetSpanCounters(state, 1, 0);
}

void QuantileError(benchmark::State& state, const std::vector<uint64_t>& samples) {
  const LatencySketch sketch = SketchOf(samples);
  std::vector<uint64_t> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  for (auto _ : state) benchmark::DoNotOptimize(sketch.QuantileNanos(0.99));
  for (auto [q, name] : {std::pair{0.5, "p50_err_pct"}, std::pair{0.95, "p95_err_pct"},
                         std::pair{0.99, "p99_err_pct"}}) {
    const auto exact =
        static_cast<double>(sorted[LatencySketch::NearestRank(q, sorted.size()) - 1]);
    state.counters[name] = 100.0 * std::abs(sketch.QuantileNanos(q) - exact) / exact;
  }
  state.counters["bound_pct"] = 100.0 * LatencySketch::kRelativeErrorBound;
  state.counters["sketch_bytes"] = static_cast<double>(sketch.MemoryBytes());
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  static const std::vector<uint64_t> uniform = Uniform(100000, 1'000, 3'600'000'000'000, 4);
  static const std::vector<uint64_t> lognormal = LogNormal(100000, 5e7, 1.0, 5);
  static const std::vector<uint64_t> bimodal = Bimodal(100000, 6);

  benchmark::RegisterBenchmark("add/latency_sketch", AddSketch);
  benchmark::RegisterBenchmark("add/vector_push_back", AddVector);
  benchmark::RegisterBenchmark("merge/latency_sketch_10k_samples", MergeSketch);
  benchmark::RegisterBenchmark("merge/exact_append_10k_samples", MergeExact);
  benchmark::RegisterBenchmark("quantile/latency_sketch_p50",
                               [](benchmark::State& s) { QuantileSketch(s, 0.5); });
  benchmark::RegisterBenchmark("quantile/latency_sketch_p99",
                               [](benchmark::State& s) { QuantileSketch(s, 0.99); });
  benchmark::RegisterBenchmark("quantile/exact_nth_element_p50",
                               [](benchmark::State& s) { QuantileExact(s, 0.5); });
  benchmark::RegisterBenchmark("quantile/exact_nth_element_p99",
                               [](benchmark::State& s) { QuantileExact(s, 0.99); });
  benchmark::RegisterBenchmark("quantile_error/uniform_1us_1h",
                               [](benchmark::State& s) { QuantileError(s, uniform); });
  benchmark::RegisterBenchmark("quantile_error/lognormal_50ms_sigma1",
                               [](benchmark::State& s) { QuantileError(s, lognormal); });
  benchmark::RegisterBenchmark("quantile_error/bimodal_2ms_400ms",
                               [](benchmark::State& s) { QuantileError(s, bimodal); });

  const std::vector<Comparison> comparisons = {
      {"add/latency_sketch", "add/vector_push_back",
       "sketch Adds per second / appends to a preallocated vector (exact storage); per value"},
      {"merge/latency_sketch_10k_samples", "merge/exact_append_10k_samples",
       "merges of a 10k-sample sketch / appends of its 10k samples to exact storage; per merge"},
      {"quantile/latency_sketch_p50", "quantile/exact_nth_element_p50",
       "p50 reads from a 100k-sample sketch / nth_element over a copy of the samples"},
      {"quantile/latency_sketch_p99", "quantile/exact_nth_element_p99",
       "p99 reads from a 100k-sample sketch / nth_element over a copy of the samples"},
  };
  const std::vector<Goal> goals = {
      {"add/latency_sketch", 2e8, "LatencySketch::Add <= 5 ns per span (a few ns, per-span path)"},
  };
  return RunBenchmarksAndCompare(argc, argv, comparisons, goals);
}
