// The web API (ApiHandler) over a real SliStore, SeriesRegistry and AlertRouter, with the
// router's in-memory sink and stores and a fake clock: the trace page and its JSON (escaping of
// untrusted names), alert groups and acknowledgements, silences and their validation, the bearer
// token of the write endpoints, and which paths the handler answers at all.
#include "traceslo/web/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/alerting/router_test_util.h"
#include "tests/unit/web/page_test_util.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/span.h"
#include "traceslo/common/time_format.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/storage/exemplar_store.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;
using alerting::testing_util::MemorySilenceStore;
using alerting::testing_util::MemoryStateStore;
using alerting::testing_util::RecordingSink;
using page_test::DecodeHtml;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// Names an OTLP producer chose: everything HTML and JSON must not take literally.
constexpr std::string_view kEvil = "<script>alert(1)</script>\"quoted\" 'single' & more";
const std::string kEvilService = "checkout " + std::string(kEvil);
const std::string kEvilOperation = "POST /pay " + std::string(kEvil);
const std::string kEvilExceptionType = "PaymentError" + std::string(kEvil);
const std::string kEvilMessage = "card declined: " + std::string(kEvil);
constexpr char kEvilPlain[] = "<script>alert(1)</script>";

constexpr char kTraceHex[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kPinnedHex[] = "0af7651916cd43dd8448eb211c80319c";
constexpr char kUnknownHex[] = "11111111111111111111111111111111";
constexpr uint64_t kSignatureId = 0x3f2a9c0d1e2b4a5fULL;
constexpr char kSigA[] = "3f2a9c0d1e2b4a5f";
constexpr char kSigB[] = "9b1c7e2d4f6a8b0c";
constexpr char kExternalUrl[] = "http://traceslo.example";
constexpr char kToken[] = "s3cret-token";

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

TraceId MustParse(std::string_view hex) {
  std::optional<TraceId> id = ParseTraceIdHex(hex);
  EXPECT_TRUE(id.has_value()) << hex;
  return id.value_or(TraceId{});
}

// The value of a response header, or nullopt.
std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [n, value] : response.headers) {
    if (n == name) return value;
  }
  return std::nullopt;
}

// The times of the fake clock's start, 1'700'000'000 s, as RFC 3339 (written out by hand).
constexpr char kStartRfc3339[] = "2023-11-14T22:13:20Z";
constexpr int64_t kStartNanos = 1'700'000'000'000'000'000;
constexpr int64_t kHourNanos = 3'600'000'000'000;

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : registry_(100, 100), store_(pipeline::SliStoreOptions{}) {
    router_options_.group_wait = seconds(30);
    router_options_.group_interval = minutes(5);
    router_options_.repeat_interval = hours(4);
    router_options_.external_url = kExternalUrl;
    absl::StatusOr<std::unique_ptr<alerting::AlertRouter>> router =
        alerting::AlertRouter::Create(router_options_, sink_, state_store_, silence_store_);
    EXPECT_TRUE(router.ok()) << router.status();
    router_ = std::move(router).value();
    MakeHandler("");
  }

  void MakeHandler(std::string api_token) {
    handler_ = std::make_unique<ApiHandler>(
        ApiOptions{.api_token = std::move(api_token),
                   .external_url = kExternalUrl,
                   .trace_url = "",
                   .exemplar_retention = minutes(15)},
        ApiSources{.clock = clock_,
                   .series = registry_,
                   .store = store_,
                   .pinned_trace = [this](const TraceId& id) -> pipeline::ExemplarRef {
                     return pinned_ != nullptr && pinned_->trace_id == id ? pinned_ : nullptr;
                   },
                   .router = *router_,
                   .kept_trace = [this](const TraceId& id)
                       -> absl::StatusOr<std::optional<storage::KeptTrace>> {
                     if (!kept_status_.ok()) return kept_status_;
                     if (kept_ && kept_->trace_id == id) return kept_;
                     return std::nullopt;
                   }});
  }

  int64_t Now() const { return UnixNanos(clock_.Now()); }

  std::optional<http::Response> Handle(
      std::string method, std::string target, std::string body = "",
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    request.headers = std::move(headers);
    return handler_->Handle(request);
  }
  // A request the handler must answer.
  http::Response Call(std::string method, std::string target, std::string body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::optional<http::Response> response =
        Handle(method, target, std::move(body), std::move(headers));
    EXPECT_TRUE(response.has_value()) << method << " " << target;
    return response.value_or(http::Response{.status = -1});
  }

  // The body of a JSON response, parsed.
  static json::value JsonOf(const http::Response& response) {
    EXPECT_EQ(response.content_type, "application/json") << response.body;
    boost::system::error_code ec;
    json::value v = json::parse(response.body, ec);
    EXPECT_FALSE(ec) << ec.message() << ": " << response.body;
    return v;
  }
  // The "error" of an error response (and that it is the only member).
  static std::string ErrorOf(const http::Response& response) {
    json::value v = JsonOf(response);
    if (!v.is_object() || !v.as_object().contains("error") ||
        !v.as_object().at("error").is_string()) {
      ADD_FAILURE() << "not {\"error\": ...}: " << response.body;
      return "";
    }
    EXPECT_EQ(v.as_object().size(), 1u) << response.body;
    return std::string(v.as_object().at("error").as_string());
  }

  // Puts into the store, as a shard would publish it, a trace of a root span of
  // "frontend" / "GET /checkout" and an error child span of kEvilService / kEvilOperation whose
  // signature says kEvilExceptionType / kEvilMessage.
  void KeepTrace() {
    const pipeline::SeriesRegistry::Ids root = registry_.Resolve("frontend", "GET /checkout");
    const pipeline::SeriesRegistry::Ids child = registry_.Resolve(kEvilService, kEvilOperation);
    auto trace = std::make_shared<pipeline::ExemplarTrace>();
    trace->trace_id = MustParse(kTraceHex);
    trace->start_unix_nano = Now() - 2'000'000'000;
    trace->duration_nanos = 40'000'000;
    trace->spans.push_back(pipeline::ExemplarSpan{.span_id = 0x1111,
                                                  .duration_nanos = 40'000'000,
                                                  .series = root.series,
                                                  .kind = SpanKind::kServer});
    trace->spans.push_back(pipeline::ExemplarSpan{.span_id = 0x2222,
                                                  .parent_span_id = 0x1111,
                                                  .start_offset_nanos = 5'000'000,
                                                  .duration_nanos = 30'000'000,
                                                  .signature = kSignatureId,
                                                  .series = child.series,
                                                  .kind = SpanKind::kServer,
                                                  .error = true});
    const int64_t bucket = pipeline::BucketOfUnixNanos(Now());
    pipeline::ShardDelta delta;
    delta.exemplars.push_back(pipeline::ExemplarDelta{.series = child.series,
                                                      .bucket = bucket,
                                                      .signature = kSignatureId,
                                                      .duration_nanos = 30'000'000,
                                                      .end_unix_nano = Now() - 1'965'000'000,
                                                      .trace = trace});
    delta.signatures.push_back(pipeline::SignatureDelta{.id = kSignatureId,
                                                        .series = child.series,
                                                        .count = 1,
                                                        .first_seen_unix_nano = Now(),
                                                        .last_seen_unix_nano = Now(),
                                                        .exception_type = kEvilExceptionType,
                                                        .normalized_message = "card declined",
                                                        .sample_message = kEvilMessage,
                                                        .top_frame = "pay.go:12",
                                                        .trace_ids = {trace->trace_id}});
    store_.Apply(std::move(delta));
  }

  fakes::FakeClock clock_;
  pipeline::SeriesRegistry registry_;
  pipeline::SliStore store_;
  pipeline::ExemplarRef pinned_;
  std::optional<storage::KeptTrace> kept_;  // what the SQLite exemplar store would answer
  absl::Status kept_status_;
  alerting::RouterOptions router_options_;
  RecordingSink sink_;
  MemoryStateStore state_store_;
  MemorySilenceStore silence_store_;
  std::unique_ptr<alerting::AlertRouter> router_;
  std::unique_ptr<ApiHandler> handler_;
};

