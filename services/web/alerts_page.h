#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "services/web/trace_page.h"
#include "traceslo/alerting/alert_history.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/router.h"

namespace traceslo::web {

// The alerts page (/alerts) and the JSON of GET /api/v1/alerts: pure rendering from an
// AlertsView (the router's open groups and silences, and the recent alert history). Labels,
// annotations, cause titles and sample messages carry span data: escaped on output.

// One state change of the alert history, its causes decoded.
struct AlertHistoryView {
  int64_t id = 0;
  std::string service;
  std::string slo;
  std::string severity;
  bool no_data = false;
  std::string from;
  std::string to;
  int64_t at_unix_nano = 0;
  double burn_rate_long = 0;
  double burn_rate_short = 0;
  double threshold_burn_rate = 0;
  std::vector<alerting::Cause> causes;
};

// The history entry with its causes_json decoded (a cause that does not decode is left out).
AlertHistoryView AlertHistoryViewOf(const alerting::AlertHistoryEntry& entry);

// The recent history on the page and in the JSON: the newest this many.
inline constexpr size_t kMaxRecentAlerts = 100;
// Exemplar trace links shown per cause.
inline constexpr size_t kMaxCauseTraces = 5;

struct AlertsView {
  std::vector<alerting::RouterGroupView> groups;  // open groups (AlertRouter::Snapshot)
  std::vector<alerting::SilenceStatus> silences;  // AlertRouter::Silences
  // The recent history, newest first (at most kMaxRecentAlerts shown). Not available: no history
  // is wired in; history_error set: reading it failed.
  bool history_available = false;
  std::string history_error;
  std::vector<AlertHistoryView> history;
};

// What the alerts page needs beyond the view.
struct AlertsPageContext {
  PageContext page;
  bool write_token_required = false;  // web.api_token is set: the curl lines carry the header
};

// The alerts page, a complete HTML5 document (serve with kPageContentType and
// kPageContentSecurityPolicy, status 200): open groups (section class="group" with
// data-group-key, data-signature, data-acked, data-silenced) with their alerts (li class="alert"
// with data-fingerprint, data-state, data-silenced) and causes (exemplar links to /traces/{id}),
// the silences, and the recent history (tr class="history"). Changing ack and silence state takes
// the API: the page shows the curl lines (it runs no scripts and submits no forms).
std::string RenderAlertsPage(const AlertsView& view, const AlertsPageContext& context);

// The JSON of GET /api/v1/alerts: {"groups": [...], "recent": [...], "recentAvailable": bool,
// "recentError"?: "..."}. Groups and alerts as they always were (receiver, groupKey, labels,
// alerts [fingerprint, labels, annotations, status, startsAt, endsAt, inhibited, silencedBy,
// notified, causes], notified, sequence, lastNotifiedAt, acknowledged, acknowledgedAt).
std::string AlertsJson(const AlertsView& view, std::string_view external_url);

}  // namespace traceslo::web
