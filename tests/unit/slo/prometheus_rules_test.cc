#include "traceslo/slo/prometheus_rules.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "traceslo/slo/rule.h"
#include "traceslo/slo/rule_file.h"

// Every expected PromQL string below is written out by hand from the rule it tests (the SLI's
// counters, windows, burn rates and objective), not taken from the generator's output.

namespace traceslo::slo {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

RuleFile Parse(std::string_view yaml, std::string_view name = "t.yaml") {
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<RuleFile> file = ParseRuleFile(yaml, name, diagnostics);
  for (const Diagnostic& d : diagnostics) ADD_FAILURE() << d.ToString();
  return file.ok() ? *file : RuleFile{};
}

PrometheusRules Generate(const std::vector<RuleFile>& files, bool strict = false) {
  PrometheusRulesOptions options;
  options.version = "1.2.3";
  options.strict = strict;
  for (const RuleFile& f : files) options.source_files.push_back(f.path);
  absl::StatusOr<PrometheusRules> rules = GeneratePrometheusRules(files, options);
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *rules : PrometheusRules{};
}

// One rule of the output, read back with a YAML parser.
struct ParsedRule {
  std::string group;
  std::string record;
  std::string alert;
  std::string expr;
  std::string for_duration;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

std::map<std::string, std::string> StringMap(const YAML::Node& node) {
  std::map<std::string, std::string> out;
  if (!node) return out;
  EXPECT_TRUE(node.IsMap());
  for (const auto& entry : node) {
    // Values are written quoted, so every reader sees strings.
    EXPECT_EQ(entry.second.Tag(), "!") << entry.first.as<std::string>();
    out[entry.first.as<std::string>()] = entry.second.as<std::string>();
  }
  return out;
}

// The documented structure: {groups: [{name, rules: [{record|alert, expr, for?, labels?,
// annotations?}]}]}, nothing else.
std::vector<ParsedRule> ParseOutput(const std::string& yaml) {
  std::vector<ParsedRule> out;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    ADD_FAILURE() << "not YAML: " << e.what() << "\n" << yaml;
    return out;
  }
  EXPECT_TRUE(root.IsMap());
  EXPECT_EQ(root.size(), 1u);
  const YAML::Node groups = root["groups"];
  EXPECT_TRUE(groups.IsSequence());
  std::set<std::string> names;
  for (const YAML::Node& group : groups) {
    EXPECT_TRUE(group.IsMap());
    EXPECT_EQ(group.size(), 2u);
    const std::string name = group["name"].as<std::string>();
    EXPECT_TRUE(names.insert(name).second) << "group name repeated: " << name;
    EXPECT_TRUE(group["rules"].IsSequence());
    EXPECT_GT(group["rules"].size(), 0u) << name;
    for (const YAML::Node& rule : group["rules"]) {
      ParsedRule r;
      r.group = name;
      for (const auto& entry : rule) {
        const std::string key = entry.first.as<std::string>();
        EXPECT_THAT(key,
                    ::testing::AnyOf("record", "alert", "expr", "for", "labels", "annotations"));
      }
      EXPECT_NE(static_cast<bool>(rule["record"]), static_cast<bool>(rule["alert"]));
      if (rule["record"]) r.record = rule["record"].as<std::string>();
      if (rule["alert"]) r.alert = rule["alert"].as<std::string>();
      r.expr = rule["expr"].as<std::string>();
      while (!r.expr.empty() && r.expr.back() == '\n') r.expr.pop_back();
      if (rule["for"]) r.for_duration = rule["for"].as<std::string>();
      if (rule["record"]) {
        EXPECT_FALSE(rule["annotations"]) << r.record;
      }
      r.labels = StringMap(rule["labels"]);
      r.annotations = StringMap(rule["annotations"]);
      out.push_back(std::move(r));
    }
  }
  return out;
}

const ParsedRule* Find(const std::vector<ParsedRule>& rules, std::string_view group,
                       std::string_view name, std::string_view severity = "") {
  for (const ParsedRule& r : rules) {
    if (r.group != group || (r.record != name && r.alert != name)) continue;
    if (!severity.empty() && r.labels.count("sloth_severity") &&
        r.labels.at("sloth_severity") != severity) {
      continue;
    }
    return &r;
  }
  return nullptr;
}

std::vector<std::string> Records(const std::vector<ParsedRule>& rules, std::string_view group) {
  std::vector<std::string> out;
  for (const ParsedRule& r : rules) {
    if (r.group == group) out.push_back(r.record.empty() ? r.alert : r.record);
  }
  return out;
}

// payment.yaml's availability SLO, as in rules/.
constexpr std::string_view kPayment = R"(service: payment
labels: {team: payments}
slos:
  - name: availability
    description: Charges that do not fail.
    objective: 99.95
    sli: {errors: {}}
    alerting:
      page:
        windows:
          - {long: 1h, short: 5m, burn_rate: 14.4}
          - {long: 6h, short: 30m, burn_rate: 6}
      ticket: {enabled: false}
      min_events: 20
      annotations:
        runbook_url: https://runbooks.example/payment/availability
)";

