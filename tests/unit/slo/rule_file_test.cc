#include "traceslo/slo/rule_file.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr milliseconds Days(int64_t days) { return hours(24 * days); }

static_assert(kResolution == std::chrono::seconds(pipeline::kBucketSeconds),
              "rule windows are whole SLI buckets");

// Every problem of one file as "t.yaml:line:col: message".
std::vector<std::string> Problems(std::string_view yaml) {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleFile> file = ParseRuleFile(yaml, "t.yaml", diagnostics);
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) out.push_back(d.ToString());
  EXPECT_EQ(file.ok(), diagnostics.empty());
  return out;
}

RuleFile ParseOk(std::string_view yaml) {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleFile> file = ParseRuleFile(yaml, "t.yaml", diagnostics);
  EXPECT_TRUE(file.ok()) << file.status();
  EXPECT_THAT(diagnostics, IsEmpty());
  return file.ok() ? *file : RuleFile{};
}

// A file with one SLO whose body (indented under "- ") is `slo`.
std::string OneSlo(std::string_view slo) {
  return "service: checkout\nslos:\n  - " + std::string(slo);
}

// ---------------------------------------------------------------------------------------------
// Default tiers: recomputed here from the budget fractions, independently of rule.cc.

struct ExpectedTier {
  Severity severity;
  milliseconds long_window;
  milliseconds short_window;
  double budget_fraction;
};
const ExpectedTier kWorkbook[] = {
    {Severity::kPage, hours(1), minutes(5), 0.02},
    {Severity::kPage, hours(6), minutes(30), 0.05},
    {Severity::kTicket, hours(24), hours(2), 0.10},
    {Severity::kTicket, hours(72), hours(6), 0.10},
};

TEST(DefaultTiers, ThirtyDaysAreTheWorkbookFigures) {
  std::vector<BurnRateTier> page = DefaultTiers(Severity::kPage, Days(30));
  std::vector<BurnRateTier> ticket = DefaultTiers(Severity::kTicket, Days(30));
  ASSERT_EQ(page.size(), 2u);
  ASSERT_EQ(ticket.size(), 2u);
  // Exactly the literals of the SRE Workbook, not merely close.
  EXPECT_EQ(page[0].burn_rate, 14.4);
  EXPECT_EQ(page[1].burn_rate, 6.0);
  EXPECT_EQ(ticket[0].burn_rate, 3.0);
  EXPECT_EQ(ticket[1].burn_rate, 1.0);
  EXPECT_EQ(page[0].long_window, hours(1));
  EXPECT_EQ(page[0].short_window, minutes(5));
  EXPECT_EQ(page[1].long_window, hours(6));
  EXPECT_EQ(page[1].short_window, minutes(30));
  EXPECT_EQ(ticket[0].long_window, hours(24));
  EXPECT_EQ(ticket[0].short_window, hours(2));
  EXPECT_EQ(ticket[1].long_window, hours(72));
  EXPECT_EQ(ticket[1].short_window, hours(6));
  for (const BurnRateTier& tier : page) EXPECT_EQ(tier.severity, Severity::kPage);
  for (const BurnRateTier& tier : ticket) EXPECT_EQ(tier.severity, Severity::kTicket);
  // 720 hours in 30 days: 14.4 × 1 h / 720 h = 2 % of the budget, 6 × 6 / 720 = 5 %, ...
  EXPECT_DOUBLE_EQ(14.4 * 1 / 720, 0.02);
  EXPECT_DOUBLE_EQ(6.0 * 6 / 720, 0.05);
  EXPECT_DOUBLE_EQ(3.0 * 24 / 720, 0.10);
  EXPECT_DOUBLE_EQ(1.0 * 72 / 720, 0.10);
}

TEST(DefaultTiers, TwentyEightDaysScaleToTheSameBudgetFractions) {
  std::vector<BurnRateTier> page = DefaultTiers(Severity::kPage, Days(28));
  std::vector<BurnRateTier> ticket = DefaultTiers(Severity::kTicket, Days(28));
  ASSERT_EQ(page.size(), 2u);
  ASSERT_EQ(ticket.size(), 2u);
  // 672 hours: 0.02 × 672 / 1 = 13.44; 0.05 × 672 / 6 = 5.6; 0.1 × 672 / 24 = 2.8;
  // 0.1 × 672 / 72 = 0.9333...
  EXPECT_DOUBLE_EQ(page[0].burn_rate, 13.44);
  EXPECT_DOUBLE_EQ(page[1].burn_rate, 5.6);
  EXPECT_DOUBLE_EQ(ticket[0].burn_rate, 2.8);
  EXPECT_DOUBLE_EQ(ticket[1].burn_rate, 2.8 / 3);
  // And the 30-day figures times 28/30.
  EXPECT_DOUBLE_EQ(page[0].burn_rate, 14.4 * 28 / 30);
  EXPECT_DOUBLE_EQ(ticket[1].burn_rate, 1.0 * 28 / 30);
}

