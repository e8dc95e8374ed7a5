#include "traceslo/web/api.h"

#include <openssl/crypto.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>

#include "services/web/alerts_page.h"
#include "services/web/html.h"
#include "services/web/signatures_page.h"
#include "services/web/silence_request.h"
#include "services/web/slo_page.h"
#include "services/web/trace_page.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/common/time_format.h"
#include "traceslo/config/config.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// A serialized JSON document.
http::Response JsonBody(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.body += '\n';
  return r;
}

http::Response Json(int status, const json::value& value) {
  return JsonBody(status, json::serialize(value));
}

http::Response Error(int status, std::string_view message) {
  return Json(status, json::object{{"error", message}});
}

http::Response Page(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.content_type = std::string(kPageContentType);
  r.headers.emplace_back("Content-Security-Policy", std::string(kPageContentSecurityPolicy));
  r.body = std::move(body);
  return r;
}

json::object SilenceJson(const alerting::SilenceStatus& s) {
  json::array matchers;
  for (const alerting::SilenceMatcher& m : s.silence.matchers) {
    matchers.push_back(json::object{{"name", m.name}, {"value", m.value}, {"isEqual", m.equal}});
  }
  return json::object{{"id", s.silence.id},
                      {"matchers", std::move(matchers)},
                      {"startsAt", FormatRfc3339(s.silence.starts_at_unix_nano)},
                      {"endsAt", FormatRfc3339(s.silence.ends_at_unix_nano)},
                      {"createdBy", s.silence.created_by},
                      {"comment", s.silence.comment},
                      {"createdAt", FormatRfc3339(s.silence.created_at_unix_nano)},
                      {"status", json::object{{"state", alerting::SilenceStateName(s.state)}}}};
}

// A string member of `object`, or an error naming it.
absl::Status ReadString(const json::object& object, std::string_view key, bool required,
                        std::string& out) {
  const json::value* v = object.if_contains(key);
  if (v == nullptr || v->is_null()) {
    return required ? absl::InvalidArgumentError(std::string(key) + " is required")
                    : absl::OkStatus();
  }
  if (!v->is_string()) return absl::InvalidArgumentError(std::string(key) + " must be a string");
  out = std::string(v->get_string());
  return absl::OkStatus();
}