constexpr std::string_view kPaymentIds =
    R"({sloth_id="payment-availability",sloth_service="payment",sloth_slo="availability"})";

TEST(PrometheusRules, ErrorsSliRecordsEveryTierWindowAndThePeriod) {
  const PrometheusRules out = Generate({Parse(kPayment, "rules/payment.yaml")});
  EXPECT_THAT(out.warnings, IsEmpty());
  EXPECT_EQ(out.slos_generated, 1u);
  const std::vector<ParsedRule> rules = ParseOutput(out.yaml);
  const std::string group = "sloth-slo-sli-recordings-payment-availability";
  EXPECT_THAT(Records(rules, group),
              ElementsAre("slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30m",
                          "slo:sli_error:ratio_rate1h", "slo:sli_error:ratio_rate6h",
                          "slo:sli_error:ratio_rate30d"));
  const ParsedRule* five = Find(rules, group, "slo:sli_error:ratio_rate5m");
  ASSERT_NE(five, nullptr);
  EXPECT_EQ(five->expr,
            "sum(rate(traceslo_request_errors_total{service=\"payment\"}[5m]))\n"
            "/\n"
            "sum(rate(traceslo_requests_total{service=\"payment\"}[5m]))");
  EXPECT_EQ(five->labels, (std::map<std::string, std::string>{{"service", "payment"},
                                                              {"slo", "availability"},
                                                              {"sloth_id", "payment-availability"},
                                                              {"sloth_service", "payment"},
                                                              {"sloth_slo", "availability"},
                                                              {"sloth_window", "5m"},
                                                              {"team", "payments"}}));
  const ParsedRule* period = Find(rules, group, "slo:sli_error:ratio_rate30d");
  ASSERT_NE(period, nullptr);
  EXPECT_EQ(period->expr,
            "sum(rate(traceslo_request_errors_total{service=\"payment\"}[30d]))\n"
            "/\n"
            "sum(rate(traceslo_requests_total{service=\"payment\"}[30d]))");
  EXPECT_EQ(period->labels.at("sloth_window"), "30d");
  EXPECT_EQ(out.rules, rules.size());
}

TEST(PrometheusRules, PageAlertIsLongAndShortWindowAtOrAboveTheTierThreshold) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(kPayment)}).yaml);
  const std::string group = "sloth-slo-alerts-payment-availability";
  // Ticket disabled: one alert.
  EXPECT_THAT(Records(rules, group), ElementsAre("SloBurnRate"));
  const ParsedRule* page = Find(rules, group, "SloBurnRate");
  ASSERT_NE(page, nullptr);
  const std::string ids(kPaymentIds);
  // Error budget 1 - 0.9995 = 0.0005; tiers 14.4× over 1h/5m and 6× over 6h/30m; 20 requests
  // in the short window.
  EXPECT_EQ(page->expr,
            "max without (sloth_window) (\n"
            "  (\n"
            "    (slo:sli_error:ratio_rate5m" +
                ids +
                " >= (14.4 * 0.0005))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate1h" +
                ids +
                " >= (14.4 * 0.0005))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"payment\"}[5m])) >= 20)\n"
                "  )\n"
                "  or ignoring (sloth_window)\n"
                "  (\n"
                "    (slo:sli_error:ratio_rate30m" +
                ids +
                " >= (6 * 0.0005))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate6h" +
                ids +
                " >= (6 * 0.0005))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"payment\"}[30m])) >= 20)\n"
                "  )\n"
                ")");
  EXPECT_EQ(page->for_duration, "");  // fires at the first evaluation, as the evaluator does
  EXPECT_EQ(page->labels, (std::map<std::string, std::string>{{"service", "payment"},
                                                              {"severity", "page"},
                                                              {"slo", "availability"},
                                                              {"sloth_id", "payment-availability"},
                                                              {"sloth_service", "payment"},
                                                              {"sloth_severity", "page"},
                                                              {"sloth_slo", "availability"},
                                                              {"team", "payments"}}));
  EXPECT_EQ(page->annotations.at("runbook_url"), "https://runbooks.example/payment/availability");
  EXPECT_EQ(page->annotations.at("description"), "Charges that do not fail.");
  EXPECT_THAT(page->annotations.at("summary"), HasSubstr("payment availability"));
}