TEST(DefaultTiers, EveryWindowSpendsTheSameFractionOfTheBudget) {
  for (int days : {1, 3, 7, 14, 28, 30, 90, 365}) {
    SCOPED_TRACE(days);
    std::vector<BurnRateTier> tiers = DefaultTiers(Severity::kPage, Days(days));
    std::vector<BurnRateTier> ticket = DefaultTiers(Severity::kTicket, Days(days));
    tiers.insert(tiers.end(), ticket.begin(), ticket.end());
    size_t expected_count = 0;
    for (const ExpectedTier& expected : kWorkbook) {
      if (expected.long_window > Days(days)) continue;  // left out: longer than the window
      ASSERT_LT(expected_count, tiers.size());
      const BurnRateTier& tier = tiers[expected_count++];
      EXPECT_EQ(tier.severity, expected.severity);
      EXPECT_EQ(tier.long_window, expected.long_window);
      EXPECT_EQ(tier.short_window, expected.short_window);
      // Budget spent while the tier fires for its whole long window: burn × long / window.
      double hours_in_window = 24.0 * days;
      double long_hours =
          std::chrono::duration<double, std::ratio<3600>>(expected.long_window).count();
      EXPECT_NEAR(tier.burn_rate * long_hours / hours_in_window, expected.budget_fraction, 1e-12);
    }
    EXPECT_EQ(tiers.size(), expected_count);
  }
}

