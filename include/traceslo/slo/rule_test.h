#pragma once

// `traceslo test`: unit tests for SLO rules, as `promtool test rules` is for Prometheus rules.
// A test file (YAML; the format is in rules/README.md, "Testing rules") names rule files,
// describes input traffic per step and the alerts (and optionally the figures) expected at given
// times. Each test runs the real SLI pipeline (SliEngine's shard processors, driven from one
// thread) and the real Evaluator on a ManualClock, so a passing test says what `traceslo serve`
// would do with that traffic; nothing sleeps, and a test of days of traffic runs in seconds.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/common/span.h"
#include "traceslo/config/config.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

// Limits on what one test file may ask for; they bound the time a broken or hostile file can
// cost (the largest test, 10 million spans, takes about 10 s and 60 MB; typical tests take
// milliseconds).
inline constexpr size_t kMaxTestFileBytes = size_t{1} << 20;
inline constexpr size_t kMaxTestFiles = 1'000;  // per run
inline constexpr size_t kMaxTestsPerFile = 1'000;
inline constexpr size_t kMaxInputsPerTest = 100;  // input entries (a latencies entry counts once)
inline constexpr size_t kMaxSpansPerShape = 100;  // spans of one `spans` trace shape
inline constexpr size_t kMaxExpectationsPerTest = 10'000;
inline constexpr uint64_t kMaxStepsPerSeries = 1'000'000;  // steps one count series expands to
inline constexpr uint64_t kMaxEventsPerStep = 100'000;     // requests or traces per step and entry
// Simulated time per test: 1'000'000 evaluations at the shortest evaluation interval (10 s),
// about 115 days.
inline constexpr std::chrono::milliseconds kMaxTestDuration{10'000'000'000};
inline constexpr uint64_t kMaxSpansPerTest = 10'000'000;
inline constexpr uint64_t kMaxSpansPerFile = 50'000'000;

// Test time 0 is this instant, a whole day (2024-01-01T00:00:00Z), so minutes and hours of test
// time are minutes and hours of the evaluator's rollups too.
inline constexpr int64_t kTestEpochUnixSeconds = 1'704'067'200;

// Counts per input step, written in promtool's expansion syntax: space-separated terms, each
// `N` (one step of N), `NxK` (K steps of N), `N+DxK` or `N-DxK` (K steps: N, N±D, N±2D, ...).
// Unlike promtool, `NxK` is K steps, not K+1: each value is a count per step, not a sample.
// "100x30 0x30" is 30 steps of 100 then 30 of nothing. Values are whole numbers >= 0.
class StepSeries {
 public:
  struct Run {
    uint64_t first = 0;  // the value of the run's first step
    int64_t delta = 0;   // added at every further step
    uint64_t steps = 0;  // >= 1
  };

  // Appends a run; `steps` >= 1 and every value of the run >= 0 (checked by the parser).
  void Append(Run run);
  const std::vector<Run>& runs() const { return runs_; }
  uint64_t steps() const { return steps_; }
  bool empty() const { return runs_.empty(); }

  // The value at `step` (0 past the end). `hint` is a cursor into the runs for callers that walk
  // forwards; start it at 0.
  uint64_t At(uint64_t step, size_t& hint) const;
  uint64_t At(uint64_t step) const {
    size_t hint = 0;
    return At(step, hint);
  }
  // The first step >= `step` with a value above 0, or nullopt.
  std::optional<uint64_t> NextNonZero(uint64_t step) const;
  // Sum of the first `steps` values (all of them by default).
  uint64_t Sum(uint64_t steps = UINT64_MAX) const;
  // The largest value.
  uint64_t Max() const;

 private:
  std::vector<Run> runs_;
  std::vector<uint64_t> starts_;  // the first step of each run
  uint64_t steps_ = 0;
};

// Where something is written in a test file, 1-based.
struct TestPosition {
  int line = 1;
  int column = 1;
};

// Parses the expansion syntax. On a problem: InvalidArgument with a message, and `error_offset`
// set to the byte of `text` where the offending term starts.
absl::StatusOr<StepSeries> ParseStepSeries(std::string_view text, size_t& error_offset);

// One span of a generated trace.
struct SpanShape {
  std::string service;
  std::string operation;
  SpanKind kind = SpanKind::kServer;
  std::chrono::milliseconds duration{10};
  StatusCode status = StatusCode::kUnset;
  int32_t http_status = 0;  // 0: none
  int32_t rpc_status = -1;  // -1: none
  int32_t parent = -1;      // index of the parent span in the shape; -1: a root (or an orphan)
  bool orphan = false;      // its parent never arrives: the trace is partial
};

// The traffic of one input entry: at step i, count.At(i) traces of `spans`, evenly spread over
// the step, each ending (every span of it) at its own instant and sent at the pipeline tick
// after that. Of these, errors.At(i) (evenly spread too) have spans[0] with status ERROR.
// `requests` and `latencies` inputs are one SERVER span per trace.
struct TestTraffic {
  StepSeries count;
  StepSeries errors;
  std::vector<SpanShape> spans;
  TestPosition position;  // the input entry
};

// One alert expected at an evaluation. What identifies it is (service, slo, severity, no_data).
struct ExpectedAlert {
  std::string service;  // empty: not written (the SLO name is unique among the rules)
  std::string slo;
  std::string severity;  // as written: page, ticket, or the renamed severity label value
  bool no_data = false;
  AlertState state = AlertState::kFiring;  // pending, firing or resolved
  TestPosition position;                   // the alert's mapping
  TestPosition slo_position;
  TestPosition severity_position;
  TestPosition state_position;
  // Set by BindRuleTests(): the alert this names.
  std::string bound_service;
  Severity bound_severity = Severity::kPage;
};

// Figures of one SLO expected at an evaluation; values match within `tolerance` (absolute),
// event counts exactly. Windows are keyed by milliseconds.
struct ExpectedFigures {
  std::string service;  // empty: not written
  std::string slo;
  double tolerance = 0.0005;
  std::map<int64_t, double> burn_rate;
  std::map<int64_t, double> sli;
  std::map<int64_t, Events> events;
  std::optional<double> error_budget_remaining;
  std::optional<double> latency_quantile_seconds;
  // Every window written (for burn_rate, sli or events), where it is written.
  std::vector<std::pair<int64_t, TestPosition>> windows;
  TestPosition position;  // the mapping
  TestPosition slo_position;
  std::string bound_service;  // set by BindRuleTests()
};

struct Expectation {
  std::chrono::milliseconds at{0};  // test time of the evaluation, a multiple of its interval
  // `alerts` was written: the pending and firing alerts must be exactly these (and each alert
  // expected `resolved` must be resolved). An empty list: nothing pending or firing.
  bool check_alerts = false;
  std::vector<ExpectedAlert> alerts;
  std::vector<ExpectedFigures> slos;
  TestPosition position;  // the expect entry
};

struct RuleTest {
  std::string name;
  std::chrono::milliseconds interval{10'000};  // one input step
  std::vector<TestTraffic> inputs;
  std::vector<Expectation> expect;  // in file order (checked in `at` order)
  TestPosition position;
};

struct RuleTestFile {
  std::string path;                     // as given (the source name of every message)
  std::vector<std::string> rule_files;  // as written: relative to the test file's directory
  TestPosition rule_files_position;
  std::chrono::milliseconds evaluation_interval{10'000};
  config::PipelineConfig pipeline;  // the defaults with the file's `pipeline` keys over them
  std::vector<RuleTest> tests;
};

// Parses one test file's text. Every problem found is appended to `diagnostics` (with
// `source_name` as the file), sorted by position; the file is returned only when there was none,
// otherwise InvalidArgument with the first problem. Pure: no file reads; never throws.
absl::StatusOr<RuleTestFile> ParseRuleTestFile(std::string_view yaml, std::string_view source_name,
                                               std::vector<Diagnostic>& diagnostics);

// Checks every expectation against the rules the tests run (SLO names, severities, states the
// SLO can be in, figure windows) and records which alert each names. Appends problems to
// `diagnostics` (at the expectation's position) and returns whether there was none.
bool BindRuleTests(RuleTestFile& file, const std::vector<Slo>& slos,
                   std::vector<Diagnostic>& diagnostics);

// A test file read from disk, its rule files loaded and checked, its expectations bound.
struct LoadedRuleTestFile {
  std::optional<RuleTestFile> file;  // set when there was no problem
  std::vector<Slo> slos;             // of its rule files, in path order
  // The test file's problems and its rule files' (as `traceslo check` shows them).
  std::vector<Diagnostic> diagnostics;
};

// Parses `yaml` as the test file `source_name`, reads its rule files (relative to `base_dir`,
// with CheckRuleFiles()) and binds the expectations. Never throws.
LoadedRuleTestFile LoadRuleTestText(std::string_view yaml, std::string_view source_name,
                                    const std::string& base_dir);
// Reads the test file at `path` (at most kMaxTestFileBytes) and loads it as above.
LoadedRuleTestFile LoadRuleTestFile(const std::string& path);

// Why an expectation did not hold.
struct ExpectationFailure {
  TestPosition position;  // the expect entry
  std::chrono::milliseconds at{0};
  bool alerts_differ = false;
  // Pending and firing alerts (and the resolved ones the expectation names), as YAML flow
  // mappings a test can use as written: {slo: availability, severity: page, state: firing}.
  std::vector<std::string> expected_alerts;
  std::vector<std::string> got_alerts;
  // Figures that did not match: "availability burn_rate[1h]: expected 14.4 ± 0.0005, got 16.71".
  std::vector<std::string> figures;
};

struct RuleTestResult {
  std::string file;
  std::string name;
  TestPosition position;
  std::vector<ExpectationFailure> failures;
  uint64_t spans = 0;        // sent through the pipeline
  uint64_t evaluations = 0;  // of the rules
  bool passed() const { return failures.empty(); }
};

// Runs one test of a bound file with fresh state: a new SliEngine (the file's pipeline
// configuration), shard processors fed in one thread, an Evaluator with `slos` evaluated every
// evaluation_interval of simulated time, until the last expectation. Never throws except
// std::bad_alloc.
RuleTestResult RunRuleTest(const RuleTestFile& file, const RuleTest& test,
                           const std::vector<Slo>& slos);

// "{slo: availability, severity: critical, state: firing}" and the like, for reports.
std::string FormatAlertList(const std::vector<std::string>& alerts);

}  // namespace traceslo::slo