TEST(PrometheusRules, MetadataRecordingsAsSlothNamesThem) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(kPayment)}).yaml);
  const std::string group = "sloth-slo-meta-recordings-payment-availability";
  EXPECT_THAT(Records(rules, group),
              ElementsAre("slo:objective:ratio", "slo:error_budget:ratio", "slo:time_period:days",
                          "slo:current_burn_rate:ratio", "slo:period_burn_rate:ratio",
                          "slo:period_error_budget_remaining:ratio", "sloth_slo_info"));
  const std::string ids(kPaymentIds);
  auto expr = [&](std::string_view name) {
    const ParsedRule* r = Find(rules, group, name);
    return r ? r->expr : "(missing)";
  };
  EXPECT_EQ(expr("slo:objective:ratio"), "vector(0.9995)");
  EXPECT_EQ(expr("slo:error_budget:ratio"), "vector(0.0005)");
  EXPECT_EQ(expr("slo:time_period:days"), "vector(30)");
  EXPECT_EQ(expr("slo:current_burn_rate:ratio"),
            "slo:sli_error:ratio_rate5m" + ids +
                "\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio" +
                ids);
  EXPECT_EQ(expr("slo:period_burn_rate:ratio"),
            "slo:sli_error:ratio_rate30d" + ids +
                "\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio" +
                ids);
  EXPECT_EQ(expr("slo:period_error_budget_remaining:ratio"),
            "1 - slo:period_burn_rate:ratio" + ids);
  const ParsedRule* info = Find(rules, group, "sloth_slo_info");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->expr, "vector(1)");
  EXPECT_EQ(info->labels.at("sloth_objective"), "99.95");
  EXPECT_EQ(info->labels.at("sloth_version"), "1.2.3");
  EXPECT_EQ(info->labels.at("sloth_id"), "payment-availability");
}

TEST(PrometheusRules, DefaultTiersGivePageAndTicketAlerts) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: gateway
slos:
  - name: availability
    objective: 99.9
    sli: {errors: {}}
)")})
                                                        .yaml);
  const std::string group = "sloth-slo-alerts-gateway-availability";
  EXPECT_THAT(Records(rules, group), ElementsAre("SloBurnRate", "SloBurnRate"));
  EXPECT_THAT(Records(rules, "sloth-slo-sli-recordings-gateway-availability"),
              ElementsAre("slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30m",
                          "slo:sli_error:ratio_rate1h", "slo:sli_error:ratio_rate2h",
                          "slo:sli_error:ratio_rate6h", "slo:sli_error:ratio_rate1d",
                          "slo:sli_error:ratio_rate3d", "slo:sli_error:ratio_rate30d"));
  const ParsedRule* ticket = Find(rules, group, "SloBurnRate", "ticket");
  ASSERT_NE(ticket, nullptr);
  const std::string ids =
      R"({sloth_id="gateway-availability",sloth_service="gateway",sloth_slo="availability"})";
  // Ticket: 3× over 1d/2h, 1× over 3d/6h; budget 0.001; default min_events 20.
  EXPECT_EQ(ticket->expr,
            "max without (sloth_window) (\n"
            "  (\n"
            "    (slo:sli_error:ratio_rate2h" +
                ids +
                " >= (3 * 0.001))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate1d" +
                ids +
                " >= (3 * 0.001))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"gateway\"}[2h])) >= 20)\n"
                "  )\n"
                "  or ignoring (sloth_window)\n"
                "  (\n"
                "    (slo:sli_error:ratio_rate6h" +
                ids +
                " >= (1 * 0.001))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate3d" +
                ids +
                " >= (1 * 0.001))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"gateway\"}[6h])) >= 20)\n"
                "  )\n"
                ")");
  EXPECT_EQ(ticket->labels.at("severity"), "ticket");
  EXPECT_EQ(ticket->labels.at("sloth_severity"), "ticket");
  const ParsedRule* page = Find(rules, group, "SloBurnRate", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_THAT(page->expr, HasSubstr("(slo:sli_error:ratio_rate5m" + ids + " >= (14.4 * 0.001))"));
}

TEST(PrometheusRules, DisabledSeveritiesHaveNoAlertButKeepTheirRecordings) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: s
slos:
  - name: quiet
    objective: 99
    sli: {errors: {}}
    alerting: {page: {enabled: false}, ticket: {enabled: false}}
)")})
                                                        .yaml);
  EXPECT_THAT(Records(rules, "sloth-slo-alerts-s-quiet"), IsEmpty());
  // Only the dashboards' 5m and the period remain.
  EXPECT_THAT(Records(rules, "sloth-slo-sli-recordings-s-quiet"),
              ElementsAre("slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30d"));
  EXPECT_THAT(Records(rules, "sloth-slo-meta-recordings-s-quiet"), testing::SizeIs(7));
}

