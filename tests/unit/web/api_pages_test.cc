// The pages and their JSON through the ApiHandler over real parts: an Evaluator reading a real
// SliStore, an AlertRouter with in-memory stores, an alert history function, and a fake clock.
// Routes, methods, the CSP header, sources that are absent, and the request counter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "services/web/html.h"
#include "tests/fakes/fake_clock.h"
#include "tests/unit/alerting/router_test_util.h"
#include "tests/unit/web/page_test_util.h"
#include "traceslo/alerting/alert_history.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule.h"
#include "traceslo/web/api.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;
using alerting::testing_util::MemorySilenceStore;
using alerting::testing_util::MemoryStateStore;
using alerting::testing_util::RecordingSink;
using page_test::DecodeHtml;
using page_test::ExpectNoRawEvil;
using page_test::ExpectSelfContained;
using page_test::kEvil;
using page_test::ParseJson;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

constexpr char kExternalUrl[] = "http://traceslo.example";
constexpr char kTraceHex[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSig[] = "3f2a9c0d1e2b4a5f";
constexpr uint64_t kSigId = 0x3f2a9c0d1e2b4a5fULL;
const std::string kEvilService = "checkout " + std::string(kEvil);
const std::string kEvilSlo = "availability " + std::string(kEvil);
const std::string kEvilMessage = "card declined: " + std::string(kEvil);
const std::string kEvilType = "PaymentError" + std::string(kEvil);

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [n, value] : response.headers) {
    if (n == name) return value;
  }
  return std::nullopt;
}

class ApiPagesTest : public ::testing::Test {
 protected:
  ApiPagesTest()
      : registry_(100, 100),
        store_(pipeline::SliStoreOptions{}),
        source_(registry_, store_),
        evaluator_(slo::EvaluatorOptions{}, source_) {
    absl::StatusOr<std::unique_ptr<alerting::AlertRouter>> router = alerting::AlertRouter::Create(
        alerting::RouterOptions{.external_url = kExternalUrl}, sink_, state_store_, silence_store_);
    EXPECT_TRUE(router.ok()) << router.status();
    router_ = std::move(router).value();
    ids_ = registry_.Resolve(kEvilService, "POST /pay");
    slo::Slo slo;
    slo.service = kEvilService;
    slo.name = kEvilSlo;
    slo.objective_percent = 99;
    slo.sli.kind = slo::SliKind::kErrors;
    slo.alerting.tiers = slo::DefaultTiers(slo::Severity::kPage, slo.window);
    evaluator_.SetRules({slo});
    MakeHandler(true, true);
  }

  void MakeHandler(bool with_evaluator, bool with_history) {
    ApiSources sources{.clock = clock_,
                       .series = registry_,
                       .store = store_,
                       .pinned_trace = {},
                       .router = *router_,
                       .evaluator = with_evaluator ? &evaluator_ : nullptr};
    if (with_history) {
      sources.recent_alerts =
          [this](size_t limit) -> absl::StatusOr<std::vector<alerting::AlertHistoryEntry>> {
        last_limit_ = limit;
        if (!history_error_.ok()) return history_error_;
        return history_;
      };
    }
    handler_ = std::make_unique<ApiHandler>(
        ApiOptions{.api_token = "", .external_url = kExternalUrl}, std::move(sources));
  }

  int64_t Now() const { return UnixNanos(clock_.Now()); }

  http::Response Call(std::string method, std::string target) {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    std::optional<http::Response> response = handler_->Handle(request);
    EXPECT_TRUE(response.has_value()) << request.method << " " << request.target;
    return response.value_or(http::Response{.status = -1});
  }

  // 100 requests, 50 of them errors, in the bucket before now; then one evaluation.
  void BurnAndEvaluate() {
    pipeline::ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids_.series;
    d.service = ids_.service;
    d.bucket = pipeline::BucketOfUnixNanos(Now()) - 1;
    d.requests = 100;
    d.errors = 50;
    d.latency.Add(1'000'000, 100);
    store_.Apply(std::move(delta));
    evaluator_.Evaluate(clock_.Now());
  }

  void KeepSignature() {
    pipeline::ShardDelta delta;
    delta.signatures.push_back(
        pipeline::SignatureDelta{.id = kSigId,
                                 .series = ids_.series,
                                 .count = 7,
                                 .first_seen_unix_nano = Now() - 60'000'000'000,
                                 .last_seen_unix_nano = Now(),
                                 .exception_type = kEvilType,
                                 .normalized_message = "card declined",
                                 .sample_message = kEvilMessage,
                                 .trace_ids = {*ParseTraceIdHex(kTraceHex)}});
    store_.Apply(std::move(delta));
  }