absl::Status ReadTime(const json::object& object, std::string_view key, int64_t& out) {
  std::string text;
  if (absl::Status s = ReadString(object, key, false, text); !s.ok() || text.empty()) return s;
  std::optional<int64_t> t = ParseRfc3339(text);
  if (!t) {
    return absl::InvalidArgumentError(std::string(key) +
                                      " must be an RFC 3339 time like 2026-01-02T15:04:05Z");
  }
  out = *t;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<alerting::Silence> ParseSilenceRequest(std::string_view body, int64_t now) {
  boost::system::error_code ec;
  json::parse_options limits;
  limits.max_depth = 8;
  json::value doc = json::parse(body, ec, {}, limits);
  if (ec) return absl::InvalidArgumentError("body is not JSON: " + ec.message());
  if (!doc.is_object()) return absl::InvalidArgumentError("body must be a JSON object");
  const json::object& o = doc.get_object();
  for (const auto& member : o) {
    const std::string_view k = member.key();
    if (k != "matchers" && k != "startsAt" && k != "endsAt" && k != "duration" &&
        k != "createdBy" && k != "comment" && k != "id") {
      return absl::InvalidArgumentError("unknown field " + json::serialize(json::value(k)) +
                                        " (matchers, startsAt, endsAt, duration, createdBy, "
                                        "comment)");
    }
  }
  alerting::Silence silence;
  const json::value* matchers = o.if_contains("matchers");
  if (matchers == nullptr || !matchers->is_array()) {
    return absl::InvalidArgumentError("matchers must be a list of {name, value, isEqual}");
  }
  if (matchers->get_array().size() > alerting::kMaxSilenceMatchers) {
    return absl::InvalidArgumentError("at most " + std::to_string(alerting::kMaxSilenceMatchers) +
                                      " matchers");
  }
  for (size_t i = 0; i < matchers->get_array().size(); ++i) {
    const json::value& m = matchers->get_array()[i];
    const std::string where = "matchers[" + std::to_string(i) + "]";
    if (!m.is_object()) return absl::InvalidArgumentError(where + " must be an object");
    alerting::SilenceMatcher matcher;
    for (auto [key, out] : {std::pair{"name", &matcher.name}, {"value", &matcher.value}}) {
      if (absl::Status s = ReadString(m.get_object(), key, true, *out); !s.ok()) {
        return absl::InvalidArgumentError(where + "." + std::string(s.message()));
      }
    }
    if (const json::value* regex = m.get_object().if_contains("isRegex");
        regex != nullptr && !(regex->is_bool() && !regex->get_bool())) {
      return absl::InvalidArgumentError(where + ": regular expression matchers are not supported");
    }
    if (const json::value* eq = m.get_object().if_contains("isEqual"); eq != nullptr) {
      if (!eq->is_bool()) {
        return absl::InvalidArgumentError(where + ".isEqual must be true or false");
      }
      matcher.equal = eq->get_bool();
    }
    silence.matchers.push_back(std::move(matcher));
  }
  silence.starts_at_unix_nano = now;
  if (absl::Status s = ReadTime(o, "startsAt", silence.starts_at_unix_nano); !s.ok()) return s;
  if (silence.starts_at_unix_nano < now) silence.starts_at_unix_nano = now;
  const bool starts_at_is_now = silence.starts_at_unix_nano == now;
  std::string duration;
  if (absl::Status s = ReadString(o, "duration", false, duration); !s.ok()) return s;
  const bool has_ends = o.if_contains("endsAt") != nullptr && !o.at("endsAt").is_null();
  if (has_ends == !duration.empty()) {
    return absl::InvalidArgumentError("set exactly one of endsAt and duration");
  }
  if (has_ends) {
    if (absl::Status s = ReadTime(o, "endsAt", silence.ends_at_unix_nano); !s.ok()) return s;
  } else {
    absl::StatusOr<std::chrono::milliseconds> d = config::ParseDuration(duration);
    if (!d.ok()) {
      return absl::InvalidArgumentError("duration: " + std::string(d.status().message()));
    }
    // Times are int64 nanoseconds: a longer silence would overflow the end (undefined behaviour).
    constexpr int64_t kNanosPerMilli = 1'000'000;
    if (d->count() >
        (std::numeric_limits<int64_t>::max() - silence.starts_at_unix_nano) / kNanosPerMilli) {
      return absl::InvalidArgumentError("duration " + json::serialize(json::value(duration)) +
                                        " is too long (a silence must end before the year 2262)");
    }
    silence.ends_at_unix_nano = silence.starts_at_unix_nano + d->count() * kNanosPerMilli;
  }
  if (silence.ends_at_unix_nano <= silence.starts_at_unix_nano) {
    return absl::InvalidArgumentError(
        "endsAt (" + FormatRfc3339(silence.ends_at_unix_nano) + ") must be after startsAt (" +
        FormatRfc3339(silence.starts_at_unix_nano) + (starts_at_is_now ? ", now" : "") + ")");
  }
  if (absl::Status s = ReadString(o, "createdBy", true, silence.created_by); !s.ok()) return s;
  if (absl::Status s = ReadString(o, "comment", false, silence.comment); !s.ok()) return s;
  if (absl::Status s = alerting::ValidateSilence(silence); !s.ok()) return s;
  return silence;
}

namespace {

bool EqualsAsciiCaseInsensitive(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

int StatusCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    default:
      return 503;
  }
}

}  // namespace

ApiHandler::ApiHandler(ApiOptions options, ApiSources sources)
    : options_(std::move(options)), sources_(std::move(sources)) {}

bool ApiHandler::Authorized(const http::Request& request) const {
  if (options_.api_token.empty()) return true;
  std::string_view header = request.Header("authorization");
  // The scheme is case-insensitive (RFC 9110 section 11.1); the token is compared exactly.
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() != kBearer.size() + options_.api_token.size() ||
      !EqualsAsciiCaseInsensitive(header.substr(0, kBearer.size()), kBearer)) {
    return false;
  }
  header.remove_prefix(kBearer.size());
  return CRYPTO_memcmp(header.data(), options_.api_token.data(), header.size()) == 0;
}

namespace {

constexpr std::array<std::string_view, 12> kEndpointNames = {
    "trace_page",    "trace",       "alerts",          "ack",  "silences",   "silence",
    "overview_page", "alerts_page", "signatures_page", "slos", "signatures", "unknown"};

size_t EndpointOf(std::string_view path) {
  if (path.starts_with("/traces/")) return 0;
  if (path.starts_with("/api/v1/traces/")) return 1;
  if (path == "/api/v1/alerts") return 2;
  if (path.starts_with("/api/v1/alerts/")) return 3;
  if (path == "/api/v1/silences") return 4;
  if (path.starts_with("/api/v1/silences/")) return 5;
  if (path == "/") return 6;
  if (path == "/alerts") return 7;
  if (path == "/signatures") return 8;
  if (path == "/api/v1/slos") return 9;
  if (path == "/api/v1/signatures") return 10;
  return 11;
}

}  // namespace