TEST(PrometheusRules, LatencyAtABucketBoundCountsRequestsAboveIt) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: gateway
slos:
  - name: latency
    objective: 99
    sli: {latency: {threshold: 500ms}}
    filter:
      operation: ["POST /api/checkout", "GET /api/products"]
)")})
                                                        .yaml);
  const ParsedRule* r =
      Find(rules, "sloth-slo-sli-recordings-gateway-latency", "slo:sli_error:ratio_rate1h");
  ASSERT_NE(r, nullptr);
  // Bad = all requests - those at or under 0.5 s; only the two operations.
  const std::string ops = R"(service="gateway",operation=~"POST /api/checkout|GET /api/products")";
  EXPECT_EQ(r->expr,
            "(\n"
            "  sum(rate(traceslo_request_duration_seconds_count{" +
                ops +
                "}[1h]))\n"
                "  -\n"
                "  sum(rate(traceslo_request_duration_seconds_bucket{" +
                ops +
                R"(,le="0.5"}[1h])))"
                "\n"
                ")\n"
                "/\n"
                "sum(rate(traceslo_request_duration_seconds_count{" +
                ops + "}[1h]))");
  // min_events counts requests: the histogram's _count.
  const ParsedRule* page = Find(rules, "sloth-slo-alerts-gateway-latency", "SloBurnRate", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_THAT(page->expr, HasSubstr("(sum(increase(traceslo_request_duration_seconds_count{" + ops +
                                    "}[5m])) >= 20)"));
  EXPECT_THAT(page->expr, HasSubstr(" >= (14.4 * 0.01))"));
}

TEST(PrometheusRules, WholeSecondBoundsMatchBothWaysPrometheusWritesLe) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: s
slos:
  - name: slow
    objective: 99
    sli: {latency: {threshold: 1s}}
)")})
                                                        .yaml);
  const ParsedRule* r =
      Find(rules, "sloth-slo-sli-recordings-s-slow", "slo:sli_error:ratio_rate5m");
  ASSERT_NE(r, nullptr);
  // /metrics writes le="1"; Prometheus 3 stores it as le="1.0".
  EXPECT_THAT(
      r->expr,
      HasSubstr(R"(traceslo_request_duration_seconds_bucket{service="s",le=~"1|1\\.0"}[5m])"));
}

TEST(PrometheusRules, ErrorTracesUseTheRoleOfTheRule) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: payment
slos:
  - name: caused-errors
    objective: 99.9
    sli: {error_traces: {role: origin}}
    alerting: {page: {enabled: false}}
  - name: root-errors
    objective: 99.9
    sli: {error_traces: {}}
    alerting: {page: {enabled: false}}
)")})
                                                        .yaml);
  const ParsedRule* origin =
      Find(rules, "sloth-slo-sli-recordings-payment-caused-errors", "slo:sli_error:ratio_rate2h");
  ASSERT_NE(origin, nullptr);
  EXPECT_EQ(origin->expr,
            "sum(rate(traceslo_error_traces_total{service=\"payment\",role=\"origin\"}[2h]))\n"
            "/\n"
            "sum(rate(traceslo_traces_total{service=\"payment\"}[2h]))");
  const ParsedRule* root =
      Find(rules, "sloth-slo-sli-recordings-payment-root-errors", "slo:sli_error:ratio_rate2h");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->expr,
            "sum(rate(traceslo_error_traces_total{service=\"payment\",role=\"root\"}[2h]))\n"
            "/\n"
            "sum(rate(traceslo_traces_total{service=\"payment\"}[2h]))");
  const ParsedRule* ticket =
      Find(rules, "sloth-slo-alerts-payment-caused-errors", "SloBurnRate", "ticket");
  ASSERT_NE(ticket, nullptr);
  // Events are completed traces.
  EXPECT_THAT(ticket->expr,
              HasSubstr("(sum(increase(traceslo_traces_total{service=\"payment\"}[2h])) >= 20)"));
}

TEST(PrometheusRules, PartialTracesOverAWeek) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: gateway
slos:
  - name: complete-traces
    objective: 99.5
    window: 7d
    sli: {partial_traces: {}}
    alerting: {page: {enabled: false}}
)")})
                                                        .yaml);
  // 7d is "1w" in Prometheus' (and Sloth's) duration format.
  EXPECT_THAT(Records(rules, "sloth-slo-sli-recordings-gateway-complete-traces"),
              ElementsAre("slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate2h",
                          "slo:sli_error:ratio_rate6h", "slo:sli_error:ratio_rate1d",
                          "slo:sli_error:ratio_rate3d", "slo:sli_error:ratio_rate1w"));
  const ParsedRule* r =
      Find(rules, "sloth-slo-sli-recordings-gateway-complete-traces", "slo:sli_error:ratio_rate1w");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->expr,
            "sum(rate(traceslo_partial_traces_total{service=\"gateway\"}[1w]))\n"
            "/\n"
            "sum(rate(traceslo_traces_total{service=\"gateway\"}[1w]))");
  const ParsedRule* days =
      Find(rules, "sloth-slo-meta-recordings-gateway-complete-traces", "slo:time_period:days");
  ASSERT_NE(days, nullptr);
  EXPECT_EQ(days->expr, "vector(7)");
  // Ticket over 7d: 10 % of the budget in 1d is 0.1 × 7 = 0.7×; budget 0.005.
  const ParsedRule* ticket =
      Find(rules, "sloth-slo-alerts-gateway-complete-traces", "SloBurnRate", "ticket");
  ASSERT_NE(ticket, nullptr);
  EXPECT_THAT(ticket->expr, HasSubstr("ratio_rate1d{sloth_id=\"gateway-complete-traces\","
                                      "sloth_service=\"gateway\",sloth_slo=\"complete-traces\"} "
                                      ">= (0.7 * 0.005))"));
}