TEST(DefaultTiers, ShortWindowsDropTiersLongerThanTheWindow) {
  std::vector<BurnRateTier> ticket = DefaultTiers(Severity::kTicket, Days(1));
  ASSERT_EQ(ticket.size(), 1u);
  EXPECT_EQ(ticket[0].long_window, hours(24));
  EXPECT_DOUBLE_EQ(ticket[0].burn_rate, 0.1);
  std::vector<BurnRateTier> page = DefaultTiers(Severity::kPage, hours(2));
  ASSERT_EQ(page.size(), 1u);
  EXPECT_DOUBLE_EQ(page[0].burn_rate, 0.04);  // 2 % of a 2 h budget in 1 h
  EXPECT_THAT(DefaultTiers(Severity::kPage, minutes(30)), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Reading valid files.

TEST(ParseRuleFile, ReadsEveryKeyOfTheDocumentedFormat) {
  RuleFile file = ParseOk(R"(service: checkout
labels: {team: payments}
slos:
  - name: availability
    description: Orders placed without a server error.
    objective: 99.9
    window: 30d
    sli: {errors: {}}
    filter: {operation: "POST /checkout", exclude_operations: ["GET /health"]}
    alerting:
      page:
        windows: [{long: 1h, short: 5m, burn_rate: 14.4}, {long: 6h, short: 30m, burn_rate: 6}]
        labels: {severity: critical}
      ticket: {enabled: false}
      min_events: 50
      labels: {team: checkout, tier: "1"}
      annotations: {runbook_url: "https://runbooks.example/checkout", summary: "checkout fails"}
      no_data: {for: 10m, severity: page}
  - name: p99
    sli: {latency_quantile: {quantile: 0.99, threshold: 800ms, for: 10m}}
    alerting: {severity: page, min_events: 5}
  - name: fast
    objective: 99
    window: 28d
    sli: {latency: {threshold: 300ms}}
    filter: {operation: ["POST /checkout", "GET /cart"]}
  - name: whole-traces
    objective: 99.5
    window: 7d
    sli: {error_traces: {role: origin}}
  - name: partial
    objective: 99.5
    sli: {partial_traces: {}}
)");
  EXPECT_EQ(file.path, "t.yaml");
  EXPECT_EQ(file.service, "checkout");
  EXPECT_EQ(file.labels, (Labels{{"team", "payments"}}));
  ASSERT_EQ(file.slos.size(), 5u);

  const Slo& availability = file.slos[0];
  EXPECT_EQ(availability.service, "checkout");
  EXPECT_EQ(availability.name, "availability");
  EXPECT_EQ(availability.description, "Orders placed without a server error.");
  EXPECT_EQ(availability.source, "t.yaml:4:5");
  EXPECT_DOUBLE_EQ(availability.objective_percent, 99.9);
  EXPECT_DOUBLE_EQ(availability.objective_ratio(), 0.999);
  EXPECT_NEAR(availability.error_budget_ratio(), 0.001, 1e-15);
  EXPECT_EQ(availability.window, Days(30));
  EXPECT_EQ(availability.sli.kind, SliKind::kErrors);
  EXPECT_THAT(availability.filter.operations, ElementsAre("POST /checkout"));
  EXPECT_THAT(availability.filter.exclude_operations, ElementsAre("GET /health"));
  const Alerting& a = availability.alerting;
  ASSERT_EQ(a.tiers.size(), 2u);  // ticket disabled
  EXPECT_EQ(a.tiers[0].severity, Severity::kPage);
  EXPECT_EQ(a.tiers[0].long_window, hours(1));
  EXPECT_EQ(a.tiers[0].short_window, minutes(5));
  EXPECT_EQ(a.tiers[0].burn_rate, 14.4);
  EXPECT_EQ(a.tiers[1].long_window, hours(6));
  EXPECT_EQ(a.tiers[1].burn_rate, 6.0);
  EXPECT_NEAR(availability.ErrorRatioThreshold(a.tiers[0]), 0.0144, 1e-12);
  EXPECT_EQ(a.min_events, 50u);
  // The SLO's labels override the file's.
  EXPECT_EQ(a.labels, (Labels{{"team", "checkout"}, {"tier", "1"}}));
  EXPECT_EQ(a.page_labels, (Labels{{"severity", "critical"}}));
  EXPECT_THAT(a.ticket_labels, IsEmpty());
  EXPECT_EQ(a.annotations, (Labels{{"runbook_url", "https://runbooks.example/checkout"},
                                   {"summary", "checkout fails"}}));
  ASSERT_TRUE(a.no_data.has_value());
  EXPECT_EQ(a.no_data->for_duration, minutes(10));
  EXPECT_EQ(a.no_data->severity, Severity::kPage);
  EXPECT_EQ(AlertLabels(availability, Severity::kPage), (Labels{{"service", "checkout"},
                                                                {"slo", "availability"},
                                                                {"severity", "critical"},
                                                                {"team", "checkout"},
                                                                {"tier", "1"}}));
  EXPECT_EQ(AlertLabels(availability, Severity::kTicket), (Labels{{"service", "checkout"},
                                                                  {"slo", "availability"},
                                                                  {"severity", "ticket"},
                                                                  {"team", "checkout"},
                                                                  {"tier", "1"}}));

  const Slo& p99 = file.slos[1];
  EXPECT_EQ(p99.sli.kind, SliKind::kLatencyQuantile);
  EXPECT_DOUBLE_EQ(p99.sli.latency_quantile.quantile, 0.99);
  EXPECT_EQ(p99.sli.latency_quantile.threshold, milliseconds(800));
  EXPECT_EQ(p99.sli.latency_quantile.window, minutes(5));  // default
  EXPECT_EQ(p99.sli.latency_quantile.for_duration, minutes(10));
  EXPECT_EQ(p99.objective_percent, 0);
  EXPECT_THAT(p99.alerting.tiers, IsEmpty());
  EXPECT_EQ(p99.alerting.severity, Severity::kPage);
  EXPECT_EQ(p99.alerting.min_events, 5u);
  EXPECT_EQ(p99.alerting.labels, (Labels{{"team", "payments"}}));  // the file's

  const Slo& fast = file.slos[2];
  EXPECT_EQ(fast.sli.kind, SliKind::kLatency);
  EXPECT_EQ(fast.sli.latency.threshold, milliseconds(300));
  EXPECT_EQ(fast.window, Days(28));
  EXPECT_THAT(fast.filter.operations, ElementsAre("POST /checkout", "GET /cart"));
  ASSERT_EQ(fast.alerting.tiers.size(), 4u);  // defaults, scaled to 28 days
  EXPECT_DOUBLE_EQ(fast.alerting.tiers[0].burn_rate, 13.44);
  EXPECT_DOUBLE_EQ(fast.alerting.tiers[3].burn_rate, 2.8 / 3);
  EXPECT_EQ(fast.alerting.min_events, kDefaultMinEvents);
  EXPECT_EQ(kDefaultMinEvents, 20u);
  EXPECT_FALSE(fast.alerting.no_data.has_value());

  EXPECT_EQ(file.slos[3].sli.kind, SliKind::kErrorTraces);
  EXPECT_EQ(file.slos[3].sli.error_traces.role, ErrorTraceRole::kOrigin);
  EXPECT_EQ(file.slos[4].sli.kind, SliKind::kPartialTraces);
  EXPECT_EQ(file.slos[4].window, Days(30));  // default
}

TEST(ParseRuleFile, DefaultsFillEverythingOptional) {
  RuleFile file = ParseOk(OneSlo("name: a\n    objective: 99.9\n    sli: {errors: {}}\n"));
  ASSERT_EQ(file.slos.size(), 1u);
  const Slo& slo = file.slos[0];
  EXPECT_EQ(slo.window, kDefaultComplianceWindow);
  EXPECT_EQ(kDefaultComplianceWindow, Days(30));
  EXPECT_TRUE(slo.filter.empty());
  EXPECT_TRUE(slo.filter.Matches("anything"));
  ASSERT_EQ(slo.alerting.tiers.size(), 4u);
  std::vector<double> burn_rates;
  for (const BurnRateTier& tier : slo.alerting.tiers) burn_rates.push_back(tier.burn_rate);
  EXPECT_THAT(burn_rates, ElementsAre(14.4, 6.0, 3.0, 1.0));
  EXPECT_EQ(slo.alerting.min_events, 20u);
  EXPECT_THAT(slo.alerting.labels, IsEmpty());
  EXPECT_EQ(slo.sli.error_traces.role, ErrorTraceRole::kRoot);
}

TEST(Filter, MatchesIncludedAndNotExcludedOperations) {
  Filter filter{.operations = {"a", "b"}, .exclude_operations = {}};
  EXPECT_TRUE(filter.Matches("a"));
  EXPECT_FALSE(filter.Matches("c"));
  Filter exclude{.operations = {}, .exclude_operations = {"health"}};
  EXPECT_TRUE(exclude.Matches("a"));
  EXPECT_FALSE(exclude.Matches("health"));
}

// ---------------------------------------------------------------------------------------------
// Every check, with its exact position and message.

TEST(ParseRuleFile, YamlSyntaxError) {
  EXPECT_THAT(Problems("service: checkout\nslos: [\n"),
              ElementsAre("t.yaml:3:1: invalid YAML: end of sequence flow not found"));
  EXPECT_THAT(Problems("service: a\n---\nservice: b\n"),
              ElementsAre("t.yaml:2:1: unexpected content after the end of the document (a rule "
                          "file holds one YAML document)"));
}

TEST(ParseRuleFile, UnknownKeysHaveDidYouMeanHints) {
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objectve: 99.9\n    sli: {errors: {}}\n    colour: red\n")),
      ElementsAre("t.yaml:3:5: slos[0].objective is required",
                  "t.yaml:4:5: unknown key 'objectve' in slos[0]; did you mean 'objective'?",
                  "t.yaml:6:5: unknown key 'colour' in slos[0] (valid keys: name, description, "
                  "objective, window, sli, filter, alerting)"));
  EXPECT_THAT(Problems("servce: checkout\nslos: []\n"),
              ElementsAre("t.yaml:1:1: unknown key 'servce' at the top level; did you mean "
                          "'service'?",
                          "t.yaml:1:1: service is required",
                          "t.yaml:2:7: slos must list at least one SLO"));
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99\n    sli: {errors: {x: 1}}\n")),
              ElementsAre("t.yaml:5:20: unknown key 'x' in slos[0].sli.errors (it takes no keys)"));
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99\n    sli: {error: {}}\n")),
              ElementsAre("t.yaml:5:11: unknown key 'error' in slos[0].sli; did you mean "
                          "'errors'?"));
}

