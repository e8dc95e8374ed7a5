// The SLO overview, alerts and signatures pages and their JSON, rendered from hand-built views:
// the hooks a browser test relies on, escaping of untrusted strings, valid JSON, empty states.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "services/web/alerts_page.h"
#include "services/web/html.h"
#include "services/web/signatures_page.h"
#include "services/web/slo_page.h"
#include "tests/unit/web/page_test_util.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;
using page_test::DecodeHtml;
using page_test::ExpectNoRawEvil;
using page_test::ExpectSelfContained;
using page_test::kEvil;
using page_test::ParseJson;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kStart = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123Z
constexpr char kExternal[] = "https://slo.example/prefix/";
constexpr char kBase[] = "https://slo.example/prefix";
const std::string kEvilService = "checkout " + std::string(kEvil);
const std::string kEvilSlo = "availability " + std::string(kEvil);

// ---- SLO overview ----

SloView FiringSlo() {
  SloView s;
  s.service = kEvilService;
  s.slo = kEvilSlo;
  s.description = "desc " + std::string(kEvil);
  s.sli = "errors";
  s.objective_ratio = 0.999;
  s.compliance_window = milliseconds(30LL * 86'400'000);
  s.evaluated = true;
  s.windows = {{.window = milliseconds(300'000),
                .total = 1000,
                .bad = 20,
                .sli_ratio = 0.98,
                .burn_rate = 20},
               {.window = milliseconds(3'600'000),
                .total = 12000,
                .bad = 180,
                .sli_ratio = 0.985,
                .burn_rate = 15},
               {.window = milliseconds(30LL * 86'400'000),
                .total = 1'000'000,
                .bad = 25,
                .sli_ratio = 0.999975,
                .burn_rate = 0.025}};
  s.error_budget_remaining_ratio = 0.975;
  s.seconds_to_exhaustion = 2 * 86'400 + 3 * 3'600 + 59;  // 2 d 3 h
  s.alerts = {{.severity = "page",
               .state = "firing",
               .active_since_unix_nano = kStart,
               .long_window = milliseconds(3'600'000),
               .short_window = milliseconds(300'000),
               .burn_rate_long = 15,
               .burn_rate_short = 20,
               .threshold_burn_rate = 14.4},
              {.severity = "ticket", .state = "inactive"}};
  s.state = OverallState(s.evaluated, s.alerts);
  return s;
}

SloView QuietSlo() {
  SloView s;
  s.service = "inventory";
  s.slo = "latency";
  s.sli = "latency";
  s.objective_ratio = 0.99;
  s.compliance_window = milliseconds(7LL * 86'400'000);
  s.latency_threshold = milliseconds(300);
  s.evaluated = true;
  s.windows = {
      {.window = milliseconds(300'000), .total = 50, .bad = 0, .sli_ratio = 1, .burn_rate = 0}};
  s.error_budget_remaining_ratio = 1;
  s.seconds_to_exhaustion = std::numeric_limits<double>::infinity();
  s.alerts = {{.severity = "page", .state = "resolved"}};
  s.state = OverallState(s.evaluated, s.alerts);
  return s;
}

TEST(SloPageTest, RowsCarryTheirFiguresAndHooks) {
  SloOverview overview{.available = true, .slos = {FiringSlo(), QuietSlo()}};
  const std::string page = RenderSloPage(overview, PageContext{.external_url = kExternal});
  ExpectSelfContained(page);
  ExpectNoRawEvil(page);
  EXPECT_THAT(page, HasSubstr("aria-current=\"page\">Overview</a>"));
  EXPECT_THAT(page, HasSubstr("href=\"https://slo.example/prefix/alerts\""));
  EXPECT_THAT(page, HasSubstr("href=\"https://slo.example/prefix/api/v1/slos\""));
  EXPECT_THAT(page, HasSubstr("data-slos=\"2\" data-firing=\"1\""));
  EXPECT_THAT(page, HasSubstr("<tr class=\"slo\" data-service=\"" + Escape(kEvilService) +
                              "\" data-slo=\"" + Escape(kEvilSlo) + "\" data-state=\"firing\">"));
  EXPECT_THAT(page, HasSubstr("<tr class=\"slo\" data-service=\"inventory\" data-slo=\"latency\" "
                              "data-state=\"ok\">"));
  const std::string decoded = DecodeHtml(page);
  EXPECT_THAT(decoded, HasSubstr(kEvilService));
  EXPECT_THAT(decoded, HasSubstr(kEvilSlo));
  EXPECT_THAT(decoded, HasSubstr("desc " + std::string(kEvil)));
  // Objective, burn rates per window, budget, exhaustion, the firing tier.
  EXPECT_THAT(page, HasSubstr("99.900% / 30d"));
  EXPECT_THAT(page, HasSubstr("data-window=\"5m\" data-burn-rate=\"20\""));
  EXPECT_THAT(page, HasSubstr("<b>15.00\xc3\x97</b>"));
  EXPECT_THAT(page, HasSubstr("(180/12000 bad)"));
  EXPECT_THAT(page, HasSubstr("97.500%"));
  EXPECT_THAT(page, HasSubstr("value=\"0.9750\""));
  EXPECT_THAT(page, HasSubstr("<td data-label=\"Exhausted in\" class=\"num exhaustion\">2 d 3 h"));
  EXPECT_THAT(page, HasSubstr("<td data-label=\"Exhausted in\" class=\"num exhaustion\">"
                              "\xe2\x88\x9e</td>"));
  EXPECT_THAT(page, HasSubstr("since <time datetime=\"2023-11-14T22:13:20.123Z\">"));
  EXPECT_THAT(page, HasSubstr("1h/5m: 15.00\xc3\x97/20.00\xc3\x97 \xe2\x89\xa5 14.40\xc3\x97"));
}

TEST(SloPageTest, JsonMirrorsThePage) {
  SloOverview overview{.available = true, .slos = {FiringSlo(), QuietSlo()}};
  const json::value v = ParseJson(SlosJson(overview));
  const json::array& slos = v.at("slos").as_array();
  ASSERT_EQ(slos.size(), 2u);
  const json::object& a = slos[0].as_object();
  EXPECT_EQ(a.at("service").as_string(), kEvilService);
  EXPECT_EQ(a.at("slo").as_string(), kEvilSlo);
  EXPECT_EQ(a.at("state").as_string(), "firing");
  EXPECT_EQ(a.at("sli").as_string(), "errors");
  EXPECT_DOUBLE_EQ(a.at("objective").as_double(), 0.999);
  EXPECT_EQ(a.at("complianceWindow").as_string(), "30d");
  EXPECT_DOUBLE_EQ(a.at("errorBudgetRemaining").as_double(), 0.975);
  EXPECT_DOUBLE_EQ(a.at("secondsToExhaustion").to_number<double>(), 2 * 86'400 + 3 * 3'600 + 59);
  EXPECT_EQ(a.at("timeToExhaustion").as_string(), "2 d 3 h");
  const json::array& windows = a.at("windows").as_array();
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_EQ(windows[1].at("window").as_string(), "1h");
  EXPECT_EQ(windows[1].at("windowSeconds").to_number<int64_t>(), 3600);
  EXPECT_EQ(windows[1].at("total").to_number<uint64_t>(), 12000u);
  EXPECT_EQ(windows[1].at("bad").to_number<uint64_t>(), 180u);
  EXPECT_DOUBLE_EQ(windows[1].at("sli").as_double(), 0.985);
  EXPECT_DOUBLE_EQ(windows[1].at("burnRate").to_number<double>(), 15);
  const json::object& page_alert = a.at("alerts").as_array()[0].as_object();
  EXPECT_EQ(page_alert.at("severity").as_string(), "page");
  EXPECT_EQ(page_alert.at("state").as_string(), "firing");
  EXPECT_EQ(page_alert.at("activeSince").as_string(), "2023-11-14T22:13:20.123456789Z");
  EXPECT_DOUBLE_EQ(page_alert.at("thresholdBurnRate").as_double(), 14.4);
  EXPECT_TRUE(a.at("alerts").as_array()[1].at("activeSince").is_null());
  // Not burning: no exhaustion in sight is null, and "∞" for people.
  const json::object& b = slos[1].as_object();
  EXPECT_TRUE(b.at("secondsToExhaustion").is_null());
  EXPECT_EQ(b.at("timeToExhaustion").as_string(), "\xe2\x88\x9e");
  EXPECT_DOUBLE_EQ(b.at("thresholdSeconds").as_double(), 0.3);
  EXPECT_EQ(b.at("state").as_string(), "ok");
}

TEST(SloPageTest, InvalidUtf8IsReplacedInJson) {
  SloView s = QuietSlo();
  s.service = "bad\xff\xfe service";
  SloOverview overview{.available = true, .slos = {s}};
  const json::value v = ParseJson(SlosJson(overview));
  EXPECT_EQ(v.at("slos").as_array()[0].at("service").as_string(),
            "bad\xef\xbf\xbd\xef\xbf\xbd service");
}

TEST(SloPageTest, EmptyStatesSaySo) {
  const std::string none = RenderSloPage(SloOverview{.available = true}, PageContext{});
  ExpectSelfContained(none);
  EXPECT_THAT(none, HasSubstr("No SLOs loaded"));
  EXPECT_THAT(none, Not(HasSubstr("class=\"slo\"")));
  EXPECT_EQ(ParseJson(SlosJson(SloOverview{.available = true})).at("slos").as_array().size(), 0u);
  const std::string absent = RenderSloPage(SloOverview{}, PageContext{});
  ExpectSelfContained(absent);
  EXPECT_THAT(absent, HasSubstr("No SLO evaluator"));
  // Root-relative links without an external URL.
  EXPECT_THAT(absent, HasSubstr("href=\"/signatures\""));
}

TEST(SloPageTest, NotEvaluatedYetIsUnknown) {
  SloView s = FiringSlo();
  s.evaluated = false;
  s.windows.clear();
  s.alerts = {{.severity = "page", .state = "inactive"}};
  s.state = OverallState(s.evaluated, s.alerts);
  EXPECT_EQ(s.state, "unknown");
  const std::string page = RenderSloPage(SloOverview{.available = true, .slos = {s}}, {});
  EXPECT_THAT(page, HasSubstr("data-state=\"unknown\""));
  EXPECT_THAT(page, HasSubstr("not evaluated yet"));
  const json::value v = ParseJson(SlosJson(SloOverview{.available = true, .slos = {s}}));
  EXPECT_TRUE(v.at("slos").as_array()[0].at("errorBudgetRemaining").is_null());
}

TEST(SloPageTest, HumanUnits) {
  EXPECT_EQ(ExhaustionText(std::numeric_limits<double>::infinity()), "\xe2\x88\x9e");
  EXPECT_EQ(ExhaustionText(std::numeric_limits<double>::quiet_NaN()), "\xe2\x88\x9e");
  EXPECT_EQ(ExhaustionText(0), "exhausted");
  EXPECT_EQ(ExhaustionText(0.4), "1 s");
  EXPECT_EQ(ExhaustionText(45), "45 s");
  EXPECT_EQ(ExhaustionText(12 * 60 + 5), "12 min");
  EXPECT_EQ(ExhaustionText(2 * 3600 + 5 * 60), "2 h 5 min");
  EXPECT_EQ(ExhaustionText(3 * 86'400 + 4 * 3600 + 1), "3 d 4 h");
  EXPECT_EQ(ExhaustionText(1e300), "> 1000 years");
  EXPECT_EQ(WindowText(milliseconds(300'000)), "5m");
  EXPECT_EQ(WindowText(milliseconds(3'600'000)), "1h");
  EXPECT_EQ(WindowText(milliseconds(30LL * 86'400'000)), "30d");
  EXPECT_EQ(WindowText(milliseconds(90'000)), "90s");
  EXPECT_EQ(WindowText(milliseconds(1'500)), "1500ms");
}

// ---- alerts ----

constexpr char kTraceA[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kTraceB[] = "0af7651916cd43dd8448eb211c80319c";
constexpr char kSig[] = "3f2a9c0d1e2b4a5f";

alerting::RouterGroupView FiringGroup() {
  alerting::RouterGroupView g;
  g.receiver = "oncall";
  g.group_key = "{}:{service=\"" + kEvilService + "\",signature=\"" + kSig + "\"}";
  g.group_labels = {{"service", kEvilService}, {"signature", kSig}};
  g.sent = true;
  g.sequence = 3;
  g.last_sent_unix_nano = kStart + 30'000'000'000;
  alerting::RouterAlertView a;
  a.fingerprint = "00112233aabbccdd";
  a.alert.labels = {{"alertname", "SloBurnRate"},
                    {"service", kEvilService},
                    {"slo", kEvilSlo},
                    {"severity", "page"},
                    {"signature", kSig}};
  a.alert.annotations = {{"summary", "summary " + std::string(kEvil)}};
  a.alert.starts_at_unix_nano = kStart;
  a.alert.causes.push_back(alerting::Cause{.kind = alerting::Cause::Kind::kSignature,
                                           .id = kSig,
                                           .title = "Exc" + std::string(kEvil),
                                           .sample_message = "msg " + std::string(kEvil),
                                           .count = 12,
                                           .share = 0.75,
                                           .trace_ids = {kTraceA, kTraceB}});
  a.notified = true;
  g.alerts.push_back(a);
  alerting::RouterAlertView silenced = a;
  silenced.fingerprint = "ffeeddccbbaa9988";
  silenced.alert.labels["severity"] = "ticket";
  silenced.alert.causes.clear();
  silenced.silenced_by = {"silence-1"};
  silenced.notified = false;
  g.alerts.push_back(silenced);
  return g;
}

alerting::RouterGroupView AckedSilencedGroup() {
  alerting::RouterGroupView g;
  g.receiver = "oncall";
  g.group_key = "{}:{service=\"cart\",signature=\"9b1c7e2d4f6a8b0c\"}";
  g.group_labels = {{"service", "cart"}, {"signature", "9b1c7e2d4f6a8b0c"}};
  g.acked = true;
  g.acked_at_unix_nano = kStart + 60'000'000'000;
  alerting::RouterAlertView a;
  a.fingerprint = "1234567890abcdef";
  a.alert.labels = {{"alertname", "SloBurnRate"}, {"service", "cart"}, {"severity", "page"}};
  a.alert.starts_at_unix_nano = kStart;
  a.silenced_by = {"silence-2"};
  g.alerts.push_back(a);
  return g;
}

AlertsView FullView() {
  AlertsView view;
  view.groups = {FiringGroup(), AckedSilencedGroup()};
  alerting::SilenceStatus silence;
  silence.silence.id = "silence-2";
  silence.silence.matchers = {{.name = "service", .value = "cart " + std::string(kEvil)}};
  silence.silence.starts_at_unix_nano = kStart;
  silence.silence.ends_at_unix_nano = kStart + 7'200'000'000'000;
  silence.silence.created_by = "alice " + std::string(kEvil);
  silence.silence.comment = "deploy";
  silence.state = alerting::SilenceState::kActive;
  view.silences = {silence};
  view.history_available = true;
  alerting::AlertHistoryEntry newest{.id = 2,
                                     .service = kEvilService,
                                     .slo = kEvilSlo,
                                     .severity = "page",
                                     .from = "inactive",
                                     .to = "firing",
                                     .at_unix_nano = kStart + 10'000'000'000,
                                     .burn_rate_long = 15,
                                     .burn_rate_short = 20,
                                     .threshold_burn_rate = 14.4};
  newest.causes_json = alerting::CausesJson(FiringGroup().alerts[0].alert.causes);
  alerting::AlertHistoryEntry older{.id = 1,
                                    .service = "cart",
                                    .slo = "availability",
                                    .severity = "ticket",
                                    .from = "firing",
                                    .to = "resolved",
                                    .at_unix_nano = kStart};
  view.history = {AlertHistoryViewOf(newest), AlertHistoryViewOf(older)};
  return view;
}

TEST(AlertsPageTest, GroupsAlertsCausesSilencesAndHistory) {
  const AlertsView view = FullView();
  const std::string page = RenderAlertsPage(
      view, AlertsPageContext{.page = {.external_url = kExternal}, .write_token_required = true});
  ExpectSelfContained(page);
  ExpectNoRawEvil(page);
  EXPECT_THAT(page, HasSubstr("aria-current=\"page\">Alerts</a>"));
  EXPECT_THAT(page, HasSubstr("data-groups=\"2\" data-firing-groups=\"2\""));
  // The first group: firing, not acked, one of its two alerts silenced (so not silenced as a
  // group), its ack and silence command lines.
  EXPECT_THAT(page, HasSubstr("<section class=\"group\" data-group-key=\"" +
                              Escape(FiringGroup().group_key) +
                              "\" data-receiver=\"oncall\" data-signature=\"" + kSig +
                              "\" data-acked=\"false\" data-silenced=\"false\">"));
  EXPECT_THAT(page, HasSubstr("<li class=\"alert\" data-fingerprint=\"00112233aabbccdd\" "
                              "data-state=\"firing\" data-silenced=\"false\" "
                              "data-inhibited=\"false\">"));
  EXPECT_THAT(page, HasSubstr("<li class=\"alert\" data-fingerprint=\"ffeeddccbbaa9988\" "
                              "data-state=\"firing\" data-silenced=\"true\""));
  EXPECT_THAT(page, HasSubstr("<b class=\"severity\">page, ticket</b>"));
  EXPECT_THAT(page, HasSubstr("notified (#3) at <time datetime=\"2023-11-14T22:13:50.123Z\">"));
  EXPECT_THAT(page, HasSubstr("curl -X POST -H &#39;Authorization: Bearer $TRACESLO_TOKEN&#39; "
                              "https://slo.example/prefix/api/v1/alerts/00112233aabbccdd/ack"));
  EXPECT_THAT(page, HasSubstr("https://slo.example/prefix/api/v1/silences</code>"));
  // Exemplar links under the external URL.
  EXPECT_THAT(page, HasSubstr(std::string("<a class=\"trace\" href=\"") + kBase + "/traces/" +
                              kTraceA + "\">"));
  EXPECT_THAT(page, HasSubstr(std::string("<a class=\"trace\" href=\"") + kBase + "/traces/" +
                              kTraceB + "\">"));
  // The second: acknowledged and silenced as a whole, no ack line for it.
  EXPECT_THAT(page, HasSubstr("data-acked=\"true\" data-silenced=\"true\">"));
  EXPECT_THAT(page, HasSubstr("<span class=\"state acked\">acknowledged</span> at <time "
                              "datetime=\"2023-11-14T22:14:20.123Z\">"));
  EXPECT_THAT(page, HasSubstr("silenced</span> by <code class=\"silence-id\">silence-2</code>"));
  EXPECT_THAT(page, Not(HasSubstr("/api/v1/alerts/1234567890abcdef/ack")));
  // Silences and history.
  EXPECT_THAT(page, HasSubstr("<tr class=\"silence\" data-silence-id=\"silence-2\" "
                              "data-state=\"active\">"));
  EXPECT_THAT(page, HasSubstr("<tr class=\"history\" data-service=\"" + Escape(kEvilService) +
                              "\" data-slo=\"" + Escape(kEvilSlo) + "\" data-to=\"firing\">"));
  EXPECT_LT(page.find("data-to=\"firing\""), page.find("data-to=\"resolved\""));  // newest first
  const std::string decoded = DecodeHtml(page);
  for (const std::string& text :
       {kEvilService, kEvilSlo, "summary " + std::string(kEvil), "Exc" + std::string(kEvil),
        "msg " + std::string(kEvil), "alice " + std::string(kEvil), "cart " + std::string(kEvil)}) {
    EXPECT_THAT(decoded, HasSubstr(text));
  }
}

TEST(AlertsPageTest, JsonKeepsTheGroupFieldsAndAddsTheHistory) {
  const AlertsView view = FullView();
  const json::value v = ParseJson(AlertsJson(view, kExternal));
  const json::array& groups = v.at("groups").as_array();
  ASSERT_EQ(groups.size(), 2u);
  const json::object& g = groups[0].as_object();
  EXPECT_EQ(g.at("receiver").as_string(), "oncall");
  EXPECT_EQ(g.at("groupKey").as_string(), FiringGroup().group_key);
  EXPECT_EQ(g.at("labels").at("service").as_string(), kEvilService);
  EXPECT_TRUE(g.at("notified").as_bool());
  EXPECT_EQ(g.at("sequence").to_number<uint64_t>(), 3u);
  EXPECT_EQ(g.at("lastNotifiedAt").as_string(), "2023-11-14T22:13:50.123456789Z");
  EXPECT_FALSE(g.at("acknowledged").as_bool());
  EXPECT_TRUE(g.at("acknowledgedAt").is_null());
  const json::object& a = g.at("alerts").as_array()[0].as_object();
  EXPECT_EQ(a.at("fingerprint").as_string(), "00112233aabbccdd");
  EXPECT_EQ(a.at("labels").at("slo").as_string(), kEvilSlo);
  EXPECT_EQ(a.at("annotations").at("summary").as_string(), "summary " + std::string(kEvil));
  EXPECT_EQ(a.at("status").as_string(), "firing");
  EXPECT_TRUE(a.at("endsAt").is_null());
  const json::object& cause = a.at("causes").as_array()[0].as_object();
  EXPECT_EQ(cause.at("kind").as_string(), "signature");
  EXPECT_EQ(cause.at("title").as_string(), "Exc" + std::string(kEvil));
  EXPECT_EQ(cause.at("sampleMessage").as_string(), "msg " + std::string(kEvil));
  EXPECT_EQ(cause.at("traces").as_array()[1].at("url").as_string(),
            std::string(kBase) + "/traces/" + kTraceB);
  EXPECT_EQ(g.at("alerts").as_array()[1].at("silencedBy").as_array()[0].as_string(), "silence-1");
  EXPECT_TRUE(groups[1].at("acknowledged").as_bool());

  EXPECT_TRUE(v.at("recentAvailable").as_bool());
  const json::array& recent = v.at("recent").as_array();
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0].at("id").to_number<int64_t>(), 2);
  EXPECT_EQ(recent[0].at("service").as_string(), kEvilService);
  EXPECT_EQ(recent[0].at("to").as_string(), "firing");
  EXPECT_EQ(recent[0].at("at").as_string(), "2023-11-14T22:13:30.123456789Z");
  EXPECT_DOUBLE_EQ(recent[0].at("thresholdBurnRate").as_double(), 14.4);
  ASSERT_EQ(recent[0].at("causes").as_array().size(), 1u);
  EXPECT_EQ(recent[0].at("causes").as_array()[0].at("count").to_number<uint64_t>(), 12u);
  EXPECT_EQ(recent[0].at("causes").as_array()[0].at("traces").as_array().size(), 2u);
  EXPECT_EQ(recent[1].at("from").as_string(), "firing");
}

TEST(AlertsPageTest, EmptyAndUnavailableStates) {
  AlertsView view;
  const std::string page = RenderAlertsPage(view, AlertsPageContext{});
  ExpectSelfContained(page);
  EXPECT_THAT(page, HasSubstr("No alerts firing."));
  EXPECT_THAT(page, HasSubstr("No silences."));
  EXPECT_THAT(page, HasSubstr("No alert history is wired into this server."));
  // Without a token the curl lines carry no header.
  EXPECT_THAT(page, Not(HasSubstr("Authorization")));
  json::value v = ParseJson(AlertsJson(view, ""));
  EXPECT_EQ(v.at("groups").as_array().size(), 0u);
  EXPECT_FALSE(v.at("recentAvailable").as_bool());

  view.history_available = true;
  EXPECT_THAT(RenderAlertsPage(view, {}), HasSubstr("No alert has changed state yet."));
  view.history_error = "disk <full>";
  const std::string failed = RenderAlertsPage(view, {});
  EXPECT_THAT(failed, HasSubstr("could not be read: disk &lt;full&gt;"));
  v = ParseJson(AlertsJson(view, ""));
  EXPECT_FALSE(v.at("recentAvailable").as_bool());
  EXPECT_EQ(v.at("recentError").as_string(), "disk <full>");
}

TEST(AlertsPageTest, HistoryIsCapped) {
  AlertsView view;
  view.history_available = true;
  for (int i = 0; i < 150; ++i) {
    view.history.push_back(AlertHistoryView{.id = 150 - i, .service = "s", .slo = "x"});
  }
  const std::string page = RenderAlertsPage(view, {});
  size_t rows = 0;
  for (size_t at = page.find("<tr class=\"history\""); at != std::string::npos;
       at = page.find("<tr class=\"history\"", at + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, kMaxRecentAlerts);
  EXPECT_EQ(ParseJson(AlertsJson(view, "")).at("recent").as_array().size(), kMaxRecentAlerts);
}

TEST(AlertsPageTest, HistoryCausesThatDoNotDecodeAreLeftOut) {
  alerting::AlertHistoryEntry entry{.service = "s", .slo = "x"};
  entry.causes_json = "{not json";
  EXPECT_TRUE(AlertHistoryViewOf(entry).causes.empty());
  entry.causes_json = R"([1, {"kind":"slow_operation","id":"GET /","count":-3,"traceIds":[7]}])";
  const AlertHistoryView v = AlertHistoryViewOf(entry);
  ASSERT_EQ(v.causes.size(), 1u);
  EXPECT_EQ(v.causes[0].kind, alerting::Cause::Kind::kSlowOperation);
  EXPECT_EQ(v.causes[0].id, "GET /");
  EXPECT_EQ(v.causes[0].count, 0u);
  EXPECT_TRUE(v.causes[0].trace_ids.empty());
}

// ---- signatures ----

TEST(SignaturesPageTest, RowsFromTheStoreWithLinksAndEscaping) {
  pipeline::SeriesRegistry registry(10, 10);
  const auto ids = registry.Resolve(kEvilService, "POST /pay " + std::string(kEvil));
  pipeline::SignatureInfo info;
  info.id = 0x3f2a9c0d1e2b4a5fULL;
  info.series = ids.series;
  info.count = 42;
  info.first_seen_unix_nano = kStart;
  info.last_seen_unix_nano = kStart + 3'600'000'000'000;
  info.http_status = 502;
  info.exception_type = "Exc" + std::string(kEvil);
  info.normalized_message = "card <n> declined";
  info.sample_message = "card 42 declined \xff " + std::string(kEvil);
  info.top_frame = "pay.go:12";
  for (int i = 1; i <= 5; ++i) {
    TraceId t{};
    t[15] = static_cast<uint8_t>(i);
    info.trace_ids.push_back(t);  // latest last
  }
  pipeline::SignatureInfo unknown;
  unknown.id = 0x11;
  unknown.series = 999;  // not in the registry
  unknown.count = 1;
  const SignaturesView view = SignaturesViewOf({info, unknown}, registry);
  ASSERT_EQ(view.signatures.size(), 2u);
  EXPECT_EQ(view.total, 2u);
  EXPECT_EQ(view.signatures[0].trace_ids.front(), "00000000000000000000000000000005");
  EXPECT_EQ(view.signatures[1].service, "unknown");

  const std::string page = RenderSignaturesPage(view, PageContext{.external_url = kExternal});
  ExpectSelfContained(page);
  ExpectNoRawEvil(page);
  EXPECT_THAT(page, HasSubstr("aria-current=\"page\">Signatures</a>"));
  EXPECT_THAT(page, HasSubstr("<tr class=\"signature\" data-signature=\"3f2a9c0d1e2b4a5f\" "
                              "data-service=\"" +
                              Escape(kEvilService) + "\" data-count=\"42\">"));
  EXPECT_THAT(page, HasSubstr("data-signature=\"0000000000000011\""));
  EXPECT_THAT(page, HasSubstr("<td data-label=\"Count\" class=\"num count\">42</td>"));
  EXPECT_THAT(page, HasSubstr("HTTP 502"));
  EXPECT_THAT(page, HasSubstr("<time datetime=\"2023-11-14T22:13:20.123Z\">"));
  EXPECT_THAT(page, HasSubstr("<time datetime=\"2023-11-14T23:13:20.123Z\">"));
  for (int i = 1; i <= 5; ++i) {
    EXPECT_THAT(page,
                HasSubstr(std::string("<a class=\"trace\" href=\"") + kBase +
                          "/traces/0000000000000000000000000000000" + std::to_string(i) + "\">"));
  }
  const std::string decoded = DecodeHtml(page);
  EXPECT_THAT(decoded, HasSubstr(kEvilService));
  EXPECT_THAT(decoded, HasSubstr("POST /pay " + std::string(kEvil)));
  EXPECT_THAT(decoded, HasSubstr("Exc" + std::string(kEvil)));
  EXPECT_THAT(decoded, HasSubstr("card 42 declined \xef\xbf\xbd " + std::string(kEvil)));

  const json::value v = ParseJson(SignaturesJson(view, kExternal));
  EXPECT_EQ(v.at("total").to_number<uint64_t>(), 2u);
  const json::object& s = v.at("signatures").as_array()[0].as_object();
  EXPECT_EQ(s.at("id").as_string(), "3f2a9c0d1e2b4a5f");
  EXPECT_EQ(s.at("service").as_string(), kEvilService);
  EXPECT_EQ(s.at("operation").as_string(), "POST /pay " + std::string(kEvil));
  EXPECT_EQ(s.at("exceptionType").as_string(), "Exc" + std::string(kEvil));
  EXPECT_EQ(s.at("sampleMessage").as_string(),
            "card 42 declined \xef\xbf\xbd " + std::string(kEvil));
  EXPECT_EQ(s.at("normalizedMessage").as_string(), "card <n> declined");
  EXPECT_EQ(s.at("count").to_number<uint64_t>(), 42u);
  EXPECT_EQ(s.at("httpStatus").to_number<int>(), 502);
  EXPECT_TRUE(s.at("rpcStatus").is_null());
  EXPECT_EQ(s.at("firstSeen").as_string(), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(s.at("lastSeen").as_string(), "2023-11-14T23:13:20.123456789Z");
  ASSERT_EQ(s.at("traces").as_array().size(), 5u);
  EXPECT_EQ(s.at("traces").as_array()[0].at("url").as_string(),
            std::string(kBase) + "/traces/00000000000000000000000000000005");
}

TEST(SignaturesPageTest, EmptyState) {
  const std::string page = RenderSignaturesPage(SignaturesView{}, PageContext{});
  ExpectSelfContained(page);
  EXPECT_THAT(page, HasSubstr("No error signatures yet"));
  const json::value v = ParseJson(SignaturesJson(SignaturesView{}, ""));
  EXPECT_EQ(v.at("signatures").as_array().size(), 0u);
}

TEST(SignaturesPageTest, ListIsCapped) {
  pipeline::SeriesRegistry registry(10, 10);
  std::vector<pipeline::SignatureInfo> many(kMaxListedSignatures + 5);
  for (size_t i = 0; i < many.size(); ++i) many[i].id = i + 1;
  const SignaturesView view = SignaturesViewOf(many, registry);
  EXPECT_EQ(view.signatures.size(), kMaxListedSignatures);
  EXPECT_EQ(view.total, kMaxListedSignatures + 5);
  EXPECT_THAT(RenderSignaturesPage(view, {}), HasSubstr("the 1000 most frequent shown"));
}

}  // namespace
}  // namespace traceslo::web