TEST(PrometheusRules, ExcludedOperationsAndRegexCharactersInNames) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"yaml(service: inventory
slos:
  - name: list
    objective: 95
    window: 7d
    sli: {errors: {}}
    filter: {exclude_operations: [inventory.Inventory/Reserve, "GET /health"]}
  - name: picked
    objective: 95
    window: 7d
    sli: {errors: {}}
    filter: {operation: ["GET /items/(id)", "a.b|c*"]}
)yaml")})
                                                        .yaml);
  const ParsedRule* list =
      Find(rules, "sloth-slo-sli-recordings-inventory-list", "slo:sli_error:ratio_rate5m");
  ASSERT_NE(list, nullptr);
  // Exclusions are exact matchers, no regex.
  EXPECT_EQ(list->expr,
            "sum(rate(traceslo_request_errors_total{service=\"inventory\","
            "operation!=\"inventory.Inventory/Reserve\",operation!=\"GET /health\"}[5m]))\n"
            "/\n"
            "sum(rate(traceslo_requests_total{service=\"inventory\","
            "operation!=\"inventory.Inventory/Reserve\",operation!=\"GET /health\"}[5m]))");
  const ParsedRule* picked =
      Find(rules, "sloth-slo-sli-recordings-inventory-picked", "slo:sli_error:ratio_rate5m");
  ASSERT_NE(picked, nullptr);
  // RE2 escapes ( ) . | * with a backslash, which the PromQL string doubles.
  EXPECT_THAT(picked->expr, HasSubstr(R"(operation=~"GET /items/\\(id\\)|a\\.b\\|c\\*")"));
}