TEST(ParseRuleFile, WrongTypes) {
  EXPECT_THAT(
      Problems(OneSlo("name: [a]\n    objective: high\n    sli: errors\n    window: {d: 1}\n")),
      ElementsAre("t.yaml:3:11: slos[0].name must be a string, got a list",
                  "t.yaml:4:16: slos[0].objective must be a number, got \"high\"",
                  "t.yaml:5:10: slos[0].sli must be a mapping, got a scalar",
                  "t.yaml:6:13: slos[0].window must be a duration like \"5m\", got a mapping"));
  EXPECT_THAT(Problems("service: checkout\nslos: {name: a}\n"),
              ElementsAre("t.yaml:2:7: slos must be a list of SLOs, got a mapping"));
  EXPECT_THAT(Problems("- service\n"),
              ElementsAre("t.yaml:1:1: the top level must be a mapping with service, labels and "
                          "slos, got a list"));
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9%\n    sli: {errors: {}}\n"
                      "    alerting: {ticket: {enabled: maybe}, min_events: -1}\n")),
      ElementsAre("t.yaml:4:16: slos[0].objective must be a number, got \"99.9%\" (it is a "
                  "percentage already: write it without \"%\")",
                  "t.yaml:6:34: slos[0].alerting.ticket.enabled must be true or false, got "
                  "\"maybe\"",
                  "t.yaml:6:54: slos[0].alerting.min_events must be an integer between 0 and "
                  "1000000000, got \"-1\""));
}

TEST(ParseRuleFile, BadDurations) {
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9\n    window: 30\n"
                      "    sli: {latency: {threshold: 1.5s}}\n")),
      ElementsAre("t.yaml:5:13: slos[0].window: invalid duration \"30\": a unit is required (ms, "
                  "s, m, h, d), e.g. \"30s\"",
                  "t.yaml:6:32: slos[0].sli.latency.threshold: invalid duration \"1.5s\": "
                  "fractions are not supported; use a smaller unit (e.g. \"1500ms\")"));
}

TEST(ParseRuleFile, ObjectiveOutOfRange) {
  for (std::string_view objective : {"0", "100", "-5", "150"}) {
    SCOPED_TRACE(objective);
    std::string value(objective);
    EXPECT_THAT(Problems(OneSlo("name: a\n    objective: " + value + "\n    sli: {errors: {}}\n")),
                ElementsAre("t.yaml:4:16: slos[0].objective must be a percentage between 0 and "
                            "100 (exclusive), got " +
                            value));
  }
}

TEST(ParseRuleFile, DuplicateSloNames) {
  EXPECT_THAT(Problems("service: checkout\nslos:\n"
                       "  - {name: availability, objective: 99.9, sli: {errors: {}}}\n"
                       "  - {name: latency, objective: 99, sli: {latency: {threshold: 1s}}}\n"
                       "  - {name: availability, objective: 99, sli: {errors: {}}}\n"),
              ElementsAre("t.yaml:5:12: slos[2].name: duplicate SLO name \"availability\" (first "
                          "defined at 3:12)"));
}

TEST(ParseRuleFile, ShortWindowMustBeShorterThanLong) {
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9\n    sli: {errors: {}}\n"
                      "    alerting:\n"
                      "      page: {windows: [{long: 1h, short: 1h, burn_rate: 14.4}]}\n"
                      "      ticket: {windows: [{long: 1d, short: 2d, burn_rate: 3}]}\n")),
      ElementsAre("t.yaml:7:42: slos[0].alerting.page.windows[0].short window 1h must be shorter "
                  "than the long window 1h",
                  "t.yaml:8:44: slos[0].alerting.ticket.windows[0].short window 2d must be "
                  "shorter than the long window 1d"));
}

