#include "tests/bench/bench_report.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string_view>

namespace traceslo::bench {
namespace {

// What the summary needs of one benchmark's median (or single run, without repetitions).
struct Figure {
  double spans_per_second = 0;  // per CPU-second of the benchmark's timer
  double wall_spans_per_second = 0;
  double cpu_per_wall = 0;  // CPU seconds per wall second while it ran (process or thread)
  bool median = false;
  int64_t repetitions = 1;
};

// The console table as usual, plus a record of the medians for the summary.
class SummaryReporter final : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : ConsoleReporter(OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) {
        errors_.push_back(run.benchmark_name() + ": " + run.error_message);
        continue;
      }
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      Figure& figure = figures_[run.run_name.function_name];
      if (figure.median && !median) continue;
      figure.median = median;
      figure.repetitions = median ? run.repetitions : 1;
      if (auto it = run.counters.find("items_per_second"); it != run.counters.end()) {
        figure.spans_per_second = it->second.value;
      }
      // For an aggregate, accumulated time / iterations is the median time of one iteration.
      const double real_per_iteration =
          run.iterations > 0 ? run.real_accumulated_time / static_cast<double>(run.iterations) : 0;
      const double cpu_per_iteration =
          run.iterations > 0 ? run.cpu_accumulated_time / static_cast<double>(run.iterations) : 0;
      if (auto it = run.counters.find(kSpansPerIteration);
          it != run.counters.end() && real_per_iteration > 0) {
        figure.wall_spans_per_second = it->second.value / real_per_iteration;
      }
      if (real_per_iteration > 0) figure.cpu_per_wall = cpu_per_iteration / real_per_iteration;
    }
  }

  const std::map<std::string, Figure>& figures() const { return figures_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::map<std::string, Figure> figures_;
  std::vector<std::string> errors_;
};

std::string Si(double value) {
  char buf[32];
  if (value >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", value / 1e6);
  } else if (value >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1f k", value / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f ", value);
  }
  return buf;
}

int PrintSummary(const SummaryReporter& reporter, const std::vector<Comparison>& comparisons,
                 const std::vector<Goal>& goals) {
  int status = 0;
  const auto& figures = reporter.figures();
  int64_t repetitions = 1;
  bool medians = false;
  for (const auto& [name, figure] : figures) {
    repetitions = std::max(repetitions, figure.repetitions);
    medians = medians || figure.median;
  }
  std::printf("\n== summary: %s; every ratio is subject / baseline of the same run ==\n",
              medians ? ("medians of " + std::to_string(repetitions) + " repetitions").c_str()
                      : "single runs (no repetitions: pass --benchmark_repetitions=5)");
  for (const Comparison& c : comparisons) {
    auto subject = figures.find(c.subject);
    auto baseline = figures.find(c.baseline);
    if (subject == figures.end() || baseline == figures.end() ||
        subject->second.spans_per_second <= 0 || baseline->second.spans_per_second <= 0) {
      // Filtered out (--benchmark_filter) or failed; a failure is already counted.
      std::printf("%s vs %s: not measured in this run\n", c.subject.c_str(), c.baseline.c_str());
      continue;
    }
    const Figure& s = subject->second;
    const Figure& b = baseline->second;
    const char* per = c.end_to_end ? "spans/CPU-s" : "spans/s";
    std::printf("%-44s %10s%s %8.1f ns/span\n", c.subject.c_str(), Si(s.spans_per_second).c_str(),
                per, 1e9 / s.spans_per_second);
    std::printf("  baseline %-35s %10s%s %8.1f ns/span\n", c.baseline.c_str(),
                Si(b.spans_per_second).c_str(), per, 1e9 / b.spans_per_second);
    std::printf("  ratio %.3f  (%s)\n", s.spans_per_second / b.spans_per_second, c.meaning.c_str());
    if (c.end_to_end) {
      std::printf("  extra CPU per span: %.1f ns  (1e9/subject - 1e9/baseline)\n",
                  1e9 / s.spans_per_second - 1e9 / b.spans_per_second);
      std::printf(
          "  wall clock: %s spans/s vs %s spans/s (ratio %.3f); process CPU busy %.2f vs "
          "%.2f cores\n",
          Si(s.wall_spans_per_second).c_str(), Si(b.wall_spans_per_second).c_str(),
          b.wall_spans_per_second > 0 ? s.wall_spans_per_second / b.wall_spans_per_second : 0.0,
          s.cpu_per_wall, b.cpu_per_wall);
    }
  }
  for (const Goal& goal : goals) {
    auto it = figures.find(goal.subject);
    if (it == figures.end() || it->second.spans_per_second <= 0) continue;
    const bool met = it->second.spans_per_second >= goal.min_spans_per_second;
    std::printf("goal %s: %s spans/s -> %s\n", goal.text.c_str(),
                Si(it->second.spans_per_second).c_str(), met ? "met" : "NOT met");
  }
  for (const std::string& error : reporter.errors()) {
    std::printf("ERROR %s\n", error.c_str());
    status = 1;
  }
  std::fflush(stdout);
  return status;
}

bool HasFlag(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with(flag)) return true;
  }
  return false;
}

}  // namespace

int RunBenchmarksAndCompare(int argc, char** argv, const std::vector<Comparison>& comparisons,
                            const std::vector<Goal>& goals) {
  std::vector<char*> args(argv, argv + argc);
  std::string repetitions = "--benchmark_repetitions=5";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  if (!HasFlag(argc, argv, "--benchmark_repetitions")) args.push_back(repetitions.data());
  if (!HasFlag(argc, argv, "--benchmark_report_aggregates_only") &&
      !HasFlag(argc, argv, "--benchmark_display_aggregates_only")) {
    args.push_back(aggregates.data());
  }
  // Repetitions of all benchmarks in random order, so a slow spell of the machine hits
  // subjects and baselines alike instead of one of them.
  if (!HasFlag(argc, argv, "--benchmark_enable_random_interleaving")) {
    args.push_back(interleave.data());
  }
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return PrintSummary(reporter, comparisons, goals);
}

void SetSpanCounters(benchmark::State& state, uint64_t spans_per_iteration, size_t bytes) {
  const auto iterations = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(iterations * static_cast<int64_t>(spans_per_iteration));
  state.SetBytesProcessed(iterations * static_cast<int64_t>(bytes));
  state.counters[kSecondsPerSpan] =
      benchmark::Counter(static_cast<double>(iterations) * static_cast<double>(spans_per_iteration),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters[kSpansPerIteration] = static_cast<double>(spans_per_iteration);
}

}  // namespace traceslo::bench
