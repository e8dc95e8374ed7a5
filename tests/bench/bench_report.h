#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

namespace traceslo::bench {

// Counters every span benchmark sets, read back by the summary:
//   items_per_second  spans per second of the benchmark's time (state.SetItemsProcessed): CPU
//                     time of the thread, or of the whole process with MeasureProcessCPUTime()
//   s_per_span        the inverse (kIsRate | kInvert), shown as e.g. "412n" = 412 ns per span
//   spans_per_iter    spans handled per iteration, to derive the wall-clock rate
inline constexpr char kSpansPerIteration[] = "spans_per_iter";
inline constexpr char kSecondsPerSpan[] = "s_per_span";

// Items, bytes, seconds per span and spans per iteration for a benchmark that handled
// `spans_per_iteration` spans in `bytes` of request per iteration.
void SetSpanCounters(benchmark::State& state, uint64_t spans_per_iteration, size_t bytes);

// A figure and the baseline it is shown against; both are benchmark names as registered
// (BenchmarkName::function_name) and both run in the same process, so machine noise hits both.
struct Comparison {
  std::string subject;
  std::string baseline;
  std::string meaning;      // what subject/baseline says, printed under the line
  bool end_to_end = false;  // also print wall-clock rates and the CPU per span it adds
};

// A performance goal from an issue: printed as met / not met, never fails the run (a loaded
// machine must not turn a benchmark into a flaky test).
struct Goal {
  std::string subject;
  double min_spans_per_second = 0;
  std::string text;
};

// Runs the registered benchmarks with Google Benchmark's flags (defaults added unless given:
// --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// --benchmark_enable_random_interleaving=true), prints the usual table
// and then, from the medians, each comparison as a ratio and each goal. Returns non-zero when
// a benchmark reported an error or a comparison lacks one of its figures.
int RunBenchmarksAndCompare(int argc, char** argv, const std::vector<Comparison>& comparisons,
                            const std::vector<Goal>& goals);

}  // namespace traceslo::bench