// ---- traces ----

TEST_F(ApiTest, KeptTraceIsAPageWithItsSpansAndTheContentSecurityPolicy) {
  KeepTrace();
  const http::Response r = Call("GET", std::string("/traces/") + kTraceHex);
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("text/html"));
  EXPECT_THAT(HeaderOf(r, "Content-Security-Policy"),
              ::testing::Optional(HasSubstr("default-src 'none'")));
  EXPECT_THAT(r.body, HasSubstr(kTraceHex));
  EXPECT_THAT(r.body, HasSubstr("GET /checkout"));
  EXPECT_THAT(r.body, HasSubstr("frontend"));
  // An upper-case id names the same trace.
  std::string upper = kTraceHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(Call("GET", "/traces/" + upper).status, 200);
  // A query string is not part of the id.
  EXPECT_EQ(Call("GET", std::string("/traces/") + kTraceHex + "?x=1").status, 200);
}

TEST_F(ApiTest, UntrustedNamesAreEscapedInThePage) {
  KeepTrace();
  const http::Response r = Call("GET", std::string("/traces/") + kTraceHex);
  ASSERT_EQ(r.status, 200);
  // The page runs no scripts at all, so no "<script" can be markup; nor may any raw quote of
  // the untrusted strings survive (it could end an attribute).
  EXPECT_THAT(r.body, Not(HasSubstr("<script")));
  EXPECT_THAT(r.body, Not(HasSubstr(kEvilPlain)));
  EXPECT_THAT(r.body, Not(HasSubstr("\"quoted\"")));
  EXPECT_THAT(r.body, Not(HasSubstr("'single'")));
  EXPECT_THAT(r.body, Not(HasSubstr(" & more")));
  const std::string decoded = DecodeHtml(r.body);
  EXPECT_THAT(decoded, HasSubstr(kEvilService));
  EXPECT_THAT(decoded, HasSubstr(kEvilOperation));
  EXPECT_THAT(decoded, HasSubstr(kEvilExceptionType));
  EXPECT_THAT(decoded, HasSubstr(kEvilMessage));
}

