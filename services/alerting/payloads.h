#pragma once

// What each receiver is sent, as pure functions of a notification (no I/O, no clock): the HTTP
// notifiers and the tests share them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

// RFC 3339 in UTC with the fraction's trailing zeros dropped, as Go's time.RFC3339Nano (and so
// Alertmanager) writes times: "2023-11-14T22:13:20.5Z". 0 gives Go's zero time,
// "0001-01-01T00:00:00Z".
std::string FormatTime(int64_t unix_nano);

// Where a trace opens: the built-in page and, with links.trace_url, the external viewer.
struct TraceLink {
  std::string trace_id;
  std::string url;           // external_url + "/traces/" + trace_id
  std::string external_url;  // trace_url with {trace_id} replaced; empty without one
};
TraceLink LinkTrace(std::string_view external_url, std::string_view trace_url,
                    std::string_view trace_id);

// The group's causes: each (kind, id) once, with the largest count any alert reported, most bad
// events first.
std::vector<Cause> MergedCauses(const Notification& notification);

// "[FIRING:2] <summary>" / "[RESOLVED] <summary>": the common summary annotation, else the
// common service and slo labels, else the group labels.
std::string Title(const Notification& notification);

// The alert's generator_url, else external_url + "/alerts".
std::string GeneratorUrl(const Notification& notification, const Alert& alert);

// 64 hex digits of SHA-256 (PagerDuty's dedup_key, as Alertmanager computes it).
std::string GroupKeyHash(std::string_view group_key);

// Alertmanager's webhook payload, version 4, field for field, plus a "traceslo" object with the
// notification id, its sequence and the causes with their exemplar links.
std::string WebhookPayload(const Notification& notification, std::string_view trace_url);

// A Slack incoming-webhook message: a text fallback and blocks (title, summary, each cause with
// its signature, sample message and exemplar links, a context line).
std::string SlackPayload(const Notification& notification, std::string_view trace_url);

// A PagerDuty Events API v2 event: trigger while the group fires (summary, severity critical for
// page and warning otherwise, source, custom_details, links to exemplar traces), resolve when it
// resolved; dedup_key = GroupKeyHash(group key).
std::string PagerDutyPayload(const Notification& notification, std::string_view routing_key,
                             std::string_view trace_url);

// Alertmanager's POST /api/v2/alerts body: one postable alert per alert (labels, annotations plus
// traceslo_cause / traceslo_trace_url, startsAt, endsAt for resolved alerts, generatorURL).
std::string AlertmanagerPayload(const Notification& notification, std::string_view trace_url);

// Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)). The
// key is the base64-decoded part after "whsec_" when `secret` has that prefix, else its bytes.
std::string StandardWebhookSignature(std::string_view secret, std::string_view id,
                                     int64_t timestamp_seconds, std::string_view body);

}  // namespace traceslo::alerting