TEST(PrometheusRules, QuotesAndBackslashesInNamesAreEscapedInPromQl) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: 'we"ird\svc'
labels: {team: "a \"b\" {{c}}"}
slos:
  - name: ok
    objective: 99
    sli: {errors: {}}
    filter: {operation: "say \"hi\""}
    alerting:
      annotations: {summary: "{{ $value }} is \"literal\""}
)")})
                                                        .yaml);
  const std::string group = R"(sloth-slo-sli-recordings-we"ird\svc-ok)";
  const ParsedRule* r = Find(rules, group, "slo:sli_error:ratio_rate5m");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(
      r->expr,
      R"(sum(rate(traceslo_request_errors_total{service="we\"ird\\svc",operation="say \"hi\""}[5m])))"
      "\n/\n"
      R"(sum(rate(traceslo_requests_total{service="we\"ird\\svc",operation="say \"hi\""}[5m])))");
  // Label values are YAML strings, as written.
  EXPECT_EQ(r->labels.at("service"), R"(we"ird\svc)");
  EXPECT_EQ(r->labels.at("sloth_id"), R"(we"ird\svc-ok)");
  EXPECT_EQ(r->labels.at("team"), R"(a "b" {{c}})");
  const ParsedRule* meta =
      Find(rules, R"(sloth-slo-meta-recordings-we"ird\svc-ok)", "slo:error_budget:ratio");
  ASSERT_NE(meta, nullptr);
  const ParsedRule* current =
      Find(rules, R"(sloth-slo-meta-recordings-we"ird\svc-ok)", "slo:current_burn_rate:ratio");
  ASSERT_NE(current, nullptr);
  EXPECT_THAT(
      current->expr,
      HasSubstr(R"({sloth_id="we\"ird\\svc-ok",sloth_service="we\"ird\\svc",sloth_slo="ok"})"));
  // Annotations reach Prometheus' template engine: "{{" is printed, not expanded.
  const ParsedRule* page = Find(rules, R"(sloth-slo-alerts-we"ird\svc-ok)", "SloBurnRate", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->annotations.at("summary"), R"({{ "{{" }} $value }} is "literal")");
  // Alert labels are templates too; recorded labels are not.
  EXPECT_EQ(page->labels.at("team"), R"(a "b" {{ "{{" }}c}})");
}

TEST(PrometheusRules, PromQlStringEscapes) {
  EXPECT_EQ(PromQlString("plain"), R"("plain")");
  EXPECT_EQ(PromQlString(R"(a"b\c)"), R"("a\"b\\c")");
  // Control characters as \uXXXX, a Go escape PromQL takes (promtool 2.42 accepts it).
  EXPECT_EQ(PromQlString("tab\there\nnl\x01"), R"("tab\there\nnl\u0001")");
  EXPECT_EQ(PromQlString("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(PrometheusRules, ShortCustomWindowsAreValidPrometheusDurations) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: fast
slos:
  - name: availability
    objective: 99
    window: 2h
    sli: {errors: {}}
    alerting:
      page:
        windows: [{long: 1m, short: 10s, burn_rate: 10}, {long: 1h30s, short: 1m30s, burn_rate: 2}]
      ticket: {enabled: false}
      min_events: 5
)")})
                                                        .yaml);
  EXPECT_THAT(Records(rules, "sloth-slo-sli-recordings-fast-availability"),
              ElementsAre("slo:sli_error:ratio_rate10s", "slo:sli_error:ratio_rate1m",
                          "slo:sli_error:ratio_rate1m30s", "slo:sli_error:ratio_rate5m",
                          "slo:sli_error:ratio_rate1h30s", "slo:sli_error:ratio_rate2h"));
  const ParsedRule* page = Find(rules, "sloth-slo-alerts-fast-availability", "SloBurnRate");
  ASSERT_NE(page, nullptr);
  const std::string ids =
      R"({sloth_id="fast-availability",sloth_service="fast",sloth_slo="availability"})";
  EXPECT_EQ(page->expr,
            "max without (sloth_window) (\n"
            "  (\n"
            "    (slo:sli_error:ratio_rate10s" +
                ids +
                " >= (10 * 0.01))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate1m" +
                ids +
                " >= (10 * 0.01))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"fast\"}[10s])) >= 5)\n"
                "  )\n"
                "  or ignoring (sloth_window)\n"
                "  (\n"
                "    (slo:sli_error:ratio_rate1m30s" +
                ids +
                " >= (2 * 0.01))\n"
                "    and ignoring (sloth_window)\n"
                "    (slo:sli_error:ratio_rate1h30s" +
                ids +
                " >= (2 * 0.01))\n"
                "    and on ()\n"
                "    (sum(increase(traceslo_requests_total{service=\"fast\"}[1m30s])) >= 5)\n"
                "  )\n"
                ")");
  const ParsedRule* days =
      Find(rules, "sloth-slo-meta-recordings-fast-availability", "slo:time_period:days");
  ASSERT_NE(days, nullptr);
  EXPECT_EQ(days->expr, "vector(0.08333333333333333)");  // 2h / 24h
}

TEST(PrometheusRules, ShortPeriodsRecordNoDashboardWindowAndReadTheShortestForCurrentBurn) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: tiny
slos:
  - name: a
    objective: 90
    window: 2m
    sli: {errors: {}}
    alerting:
      page: {windows: [{long: 1m, short: 10s, burn_rate: 2}]}
      ticket: {enabled: false}
)")})
                                                        .yaml);
  EXPECT_THAT(Records(rules, "sloth-slo-sli-recordings-tiny-a"),
              ElementsAre("slo:sli_error:ratio_rate10s", "slo:sli_error:ratio_rate1m",
                          "slo:sli_error:ratio_rate2m"));
  const ParsedRule* current =
      Find(rules, "sloth-slo-meta-recordings-tiny-a", "slo:current_burn_rate:ratio");
  ASSERT_NE(current, nullptr);
  EXPECT_THAT(current->expr, ::testing::StartsWith("slo:sli_error:ratio_rate10s{"));
}

TEST(PrometheusRules, MinEventsZeroDropsTheEventCondition) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: s
slos:
  - name: any
    objective: 99
    sli: {errors: {}}
    alerting: {min_events: 0, ticket: {enabled: false}}
)")})
                                                        .yaml);
  const ParsedRule* page = Find(rules, "sloth-slo-alerts-s-any", "SloBurnRate");
  ASSERT_NE(page, nullptr);
  EXPECT_THAT(page->expr, Not(HasSubstr("and on ()")));
  EXPECT_THAT(page->expr, Not(HasSubstr("increase(")));
}