TEST_F(ApiTest, TraceJsonCarriesTheOriginalStrings) {
  KeepTrace();
  const http::Response r = Call("GET", std::string("/api/v1/traces/") + kTraceHex);
  ASSERT_EQ(r.status, 200);
  const json::value v = JsonOf(r);
  ASSERT_TRUE(v.is_object()) << r.body;
  EXPECT_EQ(v.at("trace_id").as_string(), kTraceHex);
  const json::array& spans = v.at("spans").as_array();
  ASSERT_THAT(spans, SizeIs(2));
  std::map<std::string, const json::object*> by_id;
  for (const json::value& s : spans)
    by_id[std::string(s.at("span_id").as_string())] = &s.as_object();
  ASSERT_TRUE(by_id.contains("0000000000001111") && by_id.contains("0000000000002222")) << r.body;
  const json::object& root = *by_id["0000000000001111"];
  EXPECT_EQ(root.at("service").as_string(), "frontend");
  EXPECT_EQ(root.at("operation").as_string(), "GET /checkout");
  EXPECT_TRUE(root.at("parent_span_id").is_null());
  const json::object& child = *by_id["0000000000002222"];
  EXPECT_EQ(child.at("service").as_string(), kEvilService);
  EXPECT_EQ(child.at("operation").as_string(), kEvilOperation);
  EXPECT_EQ(child.at("parent_span_id").as_string(), "0000000000001111");
  EXPECT_TRUE(child.at("error").as_bool());
  const json::object& signature = child.at("error_signature").as_object();
  EXPECT_EQ(signature.at("id").as_string(), kSigA);
  EXPECT_EQ(signature.at("exception_type").as_string(), kEvilExceptionType);
  EXPECT_EQ(signature.at("message").as_string(), kEvilMessage);
  EXPECT_EQ(signature.at("top_frame").as_string(), "pay.go:12");
}

TEST_F(ApiTest, PinnedTraceOpensWhenTheStoreNoLongerHasIt) {
  const pipeline::SeriesRegistry::Ids ids = registry_.Resolve("inventory", "reserve-stock");
  auto pinned = std::make_shared<pipeline::ExemplarTrace>();
  pinned->trace_id = MustParse(kPinnedHex);
  pinned->start_unix_nano = Now() - 2 * kHourNanos;
  pinned->duration_nanos = 7'000'000;
  pinned->spans.push_back(
      pipeline::ExemplarSpan{.span_id = 0x42, .duration_nanos = 7'000'000, .series = ids.series});
  pinned_ = pinned;

  const http::Response page = Call("GET", std::string("/traces/") + kPinnedHex);
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("reserve-stock"));
  EXPECT_THAT(page.body, HasSubstr("inventory"));

  const http::Response api = Call("GET", std::string("/api/v1/traces/") + kPinnedHex);
  ASSERT_EQ(api.status, 200);
  const json::value v = JsonOf(api);
  ASSERT_THAT(v.at("spans").as_array(), SizeIs(1));
  EXPECT_EQ(v.at("spans").as_array()[0].at("operation").as_string(), "reserve-stock");
  EXPECT_EQ(v.at("spans").as_array()[0].at("service").as_string(), "inventory");
}

TEST_F(ApiTest, UnknownTraceIsNotFound) {
  KeepTrace();
  const http::Response page = Call("GET", std::string("/traces/") + kUnknownHex);
  EXPECT_EQ(page.status, 404);
  EXPECT_THAT(page.content_type, HasSubstr("text/html"));
  EXPECT_THAT(page.body, HasSubstr(kUnknownHex));

  const http::Response api = Call("GET", std::string("/api/v1/traces/") + kUnknownHex);
  EXPECT_EQ(api.status, 404);
  EXPECT_THAT(ErrorOf(api), HasSubstr(kUnknownHex));
}

TEST_F(ApiTest, MalformedTraceIdsAreBadRequests) {
  const std::vector<std::string> bad = {
      std::string(kTraceHex).substr(0, 31),     // 31 hex digits
      std::string(kTraceHex) + "0",             // 33
      "zz" + std::string(kTraceHex).substr(2),  // 32 characters, not hex
      std::string(32, '0'),                     // the invalid all-zero id
      "",                                       // none
  };
  for (const std::string& id : bad) {
    SCOPED_TRACE(id);
    const http::Response page = Call("GET", "/traces/" + id);
    EXPECT_EQ(page.status, 400);
    EXPECT_THAT(page.content_type, HasSubstr("text/html"));
    const http::Response api = Call("GET", "/api/v1/traces/" + id);
    EXPECT_EQ(api.status, 400);
    EXPECT_THAT(ErrorOf(api), HasSubstr("32 hex digits"));
  }
  // A raw id is shown escaped.
  const http::Response page = Call("GET", std::string("/traces/") + kEvilPlain);
  EXPECT_EQ(page.status, 400);
  EXPECT_THAT(page.body, Not(HasSubstr("<script")));
}

// A trace neither the SLI store nor the pins hold any more, read back from SQLite: its names
// were resolved when it was kept, and are escaped on the page like any other.
TEST_F(ApiTest, ATraceKeptOnDiskOpens) {
  storage::KeptTrace kept;
  kept.trace_id = *ParseTraceIdHex(kTraceHex);
  kept.start_unix_nano = kStartNanos;
  kept.duration_nanos = 5'000'000;
  kept.spans.push_back(storage::KeptSpan{.span_id = 0x1111,
                                         .service = "frontend",
                                         .operation = "GET /checkout",
                                         .kind = SpanKind::kServer,
                                         .duration_nanos = 5'000'000});
  kept.spans.push_back(storage::KeptSpan{.span_id = 0x2222,
                                         .parent_span_id = 0x1111,
                                         .service = kEvilService,
                                         .operation = kEvilOperation,
                                         .kind = SpanKind::kClient,
                                         .start_offset_nanos = 1'000'000,
                                         .duration_nanos = 2'000'000,
                                         .error = true,
                                         .signature = 0xabc,
                                         .exception_type = "<b>TimeoutError</b>",
                                         .message = "upstream \"timed\" out"});
  kept.reasons = storage::kKeptForAlert;
  kept_ = kept;

  const http::Response page = Call("GET", std::string("/traces/") + kTraceHex);
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(page.body, HasSubstr("GET /checkout"));
  EXPECT_THAT(page.body, HasSubstr("&lt;b&gt;TimeoutError&lt;/b&gt;"));
  EXPECT_THAT(page.body, Not(HasSubstr("<b>TimeoutError")));
  EXPECT_THAT(page.body, Not(HasSubstr("<script")));

  const json::value v = JsonOf(Call("GET", std::string("/api/v1/traces/") + kTraceHex));
  const json::array& spans = v.at("spans").as_array();
  ASSERT_THAT(spans, SizeIs(2));
  std::map<std::string, const json::object*> by_id;
  for (const json::value& span : spans)
    by_id[std::string(span.at("span_id").as_string())] = &span.as_object();
  ASSERT_TRUE(by_id.contains("0000000000002222")) << v;
  const json::object& child = *by_id["0000000000002222"];
  EXPECT_EQ(child.at("service").as_string(), kEvilService);
  EXPECT_EQ(child.at("parent_span_id").as_string(), "0000000000001111");
  EXPECT_EQ(child.at("error_signature").as_object().at("id").as_string(), "0000000000000abc");

  // Another id is still "not retained".
  EXPECT_EQ(Call("GET", "/traces/00000000000000000000000000000001").status, 404);
}

