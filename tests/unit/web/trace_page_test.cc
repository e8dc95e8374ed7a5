#include "services/web/trace_page.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "services/web/html.h"
#include "tests/unit/web/page_test_util.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::web {
namespace {

using page_test::Between;
using page_test::ExpectSelfContained;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMs = 1'000'000;
constexpr std::string_view kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr int64_t kStart = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123456789Z

TraceSpanView MakeSpan(std::string id, std::string parent, std::string service,
                       std::string operation, int64_t start, uint64_t duration) {
  TraceSpanView span;
  span.span_id = std::move(id);
  span.parent_span_id = std::move(parent);
  span.service = std::move(service);
  span.operation = std::move(operation);
  span.kind = "server";
  span.start_offset_nanos = start;
  span.duration_nanos = duration;
  return span;
}

// One <li class="span ..."> row of a rendered page.
struct RenderedRow {
  std::string classes;
  std::string span_id;
  std::string parent_id;
  int depth = -1;
  std::string service;
  std::string colour;  // the bar's palette class
  double x = -1;       // percent
  double width = -1;   // percent
  std::string html;    // the whole row
};

std::vector<RenderedRow> RowsOf(const std::string& page) {
  static const std::regex kRow(
      "^<li class=\"([^\"]*)\" data-span-id=\"([^\"]*)\" data-parent-id=\"([^\"]*)\" "
      "data-depth=\"([0-9]+)\" data-service=\"([^\"]*)\">");
  static const std::regex kBar(
      "<rect class=\"(c[0-9])\" x=\"([0-9.]+)%\" y=\"1\" "
      "width=\"([0-9.]+)%\" height=\"12\"/>");
  std::vector<RenderedRow> rows;
  for (size_t at = page.find("<li class=\"span"); at != std::string::npos;
       at = page.find("<li class=\"span", at + 1)) {
    const size_t end = page.find("</li>", at);
    RenderedRow row;
    row.html = page.substr(at, end - at);
    std::smatch m;
    EXPECT_TRUE(std::regex_search(row.html, m, kRow)) << row.html;
    if (m.empty()) continue;
    row.classes = m[1];
    row.span_id = m[2];
    row.parent_id = m[3];
    row.depth = std::stoi(m[4]);
    row.service = m[5];
    EXPECT_TRUE(std::regex_search(row.html, m, kBar)) << row.html;
    if (!m.empty()) {
      row.colour = m[1];
      row.x = std::strtod(m[2].str().c_str(), nullptr);
      row.width = std::strtod(m[3].str().c_str(), nullptr);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// The trace of the tree test: 3 services, an error span, an orphan; 100 ms long. Listed out of
// order: the page orders them.
//   a1 frontend GET /checkout        0 .. 100 ms
//     b1 cart GetCart                5 .. 25
//       b2 cart SELECT carts        10 .. 15
//     c1 payment Charge (error)     30 .. 90
//       c2 payment POST /bank       35 .. 85
//   o1 payment ledger.write (parent ffff... missing)  92 .. 100
TraceView ThreeServiceTrace() {
  TraceView trace;
  trace.trace_id = std::string(kTraceId);
  trace.start_unix_nano = kStart;
  trace.duration_nanos = 100 * kMs;
  trace.spans.push_back(MakeSpan("00000000000000c2", "00000000000000c1", "payment", "POST /bank",
                                 35 * kMs, 50 * kMs));
  TraceSpanView orphan = MakeSpan("00000000000000f1", "ffffffffffffffff", "payment", "ledger.write",
                                  92 * kMs, 8 * kMs);
  orphan.orphan = true;
  orphan.kind = "consumer";
  trace.spans.push_back(orphan);
  TraceSpanView charge =
      MakeSpan("00000000000000c1", "00000000000000a1", "payment", "Charge", 30 * kMs, 60 * kMs);
  charge.error = true;
  charge.signature = "00000000000abcde";
  charge.exception_type = "TimeoutError";
  charge.message = "deadline exceeded after 50ms";
  charge.top_frame = "bank.Client.charge (bank.go:42)";
  trace.spans.push_back(charge);
  trace.spans.push_back(
      MakeSpan("00000000000000b2", "00000000000000b1", "cart", "SELECT carts", 10 * kMs, 5 * kMs));
  trace.spans.push_back(
      MakeSpan("00000000000000b1", "00000000000000a1", "cart", "GetCart", 5 * kMs, 20 * kMs));
  trace.spans.push_back(
      MakeSpan("00000000000000a1", "", "frontend", "GET /checkout", 0, 100 * kMs));
  return trace;
}

TEST(TracePageTest, RendersTheSpanTreeInTreeOrderWithDepths) {
  const TraceView trace = ThreeServiceTrace();
  const std::string page = RenderTracePage(trace, PageContext{});
  ExpectSelfContained(page);

  const std::vector<RenderedRow> rows = RowsOf(page);
  ASSERT_EQ(rows.size(), 6u);
  const std::vector<std::pair<std::string, int>> expected = {
      {"00000000000000a1", 0}, {"00000000000000b1", 1}, {"00000000000000b2", 2},
      {"00000000000000c1", 1}, {"00000000000000c2", 2}, {"00000000000000f1", 0}};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].span_id, expected[i].first) << i;
    EXPECT_EQ(rows[i].depth, expected[i].second) << i;
  }
  EXPECT_EQ(rows[0].classes, "span");
  EXPECT_EQ(rows[0].parent_id, "");
  EXPECT_EQ(rows[2].parent_id, "00000000000000b1");
  // Indentation follows depth.
  EXPECT_THAT(rows[0].html, HasSubstr("<div class=\"label\">"));
  EXPECT_THAT(rows[1].html, HasSubstr("<div class=\"label d1\">"));
  EXPECT_THAT(rows[4].html, HasSubstr("<div class=\"label d2\">"));

  // The error span: marked, with its exception.
  EXPECT_EQ(rows[3].classes, "span error");
  EXPECT_THAT(rows[3].html, HasSubstr("<span class=\"flag err\">\xe2\x9c\x96 error</span>"));
  EXPECT_THAT(rows[3].html, HasSubstr("<b class=\"exc-type\">TimeoutError</b>"));
  EXPECT_THAT(rows[3].html, HasSubstr("deadline exceeded after 50ms"));
  EXPECT_THAT(rows[3].html, HasSubstr("bank.Client.charge (bank.go:42)"));
  for (size_t i : {0, 1, 2, 4, 5}) EXPECT_THAT(rows[i].html, Not(HasSubstr("error"))) << i;

  // The orphan: its own root, after the real root's tree, naming the service where it broke.
  EXPECT_EQ(rows[5].classes, "span orphan");
  EXPECT_THAT(rows[5].html, HasSubstr("parent missing \xe2\x80\x94 propagation broke here"));
  EXPECT_THAT(rows[5].html, HasSubstr("<b>payment</b>"));
  EXPECT_THAT(rows[5].html, HasSubstr("ffffffffffffffff"));
  for (size_t i = 0; i < 5; ++i) EXPECT_THAT(rows[i].html, Not(HasSubstr("parent missing")));

  // Services: a colour each by first appearance, and the name as text.
  const std::vector<std::string> colours = {"c0", "c1", "c1", "c2", "c2", "c2"};
  const std::vector<std::string> services = {"frontend", "cart",    "cart",
                                             "payment",  "payment", "payment"};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].colour, colours[i]) << i;
    EXPECT_EQ(rows[i].service, services[i]) << i;
    EXPECT_THAT(rows[i].html, HasSubstr("</svg>" + services[i] + " \xc2\xb7 ")) << i;
  }
  EXPECT_THAT(page,
              HasSubstr("<li data-service=\"frontend\"><svg class=\"sw\" viewBox=\"0 0 10 10\" "
                        "aria-hidden=\"true\"><rect class=\"c0\""));

  // Bars: offset and width in percent of the 100 ms, from the times built above.
  const std::vector<std::pair<double, double>> times_ms = {{0, 100}, {5, 20},  {10, 5},
                                                           {30, 60}, {35, 50}, {92, 8}};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_NEAR(rows[i].x, times_ms[i].first / 100.0 * 100.0, 0.001) << i;
    EXPECT_NEAR(rows[i].width, times_ms[i].second / 100.0 * 100.0, 0.001) << i;
  }

  // Durations in human units, the header, the summary.
  EXPECT_THAT(rows[0].html, HasSubstr("<span class=\"dur\">100 ms</span>"));
  EXPECT_THAT(rows[1].html, HasSubstr("<span class=\"dur\">20.0 ms</span>"));
  EXPECT_THAT(rows[2].html, HasSubstr("<span class=\"dur\">5.00 ms</span>"));
  EXPECT_THAT(rows[2].html, HasSubstr("<span class=\"at\">at +10.0 ms</span>"));
  EXPECT_THAT(page, HasSubstr("<code id=\"trace-id\">" + std::string(kTraceId) + "</code>"));
  EXPECT_THAT(page, HasSubstr("<time id=\"trace-start\" datetime=\"2023-11-14T22:13:20.123Z\">"));
  EXPECT_THAT(page, HasSubstr("<span id=\"trace-duration\">100 ms</span>"));
  EXPECT_THAT(page, HasSubstr("data-spans=\"6\" data-services=\"3\" data-errors=\"1\" "
                              "data-orphans=\"1\">6 spans \xc2\xb7 3 services \xc2\xb7 1 error "
                              "\xc2\xb7 1 orphan</p>"));
  EXPECT_EQ(Between(page, "<title>", "</title>"),
            "\xe2\x9c\x96 frontend: GET /checkout \xe2\x80\x94 trace 4bf92f35 \xe2\x80\x94 "
            "traceslo");
  EXPECT_THAT(page, HasSubstr("<a id=\"trace-json\" href=\"/api/v1/traces/" +
                              std::string(kTraceId) + "\">JSON</a>"));
  EXPECT_THAT(page, Not(HasSubstr("external-trace")));
  EXPECT_THAT(page, Not(HasSubstr("more-spans")));
}

