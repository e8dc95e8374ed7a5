#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace traceslo::bench {

// Figures that are not Google Benchmark's own rates, recorded by benchmarks for a summary: each
// name's values over the repetitions, and their median.
class Figures {
 public:
  void Record(const std::string& name, double value) { values_[name].push_back(value); }
  bool Has(const std::string& name) const { return values_.contains(name); }
  size_t Count(const std::string& name) const {
    return values_.contains(name) ? values_.at(name).size() : 0;
  }
  double Median(const std::string& name) const {
    std::vector<double> v = values_.at(name);
    std::sort(v.begin(), v.end());
    return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  }

 private:
  std::map<std::string, std::vector<double>> values_;
};

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