TEST(ParseRuleFile, WindowsAreWholeBucketsOfTenSeconds) {
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9\n    window: 30d5s\n    sli: {errors: {}}\n"
                      "    alerting:\n"
                      "      page: {windows: [{long: 1h, short: 5s, burn_rate: 14.4}]}\n"
                      "      ticket: {windows: [{long: 1d15s, short: 2h, burn_rate: 3}]}\n"
                      "      no_data: {for: 0s}\n")),
      ElementsAre("t.yaml:5:13: slos[0].window must be a multiple of 10s (the SLI bucket), got "
                  "30d5s",
                  "t.yaml:8:42: slos[0].alerting.page.windows[0].short must be at least 10s (the "
                  "SLI bucket), got 5s",
                  "t.yaml:9:33: slos[0].alerting.ticket.windows[0].long must be a multiple of "
                  "10s (the SLI bucket), got 1d15s",
                  "t.yaml:10:22: slos[0].alerting.no_data.for must be at least 10s (the SLI "
                  "bucket), got 0s"));
}

TEST(ParseRuleFile, SliNamesExactlyOneKind) {
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99.9\n    sli: {}\n")),
              ElementsAre("t.yaml:5:10: slos[0].sli must name one kind: errors, latency, "
                          "error_traces, partial_traces, latency_quantile"));
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9\n    sli: {errors: {}, latency: {threshold: "
                      "1s}}\n")),
      ElementsAre("t.yaml:5:23: slos[0].sli names 2 kinds (errors, latency); an SLO has exactly "
                  "one SLI: write one SLO per kind"));
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99.9\n")),
              ElementsAre("t.yaml:3:5: slos[0].sli is required"));
}

TEST(ParseRuleFile, LatencyThresholdMustBePositive) {
  EXPECT_THAT(
      Problems("service: s\nslos:\n"
               "  - {name: a, objective: 99, sli: {latency: {threshold: 0ms}}}\n"
               "  - {name: b, objective: 99, sli: {latency: {threshold: -5ms}}}\n"
               "  - {name: c, objective: 99, sli: {latency: {threshold: 2h}}}\n"
               "  - {name: d, objective: 99, sli: {latency: {}}}\n"
               "  - {name: e, sli: {latency_quantile: {quantile: 0.9, threshold: 0s}}}\n"),
      ElementsAre(
          "t.yaml:3:57: slos[0].sli.latency.threshold must be greater than 0, got \"0ms\"",
          "t.yaml:4:57: slos[1].sli.latency.threshold: invalid duration \"-5ms\": must not be "
          "negative",
          "t.yaml:5:57: slos[2].sli.latency.threshold must be at most 1h (the range of the "
          "latency sketch), got 2h",
          "t.yaml:6:45: slos[3].sli.latency.threshold is required",
          "t.yaml:7:66: slos[4].sli.latency_quantile.threshold must be greater than 0, got "
          "\"0s\""));
}

TEST(ParseRuleFile, QuantileBetweenZeroAndOne) {
  EXPECT_THAT(
      Problems("service: s\nslos:\n"
               "  - {name: a, sli: {latency_quantile: {quantile: 0, threshold: 1s}}}\n"
               "  - {name: b, sli: {latency_quantile: {quantile: 1, threshold: 1s}}}\n"
               "  - {name: c, sli: {latency_quantile: {quantile: 99, threshold: 1s}}}\n"
               "  - {name: d, sli: {latency_quantile: {threshold: 1s, for: 15s}}}\n"),
      ElementsAre("t.yaml:3:50: slos[0].sli.latency_quantile.quantile must be between 0 and 1 "
                  "(exclusive), got 0",
                  "t.yaml:4:50: slos[1].sli.latency_quantile.quantile must be between 0 and 1 "
                  "(exclusive), got 1",
                  "t.yaml:5:50: slos[2].sli.latency_quantile.quantile must be between 0 and 1 "
                  "(exclusive), got 99 (write 0.99 for the 99th percentile)",
                  "t.yaml:6:39: slos[3].sli.latency_quantile.quantile is required",
                  "t.yaml:6:60: slos[3].sli.latency_quantile.for must be a multiple of 10s (the "
                  "evaluation resolution), got 15s"));
}

TEST(ParseRuleFile, QuantileSlosTakeNoObjectiveOrTiers) {
  EXPECT_THAT(
      Problems(OneSlo("name: p99\n    objective: 99\n    window: 7d\n"
                      "    sli: {latency_quantile: {quantile: 0.99, threshold: 800ms}}\n"
                      "    alerting: {page: {}, severity: urgent}\n")),
      ElementsAre("t.yaml:4:5: slos[0].objective does not apply to a latency_quantile SLO: it "
                  "alerts when the quantile stays above its threshold",
                  "t.yaml:5:5: slos[0].window does not apply to a latency_quantile SLO: it alerts "
                  "when the quantile stays above its threshold; its window is "
                  "slos[0].sli.latency_quantile.window",
                  "t.yaml:7:16: slos[0].alerting.page does not apply to a latency_quantile SLO: "
                  "it has no error budget to burn; set slos[0].alerting.severity instead",
                  "t.yaml:7:36: slos[0].alerting.severity must be page or ticket, got "
                  "\"urgent\""));
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99\n    sli: {errors: {}}\n"
                              "    alerting: {severity: page}\n")),
              ElementsAre("t.yaml:6:16: slos[0].alerting.severity applies only to "
                          "latency_quantile SLOs; burn-rate alerts take their severity from "
                          "slos[0].alerting.page and slos[0].alerting.ticket"));
}