TEST(TracePageTest, LinksUnderTheExternalUrlAndToTheTraceBackend) {
  const PageContext context{.external_url = "https://slo.example.com/traceslo/",
                            .trace_url = "https://tempo.example.com/explore?trace={trace_id}&x=1"};
  const std::string page = RenderTracePage(ThreeServiceTrace(), context);
  EXPECT_THAT(page, HasSubstr("<a id=\"trace-json\" href=\"https://slo.example.com/traceslo/api/v1/"
                              "traces/" +
                              std::string(kTraceId) + "\">"));
  EXPECT_THAT(page, HasSubstr("<a id=\"external-trace\" href=\"https://tempo.example.com/explore?"
                              "trace=" +
                              std::string(kTraceId) + "&amp;x=1\">"));
  // Only http(s) templates are linked.
  const std::string scripted = RenderTracePage(
      ThreeServiceTrace(), PageContext{.trace_url = "javascript:alert('{trace_id}')"});
  EXPECT_THAT(scripted, Not(HasSubstr("javascript:")));
}

TraceView HostileTrace() {
  TraceView trace;
  trace.trace_id = std::string(kTraceId);
  trace.start_unix_nano = kStart;
  trace.duration_nanos = 10 * kMs;
  TraceSpanView root =
      MakeSpan("0000000000000001", "", "<script>alert(1)</script>", "\"'&<b>bold</b>", 0, 10 * kMs);
  root.error = true;
  root.signature = "0000000000000bad";
  root.exception_type = "\"'&";
  root.message = "<script>alert(1)</script> \"'& at <!-- -->";
  root.top_frame = "</code><img src=x onerror=alert(1)>";
  root.kind = "<i>server</i>";
  trace.spans.push_back(root);
  TraceSpanView orphan = MakeSpan("\"><script>alert(2)</script>", "'><script>alert(3)</script>",
                                  "svc\"'&", "op", 5 * kMs, kMs);
  orphan.orphan = true;
  trace.spans.push_back(orphan);
  return trace;
}