TEST_F(ApiTest, AnUnreadableKeptTraceIs500NotNotRetained) {
  kept_status_ = absl::DataLossError("traceslo.db: exemplar trace 4bf9…: <corrupt> spans");
  const http::Response page = Call("GET", std::string("/traces/") + kTraceHex);
  EXPECT_EQ(page.status, 500);
  EXPECT_THAT(page.body, HasSubstr("&lt;corrupt&gt;"));
  EXPECT_THAT(page.body, Not(HasSubstr("<corrupt>")));
  const http::Response api = Call("GET", std::string("/api/v1/traces/") + kTraceHex);
  EXPECT_EQ(api.status, 500);
  EXPECT_THAT(ErrorOf(api), HasSubstr("could not be read"));
}

TEST_F(ApiTest, TracesAreReadOnly) {
  KeepTrace();
  const http::Response post = Call("POST", std::string("/traces/") + kTraceHex);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(HeaderOf(post, "Allow"), "GET, HEAD");
  const http::Response del = Call("DELETE", std::string("/api/v1/traces/") + kTraceHex);
  EXPECT_EQ(del.status, 405);
  EXPECT_EQ(HeaderOf(del, "Allow"), "GET, HEAD");
}

// ---- alerts ----

alerting::Alert MakeAlert(const std::string& slo, const std::string& severity,
                          const std::string& signature) {
  alerting::Alert alert;
  alert.labels = {{"alertname", slo},
                  {"service", "payment"},
                  {"slo", slo},
                  {"severity", severity},
                  {"signature", signature}};
  alert.annotations = {{"summary", slo + " is burning"}};
  return alert;
}

class ApiAlertsTest : public ApiTest {
 protected:
  ApiAlertsTest() {
    availability_ = MakeAlert("availability", "page", kSigA);
    availability_.causes.push_back(alerting::Cause{.kind = alerting::Cause::Kind::kSignature,
                                                   .id = kSigA,
                                                   .title = "PaymentError: card declined",
                                                   .sample_message = "card 4242 declined",
                                                   .count = 12,
                                                   .share = 0.75,
                                                   .trace_ids = {kTraceHex}});
    latency_ = MakeAlert("latency", "ticket", kSigB);
    latency_.causes.push_back(alerting::Cause{.kind = alerting::Cause::Kind::kSlowOperation,
                                              .id = "POST /pay",
                                              .title = "POST /pay",
                                              .count = 3,
                                              .share = 1,
                                              .trace_ids = {kPinnedHex}});
  }

  // Both alerts fire and their groups are first sent.
  void FireBoth() {
    router_->Upsert(availability_, Now());
    router_->Upsert(latency_, Now());
    clock_.Advance(seconds(30));
    ASSERT_TRUE(router_->Tick(Now()).ok());
    ASSERT_THAT(sink_.sent, SizeIs(2));
  }

  // The group of GET /api/v1/alerts whose signature label is `signature`.
  json::object GroupOf(const std::string& signature) {
    const http::Response r = Call("GET", "/api/v1/alerts");
    EXPECT_EQ(r.status, 200);
    const json::value v = JsonOf(r);
    for (const json::value& g : v.at("groups").as_array()) {
      if (g.at("labels").as_object().at("signature").as_string() == signature) {
        return g.as_object();
      }
    }
    ADD_FAILURE() << "no group for signature " << signature << ": " << r.body;
    return {};
  }

  static std::map<std::string, std::string> LabelsOf(const json::value& v) {
    std::map<std::string, std::string> out;
    for (const auto& member : v.as_object()) {
      out[std::string(member.key())] = std::string(member.value().as_string());
    }
    return out;
  }

  std::string AckPath(const alerting::Alert& alert) const {
    return "/api/v1/alerts/" + alerting::Fingerprint(alert.labels) + "/ack";
  }

  alerting::Alert availability_;
  alerting::Alert latency_;
};