TEST(ParseRuleFile, TiersThatCanNeverFire) {
  // Objective 90 leaves a 10 % budget: 14.4× would need 144 % of events to fail.
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 90\n    sli: {errors: {}}\n"
                      "    alerting:\n"
                      "      page: {windows: [{long: 1h, short: 5m, burn_rate: 14.4}, "
                      "{long: 6h, short: 30m, burn_rate: 10}]}\n"
                      "      ticket: {enabled: false}\n")),
      ElementsAre("t.yaml:7:57: slos[0].alerting.page.windows[0].burn_rate 14.4 can never fire "
                  "with objective 90%: it needs an error ratio of 144% (14.4 × the 10% error "
                  "budget), and at most 100% of events can fail"));
  // The default tiers are reported at the objective, once per tier that cannot fire.
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 80\n    sli: {errors: {}}\n")),
      ElementsAre("t.yaml:4:16: slos[0].objective 80% leaves a 20% error budget: the default "
                  "page tier (14.4× over 1h/5m) needs an error ratio of 288% and can never fire "
                  "(nor can 1 more default tier); set alerting.page.windows with lower burn "
                  "rates, or alerting.page.enabled: false"));
  // Objective 0.999 (a ratio written where a percent belongs): every tier but the 3-day one.
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 0.999\n    sli: {errors: {}}\n")),
      ElementsAre("t.yaml:4:16: slos[0].objective 0.999% leaves a 99% error budget: the default "
                  "page tier (14.4× over 1h/5m) needs an error ratio of 1426% and can never fire "
                  "(nor can 2 more default tiers); set alerting.page.windows and "
                  "alerting.ticket.windows with lower burn rates, or enabled: false"));
  // The default page tier needs a budget of at most 1/14.4 = 6.94 %: objective 93.06 % or more.
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 93.1\n    sli: {errors: {}}\n")), IsEmpty());
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 93\n    sli: {errors: {}}\n")),
              ElementsAre("t.yaml:4:16: slos[0].objective 93% leaves a 7% error budget: the "
                          "default page tier (14.4× over 1h/5m) needs an error ratio of 100.8% "
                          "and can never fire; set alerting.page.windows with lower burn rates, "
                          "or alerting.page.enabled: false"));
}

TEST(ParseRuleFile, ErrorBudgetBelowTheEvaluationResolution) {
  // 1e-7 × 30 d = 0.2592 s of full outage.
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99.99999\n    sli: {errors: {}}\n")),
              ElementsAre("t.yaml:4:16: slos[0].objective 99.99999% over 30d leaves an error "
                          "budget of 0.2592s of full outage, less than the 10s evaluation "
                          "resolution; lower the objective or lengthen the window"));
  // 1e-5 × 1 d = 0.864 s.
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99.999\n    window: 1d\n"
                              "    sli: {errors: {}}\n")),
              ElementsAre("t.yaml:4:16: slos[0].objective 99.999% over 1d leaves an error budget "
                          "of 0.864s of full outage, less than the 10s evaluation resolution; "
                          "lower the objective or lengthen the window"));
  // 4e-6 × 30 d = 10.4 s: enough.
  EXPECT_THAT(Problems(OneSlo("name: a\n    objective: 99.9996\n    sli: {errors: {}}\n")),
              IsEmpty());
}

TEST(ParseRuleFile, LongWindowWithinTheComplianceWindow) {
  EXPECT_THAT(
      Problems(OneSlo("name: a\n    objective: 99.9\n    window: 1d\n    sli: {errors: {}}\n"
                      "    alerting:\n"
                      "      ticket: {windows: [{long: 3d, short: 6h, burn_rate: 1}]}\n")),
      ElementsAre("t.yaml:8:33: slos[0].alerting.ticket.windows[0].long window 3d is longer than "
                  "the compliance window 1d (slos[0].window)"));
}

TEST(ParseRuleFile, FiltersAndTraceSlis) {
  EXPECT_THAT(
      Problems("service: s\nslos:\n"
               "  - {name: a, objective: 99, sli: {partial_traces: {}}, filter: {operation: x}}\n"
               "  - name: b\n    objective: 99\n    sli: {errors: {}}\n"
               "    filter: {operation: [x, y], exclude_operations: [y], op: z}\n"),
      ElementsAre("t.yaml:3:57: slos[0].filter does not apply to partial_traces SLIs: traces are "
                  "counted per service, not per operation",
                  "t.yaml:7:54: slos[1].filter.exclude_operations[0]: \"y\" is also listed in "
                  "operation; the SLO would count none of it",
                  "t.yaml:7:58: unknown key 'op' in slos[1].filter (valid keys: operation, "
                  "exclude_operations)"));
}

TEST(ParseRuleFile, LabelsAndAnnotations) {
  EXPECT_THAT(
      Problems("service: s\nlabels: {slo: x, 9x: y}\nslos:\n"
               "  - name: a\n    objective: 99\n    sli: {errors: {}}\n"
               "    alerting:\n"
               "      labels: {severity: high, team: \"\"}\n"
               "      annotations: {runbook_url: runbooks/a, summary: [x]}\n"),
      ElementsAre("t.yaml:2:10: labels.slo: the slo label is set by traceslo and cannot be "
                  "overridden",
                  "t.yaml:2:18: labels: label names must match [a-zA-Z_][a-zA-Z0-9_]* and not "
                  "start with \"__\", got \"9x\"",
                  "t.yaml:8:16: slos[0].alerting.labels.severity: the severity label is set per "
                  "tier (page or ticket); rename it in alerting.page.labels or "
                  "alerting.ticket.labels",
                  "t.yaml:8:38: slos[0].alerting.labels.team must be a non-empty string without "
                  "control characters, got an empty string",
                  "t.yaml:9:34: slos[0].alerting.annotations.runbook_url must be an absolute "
                  "http:// or https:// URL, got \"runbooks/a\"",
                  "t.yaml:9:55: slos[0].alerting.annotations.summary must be a string, got a "
                  "list"));
}