std::optional<http::Response> ApiHandler::Handle(const http::Request& request) {
  std::optional<http::Response> response = Route(request);
  if (response) {
    size_t code = kCodes.size() - 1;
    for (size_t i = 0; i + 1 < kCodes.size(); ++i) {
      if (kCodes[i] == response->status) code = i;
    }
    requests_[EndpointOf(request.Path())][code].fetch_add(1, std::memory_order_relaxed);
  }
  return response;
}

std::vector<prometheus::MetricFamily> ApiHandler::Collect() const {
  prometheus::MetricFamily family{"traceslo_api_requests_total",
                                  "Answers of the alert, silence and trace API and pages, by "
                                  "endpoint and HTTP status (code 0: any other).",
                                  prometheus::MetricType::Counter,
                                  {}};
  for (size_t e = 0; e < kEndpoints; ++e) {
    for (size_t c = 0; c < kCodes.size(); ++c) {
      const uint64_t n = requests_[e][c].load(std::memory_order_relaxed);
      if (n == 0 && kCodes[c] != 200) continue;  // the 200s always, so rates have a series
      prometheus::ClientMetric metric;
      metric.label = {{"endpoint", std::string(kEndpointNames[e])},
                      {"code", std::to_string(kCodes[c])}};
      metric.counter.value = static_cast<double>(n);
      family.metric.push_back(std::move(metric));
    }
  }
  return {std::move(family)};
}

std::optional<http::Response> ApiHandler::Route(const http::Request& request) {
  const std::string_view path = request.Path();
  const bool read = request.method == "GET" || request.method == "HEAD";
  // RFC 9110 section 15.5.6: a 405 names the methods the resource allows.
  auto method_not_allowed = [](std::string_view allow) {
    http::Response r = Error(405, "method not allowed (" + std::string(allow) + ")");
    r.headers.emplace_back("Allow", std::string(allow));
    return r;
  };
  // RFC 9110 section 15.5.2: a 401 carries the scheme to use.
  auto unauthorized = [] {
    http::Response r = Error(401, "a bearer token (web.api_token) is required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  };

  if (path.starts_with("/traces/")) {
    if (!read) return method_not_allowed("GET, HEAD");
    return TracePage(path.substr(8), false);
  }
  if (path == "/" || path == "/alerts" || path == "/signatures") {
    if (!read) return method_not_allowed("GET, HEAD");
    if (path == "/") return Overview(false);
    if (path == "/alerts") return Alerts(false);
    return SignaturesList(false);
  }
  if (!path.starts_with("/api/v1/")) return std::nullopt;
  const std::string_view rest = path.substr(8);
  if (rest.starts_with("traces/")) {
    if (!read) return method_not_allowed("GET, HEAD");
    return TracePage(rest.substr(7), true);
  }
  if (rest == "alerts") {
    if (!read) return method_not_allowed("GET, HEAD");
    return Alerts(true);
  }
  if (rest == "slos") {
    if (!read) return method_not_allowed("GET, HEAD");
    return Overview(true);
  }
  if (rest == "signatures") {
    if (!read) return method_not_allowed("GET, HEAD");
    return SignaturesList(true);
  }
  // alerts/{fingerprint}/ack; "alerts/ack" has no fingerprint (and would overlap the suffix).
  if (rest.size() > 11 && rest.starts_with("alerts/") && rest.ends_with("/ack")) {
    if (request.method != "POST") return method_not_allowed("POST");
    if (!Authorized(request)) return unauthorized();
    return Ack(rest.substr(7, rest.size() - 7 - 4));
  }
  if (rest == "silences") {
    if (read) return Silences();
    if (request.method != "POST") return method_not_allowed("GET, HEAD, POST");
    if (!Authorized(request)) return unauthorized();
    if (request.body_too_large) return Error(413, "body too large");
    return AddSilence(request.body);
  }
  if (rest.starts_with("silences/")) {
    if (request.method != "DELETE") return method_not_allowed("DELETE");
    if (!Authorized(request)) return unauthorized();
    return ExpireSilence(rest.substr(9));
  }
  return Error(404, "no such endpoint");
}

PageContext ApiHandler::Context() const {
  return PageContext{.external_url = options_.external_url,
                     .trace_url = options_.trace_url,
                     .exemplar_retention = options_.exemplar_retention};
}

http::Response ApiHandler::TracePage(std::string_view id, bool json) const {
  const PageContext context = Context();
  const std::optional<TraceId> trace_id = ParseTraceIdHex(id);
  if (!trace_id) {
    return json ? Error(400, "a trace id is 32 hex digits")
                : Page(400, RenderBadTraceId(id, context));
  }
  pipeline::ExemplarRef trace = sources_.store.FindTrace(*trace_id);
  if (!trace && sources_.pinned_trace) trace = sources_.pinned_trace(*trace_id);
  std::optional<TraceView> view;
  if (trace) {
    view = TraceViewOf(*trace, sources_.series, sources_.store.Signatures());
  } else if (sources_.kept_trace) {
    absl::StatusOr<std::optional<storage::KeptTrace>> kept = sources_.kept_trace(*trace_id);
    if (!kept.ok()) {
      const std::string message = "trace " + TraceIdHex(*trace_id) +
                                  " could not be read: " + std::string(kept.status().message());
      if (json) return Error(500, message);
      return Page(500, RenderTraceUnreadable(TraceIdHex(*trace_id), message, context));
    }
    if (*kept) view = TraceViewOf(**kept);
  }
  if (!view) {
    return json ? Error(404, "trace " + TraceIdHex(*trace_id) + " is not retained")
                : Page(404, RenderTraceNotRetained(TraceIdHex(*trace_id), context));
  }
  if (json) {
    http::Response r;
    r.content_type = "application/json";
    r.body = TraceJson(*view);
    return r;
  }
  return Page(200, RenderTracePage(*view, context));
}

http::Response ApiHandler::Alerts(bool json) const {
  const int64_t now = UnixNanos(sources_.clock.Now());
  AlertsView view;
  view.groups = sources_.router.Snapshot(now);
  if (!json) view.silences = sources_.router.Silences(now);
  if (sources_.recent_alerts) {
    view.history_available = true;
    absl::StatusOr<std::vector<alerting::AlertHistoryEntry>> recent =
        sources_.recent_alerts(kMaxRecentAlerts);
    if (recent.ok()) {
      view.history.reserve(recent->size());
      for (const alerting::AlertHistoryEntry& entry : *recent) {
        view.history.push_back(AlertHistoryViewOf(entry));
      }
    } else {
      view.history_error = std::string(recent.status().message());
      if (view.history_error.empty()) view.history_error = recent.status().ToString();
    }
  }
  if (json) return JsonBody(200, AlertsJson(view, options_.external_url));
  return Page(200, RenderAlertsPage(view, AlertsPageContext{.page = Context(),
                                                            .write_token_required =
                                                                !options_.api_token.empty()}));
}

http::Response ApiHandler::Overview(bool json) const {
  SloOverview overview;
  if (sources_.evaluator != nullptr) {
    overview = SloOverviewOf(*sources_.evaluator);
  } else if (json) {
    return Error(503, "no SLO evaluator is wired into this server");
  }
  if (json) return JsonBody(200, SlosJson(overview));
  return Page(200, RenderSloPage(overview, Context()));
}

http::Response ApiHandler::SignaturesList(bool json) const {
  const SignaturesView view = SignaturesViewOf(sources_.store.Signatures(), sources_.series);
  if (json) return JsonBody(200, SignaturesJson(view, options_.external_url));
  return Page(200, RenderSignaturesPage(view, Context()));
}

http::Response ApiHandler::Ack(std::string_view fingerprint) {
  absl::Status status =
      sources_.router.Ack(std::string(fingerprint), UnixNanos(sources_.clock.Now()));
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kNotFound) {
      return Error(404, "no open group holds a firing alert with fingerprint " +
                            json::serialize(json::value(fingerprint)));
    }
    return Error(StatusCodeOf(status), std::string(status.message()));
  }
  return Json(200, json::object{{"acknowledged", fingerprint}});
}

