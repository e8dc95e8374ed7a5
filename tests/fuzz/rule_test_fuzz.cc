// Feeds arbitrary bytes to the rule test file parser, then binds what it accepts to a fixed rule
// set and runs the tests that are small. It must never throw, crash or hang; it returns a file
// exactly when it reports no problem; every problem carries a position and a message, in
// document order; every accepted file keeps the documented limits; and a run reports failures
// only at expectations of the test.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/slo/rule.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/rule_test.h"

namespace {

using traceslo::slo::Diagnostic;
using traceslo::slo::RuleTest;
using traceslo::slo::RuleTestFile;
using traceslo::slo::Slo;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// The rules every fuzzed test is bound to: each SLI kind, a renamed severity, a no-data alert.
constexpr char kRules[] = R"(service: shop
slos:
  - name: availability
    objective: 99
    sli: {errors: {}}
    alerting:
      page: {windows: [{long: 1h, short: 5m, burn_rate: 10}], labels: {severity: critical}}
      no_data: {for: 1m}
  - name: latency
    objective: 95
    window: 1d
    sli: {latency: {threshold: 100ms}}
  - name: traces
    objective: 99
    sli: {partial_traces: {}}
    alerting: {page: {enabled: false}}
  - name: p99
    sli: {latency_quantile: {quantile: 0.99, threshold: 1s, window: 1m, for: 30s}}
)";

const std::vector<Slo>& Rules() {
  static const std::vector<Slo> slos = [] {
    std::vector<Diagnostic> diagnostics;
    auto file = traceslo::slo::ParseRuleFile(kRules, "rules.yaml", diagnostics);
    Check(file.ok());
    return file->slos;
  }();
  return slos;
}

// Small enough to run inside a fuzzer: spans and evaluations both bounded.
bool Small(const RuleTestFile& file, const RuleTest& test) {
  std::chrono::milliseconds last{0};
  for (const auto& e : test.expect) last = std::max(last, e.at);
  if (last / file.evaluation_interval > 2'000) return false;
  const uint64_t steps = static_cast<uint64_t>(last / test.interval) + 1;
  uint64_t spans = 0;
  for (const auto& input : test.inputs) spans += input.count.Sum(steps) * input.spans.size();
  return spans <= 20'000;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::vector<Diagnostic> diagnostics;
    absl::StatusOr<RuleTestFile> file =
        traceslo::slo::ParseRuleTestFile(text, "fuzz.yaml", diagnostics);
    Check(file.ok() == diagnostics.empty());
    for (size_t i = 0; i < diagnostics.size(); ++i) {
      const Diagnostic& d = diagnostics[i];
      Check(d.file == "fuzz.yaml" && d.line >= 1 && d.column >= 1 && !d.message.empty());
      if (i > 0) {
        const Diagnostic& p = diagnostics[i - 1];
        Check(p.line < d.line || (p.line == d.line && p.column <= d.column));
      }
    }
    if (!file.ok()) {
      auto message = file.status().message();  // absl::string_view on Debian
      Check(std::string_view(message.data(), message.size()).starts_with("fuzz.yaml:"));
      return 0;
    }
    Check(!file->rule_files.empty());
    Check(!file->tests.empty() && file->tests.size() <= traceslo::slo::kMaxTestsPerFile);
    Check(file->pipeline.trace_max_age >= file->pipeline.trace_idle_timeout);
    for (const RuleTest& test : file->tests) {
      Check(!test.name.empty() && !test.expect.empty());
      Check(test.inputs.size() <= traceslo::slo::kMaxInputsPerTest);
      for (const auto& expectation : test.expect) {
        Check(expectation.at >= file->evaluation_interval);
        Check(expectation.at <= traceslo::slo::kMaxTestDuration);
        Check(expectation.at.count() % file->evaluation_interval.count() == 0);
        Check(expectation.check_alerts || !expectation.slos.empty());
      }
      for (const auto& input : test.inputs) {
        Check(!input.spans.empty() && input.spans.size() <= traceslo::slo::kMaxSpansPerShape);
        Check(input.count.steps() <= traceslo::slo::kMaxStepsPerSeries);
        Check(input.count.Max() <= traceslo::slo::kMaxEventsPerStep);
        for (uint64_t step = 0; step < input.errors.steps(); ++step) {
          Check(input.errors.At(step) <= input.count.At(step));
        }
        for (const auto& span : input.spans) {
          Check(span.parent < static_cast<int32_t>(input.spans.size()));
          Check(!(span.orphan && span.parent >= 0));
        }
      }
    }
    std::vector<Diagnostic> bind_diagnostics;
    const bool bound = traceslo::slo::BindRuleTests(*file, Rules(), bind_diagnostics);
    Check(bound == bind_diagnostics.empty());
    if (!bound) return 0;
    for (const RuleTest& test : file->tests) {
      if (!Small(*file, test)) continue;
      const traceslo::slo::RuleTestResult result = traceslo::slo::RunRuleTest(*file, test, Rules());
      Check(result.name == test.name);
      for (const auto& failure : result.failures) {
        bool found = false;
        for (const auto& e : test.expect) {
          found = found || (e.position.line == failure.position.line &&
                            e.position.column == failure.position.column && e.at == failure.at);
        }
        Check(found);
        Check(failure.alerts_differ || !failure.figures.empty());
      }
    }
  } catch (...) {
    __builtin_trap();  // the parser, the binder and the runner promise never to throw
  }
  return 0;
}