TEST(ParseRuleFile, MissingAndEmpty) {
  EXPECT_THAT(Problems(""), ElementsAre("t.yaml:1:1: the rule file is empty; it needs service "
                                        "and slos (see rules/README.md)"));
  EXPECT_THAT(
      Problems("service:\nslos:\n  - name: a\n"),
      ElementsAre("t.yaml:1:1: service must have a value", "t.yaml:3:5: slos[0].sli is required",
                  "t.yaml:3:5: slos[0].objective is required"));
}

TEST(ParseRuleFile, ReportsEveryProblemSortedByPosition) {
  // Problems of different SLOs, found in one pass, in document order.
  std::vector<std::string> problems = Problems(
      "service: s\nslos:\n"
      "  - {name: a, objective: 100, sli: {errors: {}}}\n"
      "  - {name: b, objective: 99, sli: {latency: {threshold: 0s}}}\n"
      "  - {name: c, objective: 99, sli: {errors: {}}, alerting: {min_event: 3}}\n");
  EXPECT_THAT(problems,
              ElementsAre("t.yaml:3:26: slos[0].objective must be a percentage between 0 and 100 "
                          "(exclusive), got 100",
                          "t.yaml:4:57: slos[1].sli.latency.threshold must be greater than 0, got "
                          "\"0s\"",
                          "t.yaml:5:60: unknown key 'min_event' in slos[2].alerting; did you mean "
                          "'min_events'?"));
}

TEST(ParseRuleFile, StatusCarriesTheFirstProblemAndTheCount) {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleFile> file = ParseRuleFile("service: [x]\nslos: 3\n", "r.yaml", diagnostics);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(file.status().message(),
            "r.yaml:1:10: service must be a string, got a list (and 1 more problem)");
  ASSERT_EQ(diagnostics.size(), 2u);
  EXPECT_EQ(diagnostics[1].file, "r.yaml");
  EXPECT_EQ(diagnostics[1].line, 2);
  EXPECT_EQ(diagnostics[1].column, 7);
}

TEST(ParseRuleFile, Limits) {
  // Size.
  std::string big = "service: s\n# " + std::string(kMaxRuleFileBytes, 'x') + "\n";
  EXPECT_THAT(Problems(big), ElementsAre("t.yaml:1:1: the file is larger than 1 MiB"));
  // Depth.
  std::string deep = "service: s\nslos: " + std::string(70, '[') + std::string(70, ']') + "\n";
  EXPECT_THAT(Problems(deep), ElementsAre("t.yaml:2:70: document is nested deeper than 64 levels"));
  // Alias expansion ("billion laughs").
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'h'; ++c) {
    laughs += std::string(1, c) + ": &" + c + " [*" + static_cast<char>(c - 1) + ", *" +
              static_cast<char>(c - 1) + ", *" + static_cast<char>(c - 1) + ", *" +
              static_cast<char>(c - 1) + ", *" + static_cast<char>(c - 1) + ", *" +
              static_cast<char>(c - 1) + ", *" + static_cast<char>(c - 1) + ", *" +
              static_cast<char>(c - 1) + ", *" + static_cast<char>(c - 1) + ", *" +
              static_cast<char>(c - 1) + "]\n";
  }
  std::vector<std::string> problems = Problems(laughs);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], ::testing::HasSubstr("document has more than 100000 nodes (counting "
                                                "alias expansions)"));
  // SLOs per file.
  std::string many = "service: s\nslos:\n";
  for (size_t i = 0; i <= kMaxSlosPerFile; ++i) {
    many += "  - {name: s" + std::to_string(i) + ", objective: 99, sli: {errors: {}}}\n";
  }
  EXPECT_THAT(Problems(many), ElementsAre("t.yaml:3:3: slos has 101 SLOs; at most 100 are allowed "
                                          "per file (only the first 100 were checked)"));
}

// ---------------------------------------------------------------------------------------------
// Files.

class CheckRuleFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "slo_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, std::string_view text) {
    std::filesystem::path path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  static std::vector<std::string> Strings(const CheckResult& result) {
    std::vector<std::string> out;
    for (const Diagnostic& d : result.diagnostics) out.push_back(d.ToString());
    return out;
  }

  std::filesystem::path dir_;
};

constexpr std::string_view kValid =
    "service: checkout\nslos:\n  - {name: a, objective: 99.9, sli: {errors: {}}}\n";