  alerting::Alert FiringAlert() {
    alerting::Alert alert;
    alert.labels = {{"alertname", "SloBurnRate"},
                    {"service", kEvilService},
                    {"slo", kEvilSlo},
                    {"severity", "page"},
                    {"signature", kSig}};
    alert.causes.push_back(alerting::Cause{.kind = alerting::Cause::Kind::kSignature,
                                           .id = kSig,
                                           .title = kEvilType,
                                           .sample_message = kEvilMessage,
                                           .count = 50,
                                           .share = 1,
                                           .trace_ids = {kTraceHex}});
    return alert;
  }

  fakes::FakeClock clock_;
  pipeline::SeriesRegistry registry_;
  pipeline::SliStore store_;
  slo::StoreSliSource source_;
  slo::Evaluator evaluator_;
  pipeline::SeriesRegistry::Ids ids_;
  RecordingSink sink_;
  MemoryStateStore state_store_;
  MemorySilenceStore silence_store_;
  std::unique_ptr<alerting::AlertRouter> router_;
  std::vector<alerting::AlertHistoryEntry> history_;
  absl::Status history_error_;
  size_t last_limit_ = 0;
  std::unique_ptr<ApiHandler> handler_;
};

TEST_F(ApiPagesTest, OverviewShowsTheEvaluatorsFigures) {
  BurnAndEvaluate();
  const http::Response r = Call("GET", "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kPageContentType);
  EXPECT_THAT(HeaderOf(r, "Content-Security-Policy"),
              Optional(std::string(kPageContentSecurityPolicy)));
  ExpectSelfContained(r.body);
  ExpectNoRawEvil(r.body);
  EXPECT_THAT(r.body, HasSubstr("<tr class=\"slo\" data-service=\"" + Escape(kEvilService) +
                                "\" data-slo=\"" + Escape(kEvilSlo) + "\" data-state=\"firing\">"));
  // 50 of 100 bad against a 1 % budget: burn rate 50 in every window, the budget overspent.
  EXPECT_THAT(r.body, HasSubstr("data-window=\"5m\" data-burn-rate=\"50\""));
  EXPECT_THAT(r.body, HasSubstr("(50/100 bad)"));
  EXPECT_THAT(r.body, HasSubstr("99.000% / 30d"));
  EXPECT_THAT(r.body, HasSubstr("exhausted"));
  const std::string decoded = DecodeHtml(r.body);
  EXPECT_THAT(decoded, HasSubstr(kEvilService));
  EXPECT_THAT(decoded, HasSubstr(kEvilSlo));

  const http::Response api = Call("GET", "/api/v1/slos");
  ASSERT_EQ(api.status, 200);
  EXPECT_EQ(api.content_type, "application/json");
  const json::value v = ParseJson(api.body);
  const json::array& slos = v.at("slos").as_array();
  ASSERT_EQ(slos.size(), 1u);
  EXPECT_EQ(slos[0].at("service").as_string(), kEvilService);
  EXPECT_EQ(slos[0].at("slo").as_string(), kEvilSlo);
  EXPECT_EQ(slos[0].at("state").as_string(), "firing");
  EXPECT_DOUBLE_EQ(slos[0].at("objective").as_double(), 0.99);
  EXPECT_NEAR(slos[0].at("errorBudgetRemaining").as_double(), 1 - 50, 1e-9);
  EXPECT_EQ(slos[0].at("secondsToExhaustion").to_number<double>(), 0);
  const json::array& windows = slos[0].at("windows").as_array();
  ASSERT_EQ(windows.size(), 5u);  // 5m, 30m, 1h, 6h, then the 30d compliance window
  EXPECT_EQ(windows[0].at("window").as_string(), "5m");
  EXPECT_EQ(windows[4].at("window").as_string(), "30d");
  for (const json::value& w : windows) {
    EXPECT_EQ(w.at("total").to_number<uint64_t>(), 100u);
    EXPECT_EQ(w.at("bad").to_number<uint64_t>(), 50u);
    EXPECT_DOUBLE_EQ(w.at("sli").as_double(), 0.5);
    EXPECT_NEAR(w.at("burnRate").to_number<double>(), 50, 1e-9);
  }
  EXPECT_EQ(slos[0].at("alerts").as_array()[0].at("state").as_string(), "firing");
}

TEST_F(ApiPagesTest, BeforeTheFirstEvaluationTheSloIsListedAsUnknown) {
  const http::Response r = Call("GET", "/");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("data-state=\"unknown\""));
  EXPECT_THAT(r.body, HasSubstr("99.000% / 30d"));  // from the rule, before any figures
  const json::value v = ParseJson(Call("GET", "/api/v1/slos").body);
  EXPECT_EQ(v.at("slos").as_array()[0].at("state").as_string(), "unknown");
  EXPECT_FALSE(v.at("slos").as_array()[0].at("evaluated").as_bool());
}