TEST(PrometheusRules, RenamedSeverityAndRuleLabelsReachTheAlert) {
  const std::vector<ParsedRule> rules = ParseOutput(Generate({Parse(R"(service: checkout
labels: {team: payments}
slos:
  - name: availability
    objective: 99.9
    sli: {errors: {}}
    filter: {operation: "POST /checkout"}
    alerting:
      min_events: 50
      page: {labels: {severity: critical}}
      labels: {component: orders, team: shop}
      no_data: {for: 10m}
)")})
                                                        .yaml);
  const std::string group = "sloth-slo-alerts-checkout-availability";
  EXPECT_THAT(Records(rules, group), ElementsAre("SloBurnRate", "SloBurnRate", "SloNoData"));
  const ParsedRule* page = Find(rules, group, "SloBurnRate", "page");
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->labels.at("severity"), "critical");
  EXPECT_EQ(page->labels.at("sloth_severity"), "page");
  EXPECT_EQ(page->labels.at("component"), "orders");
  EXPECT_EQ(page->labels.at("team"), "shop");  // the SLO's labels over the file's
  EXPECT_THAT(page->expr, HasSubstr("(sum(increase(traceslo_requests_total{service=\"checkout\","
                                    "operation=\"POST /checkout\"}[5m])) >= 50)"));
  const ParsedRule* no_data = Find(rules, group, "SloNoData");
  ASSERT_NE(no_data, nullptr);
  EXPECT_EQ(no_data->expr,
            "sum(increase(traceslo_requests_total{service=\"checkout\",operation=\"POST "
            "/checkout\"}[10m])) == 0");
  EXPECT_EQ(no_data->labels.at("severity"), "ticket");
  EXPECT_EQ(no_data->labels.count("sloth_severity"), 0u);
  EXPECT_EQ(no_data->labels.at("slo"), "availability");
}

TEST(PrometheusRules, LatencyQuantileAtABucketBound) {
  const PrometheusRules out = Generate({Parse(R"(service: checkout
slos:
  - name: p99
    sli: {latency_quantile: {quantile: 0.99, threshold: 500ms, window: 5m, for: 10m}}
    filter: {operation: "POST /checkout"}
    alerting:
      severity: page
      annotations: {summary: checkout p99 is slow}
)")});
  const std::vector<ParsedRule> rules = ParseOutput(out.yaml);
  // No ratio, no budget: only the alert.
  EXPECT_EQ(rules.size(), 1u);
  const ParsedRule* alert = Find(rules, "sloth-slo-alerts-checkout-p99", "SloLatencyQuantile");
  ASSERT_NE(alert, nullptr);
  const std::string sel = R"(service="checkout",operation="POST /checkout")";
  // p99 > 0.5 s exactly when fewer than 99 % of the requests took at most 0.5 s.
  EXPECT_EQ(alert->expr,
            "histogram_quantile(0.99, sum by (le) (rate(traceslo_request_duration_seconds_bucket{" +
                sel +
                "}[5m])))\n"
                "and on ()\n"
                "(\n"
                "  sum(rate(traceslo_request_duration_seconds_bucket{" +
                sel +
                R"(,le="0.5"}[5m])))"
                "\n"
                "  /\n"
                "  sum(rate(traceslo_request_duration_seconds_count{" +
                sel +
                "}[5m]))\n"
                "  < 0.99\n"
                ")\n"
                "and on ()\n"
                "(sum(increase(traceslo_request_duration_seconds_count{" +
                sel + "}[5m])) >= 20)");
  EXPECT_EQ(alert->for_duration, "10m");
  EXPECT_EQ(alert->labels.at("severity"), "page");
  EXPECT_EQ(alert->labels.count("sloth_severity"), 0u);
  EXPECT_EQ(alert->annotations.at("summary"), "checkout p99 is slow");
}

constexpr std::string_view kCheckoutLatency = R"(service: checkout
slos:
  - name: availability
    objective: 99.9
    sli: {errors: {}}
  - name: latency
    objective: 99
    sli: {latency: {threshold: 300ms}}
  - name: p99
    sli: {latency_quantile: {quantile: 0.99, threshold: 800ms}}
)";

TEST(PrometheusRules, LatencyThresholdsOffTheBucketBoundsAreSkippedWithAWarning) {
  const PrometheusRules out = Generate({Parse(kCheckoutLatency, "rules/checkout.yaml")});
  ASSERT_EQ(out.warnings.size(), 2u);
  EXPECT_EQ(out.warnings[0].source, "rules/checkout.yaml:6:5");
  EXPECT_EQ(out.warnings[0].slo, "latency");
  EXPECT_THAT(out.warnings[0].ToString(),
              HasSubstr("rules/checkout.yaml:6:5: checkout/latency: latency threshold 300ms is "
                        "not a bucket bound"));
  EXPECT_THAT(out.warnings[0].message, HasSubstr("250ms, 500ms"));
  EXPECT_EQ(out.warnings[1].slo, "p99");
  EXPECT_EQ(out.slos_generated, 1u);
  EXPECT_EQ(out.slos_skipped, 2u);
  // Named in the output too.
  EXPECT_THAT(out.yaml, HasSubstr("\n# Skipped:\n#   rules/checkout.yaml:6:5: checkout/latency: "));
  const std::vector<ParsedRule> rules = ParseOutput(out.yaml);
  for (const ParsedRule& r : rules) {
    EXPECT_EQ(r.labels.at("sloth_slo"), "availability") << r.group;
  }
}

TEST(PrometheusRules, StrictRefusesWhatItWouldSkip) {
  PrometheusRulesOptions options;
  options.strict = true;
  absl::StatusOr<PrometheusRules> out =
      GeneratePrometheusRules({Parse(kCheckoutLatency, "rules/checkout.yaml")}, options);
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(out.status()));
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("rules/checkout.yaml:6:5: checkout/latency: latency threshold 300ms"));
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("\nrules/checkout.yaml:9:5: "));
  // Nothing to refuse: strict generates.
  EXPECT_TRUE(GeneratePrometheusRules({Parse(kPayment)}, options).ok());
}