TEST_F(CheckRuleFilesTest, ReadsDirectoriesGlobsAndFilesEachOnce) {
  std::string a = Write("rules/a.yaml", kValid);
  Write("rules/b.yml",
        "service: payment\nslos:\n  - {name: a, objective: 99, sli: {errors: {}}}\n");
  Write("rules/.hidden.yaml", "not: [valid");
  Write("rules/notes.txt", "not yaml");
  Write("rules/tests/t.yaml", "not: [valid");  // subdirectories are not read
  const std::string rules = (dir_ / "rules").string();
  CheckResult result = CheckRuleFiles({rules, rules + "/*.yaml", a, rules + "/./a.yaml"});
  EXPECT_THAT(Strings(result), IsEmpty());
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.files_checked, 2u);
  EXPECT_EQ(result.slos_checked, 2u);
  ASSERT_EQ(result.files.size(), 2u);
  EXPECT_EQ(result.files[0].service, "checkout");
  EXPECT_EQ(result.files[0].path, a);
  EXPECT_EQ(result.files[1].service, "payment");
}

TEST_F(CheckRuleFilesTest, MissingFilesAndEmptyMatchesAreProblems) {
  Write("empty/readme.md", "");
  const std::string missing = (dir_ / "missing.yaml").string();
  const std::string pattern = (dir_ / "*.yml").string();
  const std::string empty = (dir_ / "empty").string();
  CheckResult result = CheckRuleFiles({missing, pattern, empty});
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(Strings(result),
              ElementsAre(pattern + ":1:1: no files match this pattern",
                          empty + ":1:1: no rule files (*.yaml, *.yml) in this directory",
                          missing + ":1:1: cannot read: No such file or directory"));
  EXPECT_EQ(result.files_checked, 1u);
}

TEST_F(CheckRuleFilesTest, ServiceInTwoFilesIsReportedAtTheSecond) {
  std::string first = Write("a.yaml", kValid);
  std::string second = Write("b.yaml",
                             "# again\nservice:   checkout\nslos:\n"
                             "  - {name: b, objective: 99.9, sli: {errors: {}}}\n");
  CheckResult result = CheckRuleFiles({second, first});  // path order, not argument order
  EXPECT_THAT(Strings(result), ElementsAre(second +
                                           ":2:12: service \"checkout\" is already "
                                           "defined in " +
                                           first + ":1:10 (one service per rule file)"));
  ASSERT_EQ(result.files.size(), 1u);
  EXPECT_EQ(result.files[0].path, first);
}

TEST_F(CheckRuleFilesTest, AllFilesAllProblemsSortedByFileThenPosition) {
  std::string b = Write("b.yaml", "service: b\nslos:\n  - {name: x, objective: 100, sli: {}}\n");
  std::string a = Write("a.yaml", "service: a\nslos: [\n");
  std::string c = Write("c.yaml", std::string(kMaxRuleFileBytes + 1, '#'));
  CheckResult result = CheckRuleFiles({(dir_ / "*.yaml").string()});
  EXPECT_THAT(Strings(result),
              ElementsAre(a + ":3:1: invalid YAML: end of sequence flow not found",
                          b + ":3:26: slos[0].objective must be a percentage between 0 and 100 "
                              "(exclusive), got 100",
                          b + ":3:36: slos[0].sli must name one kind: errors, latency, "
                              "error_traces, partial_traces, latency_quantile",
                          c + ":1:1: the file is larger than 1 MiB"));
  EXPECT_EQ(result.files_checked, 3u);
  EXPECT_EQ(result.slos_checked, 1u);
  EXPECT_THAT(result.files, IsEmpty());
}

TEST_F(CheckRuleFilesTest, AtMostAThousandFiles) {
  for (size_t i = 0; i <= kMaxRuleFiles + 1; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "r%04zu.yaml", i);
    Write(name, "service: s" + std::to_string(i) +
                    "\nslos:\n  - {name: a, objective: 99, sli: "
                    "{errors: {}}}\n");
  }
  CheckResult result = CheckRuleFiles({dir_.string()});
  EXPECT_THAT(Strings(result),
              ElementsAre((dir_ / "r1000.yaml").string() +
                          ":1:1: more than 1000 rule files; this one and the 1 after it were not "
                          "checked"));
  EXPECT_EQ(result.files_checked, kMaxRuleFiles);
  EXPECT_EQ(result.files.size(), kMaxRuleFiles);
}

TEST_F(CheckRuleFilesTest, NotARegularFile) {
  std::string fifo = (dir_ / "pipe.yaml").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  CheckResult result = CheckRuleFiles({fifo});
  EXPECT_THAT(Strings(result), ElementsAre(fifo + ":1:1: cannot read: not a regular file"));
}

TEST(Examples, TheRulesDirectoryIsClean) {
  CheckResult result = CheckRuleFiles({std::string(TRACESLO_SOURCE_DIR) + "/rules"});
  for (const Diagnostic& d : result.diagnostics) ADD_FAILURE() << d.ToString();
  EXPECT_GE(result.files.size(), 3u);
  std::vector<std::string> services;
  for (const RuleFile& file : result.files) services.push_back(file.service);
  EXPECT_THAT(services, ::testing::IsSupersetOf({"gateway", "checkout", "payment"}));
  for (const RuleFile& file : result.files) {
    for (const Slo& slo : file.slos) {
      SCOPED_TRACE(slo.source);
      EXPECT_EQ(slo.service, file.service);
      for (const BurnRateTier& tier : slo.alerting.tiers) {
        EXPECT_LE(slo.ErrorRatioThreshold(tier), 1.0);
        EXPECT_LT(tier.short_window, tier.long_window);
        EXPECT_LE(tier.long_window, slo.window);
      }
    }
  }
}

}  // namespace
}  // namespace traceslo::slo