TEST_F(ApiPagesTest, NoSlosAndNoEvaluator) {
  evaluator_.SetRules({});
  EXPECT_THAT(Call("GET", "/").body, HasSubstr("No SLOs loaded"));
  MakeHandler(false, false);
  const http::Response page = Call("GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("No SLO evaluator"));
  const http::Response api = Call("GET", "/api/v1/slos");
  EXPECT_EQ(api.status, 503);
  EXPECT_THAT(std::string(ParseJson(api.body).at("error").as_string()), HasSubstr("evaluator"));
  const http::Response alerts = Call("GET", "/alerts");
  EXPECT_EQ(alerts.status, 200);
  EXPECT_THAT(alerts.body, HasSubstr("No alerts firing."));
  EXPECT_THAT(alerts.body, HasSubstr("No alert history is wired into this server."));
  EXPECT_FALSE(ParseJson(Call("GET", "/api/v1/alerts").body).at("recentAvailable").as_bool());
}

TEST_F(ApiPagesTest, AlertsPageShowsGroupsAckSilencesAndHistory) {
  router_->Upsert(FiringAlert(), Now());
  clock_.Advance(seconds(30));
  ASSERT_TRUE(router_->Tick(Now()).ok());
  const std::string fingerprint = alerting::Fingerprint(FiringAlert().labels);
  ASSERT_EQ(Call("POST", "/api/v1/alerts/" + fingerprint + "/ack").status, 200);
  history_.push_back(
      alerting::AlertHistoryEntry{.id = 1,
                                  .service = kEvilService,
                                  .slo = kEvilSlo,
                                  .severity = "page",
                                  .from = "inactive",
                                  .to = "firing",
                                  .at_unix_nano = Now() - 30'000'000'000,
                                  .burn_rate_long = 50,
                                  .burn_rate_short = 50,
                                  .threshold_burn_rate = 14.4,
                                  .causes_json = alerting::CausesJson(FiringAlert().causes)});

  const http::Response r = Call("GET", "/alerts");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(HeaderOf(r, "Content-Security-Policy"),
              Optional(std::string(kPageContentSecurityPolicy)));
  ExpectSelfContained(r.body);
  ExpectNoRawEvil(r.body);
  EXPECT_EQ(last_limit_, 100u);
  EXPECT_THAT(r.body, HasSubstr("data-signature=\"" + std::string(kSig) +
                                "\" data-acked=\"true\" data-silenced=\"false\">"));
  EXPECT_THAT(r.body, HasSubstr("<li class=\"alert\" data-fingerprint=\"" + fingerprint +
                                "\" data-state=\"firing\""));
  EXPECT_THAT(r.body, HasSubstr(std::string("<a class=\"trace\" href=\"") + kExternalUrl +
                                "/traces/" + kTraceHex + "\">"));
  EXPECT_THAT(r.body, HasSubstr("<tr class=\"history\""));
  const std::string decoded = DecodeHtml(r.body);
  EXPECT_THAT(decoded, HasSubstr(kEvilType));
  EXPECT_THAT(decoded, HasSubstr(kEvilMessage));

  const json::value v = ParseJson(Call("GET", "/api/v1/alerts").body);
  ASSERT_EQ(v.at("groups").as_array().size(), 1u);
  EXPECT_TRUE(v.at("groups").as_array()[0].at("acknowledged").as_bool());
  EXPECT_TRUE(v.at("recentAvailable").as_bool());
  ASSERT_EQ(v.at("recent").as_array().size(), 1u);
  EXPECT_EQ(v.at("recent").as_array()[0].at("slo").as_string(), kEvilSlo);
  EXPECT_EQ(v.at("recent").as_array()[0].at("causes").as_array()[0].at("title").as_string(),
            kEvilType);
}

TEST_F(ApiPagesTest, SilencedGroupNamesItsSilence) {
  router_->Upsert(FiringAlert(), Now());
  alerting::Silence silence;
  silence.matchers = {{.name = "signature", .value = kSig}};
  silence.starts_at_unix_nano = Now();
  silence.ends_at_unix_nano = Now() + 3'600'000'000'000;
  silence.created_by = "alice";
  absl::StatusOr<alerting::Silence> saved = router_->AddSilence(silence, Now());
  ASSERT_TRUE(saved.ok()) << saved.status();
  const http::Response r = Call("GET", "/alerts");
  EXPECT_THAT(r.body, HasSubstr("data-acked=\"false\" data-silenced=\"true\">"));
  EXPECT_THAT(r.body, HasSubstr("<code class=\"silence-id\">" + saved->id + "</code>"));
  EXPECT_THAT(r.body, HasSubstr("<tr class=\"silence\" data-silence-id=\"" + saved->id +
                                "\" data-state=\"active\">"));
}

TEST_F(ApiPagesTest, HistoryErrorIsShownNotFailed) {
  history_error_ = absl::UnavailableError("traceslo.db: disk I/O error");
  const http::Response r = Call("GET", "/alerts");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("could not be read: traceslo.db: disk I/O error"));
  const http::Response api = Call("GET", "/api/v1/alerts");
  EXPECT_EQ(api.status, 200);
  EXPECT_EQ(ParseJson(api.body).at("recentError").as_string(), "traceslo.db: disk I/O error");
}