TEST(PrometheusRules, SameInputSameBytesInFileOrder) {
  const std::vector<RuleFile> files = {Parse(kPayment, "rules/payment.yaml"),
                                       Parse(kCheckoutLatency, "rules/checkout.yaml")};
  const PrometheusRules a = Generate(files);
  const PrometheusRules b = Generate(files);
  EXPECT_EQ(a.yaml, b.yaml);
  EXPECT_THAT(a.yaml, ::testing::StartsWith("# Generated by traceslo 1.2.3 "));
  EXPECT_THAT(a.yaml, HasSubstr("# From:\n#   rules/payment.yaml\n#   rules/checkout.yaml\n"));
  const std::vector<ParsedRule> rules = ParseOutput(a.yaml);
  std::vector<std::string> groups;
  for (const ParsedRule& r : rules) {
    if (groups.empty() || groups.back() != r.group) groups.push_back(r.group);
  }
  EXPECT_THAT(groups, ElementsAre("sloth-slo-sli-recordings-payment-availability",
                                  "sloth-slo-meta-recordings-payment-availability",
                                  "sloth-slo-alerts-payment-availability",
                                  "sloth-slo-sli-recordings-checkout-availability",
                                  "sloth-slo-meta-recordings-checkout-availability",
                                  "sloth-slo-alerts-checkout-availability"));
}

TEST(PrometheusRules, RepeatedGroupNamesGetANumber) {
  const PrometheusRules out = Generate({Parse(R"(service: a-b
slos: [{name: c, objective: 99, sli: {errors: {}}}]
)"),
                                        Parse(R"(service: a
slos: [{name: b-c, objective: 99, sli: {errors: {}}}]
)")});
  const std::vector<ParsedRule> rules = ParseOutput(out.yaml);  // checks names are unique
  EXPECT_NE(Find(rules, "sloth-slo-alerts-a-b-c-2", "SloBurnRate"), nullptr);
}

TEST(PrometheusRules, NoSlosIsAnEmptyGroupList) {
  const PrometheusRules out = Generate({});
  EXPECT_THAT(ParseOutput(out.yaml), IsEmpty());
  EXPECT_THAT(out.yaml, HasSubstr("groups: []"));
}

TEST(PrometheusDurationTest, AsPrometheusWritesDurations) {
  EXPECT_EQ(PrometheusDuration(seconds(10)), "10s");
  EXPECT_EQ(PrometheusDuration(minutes(5)), "5m");
  EXPECT_EQ(PrometheusDuration(seconds(90)), "1m30s");
  EXPECT_EQ(PrometheusDuration(hours(1) + minutes(30)), "1h30m");
  EXPECT_EQ(PrometheusDuration(hours(24)), "1d");
  EXPECT_EQ(PrometheusDuration(hours(72)), "3d");
  EXPECT_EQ(PrometheusDuration(hours(24 * 7)), "1w");
  EXPECT_EQ(PrometheusDuration(hours(24 * 28)), "4w");
  EXPECT_EQ(PrometheusDuration(hours(24 * 30)), "30d");
  EXPECT_EQ(PrometheusDuration(hours(24 * 365)), "1y");
  EXPECT_EQ(PrometheusDuration(hours(24 * 8) + seconds(10)), "8d10s");
  EXPECT_EQ(PrometheusDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(PrometheusDuration(milliseconds(0)), "0s");
}

TEST(PrometheusRules, TheExampleRulesGenerate) {
  const CheckResult checked = CheckRuleFiles({std::string(TRACESLO_SOURCE_DIR) + "/rules"});
  ASSERT_TRUE(checked.ok());
  const PrometheusRules out = Generate(checked.files);
  const std::vector<ParsedRule> rules = ParseOutput(out.yaml);
  EXPECT_GT(rules.size(), 50u);
  // checkout's 300ms latency and 800ms p99 are off the bucket bounds.
  std::vector<std::string> skipped;
  for (const PrometheusRulesWarning& w : out.warnings) skipped.push_back(w.service + "/" + w.slo);
  EXPECT_THAT(skipped, ElementsAre("checkout/latency", "checkout/p99"));
  EXPECT_NE(Find(rules, "sloth-slo-alerts-payment-caused-errors", "SloBurnRate", "ticket"),
            nullptr);
  EXPECT_NE(Find(rules, "sloth-slo-alerts-checkout-availability", "SloNoData"), nullptr);
}

}  // namespace
}  // namespace traceslo::slo
