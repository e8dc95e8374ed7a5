#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "traceslo/slo/rule_test.h"

namespace traceslo::slo {
namespace {

namespace fs = std::filesystem;

std::vector<uint64_t> Expand(const StepSeries& series) {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < series.steps(); ++i) out.push_back(series.At(i));
  return out;
}

StepSeries Series(std::string_view text) {
  size_t offset = 0;
  absl::StatusOr<StepSeries> series = ParseStepSeries(text, offset);
  EXPECT_TRUE(series.ok()) << text << ": " << series.status();
  return series.ok() ? *series : StepSeries{};
}

// "line:col" of `token` on the only line of `text` that contains `line_text`, counted here from
// the text itself, so expected positions do not come from the code under test.
std::string At(const std::string& text, std::string_view line_text, std::string_view token = {}) {
  if (token.empty()) token = line_text;
  int line_number = 0;
  std::string found;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    ++line_number;
    if (size_t where = line.find(line_text); where != std::string_view::npos) {
      EXPECT_TRUE(found.empty()) << "more than one line has " << line_text;
      // The token after the text that names the line, else the first one on the line.
      size_t column = line.find(token, where);
      if (column == std::string_view::npos) column = line.find(token);
      EXPECT_NE(column, std::string_view::npos) << token;
      found = std::to_string(line_number) + ":" + std::to_string(column + 1);
    }
    start = end + 1;
  }
  EXPECT_FALSE(found.empty()) << "no line has " << line_text;
  return found;
}

std::vector<std::string> Messages(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) out.push_back(d.ToString());
  return out;
}

// A scratch directory with files written by the test.
class Scratch {
 public:
  Scratch() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("rule_test_") + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Scratch() { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) const {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

// One page tier of 10× over 1h/5m on 99 %: it fires at an error ratio of 10 × 1 % = 10 % over
// both windows, with at least 10 events in the short one. No ticket, no defaults.
constexpr char kShopRules[] = R"(service: shop
slos:
  - name: availability
    objective: 99
    sli: {errors: {}}
    alerting:
      page:
        windows: [{long: 1h, short: 5m, burn_rate: 10}]
        labels: {severity: critical}
      ticket: {enabled: false}
      min_events: 10
      no_data: {for: 5m}
  - name: traces
    objective: 99
    sli: {partial_traces: {}}
    alerting:
      page: {enabled: false}
      ticket:
        windows: [{long: 1h, short: 5m, burn_rate: 10}]
)";

// The first k (10 s steps of total outage after `history` clean 10 s steps, 100 requests each)
// at which the tier holds, from the definitions alone: at T = (history + k) × 10 s the 1 h window
// holds the last 359 complete steps (or all of them) and the 5 m window the last 29.
int FirstFiringStep(int history) {
  for (int k = 1; k < 1000; ++k) {
    const int complete = history + k;
    const double long_ratio = static_cast<double>(k) / std::min(359, complete);
    const double short_ratio = static_cast<double>(std::min(k, 29)) / std::min(29, complete);
    const int short_events = 100 * std::min(29, complete);
    if (long_ratio >= 0.10 && short_ratio >= 0.10 && short_events >= 10) return k;
  }
  return -1;
}

std::string Duration(int seconds) {
  std::string out;
  if (seconds >= 3600) out += std::to_string(seconds / 3600) + "h";
  if (seconds % 3600 >= 60) out += std::to_string(seconds % 3600 / 60) + "m";
  if (seconds % 60 != 0 || out.empty()) out += std::to_string(seconds % 60) + "s";
  return out;
}

// --- The expansion syntax -----------------------------------------------------------------------

TEST(StepSeriesTest, ExpandsTermsIntoStepsInOrder) {
  EXPECT_EQ(Expand(Series("100x3 0x2 5")), (std::vector<uint64_t>{100, 100, 100, 0, 0, 5}));
  // Unlike promtool, NxK is K steps, and so are the ramps.
  EXPECT_EQ(Expand(Series("1+2x4")), (std::vector<uint64_t>{1, 3, 5, 7}));
  EXPECT_EQ(Expand(Series("10-3x4")), (std::vector<uint64_t>{10, 7, 4, 1}));
  EXPECT_EQ(Expand(Series("  7\t0x1  ")), (std::vector<uint64_t>{7, 0}));
  const StepSeries series = Series("0x5 3-1x4 0x10 2");
  // 0 0 0 0 0 3 2 1 0 0 ... 0 2
  EXPECT_EQ(series.steps(), 5u + 4 + 10 + 1);
  EXPECT_EQ(series.Sum(), 3u + 2 + 1 + 0 + 2);
  EXPECT_EQ(series.Sum(7), 3u + 2);
  EXPECT_EQ(series.Max(), 3u);
  EXPECT_EQ(series.NextNonZero(0), 5u);
  EXPECT_EQ(series.NextNonZero(7), 7u);
  EXPECT_EQ(series.NextNonZero(8), 19u);  // 3-1x4 reaches 0 at its last step
  EXPECT_EQ(series.NextNonZero(20), std::nullopt);
  EXPECT_EQ(series.At(1000), 0u) << "past the end: no traffic";
  EXPECT_EQ(Series("0+1x3").NextNonZero(0), 1u);
}

TEST(StepSeriesTest, RejectsBadTermsAtTheirOffset) {
  struct Case {
    std::string text;
    size_t offset;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"100x3 abc", 6, "invalid term \"abc\": expected N, NxK, N+DxK or N-DxK (whole numbers)"},
      {"1+2", 0, "invalid term \"1+2\": a term with +D needs xK: the number of steps"},
      {"5 0x0", 2, "invalid term \"0x0\": xK needs K of at least 1"},
      {"10-3x5", 0, "invalid term \"10-3x5\": goes below 0 (its last step would be -2)"},
      {"100001", 0, "invalid term \"100001\": values must be at most 100000 per step"},
      {"1+50000x4", 0,
       "invalid term \"1+50000x4\": values must be at most 100000 per step (its last step would "
       "be 150001)"},
      {"1x600000 1x400001", 9,
       "invalid term \"1x400001\": the series would have more than 1000000 steps"},
      {"-5", 0, "invalid term \"-5\": expected N, NxK, N+DxK or N-DxK (whole numbers)"},
      {"1.5x2", 0, "invalid term \"1.5x2\": expected N, NxK, N+DxK or N-DxK (whole numbers)"},
      {"", 0, "no values; write counts per step like \"100x30 0x30\""},
  };
  for (const Case& c : cases) {
    size_t offset = 99;
    absl::StatusOr<StepSeries> series = ParseStepSeries(c.text, offset);
    ASSERT_FALSE(series.ok()) << c.text;
    EXPECT_EQ(std::string(series.status().message()), c.message) << c.text;
    EXPECT_EQ(offset, c.offset) << c.text;
  }
}