http::Response ApiHandler::Silences() const {
  json::array out;
  for (const alerting::SilenceStatus& s :
       sources_.router.Silences(UnixNanos(sources_.clock.Now()))) {
    out.push_back(SilenceJson(s));
  }
  return Json(200, out);
}

http::Response ApiHandler::AddSilence(const std::string& body) {
  const int64_t now = UnixNanos(sources_.clock.Now());
  absl::StatusOr<alerting::Silence> silence = ParseSilenceRequest(body, now);
  if (!silence.ok()) return Error(400, std::string(silence.status().message()));
  absl::StatusOr<alerting::Silence> saved = sources_.router.AddSilence(*std::move(silence), now);
  if (!saved.ok()) {
    return Error(StatusCodeOf(saved.status()), std::string(saved.status().message()));
  }
  return Json(200, json::object{{"silenceID", saved->id}});
}

http::Response ApiHandler::ExpireSilence(std::string_view id) {
  absl::Status status =
      sources_.router.ExpireSilence(std::string(id), UnixNanos(sources_.clock.Now()));
  if (status.code() == absl::StatusCode::kNotFound) {
    return Error(404, "no silence with id " + json::serialize(json::value(id)));
  }
  if (!status.ok()) return Error(StatusCodeOf(status), std::string(status.message()));
  return Json(200, json::object{{"expired", id}});
}

}  // namespace traceslo::web