TEST_F(ApiAlertsTest, ListsBothGroupsWithLabelsFingerprintsCausesAndTraceLinks) {
  FireBoth();
  const http::Response r = Call("GET", "/api/v1/alerts");
  ASSERT_EQ(r.status, 200);
  ASSERT_THAT(JsonOf(r).at("groups").as_array(), SizeIs(2));

  for (const alerting::Alert* alert : {&availability_, &latency_}) {
    const std::string signature = alert->labels.at("signature");
    SCOPED_TRACE(signature);
    const json::object group = GroupOf(signature);
    EXPECT_EQ(LabelsOf(group.at("labels")), (std::map<std::string, std::string>{
                                                {"service", "payment"}, {"signature", signature}}));
    EXPECT_TRUE(group.at("notified").as_bool());
    EXPECT_FALSE(group.at("acknowledged").as_bool());
    EXPECT_TRUE(group.at("acknowledgedAt").is_null());
    ASSERT_THAT(group.at("alerts").as_array(), SizeIs(1));
    const json::object& a = group.at("alerts").as_array()[0].as_object();
    EXPECT_EQ(a.at("fingerprint").as_string(), alerting::Fingerprint(alert->labels));
    EXPECT_EQ(LabelsOf(a.at("labels")),
              (std::map<std::string, std::string>(alert->labels.begin(), alert->labels.end())));
    EXPECT_EQ(
        LabelsOf(a.at("annotations")),
        (std::map<std::string, std::string>(alert->annotations.begin(), alert->annotations.end())));
    EXPECT_EQ(a.at("status").as_string(), "firing");
    EXPECT_TRUE(a.at("notified").as_bool());
    const alerting::Cause& cause = alert->causes.at(0);
    ASSERT_THAT(a.at("causes").as_array(), SizeIs(1));
    const json::object& c = a.at("causes").as_array()[0].as_object();
    EXPECT_EQ(c.at("kind").as_string(),
              cause.kind == alerting::Cause::Kind::kSignature ? "signature" : "slow_operation");
    EXPECT_EQ(c.at("id").as_string(), cause.id);
    EXPECT_EQ(c.at("title").as_string(), cause.title);
    EXPECT_EQ(c.at("sampleMessage").as_string(), cause.sample_message);
    EXPECT_EQ(c.at("count").to_number<uint64_t>(), cause.count);
    EXPECT_DOUBLE_EQ(c.at("share").to_number<double>(), cause.share);
    ASSERT_THAT(c.at("traces").as_array(), SizeIs(1));
    const json::object& t = c.at("traces").as_array()[0].as_object();
    EXPECT_EQ(t.at("traceId").as_string(), cause.trace_ids[0]);
    EXPECT_EQ(t.at("url").as_string(), std::string(kExternalUrl) + "/traces/" + cause.trace_ids[0]);
  }
}