// --- Parsing test files -------------------------------------------------------------------------

TEST(RuleTestParserTest, ReportsEveryProblemAtItsPosition) {
  const std::string text = R"(rule_files: shop.yaml
evaluation_interval: 15s
pipeline: {shards: 0, trace_idle_timeout: 2m}
tests:
  - name: first
    intervl: 10s
    input:
      - {service: shop, operation: GET, requests: "100x10 abc", errors: "5x3"}
      - {service: shop, operation: GET, requests: "10x3", errors: "5x2 11"}
      - {traces: "1x5", spans: [{id: a, service: shop, operation: GET}, {parent: b, service: shop, operation: GET}]}
      - {service: shop, latencies: {"50ms": "1x3", fast: "1x3"}}
      - {service: shop, operation: GET}
    expect:
      - {at: 25s, alerts: []}
      - {at: 30days, alerts: [{slo: availability}]}
      - {at: 1m, alerts: [{slo: a, severity: page, state: inactive}]}
      - {at: 2m}
  - name: first
    expect: []
)";
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleTestFile> file = ParseRuleTestFile(text, "t.yaml", diagnostics);
  ASSERT_FALSE(file.ok());
  const std::vector<std::string> want = {
      "t.yaml:" + At(text, "pipeline:", "0") +
          ": pipeline.shards must be an integer between 1 and 64, got \"0\"",
      "t.yaml:" + At(text, "pipeline:", "2m") +
          ": pipeline.trace_max_age (1m, the default) must be at least "
          "pipeline.trace_idle_timeout (2m)",
      "t.yaml:" + At(text, "intervl") +
          ": unknown key 'intervl' in tests[0]; did you mean 'interval'?",
      "t.yaml:" + At(text, "100x10 abc", "abc") +
          ": tests[0].input[0].requests: invalid term \"abc\": expected N, NxK, N+DxK or N-DxK "
          "(whole numbers)",
      "t.yaml:" + At(text, "\"5x2 11\"", "\"5x2") +
          ": tests[0].input[1].errors has 11 errors at step 3, more than its 10 requests",
      "t.yaml:" + At(text, "parent: b", "b,") +
          ": tests[0].input[2].spans[1].parent: no span of this trace has id \"b\" (for a parent "
          "that never arrives, write orphan: true instead)",
      "t.yaml:" + At(text, "latencies", "{service") + ": tests[0].input[3].operation is required",
      "t.yaml:" + At(text, "latencies", "fast") +
          ": tests[0].input[3].latencies: invalid duration \"fast\": expected a number at "
          "\"fast\" (durations look like \"15s\", \"1h30m\")",
      "t.yaml:" + At(text, "{service: shop, operation: GET}") +
          ": tests[0].input[4] needs one of requests, latencies or traces",
      "t.yaml:" + At(text, "at: 25s", "25s") +
          ": tests[0].expect[0].at 25s is not an evaluation time: the rules are evaluated every "
          "15s (15s and 30s are)",
      "t.yaml:" + At(text, "30days", "30days") +
          ": tests[0].expect[1].at: invalid duration \"30days\": unknown unit \"days\" (use ms, s, "
          "m, h, d)",
      "t.yaml:" + At(text, "[{slo: availability}]", "{slo") +
          ": tests[0].expect[1].alerts[0].severity is required",
      "t.yaml:" + At(text, "inactive", "inactive") +
          ": tests[0].expect[2].alerts[0].state: inactive alerts are not listed; leave the alert "
          "out (an empty alerts list means nothing is pending or firing)",
      "t.yaml:" + At(text, "{at: 2m}") +
          ": tests[0].expect[3] checks nothing: give alerts (a list, [] for none) or slos",
      "t.yaml:" + At(text, "expect: []", "[]") +
          ": tests[1].expect must be a non-empty list (a test without expectations cannot fail), "
          "got an empty list",
  };
  EXPECT_EQ(Messages(diagnostics), want);
  EXPECT_EQ(std::string(file.status().message()), want.front() + " (and 14 more problems)");
}