TEST(TracePageTest, EscapesEveryUntrustedString) {
  const TraceView trace = HostileTrace();
  const std::string page = RenderTracePage(trace, PageContext{});
  ExpectSelfContained(page);
  for (std::string_view raw :
       {"<script>alert(1)</script>", "<script>alert(2)</script>", "<script>alert(3)</script>",
        "<b>bold</b>", "<i>server</i>", "\"'&", "<!--", "</code><img"}) {
    EXPECT_THAT(page, Not(HasSubstr(raw))) << raw;
  }
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(page, HasSubstr("&quot;&#39;&amp;&lt;b&gt;bold&lt;/b&gt;"));
  EXPECT_THAT(page, HasSubstr("<b class=\"exc-type\">&quot;&#39;&amp;</b>"));
  EXPECT_THAT(page, HasSubstr("&lt;/code&gt;&lt;img src=x onerror=alert(1)&gt;"));
  EXPECT_THAT(page, HasSubstr("data-span-id=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;\""));
  EXPECT_THAT(page, HasSubstr("data-service=\"svc&quot;&#39;&amp;\""));
  // The title carries the root's names, escaped too.
  EXPECT_THAT(Between(page, "<title>", "</title>"),
              HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;: &quot;&#39;&amp;&lt;b&gt;"));
  // Two rows still: the hostile ids did not break the markup.
  EXPECT_EQ(RowsOf(page).size(), 2u);
}

TEST(TracePageTest, EscapeHelper) {
  EXPECT_EQ(Escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
  EXPECT_EQ(Escape("plain text / 100%"), "plain text / 100%");
  EXPECT_EQ(Escape("\xc2\xb5s \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\xc2\xb5s \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(Escape("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(Escape(std::string("a\0b", 3)), "a" + fffd + "b");
  EXPECT_EQ(Escape("\x1b[31m"), fffd + "[31m");
  EXPECT_EQ(Escape("\xff"), fffd);
  EXPECT_EQ(Escape("\xc0\xbc"), fffd + fffd);                        // overlong '<'
  EXPECT_EQ(Escape("\xed\xa0\x80"), fffd + fffd + fffd);             // a surrogate
  EXPECT_EQ(Escape("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // above U+10FFFF
  EXPECT_EQ(Escape("\xe2\x82<"), fffd + fffd + "&lt;");              // cut short
  EXPECT_EQ(ValidUtf8("ok \xc2\xb5 \xff\"<"), "ok \xc2\xb5 " + fffd + "\"<");
}

TEST(TracePageTest, NotRetainedPage) {
  const PageContext context{.trace_url = "http://jaeger:16686/trace/{trace_id}",
                            .exemplar_retention = std::chrono::minutes(15)};
  const std::string page = RenderTraceNotRetained("4BF92F3577B34DA6A3CE929D0E0E4736", context);
  ExpectSelfContained(page);
  EXPECT_THAT(page, HasSubstr("<h1>Trace not retained</h1>"));
  EXPECT_THAT(page, HasSubstr("<code id=\"trace-id\">" + std::string(kTraceId) + "</code>"));
  EXPECT_THAT(page, HasSubstr("for 15 min"));
  EXPECT_THAT(page, HasSubstr("expired"));
  EXPECT_THAT(page, HasSubstr("<a id=\"external-trace\" href=\"http://jaeger:16686/trace/" +
                              std::string(kTraceId) + "\">"));

  const std::string plain = RenderTraceNotRetained(kTraceId, PageContext{});
  EXPECT_THAT(plain, HasSubstr("<h1>Trace not retained</h1>"));
  EXPECT_THAT(plain, HasSubstr("for a limited time"));
  EXPECT_THAT(plain, Not(HasSubstr("external-trace")));
  EXPECT_THAT(plain, HasSubstr("links.trace_url"));
}

TEST(TracePageTest, BadTraceIdPage) {
  for (std::string_view bad :
       {"", "xyz", "4bf92f3577b34da6a3ce929d0e0e473", "4bf92f3577b34da6a3ce929d0e0e47366",
        "4bf92f3577b34da6a3ce929d0e0e473g", "00000000000000000000000000000000"}) {
    EXPECT_FALSE(ParseTraceIdHex(bad).has_value()) << bad;
    const std::string page = RenderTraceNotRetained(bad, PageContext{});
    EXPECT_THAT(page, HasSubstr("<h1>Not a trace id</h1>")) << bad;
    EXPECT_THAT(page, Not(HasSubstr("Trace not retained"))) << bad;
  }
  const std::string page =
      RenderBadTraceId("<script>alert(1)</script>" + std::string(100, 'x'), PageContext{});
  ExpectSelfContained(page);
  EXPECT_THAT(page, Not(HasSubstr("<script>")));
  EXPECT_THAT(page, HasSubstr("&lt;script&gt;alert(1)&lt;/script&gt;xxx"));
  EXPECT_THAT(page, Not(HasSubstr(std::string(100, 'x'))));  // shortened

  const std::optional<TraceId> id = ParseTraceIdHex("4BF92F3577b34da6a3ce929d0e0e4736");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*id)[0], 0x4b);
  EXPECT_EQ((*id)[15], 0x36);
  EXPECT_EQ(TraceIdHex(*id), kTraceId);
}

TEST(TracePageTest, JsonRoundTrip) {
  TraceView trace = ThreeServiceTrace();
  trace.spans[5].operation = "GET /checkout?q=\"'&<script>alert(1)</script>";
  trace.spans[3].service = "cart\xff";  // not UTF-8: becomes U+FFFD, the JSON still parses
  trace.spans[4].service = "cart\xff";
  const std::string json = TraceJson(trace);
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(json, ec);
  ASSERT_FALSE(ec) << ec.message() << "\n" << json;
  const boost::json::object& root = parsed.as_object();
  EXPECT_EQ(root.at("trace_id").as_string(), kTraceId);
  EXPECT_EQ(root.at("start_time").as_string(), "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(root.at("start_unix_nano").as_string(), std::to_string(kStart));
  EXPECT_EQ(root.at("duration_nanos").to_number<uint64_t>(), 100u * kMs);
  const boost::json::object& summary = root.at("summary").as_object();
  EXPECT_EQ(summary.at("spans").to_number<int>(), 6);
  EXPECT_EQ(summary.at("services").to_number<int>(), 3);
  EXPECT_EQ(summary.at("errors").to_number<int>(), 1);
  EXPECT_EQ(summary.at("orphans").to_number<int>(), 1);

  const boost::json::array& spans = root.at("spans").as_array();
  ASSERT_EQ(spans.size(), 6u);
  const std::vector<std::pair<std::string, int>> expected = {
      {"00000000000000a1", 0}, {"00000000000000b1", 1}, {"00000000000000b2", 2},
      {"00000000000000c1", 1}, {"00000000000000c2", 2}, {"00000000000000f1", 0}};
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(spans[i].at("span_id").as_string(), expected[i].first) << i;
    EXPECT_EQ(spans[i].at("depth").to_number<int>(), expected[i].second) << i;
  }
  const boost::json::object& root_span = spans[0].as_object();
  EXPECT_TRUE(root_span.at("parent_span_id").is_null());
  EXPECT_EQ(root_span.at("service").as_string(), "frontend");
  EXPECT_EQ(root_span.at("operation").as_string(), "GET /checkout?q=\"'&<script>alert(1)</script>");
  EXPECT_EQ(root_span.at("kind").as_string(), "server");
  EXPECT_EQ(root_span.at("start_offset_nanos").to_number<int64_t>(), 0);
  EXPECT_EQ(root_span.at("duration_nanos").to_number<uint64_t>(), 100u * kMs);
  EXPECT_FALSE(root_span.at("error").as_bool());
  EXPECT_FALSE(root_span.at("orphan").as_bool());
  EXPECT_FALSE(root_span.contains("error_signature"));

  EXPECT_EQ(spans[1].at("service").as_string(), "cart\xef\xbf\xbd");
  const boost::json::object& charge = spans[3].as_object();
  EXPECT_EQ(charge.at("parent_span_id").as_string(), "00000000000000a1");
  EXPECT_EQ(charge.at("start_offset_nanos").to_number<int64_t>(), 30 * kMs);
  EXPECT_TRUE(charge.at("error").as_bool());
  const boost::json::object& signature = charge.at("error_signature").as_object();
  EXPECT_EQ(signature.at("id").as_string(), "00000000000abcde");
  EXPECT_EQ(signature.at("exception_type").as_string(), "TimeoutError");
  EXPECT_EQ(signature.at("message").as_string(), "deadline exceeded after 50ms");
  EXPECT_EQ(signature.at("top_frame").as_string(), "bank.Client.charge (bank.go:42)");
  EXPECT_TRUE(spans[5].at("orphan").as_bool());
  EXPECT_EQ(spans[5].at("kind").as_string(), "consumer");
}

TEST(TracePageTest, OneSpanAndZeroDurationTracesDoNotDivideByZero) {
  TraceView one;
  one.trace_id = std::string(kTraceId);
  one.start_unix_nano = kStart;
  one.duration_nanos = 5 * kMs;
  one.spans.push_back(MakeSpan("0000000000000001", "", "frontend", "GET /", 0, 5 * kMs));
  std::string page = RenderTracePage(one, PageContext{});
  std::vector<RenderedRow> rows = RowsOf(page);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_NEAR(rows[0].x, 0, 1e-9);
  EXPECT_NEAR(rows[0].width, 100, 1e-9);
  EXPECT_THAT(page, HasSubstr("1 span \xc2\xb7 1 service \xc2\xb7 0 errors \xc2\xb7 0 orphans"));

  TraceView zero = one;
  zero.duration_nanos = 0;
  zero.spans[0].duration_nanos = 0;
  zero.spans.push_back(MakeSpan("0000000000000002", "0000000000000001", "db", "SELECT", 0, 0));
  page = RenderTracePage(zero, PageContext{});
  ExpectSelfContained(page);
  rows = RowsOf(page);
  ASSERT_EQ(rows.size(), 2u);
  for (const RenderedRow& row : rows) {
    EXPECT_EQ(row.x, 0);
    EXPECT_EQ(row.width, 0);
    // A zero-width bar is drawn as a tick.
    EXPECT_THAT(row.html, HasSubstr("<line class=\"" + row.colour + "\" x1=\"0.000%\""));
  }
  EXPECT_THAT(page, HasSubstr("<span id=\"trace-duration\">0 ns</span>"));
  for (std::string_view bad : {"nan", "inf", "NaN", "INF"}) EXPECT_THAT(page, Not(HasSubstr(bad)));
  EXPECT_FALSE(boost::json::parse(TraceJson(zero)).as_object().empty());

  TraceView empty;
  empty.trace_id = std::string(kTraceId);
  page = RenderTracePage(empty, PageContext{});
  ExpectSelfContained(page);
  EXPECT_THAT(page, HasSubstr("no spans"));
  EXPECT_THAT(TraceJson(empty), HasSubstr("\"spans\":[]"));
}

TEST(TracePageTest, SpansOutsideTheTraceRangeStayInsideTheWaterfall) {
  // A producer's skewed clock: a span that starts before the trace and one that ends after it.
  TraceView trace;
  trace.trace_id = std::string(kTraceId);
  trace.duration_nanos = 100 * kMs;
  trace.spans.push_back(MakeSpan("0000000000000001", "", "a", "root", 0, 100 * kMs));
  trace.spans.push_back(
      MakeSpan("0000000000000002", "0000000000000001", "b", "early", -100 * kMs, 50 * kMs));
  trace.spans.push_back(
      MakeSpan("0000000000000003", "0000000000000001", "c", "late", 50 * kMs, 150 * kMs));
  const std::vector<RenderedRow> rows = RowsOf(RenderTracePage(trace, PageContext{}));
  ASSERT_EQ(rows.size(), 3u);
  // The range is -100 .. 200 ms (300 ms).
  EXPECT_NEAR(rows[0].x, 100.0 / 300 * 100, 0.001);
  EXPECT_NEAR(rows[0].width, 100.0 / 300 * 100, 0.001);
  EXPECT_EQ(rows[1].span_id, "0000000000000002");
  EXPECT_NEAR(rows[1].x, 0, 0.001);
  EXPECT_NEAR(rows[1].width, 50.0 / 300 * 100, 0.001);
  EXPECT_NEAR(rows[2].x, 150.0 / 300 * 100, 0.001);
  EXPECT_NEAR(rows[2].width, 150.0 / 300 * 100, 0.001);
}

TEST(TracePageTest, ParentLoopsAndDuplicateIdsRenderEverySpanOnce) {
  TraceView trace;
  trace.trace_id = std::string(kTraceId);
  trace.duration_nanos = 10 * kMs;
  trace.spans.push_back(MakeSpan("000000000000000a", "000000000000000b", "s", "a", 0, kMs));
  trace.spans.push_back(MakeSpan("000000000000000b", "000000000000000a", "s", "b", kMs, kMs));
  trace.spans.push_back(
      MakeSpan("000000000000000c", "000000000000000c", "s", "self", 2 * kMs, kMs));
  trace.spans.push_back(MakeSpan("000000000000000d", "", "s", "root", 3 * kMs, kMs));
  trace.spans.push_back(MakeSpan("000000000000000d", "", "s", "root again", 4 * kMs, kMs));
  const std::string page = RenderTracePage(trace, PageContext{});
  const std::vector<RenderedRow> rows = RowsOf(page);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].span_id, "000000000000000d");
  EXPECT_EQ(rows[1].span_id, "000000000000000d");
  EXPECT_EQ(rows[2].span_id, "000000000000000a");
  EXPECT_EQ(rows[2].classes, "span loop");
  EXPECT_EQ(rows[3].span_id, "000000000000000b");
  EXPECT_EQ(rows[3].depth, 1);
  EXPECT_EQ(rows[4].span_id, "000000000000000c");
  EXPECT_EQ(rows[4].classes, "span loop");
  EXPECT_THAT(rows[2].html, HasSubstr("parent loop"));
}

TEST(TracePageTest, LargeTraceIsCappedAndBounded) {
  // 2000 spans: a chain 1200 deep (no recursion limit) and 800 leaves under the root.
  TraceView trace;
  trace.trace_id = std::string(kTraceId);
  trace.start_unix_nano = kStart;
  trace.duration_nanos = 2000 * kMs;
  auto id = [](int i) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016x", i + 1);
    return std::string(buf);
  };
  for (int i = 0; i < 1200; ++i) {
    trace.spans.push_back(MakeSpan(id(i), i == 0 ? "" : id(i - 1), "svc" + std::to_string(i % 12),
                                   "op", i * kMs, (2000 - i) * kMs));
  }
  for (int i = 1200; i < 2000; ++i) {
    trace.spans.push_back(MakeSpan(id(i), id(0), "leaf", "op", i * kMs, kMs));
  }
  const std::string page = RenderTracePage(trace, PageContext{});
  ExpectSelfContained(page);
  const std::vector<RenderedRow> rows = RowsOf(page);
  ASSERT_EQ(rows.size(), kMaxRenderedSpans);
  EXPECT_EQ(rows[0].depth, 0);
  // Children by start time: the chain's second span (1 ms) before the leaves (>= 1200 ms).
  EXPECT_EQ(rows[999].depth, 999);
  EXPECT_THAT(rows[999].html, HasSubstr("<div class=\"label d15\">"));
  EXPECT_THAT(rows[999].html, HasSubstr("depth 999"));
  EXPECT_THAT(page, HasSubstr("<p class=\"more\" id=\"more-spans\">1000 more spans not shown"));
  EXPECT_THAT(page, HasSubstr("data-spans=\"2000\" data-services=\"13\""));
  EXPECT_LT(page.size(), 2'000'000u);
  // The JSON keeps every span.
  const boost::json::value json = boost::json::parse(TraceJson(trace));
  EXPECT_EQ(json.at("spans").as_array().size(), 2000u);
  EXPECT_EQ(json.at("spans").as_array()[1199].at("depth").to_number<int>(), 1199);
}

TEST(TracePageTest, ViewFromExemplarTrace) {
  pipeline::SeriesRegistry registry(10, 10);
  const auto frontend = registry.Resolve("frontend", "GET /checkout");
  const auto payment = registry.Resolve("payment", "Charge\xff");

  pipeline::ExemplarTrace trace;
  trace.trace_id = *ParseTraceIdHex(kTraceId);
  trace.start_unix_nano = kStart;
  trace.duration_nanos = 100 * kMs;
  trace.spans.push_back(pipeline::ExemplarSpan{.span_id = 0xa1,
                                               .parent_span_id = 0,
                                               .start_offset_nanos = 0,
                                               .duration_nanos = 100 * kMs,
                                               .series = frontend.series,
                                               .kind = SpanKind::kServer});
  trace.spans.push_back(pipeline::ExemplarSpan{.span_id = 0xfedcba9876543210,
                                               .parent_span_id = 0xa1,
                                               .start_offset_nanos = 30 * kMs,
                                               .duration_nanos = 60 * kMs,
                                               .signature = 0xabcde,
                                               .series = payment.series,
                                               .kind = SpanKind::kClient,
                                               .error = true});
  trace.spans.push_back(pipeline::ExemplarSpan{.span_id = 0xf1,
                                               .parent_span_id = 0x99,
                                               .start_offset_nanos = 92 * kMs,
                                               .duration_nanos = 8 * kMs,
                                               .signature = 0x777,  // not in the registry
                                               .series = 12345,     // unknown
                                               .kind = SpanKind::kConsumer,
                                               .error = true,
                                               .orphan = true});

  pipeline::SignatureInfo info;
  info.id = 0xabcde;
  info.exception_type = "TimeoutError";
  info.normalized_message = "deadline exceeded after <num>ms";
  info.sample_message = "deadline exceeded after 50ms";
  info.top_frame = "bank.go:42";
  pipeline::SignatureInfo other;
  other.id = 0x1;
  other.exception_type = "Other";
  const TraceView view = TraceViewOf(trace, registry, {other, info});

  EXPECT_EQ(view.trace_id, kTraceId);
  EXPECT_EQ(view.start_unix_nano, kStart);
  EXPECT_EQ(view.duration_nanos, 100u * kMs);
  ASSERT_EQ(view.spans.size(), 3u);
  EXPECT_EQ(view.spans[0].span_id, "00000000000000a1");
  EXPECT_EQ(view.spans[0].parent_span_id, "");
  EXPECT_EQ(view.spans[0].service, "frontend");
  EXPECT_EQ(view.spans[0].operation, "GET /checkout");
  EXPECT_EQ(view.spans[0].kind, "server");
  EXPECT_EQ(view.spans[0].signature, "");
  EXPECT_FALSE(view.spans[0].error);

  const TraceSpanView& charge = view.spans[1];
  EXPECT_EQ(charge.span_id, "fedcba9876543210");
  EXPECT_EQ(charge.parent_span_id, "00000000000000a1");
  EXPECT_EQ(charge.service, "payment");
  EXPECT_EQ(charge.operation, "Charge\xef\xbf\xbd");
  EXPECT_EQ(charge.kind, "client");
  EXPECT_EQ(charge.start_offset_nanos, 30 * kMs);
  EXPECT_EQ(charge.duration_nanos, 60u * kMs);
  EXPECT_TRUE(charge.error);
  EXPECT_EQ(charge.signature, "00000000000abcde");
  EXPECT_EQ(charge.exception_type, "TimeoutError");
  EXPECT_EQ(charge.message, "deadline exceeded after 50ms");
  EXPECT_EQ(charge.top_frame, "bank.go:42");

  const TraceSpanView& orphan = view.spans[2];
  EXPECT_EQ(orphan.service, "unknown");
  EXPECT_EQ(orphan.operation, "unknown");
  EXPECT_EQ(orphan.kind, "consumer");
  EXPECT_TRUE(orphan.orphan);
  EXPECT_EQ(orphan.signature, "0000000000000777");
  EXPECT_EQ(orphan.exception_type, "");

  // The callback form, and the normalized message when no sample was kept.
  int calls = 0;
  const TraceView by_callback =
      TraceViewOf(trace, registry, [&](uint64_t id) -> std::optional<SignatureText> {
        ++calls;
        if (id != 0x777) return std::nullopt;
        return SignatureText{.exception_type = "E", .message = "m", .top_frame = "f"};
      });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(by_callback.spans[1].exception_type, "");
  EXPECT_EQ(by_callback.spans[2].exception_type, "E");
  info.sample_message.clear();
  EXPECT_EQ(TraceViewOf(trace, registry, {info}).spans[1].message,
            "deadline exceeded after <num>ms");

  // And it renders.
  const std::string page = RenderTracePage(view, PageContext{});
  EXPECT_EQ(RowsOf(page).size(), 3u);
  EXPECT_THAT(page, HasSubstr("deadline exceeded after 50ms"));
}

TEST(TracePageTest, HumanUnitsAndTimes) {
  EXPECT_EQ(HumanDuration(0), "0 ns");
  EXPECT_EQ(HumanDuration(999), "999 ns");
  EXPECT_EQ(HumanDuration(1'000), "1.00 \xc2\xb5s");
  EXPECT_EQ(HumanDuration(12'345), "12.3 \xc2\xb5s");
  EXPECT_EQ(HumanDuration(999'499), "999 \xc2\xb5s");
  EXPECT_EQ(HumanDuration(999'500), "1.00 ms");
  EXPECT_EQ(HumanDuration(250'000'000), "250 ms");
  EXPECT_EQ(HumanDuration(1'500'000'000), "1.50 s");
  EXPECT_EQ(HumanDuration(12'345'678'901), "12.3 s");
  EXPECT_EQ(HumanDuration(3'600'000'000'000), "3600 s");
  EXPECT_EQ(IsoTimeMillis(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(IsoTimeMillis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(IsoTimeMillis(kStart), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(IsoTimeMillis(951'782'400'000'000'000), "2000-02-29T00:00:00.000Z");
}

// The stylesheet is allowed by its hash in the page CSP; a changed stylesheet needs a new hash.
TEST(TracePageTest, ContentSecurityPolicyHashMatchesTheStylesheet) {
  const std::string_view css = PageStylesheet();
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(css.data()), css.size(), digest);
  std::string base64(4 * ((SHA256_DIGEST_LENGTH + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()), digest, SHA256_DIGEST_LENGTH);
  EXPECT_THAT(std::string(kPageContentSecurityPolicy),
              HasSubstr("style-src 'sha256-" + base64 + "'"));
  EXPECT_THAT(std::string(kPageContentSecurityPolicy), HasSubstr("default-src 'none'"));
  EXPECT_THAT(std::string(kPageContentSecurityPolicy), Not(HasSubstr("unsafe")));
}

}  // namespace
}  // namespace traceslo::web
