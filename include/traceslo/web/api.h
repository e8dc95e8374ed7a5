#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "traceslo/alerting/alert_history.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/clock.h"
#include "traceslo/http/server.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/storage/exemplar_store.h"

namespace traceslo::web {

struct PageContext;  // services/web/trace_page.h

struct ApiOptions {
  std::string api_token;     // web.api_token: required by the write endpoints; empty: none
  std::string external_url;  // web.external_url: links on pages and in JSON
  std::string trace_url;     // links.trace_url: the external trace viewer; empty: none
  std::chrono::milliseconds exemplar_retention{0};  // said on the "not retained" page
};

// What the API reads and changes. Everything is borrowed and must outlive the handler. The
// sources after `router` are optional: a page whose source is absent says so.
struct ApiSources {
  const Clock& clock;
  const pipeline::SeriesRegistry& series;
  const pipeline::SliStore& store;
  // Traces kept beyond the store's exemplar retention because a notification links them
  // (may be empty).
  std::function<pipeline::ExemplarRef(const TraceId&)> pinned_trace;
  alerting::AlertRouter& router;
  // The SLO overview (/) and /api/v1/slos; null: no evaluator (the page says so, the JSON is 503).
  const slo::Evaluator* evaluator = nullptr;
  // The newest `limit` entries of the alert history, newest first (SqliteAlertHistory::Recent),
  // for /alerts and /api/v1/alerts; empty: no history is shown. An error is shown, not failed on.
  std::function<absl::StatusOr<std::vector<alerting::AlertHistoryEntry>>(size_t limit)>
      recent_alerts;
  // Traces kept in SQLite (storage::ExemplarStore::Find): alert-linked ones and the latest slow
  // and error trace per service, asked when neither the SLI store nor pinned_trace has the
  // trace; empty: none. An error (a corrupt row, SQLite down) is a 500, not "not retained".
  std::function<absl::StatusOr<std::optional<storage::KeptTrace>>(const TraceId&)> kept_trace;
};

// The pages and the API of the web port:
//   GET    /                               the SLO overview page
//   GET    /alerts                         the alerts page: open groups, silences, history
//   GET    /signatures                     the error signatures page
//   GET    /traces/{trace_id}              the exemplar trace page (404 "not retained", 400)
//   GET    /api/v1/slos                    the SLO overview as JSON (503 without an evaluator)
//   GET    /api/v1/signatures              the error signatures as JSON
//   GET    /api/v1/traces/{trace_id}       the same as JSON
//   GET    /api/v1/alerts                  open alert groups with their alerts and causes, and
//                                          the recent alert history
//   POST   /api/v1/alerts/{fingerprint}/ack
//   GET    /api/v1/silences
//   POST   /api/v1/silences                {matchers: [{name, value, isEqual}], startsAt?,
//                                           endsAt | duration, createdBy, comment}
//   DELETE /api/v1/silences/{id}
// Write endpoints need `Authorization: Bearer <web.api_token>` when a token is set (401
// otherwise). Bad bodies get 400 with {"error": "..."}; unknown ids 404. Thread-safe.
//
// Pages and their JSON take GET and HEAD only (405 otherwise). Pages are served with
// kPageContentSecurityPolicy (services/web/html.h): no scripts, no assets from elsewhere.
//
// Counts every answer in traceslo_api_requests_total{endpoint, code} (endpoint: trace_page,
// trace, alerts, ack, silences, silence, overview_page, alerts_page, signatures_page, slos,
// signatures, unknown; code: the HTTP status), so bad bodies and refused tokens show on a
// dashboard.
class ApiHandler final : public prometheus::Collectable {
 public:
  ApiHandler(ApiOptions options, ApiSources sources);

  // The response for /, /alerts, /signatures and paths under /traces/ or /api/v1/, nullopt for
  // any other path.
  std::optional<http::Response> Handle(const http::Request& request);

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  static constexpr size_t kEndpoints = 12;
  static constexpr std::array<int, 10> kCodes = {200, 400, 401, 404, 405, 413, 429, 500, 503, 0};
  std::optional<http::Response> Route(const http::Request& request);

  PageContext Context() const;
  http::Response TracePage(std::string_view id, bool json) const;
  http::Response Alerts(bool json) const;
  http::Response Overview(bool json) const;
  http::Response SignaturesList(bool json) const;
  http::Response Ack(std::string_view fingerprint);
  http::Response Silences() const;
  http::Response AddSilence(const std::string& body);
  http::Response ExpireSilence(std::string_view id);
  bool Authorized(const http::Request& request) const;

  const ApiOptions options_;
  ApiSources sources_;
  // [endpoint][index in kCodes]; code 0 counts any other status.
  std::array<std::array<std::atomic<uint64_t>, kCodes.size()>, kEndpoints> requests_{};
};

}  // namespace traceslo::web