TEST_F(ApiPagesTest, SignaturesFromTheStore) {
  EXPECT_THAT(Call("GET", "/signatures").body, HasSubstr("No error signatures yet"));
  KeepSignature();
  const http::Response r = Call("GET", "/signatures");
  ASSERT_EQ(r.status, 200);
  ExpectSelfContained(r.body);
  ExpectNoRawEvil(r.body);
  EXPECT_THAT(r.body,
              HasSubstr("<tr class=\"signature\" data-signature=\"" + std::string(kSig) +
                        "\" data-service=\"" + Escape(kEvilService) + "\" data-count=\"7\">"));
  EXPECT_THAT(r.body, HasSubstr(std::string("href=\"") + kExternalUrl + "/traces/" + kTraceHex));
  const std::string decoded = DecodeHtml(r.body);
  EXPECT_THAT(decoded, HasSubstr(kEvilType));
  EXPECT_THAT(decoded, HasSubstr(kEvilMessage));

  const http::Response api = Call("GET", "/api/v1/signatures");
  ASSERT_EQ(api.status, 200);
  const json::value v = ParseJson(api.body);
  ASSERT_EQ(v.at("signatures").as_array().size(), 1u);
  const json::value& s = v.at("signatures").as_array()[0];
  EXPECT_EQ(s.at("id").as_string(), kSig);
  EXPECT_EQ(s.at("service").as_string(), kEvilService);
  EXPECT_EQ(s.at("operation").as_string(), "POST /pay");
  EXPECT_EQ(s.at("exceptionType").as_string(), kEvilType);
  EXPECT_EQ(s.at("sampleMessage").as_string(), kEvilMessage);
  EXPECT_EQ(s.at("count").to_number<uint64_t>(), 7u);
  EXPECT_EQ(s.at("traces").as_array()[0].at("traceId").as_string(), kTraceHex);
}

TEST_F(ApiPagesTest, PagesTakeOnlyGetAndHead) {
  for (const char* path : {"/", "/alerts", "/signatures", "/api/v1/slos", "/api/v1/signatures"}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(Call("GET", path).status, 200);
    EXPECT_EQ(Call("HEAD", path).status, 200);
    for (const char* method : {"POST", "PUT", "DELETE", "PATCH"}) {
      const http::Response r = Call(method, path);
      EXPECT_EQ(r.status, 405) << method;
      EXPECT_EQ(HeaderOf(r, "Allow"), "GET, HEAD") << method;
    }
  }
  // A query string does not change the page.
  EXPECT_EQ(Call("GET", "/alerts?refresh=1").status, 200);
}

TEST_F(ApiPagesTest, PageAnswersAreCounted) {
  Call("GET", "/");
  Call("GET", "/");
  Call("POST", "/alerts");
  Call("GET", "/signatures");
  Call("GET", "/api/v1/slos");
  Call("GET", "/api/v1/signatures");
  std::map<std::pair<std::string, std::string>, double> got;
  for (const prometheus::MetricFamily& f : handler_->Collect()) {
    for (const prometheus::ClientMetric& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (m.counter.value > 0) got[{labels["endpoint"], labels["code"]}] = m.counter.value;
    }
  }
  const std::map<std::pair<std::string, std::string>, double> expected = {
      {{"overview_page", "200"}, 2},
      {{"alerts_page", "405"}, 1},
      {{"signatures_page", "200"}, 1},
      {{"slos", "200"}, 1},
      {{"signatures", "200"}, 1}};
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace traceslo::web