TEST_F(ApiAlertsTest, AckStopsRepeatsOfThatGroupOnly) {
  FireBoth();
  const int64_t acked_at = Now();
  const http::Response ack = Call("POST", AckPath(availability_));
  ASSERT_EQ(ack.status, 200) << ack.body;
  EXPECT_EQ(JsonOf(ack).at("acknowledged").as_string(),
            alerting::Fingerprint(availability_.labels));

  const json::object acked = GroupOf(kSigA);
  EXPECT_TRUE(acked.at("acknowledged").as_bool());
  EXPECT_EQ(ParseRfc3339(acked.at("acknowledgedAt").as_string()), acked_at);
  EXPECT_FALSE(GroupOf(kSigB).at("acknowledged").as_bool());

  clock_.Advance(hours(4));
  ASSERT_TRUE(router_->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_EQ(sink_.sent[2].group_labels.at("signature"), kSigB);  // the repeat of the un-acked one
  clock_.Advance(hours(4));
  ASSERT_TRUE(router_->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(4));
  EXPECT_EQ(sink_.sent[3].group_labels.at("signature"), kSigB);
}

TEST_F(ApiAlertsTest, AckOfAnUnknownFingerprintIsNotFound) {
  FireBoth();
  const http::Response r = Call("POST", "/api/v1/alerts/0123456789abcdef/ack");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(ErrorOf(r), HasSubstr("0123456789abcdef"));
  EXPECT_EQ(Call("POST", "/api/v1/alerts/ack").status, 404);
  EXPECT_FALSE(GroupOf(kSigA).at("acknowledged").as_bool());
}

TEST_F(ApiAlertsTest, WrongMethodsAreNotAllowed) {
  FireBoth();
  const http::Response get = Call("GET", AckPath(availability_));
  EXPECT_EQ(get.status, 405);
  EXPECT_FALSE(ErrorOf(get).empty());
  EXPECT_EQ(HeaderOf(get, "Allow"), "POST");
  const http::Response post = Call("POST", "/api/v1/alerts");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(HeaderOf(post, "Allow"), "GET, HEAD");
  EXPECT_FALSE(GroupOf(kSigA).at("acknowledged").as_bool());
}

TEST_F(ApiAlertsTest, NoAlertsIsAnEmptyList) {
  const http::Response r = Call("GET", "/api/v1/alerts");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(JsonOf(r).at("groups").as_array(), SizeIs(0));
}

// ---- silences ----

class ApiSilencesTest : public ApiAlertsTest {
 protected:
  // The body of a POST /api/v1/silences; `extra` members are added (replacing any of these).
  static std::string SilenceBody(json::object extra) {
    json::object body{
        {"matchers",
         json::array{json::object{{"name", "signature"}, {"value", kSigA}, {"isEqual", true}}}},
        {"duration", "2h"},
        {"createdBy", "alice"},
        {"comment", "deploying a fix"}};
    for (auto& member : extra) body[member.key()] = member.value();
    return json::serialize(body);
  }

  // The silences of GET /api/v1/silences.
  json::array Silences() {
    const http::Response r = Call("GET", "/api/v1/silences");
    EXPECT_EQ(r.status, 200);
    json::value v = JsonOf(r);
    if (!v.is_array()) {
      ADD_FAILURE() << r.body;
      return {};
    }
    return v.as_array();
  }

  // POSTs `body` and returns the new silence's id, checking that it is 32 hex digits.
  std::string AddSilence(const std::string& body) {
    const http::Response r = Call("POST", "/api/v1/silences", body);
    EXPECT_EQ(r.status, 200) << r.body;
    if (r.status != 200) return "";
    const std::string id(JsonOf(r).at("silenceID").as_string());
    EXPECT_THAT(id, ::testing::MatchesRegex("[0-9a-f]{32}"));
    return id;
  }
};

TEST_F(ApiSilencesTest, SilenceIsListedAndHoldsBackItsAlertUntilDeleted) {
  router_->Upsert(availability_, Now());
  router_->Upsert(latency_, Now());
  // startsAt an hour ago: clamped to now. The second matcher is a `!=` one that holds.
  const std::string id = AddSilence(SilenceBody(
      {{"matchers",
        json::array{json::object{{"name", "signature"}, {"value", kSigA}, {"isEqual", true}},
                    json::object{{"name", "slo"}, {"value", "latency"}, {"isEqual", false}}}},
       {"startsAt", "2023-11-14T21:13:20Z"}}));
  ASSERT_FALSE(id.empty());

  json::array listed = Silences();
  ASSERT_THAT(listed, SizeIs(1));
  const json::object& s = listed[0].as_object();
  EXPECT_EQ(s.at("id").as_string(), id);
  EXPECT_EQ(s.at("status").at("state").as_string(), "active");
  EXPECT_EQ(ParseRfc3339(s.at("startsAt").as_string()), kStartNanos);  // clamped to now
  EXPECT_EQ(ParseRfc3339(s.at("endsAt").as_string()), kStartNanos + 2 * kHourNanos);
  EXPECT_EQ(s.at("createdBy").as_string(), "alice");
  EXPECT_EQ(s.at("comment").as_string(), "deploying a fix");
  const json::array& matchers = s.at("matchers").as_array();
  ASSERT_THAT(matchers, SizeIs(2));
  EXPECT_EQ(matchers[0].at("name").as_string(), "signature");
  EXPECT_EQ(matchers[0].at("value").as_string(), kSigA);
  EXPECT_TRUE(matchers[0].at("isEqual").as_bool());
  EXPECT_EQ(matchers[1].at("name").as_string(), "slo");
  EXPECT_EQ(matchers[1].at("value").as_string(), "latency");
  EXPECT_FALSE(matchers[1].at("isEqual").as_bool());

  // The silenced alert is shown as such and not sent; the other one is.
  clock_.Advance(seconds(30));
  ASSERT_TRUE(router_->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(1));
  EXPECT_EQ(sink_.sent[0].group_labels.at("signature"), kSigB);
  const json::object silenced = GroupOf(kSigA);
  const json::array& silenced_by = silenced.at("alerts").as_array()[0].at("silencedBy").as_array();
  ASSERT_THAT(silenced_by, SizeIs(1));
  EXPECT_EQ(silenced_by[0].as_string(), id);

  const int64_t expired_at = Now();
  const http::Response del = Call("DELETE", "/api/v1/silences/" + id);
  ASSERT_EQ(del.status, 200) << del.body;
  listed = Silences();
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].at("status").at("state").as_string(), "expired");
  EXPECT_EQ(ParseRfc3339(listed[0].at("endsAt").as_string()), expired_at);

  ASSERT_TRUE(router_->Tick(Now()).ok());
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(sink_.sent[1].group_labels.at("signature"), kSigA);
  // Deleting again is fine: it has ended already.
  EXPECT_EQ(Call("DELETE", "/api/v1/silences/" + id).status, 200);
}

TEST_F(ApiSilencesTest, EndsAtAndAFutureStart) {
  // endsAt instead of duration; starts in an hour, so pending until then.
  const std::string id = AddSilence(SilenceBody({{"duration", nullptr},
                                                 {"startsAt", "2023-11-14T23:13:20Z"},
                                                 {"endsAt", "2023-11-15T00:13:20Z"}}));
  ASSERT_FALSE(id.empty());
  json::array listed = Silences();
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].at("status").at("state").as_string(), "pending");
  EXPECT_EQ(ParseRfc3339(listed[0].at("startsAt").as_string()), kStartNanos + kHourNanos);
  EXPECT_EQ(ParseRfc3339(listed[0].at("endsAt").as_string()), kStartNanos + 2 * kHourNanos);
  clock_.Advance(hours(1));
  listed = Silences();
  ASSERT_THAT(listed, SizeIs(1));
  EXPECT_EQ(listed[0].at("status").at("state").as_string(), "active");

  // An offset time is the same instant; createdAt is the time of the POST.
  const std::string offset = AddSilence(SilenceBody(
      {{"duration", nullptr}, {"endsAt", "2023-11-15T01:43:20+01:30"}, {"comment", nullptr}}));
  ASSERT_FALSE(offset.empty());
  for (const json::value& s : Silences()) {
    if (s.at("id").as_string() != offset) continue;
    EXPECT_EQ(ParseRfc3339(s.at("endsAt").as_string()), kStartNanos + 2 * kHourNanos);
    EXPECT_EQ(ParseRfc3339(s.at("createdAt").as_string()), kStartNanos + kHourNanos);
    EXPECT_EQ(s.at("comment").as_string(), "");
  }
}