TEST(RuleTestParserTest, ReadsAValidFile) {
  const std::string text = R"(rule_files: [a.yaml, "../b/*.yaml"]
evaluation_interval: 20s
pipeline: {shards: 3, trace_idle_timeout: 5s, trace_max_age: 30s, max_lateness: 1m}
tests:
  - name: everything
    interval: 1m
    input:
      - {service: shop, operation: GET, requests: "10x2 0x3", errors: "0 10", duration: 250ms}
      - {service: shop, operation: PUT, latencies: {"50ms": "9", "2s": "1x4"}}
      - traces: "2"
        spans:
          - {id: root, service: edge, operation: "GET /", kind: server}
          - {id: child, parent: root, service: shop, operation: GET, kind: client, status: error}
          - {orphan: true, service: shop, operation: PUT, http_status: 503, grpc_status: 14}
    expect:
      - at: 2m
        alerts: [{service: shop, slo: availability, severity: critical, state: resolved}]
      - at: 40s
        slos:
          - slo: availability
            burn_rate: {1h: 14.4}
            sli: {5m: 0.5}
            events: {5m: {total: 10, bad: 5}}
            error_budget_remaining: 0.25
            tolerance: 0.1
)";
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleTestFile> file = ParseRuleTestFile(text, "t.yaml", diagnostics);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->rule_files, (std::vector<std::string>{"a.yaml", "../b/*.yaml"}));
  EXPECT_EQ(file->evaluation_interval, std::chrono::seconds(20));
  EXPECT_EQ(file->pipeline.shards, 3u);
  EXPECT_EQ(file->pipeline.trace_idle_timeout, std::chrono::seconds(5));
  EXPECT_EQ(file->pipeline.trace_max_age, std::chrono::seconds(30));
  EXPECT_EQ(file->pipeline.max_lateness, std::chrono::minutes(1));
  ASSERT_EQ(file->tests.size(), 1u);
  const RuleTest& test = file->tests[0];
  EXPECT_EQ(test.interval, std::chrono::minutes(1));
  ASSERT_EQ(test.inputs.size(), 4u) << "requests, two latencies, one trace shape";
  EXPECT_EQ(Expand(test.inputs[0].count), (std::vector<uint64_t>{10, 10, 0, 0, 0}));
  EXPECT_EQ(Expand(test.inputs[0].errors), (std::vector<uint64_t>{0, 10}));
  EXPECT_EQ(test.inputs[0].spans.at(0).duration, std::chrono::milliseconds(250));
  EXPECT_EQ(test.inputs[1].spans.at(0).duration, std::chrono::milliseconds(50));
  EXPECT_EQ(test.inputs[2].spans.at(0).duration, std::chrono::seconds(2));
  EXPECT_EQ(test.inputs[2].count.Sum(), 4u);
  const std::vector<SpanShape>& spans = test.inputs[3].spans;
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[1].parent, 0);
  EXPECT_EQ(spans[1].kind, SpanKind::kClient);
  EXPECT_EQ(spans[1].status, StatusCode::kError);
  EXPECT_TRUE(spans[2].orphan);
  EXPECT_EQ(spans[2].parent, -1);
  EXPECT_EQ(spans[2].http_status, 503);
  EXPECT_EQ(spans[2].rpc_status, 14);
  ASSERT_EQ(test.expect.size(), 2u);
  EXPECT_EQ(test.expect[0].at, std::chrono::minutes(2)) << "file order is kept";
  EXPECT_TRUE(test.expect[0].check_alerts);
  EXPECT_EQ(test.expect[0].alerts.at(0).state, AlertState::kResolved);
  EXPECT_FALSE(test.expect[1].check_alerts) << "no alerts key: alerts are not checked";
  const ExpectedFigures& figures = test.expect[1].slos.at(0);
  EXPECT_EQ(figures.burn_rate.at(3'600'000), 14.4);
  EXPECT_EQ(figures.sli.at(300'000), 0.5);
  EXPECT_EQ(figures.events.at(300'000).bad, 5u);
  EXPECT_EQ(figures.error_budget_remaining, 0.25);
  EXPECT_EQ(figures.tolerance, 0.1);
}

TEST(RuleTestParserTest, BoundsTheWorkATestMayAskFor) {
  // 1000 steps of 100000 requests: 1e8 spans, over the per-test limit of 1e7.
  const std::string text = R"(rule_files: a.yaml
tests:
  - name: huge
    input: [{service: s, operation: o, requests: "100000x1000"}]
    expect: [{at: 10000s, alerts: []}]
  - name: long
    expect: [{at: 200d, alerts: []}]
)";
  std::vector<Diagnostic> diagnostics;
  EXPECT_FALSE(ParseRuleTestFile(text, "t.yaml", diagnostics).ok());
  EXPECT_EQ(Messages(diagnostics),
            (std::vector<std::string>{
                "t.yaml:" + At(text, "name: huge", "name") +
                    ": tests[0] sends 100000000 spans up to its last expectation; at most "
                    "10000000 are allowed per test",
                "t.yaml:" + At(text, "200d") +
                    ": tests[1].expect[0].at must be between 10s and 115d17h46m40s, got 200d",
            }));
}

TEST(RuleTestParserTest, NeverThrowsOnGarbage) {
  for (const std::string& text :
       {std::string(), std::string("[1, 2"), std::string("- a\n- b\n"),
        std::string("tests: {a: &x [*x]}"), std::string("\xff\xfe\x00 rule_files", 14),
        std::string("rule_files: a\ntests:\n  - name: x\n    expect: [{at: 10s, alerts: ~}]\n"),
        std::string(2 << 20, 'a')}) {
    std::vector<Diagnostic> diagnostics;
    absl::StatusOr<RuleTestFile> file = ParseRuleTestFile(text, "g.yaml", diagnostics);
    EXPECT_FALSE(file.ok());
    ASSERT_FALSE(diagnostics.empty());
    EXPECT_EQ(diagnostics.front().file, "g.yaml");
  }
}

// --- Loading and binding against the rules ------------------------------------------------------

TEST(RuleTestLoaderTest, ChecksExpectationsAgainstTheRules) {
  Scratch scratch;
  scratch.Write("rules/shop.yaml", kShopRules);
  const std::string text = R"(rule_files: [rules/shop.yaml]
tests:
  - name: bad expectations
    expect:
      - at: 1m
        alerts:
          - {slo: availabilty, severity: page}
          - {slo: availability, severity: ticket}
          - {slo: availability, severity: page, state: pending}
          - {service: other, slo: availability, severity: page}
          - {slo: traces, severity: ticket}
          - {slo: traces, severity: ticket}
        slos:
          - {slo: availability, burn_rate: {2h: 1}}
          - {slo: availability, latency_quantile_seconds: 1}
)";
  const LoadedRuleTestFile loaded = LoadRuleTestText(text, "t.yaml", scratch.dir());
  EXPECT_FALSE(loaded.file);
  const std::vector<std::string> want = {
      "t.yaml:" + At(text, "availabilty", "availabilty") +
          ": tests[0].expect[0].alerts[0]: no SLO named \"availabilty\" in the rule files; did "
          "you mean 'availability'?",
      "t.yaml:" + At(text, "{slo: availability, severity: ticket}", "ticket") +
          ": tests[0].expect[0].alerts[1]: shop/availability raises no alert of severity "
          "\"ticket\"; its alerts: {severity: critical}, {severity: ticket, no_data: true}",
      "t.yaml:" + At(text, "state: pending", "pending") +
          ": tests[0].expect[0].alerts[2].state: this alert is never pending: burn-rate alerts "
          "fire at the first evaluation where a tier holds (the long window is their `for`)",
      "t.yaml:" + At(text, "service: other", "availability") +
          ": tests[0].expect[0].alerts[3]: no rule file of this test defines service \"other\" "
          "(they define shop)",
  };
  ASSERT_EQ(loaded.diagnostics.size(), 7u) << testing::PrintToString(Messages(loaded.diagnostics));
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(loaded.diagnostics[i].ToString(), want[i]);
  // The second of the two identical alerts (lines 11 and 12, each at column 13) is the duplicate.
  EXPECT_EQ(loaded.diagnostics[4].ToString(),
            "t.yaml:12:13: tests[0].expect[0].alerts[5]: the same alert is listed twice (first "
            "at 11:13)");
  EXPECT_EQ(loaded.diagnostics[5].ToString(),
            "t.yaml:" + At(text, "{2h: 1}", "2h") +
                ": tests[0].expect[0].slos[0]: shop/availability is not evaluated over 2h (its "
                "windows: 5m, 1h, 30d)");
  EXPECT_EQ(loaded.diagnostics[6].ToString(),
            "t.yaml:" + At(text, "latency_quantile_seconds", "{slo") +
                ": tests[0].expect[0].slos[1]: latency_quantile_seconds applies to "
                "latency_quantile SLOs; the SLI of shop/availability is errors");
}

TEST(RuleTestLoaderTest, ShowsTheProblemsOfItsRuleFilesAndRunsNothing) {
  Scratch scratch;
  const std::string rules = "service: shop\nslos:\n  - name: a\n    objective: 100\n";
  const std::string rules_path = scratch.Write("rules/shop.yaml", rules);
  const std::string text =
      "rule_files: [rules/shop.yaml, rules/none.yaml]\n"
      "tests: [{name: t, expect: [{at: 10s, alerts: []}]}]\n";
  const std::string test_path = scratch.Write("shop.test.yaml", text);
  const LoadedRuleTestFile loaded = LoadRuleTestFile(test_path);
  EXPECT_FALSE(loaded.file);
  const std::string none = (fs::path(scratch.dir()) / "rules/none.yaml").string();
  EXPECT_EQ(Messages(loaded.diagnostics),
            (std::vector<std::string>{
                none + ":1:1: cannot read: No such file or directory",
                rules_path + ":" + At(rules, "- name: a", "name") + ": slos[0].sli is required",
                rules_path + ":" + At(rules, "objective: 100", "100") +
                    ": slos[0].objective must be a percentage between 0 and 100 (exclusive), got "
                    "100",
                test_path + ":" + At(text, "rule_files", "[") +
                    ": rule_files: 3 problems in the rule files (as traceslo check reports "
                    "them); no test of this file ran",
            }));
}

// --- Running ------------------------------------------------------------------------------------

struct TestRun {
  LoadedRuleTestFile loaded;
  std::vector<RuleTestResult> results;
};

TestRun RunText(const Scratch& scratch, const std::string& text) {
  scratch.Write("rules/shop.yaml", kShopRules);
  TestRun run;
  run.loaded = LoadRuleTestText(text, "t.yaml", scratch.dir());
  EXPECT_TRUE(run.loaded.file) << testing::PrintToString(Messages(run.loaded.diagnostics));
  if (!run.loaded.file) return run;
  for (const RuleTest& test : run.loaded.file->tests) {
    run.results.push_back(RunRuleTest(*run.loaded.file, test, run.loaded.slos));
  }
  return run;
}

TEST(RuleTestRunnerTest, AnOutagePagesAtTheEvaluationTheArithmeticSays) {
  Scratch scratch;
  const int history = 360;  // 1 h clean
  const int k = FirstFiringStep(history);
  ASSERT_EQ(k, 36) << "35.9 steps of 359 are 10 %";
  const int fires = (history + k) * 10;
  const std::string text =
      "rule_files: rules/shop.yaml\n"
      "tests:\n"
      "  - name: outage\n"
      "    input:\n"
      "      - {service: shop, operation: GET, requests: \"100x" +
      std::to_string(history + 100) + "\", errors: \"0x" + std::to_string(history) +
      " 100x100\"}\n"
      "    expect:\n"
      "      - {at: " +
      Duration(fires - 10) +
      ", alerts: []}\n"
      "      - at: " +
      Duration(fires) +
      "\n"
      "        alerts: [{slo: availability, severity: page}]\n"
      "        slos:\n"
      "          - slo: availability\n"
      "            events: {1h: {total: 35900, bad: " +
      std::to_string(100 * k) +
      "}, 5m: {total: "
      "2900, bad: 2900}}\n"
      "            burn_rate: {1h: " +
      std::to_string(k / 359.0 / 0.01) +
      "}\n"
      "            tolerance: 0.000001\n";
  const TestRun run = RunText(scratch, text);
  ASSERT_EQ(run.results.size(), 1u);
  const RuleTestResult& result = run.results[0];
  EXPECT_TRUE(result.passed()) << result.failures.size();
  for (const ExpectationFailure& f : result.failures) {
    ADD_FAILURE() << FormatAlertList(f.expected_alerts) << " vs " << FormatAlertList(f.got_alerts)
                  << " " << testing::PrintToString(f.figures);
  }
  EXPECT_EQ(result.spans, 100u * static_cast<uint64_t>(fires / 10)) << "one span per request";
  EXPECT_EQ(result.evaluations, static_cast<uint64_t>(fires / 10));
}

TEST(RuleTestRunnerTest, AFailingExpectationReportsExpectedAndGotAtItsPosition) {
  Scratch scratch;
  const int k = FirstFiringStep(360);
  const std::string text =
      "rule_files: rules/shop.yaml\n"
      "tests:\n"
      "  - name: too early\n"
      "    input: [{service: shop, operation: GET, requests: \"100x500\", errors: \"0x360 "
      "100x140\"}]\n"
      "    expect:\n"
      "      - {at: 10s, alerts: []}\n"
      "      - {at: " +
      Duration((360 + k - 1) * 10) +
      ", alerts: [{slo: availability, severity: critical}]}\n"
      "      - {at: " +
      Duration((360 + k) * 10) +
      ", alerts: []}\n"
      "      - {at: " +
      Duration((360 + k) * 10) +
      ", slos: [{slo: availability, events: {5m: {total: 1, bad: 1}}, burn_rate: {5m: 3}}]}\n";
  const TestRun run = RunText(scratch, text);
  ASSERT_EQ(run.results.size(), 1u);
  const RuleTestResult& result = run.results[0];
  EXPECT_FALSE(result.passed());
  EXPECT_EQ(result.name, "too early");
  ASSERT_EQ(result.failures.size(), 3u);
  const ExpectationFailure& early = result.failures[0];
  EXPECT_EQ(std::to_string(early.position.line) + ":" + std::to_string(early.position.column),
            At(text, "severity: critical", "{at"));
  EXPECT_EQ(early.at, std::chrono::seconds((360 + k - 1) * 10));
  EXPECT_TRUE(early.alerts_differ);
  EXPECT_EQ(FormatAlertList(early.expected_alerts),
            "[{slo: availability, severity: critical, state: firing}]");
  EXPECT_EQ(FormatAlertList(early.got_alerts), "[]");
  const ExpectationFailure& late = result.failures[1];
  EXPECT_EQ(FormatAlertList(late.expected_alerts), "[]");
  EXPECT_EQ(FormatAlertList(late.got_alerts),
            "[{slo: availability, severity: critical, state: firing}]");
  const ExpectationFailure& figures = result.failures[2];
  EXPECT_FALSE(figures.alerts_differ);
  // 29 complete steps in 5 m, all failed: burn (2900 / 2900) / 0.01 = 100.
  EXPECT_EQ(figures.figures,
            (std::vector<std::string>{
                "shop/availability burn_rate[5m]: expected 3 ± 0.0005, got 100",
                "shop/availability events[5m]: expected {total: 1, bad: 1}, got {total: 2900, "
                "bad: 2900}",
            }));
}

TEST(RuleTestRunnerTest, ResolvedAndNoDataAlertsCanBeExpected) {
  Scratch scratch;
  // Clean for 10 min, 10 min failing, 10 min clean, then nothing. From the arithmetic: the tier
  // holds while the 5 m window (29 steps) has at least 10 % failed steps: 3. After the outage
  // (steps 60 .. 119) the window at n holds 119 − (n − 29) + 1 = 149 − n failed steps: 3 through
  // n = 146, then resolved at n = 147 (24m30s). no_data {for: 5m}: the 5 m window holds the
  // current bucket and 29 steps: empty of traffic once n − 29 > 179 (n = 209, 34m50s).
  const std::string text = R"(rule_files: rules/shop.yaml
tests:
  - name: resolve then silence
    input: [{service: shop, operation: GET, requests: "100x180", errors: "0x60 100x60"}]
    expect:
      - {at: 24m20s, alerts: [{slo: availability, severity: critical}]}
      - {at: 24m30s, alerts: [{slo: availability, severity: critical, state: resolved}]}
      - {at: 34m40s, alerts: []}
      - at: 34m50s
        alerts: [{slo: availability, severity: ticket, no_data: true, state: firing}]
)";
  const TestRun run = RunText(scratch, text);
  ASSERT_EQ(run.results.size(), 1u);
  for (const ExpectationFailure& f : run.results[0].failures) {
    ADD_FAILURE() << f.position.line << ": " << FormatAlertList(f.expected_alerts) << " vs "
                  << FormatAlertList(f.got_alerts);
  }
}

TEST(RuleTestRunnerTest, PartialTracesAreCountedOnceCompleteWhateverTheShards) {
  Scratch scratch;
  // 10 traces per step for 6 steps, 2 of them with an orphan span. Every trace completes 15 s
  // (trace_idle_timeout) after it is sent; by 2m all have, and the 5 m window holds all 6 steps.
  for (int shards : {1, 2, 7}) {
    const std::string text =
        "rule_files: rules/shop.yaml\n"
        "pipeline: {shards: " +
        std::to_string(shards) + R"(}
tests:
  - name: orphans
    input:
      - traces: "8x6"
        spans: [{id: a, service: shop, operation: GET}, {parent: a, service: db, operation: q}]
      - traces: "2x6"
        spans: [{id: a, service: shop, operation: GET}, {orphan: true, service: db, operation: q}]
    expect:
      - at: 2m
        slos: [{slo: traces, events: {5m: {total: 60, bad: 12}}}]
)";
    const TestRun run = RunText(scratch, text);
    ASSERT_EQ(run.results.size(), 1u);
    EXPECT_TRUE(run.results[0].passed())
        << "shards " << shards << ": "
        << testing::PrintToString(run.results[0].failures.empty()
                                      ? std::vector<std::string>{}
                                      : run.results[0].failures[0].figures);
    EXPECT_EQ(run.results[0].spans, 120u);
  }
}

TEST(RuleTestRunnerTest, TheExampleTestsPass) {
  const fs::path dir = fs::path(TRACESLO_SOURCE_DIR) / "rules" / "tests";
  size_t tests = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    const LoadedRuleTestFile loaded = LoadRuleTestFile(entry.path().string());
    ASSERT_TRUE(loaded.file) << entry.path() << ": "
                             << testing::PrintToString(Messages(loaded.diagnostics));
    for (const RuleTest& test : loaded.file->tests) {
      ++tests;
      const RuleTestResult result = RunRuleTest(*loaded.file, test, loaded.slos);
      EXPECT_TRUE(result.passed()) << entry.path() << ": " << test.name;
    }
  }
  EXPECT_GE(tests, 4u * 3);
}

}  // namespace
}  // namespace traceslo::slo