TEST_F(ApiSilencesTest, MalformedBodiesAreBadRequestsThatSayWhy) {
  json::array many;
  for (int i = 0; i < 33; ++i) {
    many.push_back(json::object{{"name", "l" + std::to_string(i)}, {"value", "v"}});
  }
  std::string deep = R"({"matchers":[{"name":"a","value":)";
  for (int i = 0; i < 10'000; ++i) deep += '[';
  for (int i = 0; i < 10'000; ++i) deep += ']';
  deep += R"(}],"duration":"1h","createdBy":"alice"})";

  struct Case {
    std::string name;
    std::string body;
    std::string says;  // a part of the error message that points at the problem
  };
  const std::vector<Case> cases = {
      {"not JSON", "{matchers: [", "JSON"},
      {"empty", "", "JSON"},
      {"not an object", R"([{"name":"signature","value":"x"}])", "object"},
      {"missing matchers", json::serialize(json::object{{"duration", "1h"}, {"createdBy", "a"}}),
       "matchers"},
      {"matchers not a list", SilenceBody({{"matchers", json::object{{"name", "a"}}}}), "matchers"},
      {"no matchers", SilenceBody({{"matchers", json::array{}}}), "matcher"},
      {"matcher not an object", SilenceBody({{"matchers", json::array{"signature=x"}}}),
       "matchers[0]"},
      {"matcher without a value",
       SilenceBody({{"matchers", json::array{json::object{{"name", "a"}}}}}), "value"},
      {"bad label name",
       SilenceBody({{"matchers", json::array{json::object{{"name", "1x-y"}, {"value", "v"}}}}}),
       "1x-y"},
      {"isEqual not a bool",
       SilenceBody({{"matchers",
                     json::array{json::object{{"name", "a"}, {"value", "v"}, {"isEqual", "no"}}}}}),
       "isEqual"},
      {"isRegex true",
       SilenceBody({{"matchers", json::array{json::object{
                                     {"name", "a"}, {"value", "v.*"}, {"isRegex", true}}}}}),
       "regular expression"},
      {"endsAt and duration", SilenceBody({{"endsAt", "2023-11-15T00:00:00Z"}}), "endsAt"},
      {"neither endsAt nor duration", SilenceBody({{"duration", nullptr}}), "duration"},
      {"bad endsAt", SilenceBody({{"duration", nullptr}, {"endsAt", "tomorrow"}}), "RFC 3339"},
      {"bad startsAt", SilenceBody({{"startsAt", "2023-13-45T00:00:00Z"}}), "startsAt"},
      {"endsAt not a string", SilenceBody({{"duration", nullptr}, {"endsAt", 1700000000}}),
       "endsAt"},
      {"bad duration", SilenceBody({{"duration", "2 hours"}}), "duration"},
      {"zero duration", SilenceBody({{"duration", "0s"}}), "endsAt"},
      {"duration past what a time holds", SilenceBody({{"duration", "1000000d"}}), "too long"},
      // 213504 days in nanoseconds wrap around int64 to about 25 minutes.
      {"duration that wraps around", SilenceBody({{"duration", "213504d"}}), "too long"},
      {"unknown field", SilenceBody({{"matcher", "oops"}}), "matcher\""},
      {"33 matchers", SilenceBody({{"matchers", many}}), "32"},
      {"2 KiB comment", SilenceBody({{"comment", std::string(2048, 'c')}}), "comment"},
      {"createdBy missing", SilenceBody({{"createdBy", nullptr}}), "createdBy"},
      {"endsAt before startsAt",
       SilenceBody({{"duration", nullptr},
                    {"startsAt", "2023-11-15T00:00:00Z"},
                    {"endsAt", "2023-11-14T23:00:00Z"}}),
       "endsAt"},
      {"endsAt in the past",
       SilenceBody({{"duration", nullptr}, {"endsAt", "2023-11-14T20:00:00Z"}}), "endsAt"},
      {"deeply nested", deep, "deep"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const http::Response r = Call("POST", "/api/v1/silences", c.body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(ErrorOf(r), HasSubstr(c.says));
  }
  EXPECT_THAT(Silences(), SizeIs(0));
  EXPECT_EQ(silence_store_.size(), 0u);
}

TEST_F(ApiSilencesTest, BodyTooLargeIs413) {
  http::Request request;
  request.method = "POST";
  request.target = "/api/v1/silences";
  request.body_too_large = true;
  std::optional<http::Response> r = handler_->Handle(request);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
}

TEST_F(ApiSilencesTest, DeleteOfAnUnknownIdIsNotFound) {
  const http::Response r = Call("DELETE", "/api/v1/silences/0123456789abcdef0123456789abcdef");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(ErrorOf(r), HasSubstr("0123456789abcdef0123456789abcdef"));
  EXPECT_EQ(Call("DELETE", "/api/v1/silences/").status, 404);
  const http::Response put = Call("PUT", "/api/v1/silences");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(HeaderOf(put, "Allow"), "GET, HEAD, POST");
  const http::Response get = Call("GET", "/api/v1/silences/0123456789abcdef0123456789abcdef");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(HeaderOf(get, "Allow"), "DELETE");
}

// ---- the bearer token ----

class ApiAuthTest : public ApiSilencesTest {
 protected:
  ApiAuthTest() { MakeHandler(kToken); }
  static std::vector<std::pair<std::string, std::string>> Bearer(std::string token) {
    return {{"authorization", "Bearer " + token}};
  }
};

TEST_F(ApiAuthTest, WritesNeedTheToken) {
  FireBoth();
  const std::string body = SilenceBody({});
  const std::vector<std::vector<std::pair<std::string, std::string>>> refused = {
      {},
      Bearer("wrong"),
      Bearer("s3cret-tokeN"),  // the same length
      Bearer(std::string(kToken) + "x"),
      Bearer(std::string(kToken).substr(1)),
      Bearer(""),
      {{"authorization", kToken}},
      {{"authorization", std::string("Basic ") + kToken}},
  };
  for (size_t i = 0; i < refused.size(); ++i) {
    SCOPED_TRACE(i);
    const http::Response post = Call("POST", "/api/v1/silences", body, refused[i]);
    EXPECT_EQ(post.status, 401);
    EXPECT_THAT(ErrorOf(post), HasSubstr("token"));
    EXPECT_EQ(HeaderOf(post, "WWW-Authenticate"), "Bearer");
    EXPECT_EQ(Call("POST", AckPath(availability_), "", refused[i]).status, 401);
  }
  EXPECT_THAT(Silences(), SizeIs(0));
  EXPECT_FALSE(GroupOf(kSigA).at("acknowledged").as_bool());

  const std::string id = [&] {
    const http::Response r = Call("POST", "/api/v1/silences", body, Bearer(kToken));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? std::string(JsonOf(r).at("silenceID").as_string()) : "";
  }();
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(Call("DELETE", "/api/v1/silences/" + id).status, 401);
  EXPECT_EQ(Call("DELETE", "/api/v1/silences/" + id, "", Bearer("wrong")).status, 401);
  EXPECT_EQ(Silences()[0].at("status").at("state").as_string(), "active");
  EXPECT_EQ(Call("DELETE", "/api/v1/silences/" + id, "", Bearer(kToken)).status, 200);
  EXPECT_EQ(Silences()[0].at("status").at("state").as_string(), "expired");

  EXPECT_EQ(Call("POST", AckPath(availability_), "", Bearer(kToken)).status, 200);
  EXPECT_TRUE(GroupOf(kSigA).at("acknowledged").as_bool());
  // The scheme is case-insensitive (RFC 9110 11.1).
  EXPECT_EQ(
      Call("POST", AckPath(latency_), "", {{"authorization", std::string("bearer ") + kToken}})
          .status,
      200);
}

TEST_F(ApiAuthTest, ReadsNeedNoToken) {
  KeepTrace();
  FireBoth();
  EXPECT_EQ(Call("GET", "/api/v1/alerts").status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/silences").status, 200);
  EXPECT_EQ(Call("GET", std::string("/traces/") + kTraceHex).status, 200);
  EXPECT_EQ(Call("GET", std::string("/api/v1/traces/") + kTraceHex).status, 200);
}

// ---- paths ----

TEST_F(ApiTest, UnknownApiPathIsJsonNotFound) {
  for (const char* path : {"/api/v1/", "/api/v1/nope", "/api/v1/alerts/x", "/api/v1/silencesx"}) {
    SCOPED_TRACE(path);
    const http::Response r = Call("GET", path);
    EXPECT_EQ(r.status, 404);
    EXPECT_FALSE(ErrorOf(r).empty());
  }
}

TEST_F(ApiTest, OtherPathsAreNotTheApis) {
  for (const char* path : {"/metrics", "/index.html", "/alerts/", "/signatures/x", "/traces",
                           "/tracesx/abc", "/api/v1", "/api/v2/alerts", "/API/v1/alerts"}) {
    SCOPED_TRACE(path);
    EXPECT_FALSE(Handle("GET", path).has_value());
    EXPECT_FALSE(Handle("POST", path).has_value());
  }
}

}  // namespace
}  // namespace traceslo::web

namespace traceslo::web {
namespace {

// traceslo_api_requests_total{endpoint, code}: each answer counted once under its endpoint and
// status, expected counts taken from the calls this test makes.
TEST_F(ApiSilencesTest, AnswersAreCountedByEndpointAndCode) {
  std::map<std::pair<std::string, std::string>, int> expected;
  auto call = [&](std::string method, std::string target, std::string body, std::string endpoint) {
    const http::Response r = Call(std::move(method), std::move(target), std::move(body));
    ++expected[{endpoint, std::to_string(r.status)}];
  };
  call("GET", std::string("/traces/") + std::string(32, 'a'), "", "trace_page");
  call("GET", "/api/v1/traces/xyz", "", "trace");
  call("GET", "/api/v1/alerts", "", "alerts");
  call("POST", "/api/v1/alerts/0123456789abcdef/ack", "", "ack");
  call("POST", "/api/v1/silences", "{bad", "silences");
  call("POST", "/api/v1/silences", "{bad", "silences");
  call("DELETE", "/api/v1/silences/nope", "", "silence");
  call("GET", "/api/v1/nothing", "", "unknown");
  std::map<std::pair<std::string, std::string>, int> got;
  for (const prometheus::MetricFamily& f : handler_->Collect()) {
    ASSERT_EQ(f.name, "traceslo_api_requests_total");
    for (const prometheus::ClientMetric& m : f.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& l : m.label) labels[l.name] = l.value;
      if (m.counter.value > 0) got[{labels["endpoint"], labels["code"]}] = m.counter.value;
    }
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ((expected[{"silences", "400"}]), 2);
}

}  // namespace
}  // namespace traceslo::web
