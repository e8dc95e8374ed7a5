#pragma once

// The values that flow from the alert router to the notifiers: alerts with their causes, and
// notifications (one group's alerts at one moment, for one receiver). Plain data, copyable,
// no behaviour beyond stable identities.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::alerting {

// Sorted by name, so payloads and fingerprints are stable.
using Labels = std::map<std::string, std::string>;

// What explains a firing alert (attached by the evaluator from the alert's short window).
struct Cause {
  enum class Kind { kSignature, kSlowOperation, kPropagationBreak };
  Kind kind = Kind::kSignature;
  std::string id;     // signature id (16 hex digits), operation name, or service name
  std::string title;  // exception type and normalized message / operation / service
  std::string sample_message;
  uint64_t count = 0;                  // bad events it accounts for in the short window
  double share = 0;                    // of the short window's bad events, 0..1
  std::vector<std::string> trace_ids;  // exemplar traces, 32 hex digits, at most 3
};

// A cause kind as JSON names it (the alert history, the receivers' payloads, the API):
// "signature", "slow_operation" or "propagation_break".
constexpr std::string_view CauseKindName(Cause::Kind kind) {
  switch (kind) {
    case Cause::Kind::kSignature:
      return "signature";
    case Cause::Kind::kSlowOperation:
      return "slow_operation";
    case Cause::Kind::kPropagationBreak:
      return "propagation_break";
  }
  return "signature";
}

// One alert as a receiver sees it: identified by its labels.
struct Alert {
  Labels labels;       // alertname, service, slo, severity, signature (if any), rule labels
  Labels annotations;  // summary, description, runbook_url, ...
  bool firing = true;  // false: resolved
  int64_t starts_at_unix_nano = 0;
  int64_t ends_at_unix_nano = 0;  // when it resolved; 0 while firing
  std::vector<Cause> causes;
  // Where this alert is shown in traceslo (Alertmanager's generatorURL); empty: the alerts page,
  // Notification::external_url + "/alerts".
  std::string generator_url;
};

// Alertmanager's fingerprint: FNV-1a (64 bit) over the sorted labels, each name and value
// followed by a 0xff byte, as 16 hex digits; the same value Alertmanager shows for these labels.
std::string Fingerprint(const Labels& labels);

// One group's state at one moment, for one receiver: what a webhook/Slack/PagerDuty/Alertmanager
// call carries. `id` is the same on every delivery attempt (idempotency key, notification id
// header); `sequence` increases per (group, receiver), so a receiver never gets an older state of a
// group after a newer one.
struct Notification {
  std::string id;
  std::string receiver;
  std::string group_key;  // Alertmanager style: {}:{service="payment",signature="…"}
  Labels group_labels;
  Labels common_labels;
  Labels common_annotations;
  bool firing = true;  // the group's status: firing while any of its alerts fires
  std::vector<Alert> alerts;
  uint64_t sequence = 0;
  int64_t created_unix_nano = 0;
  std::string external_url;  // web.external_url: links to /traces/{id} and the alert pages
};

// A stable notification id for one (instance, receiver, group, sequence): 32 hex digits of a
// SHA-256, so the router can compute the same id again for the same state of a group. `instance`
// is the database's id (storage::SqliteStore::InstanceId), so two traceslo databases (a lost
// volume, a second instance) never send one id for two different notifications.
std::string NotificationId(std::string_view instance, std::string_view receiver,
                           std::string_view group_key, uint64_t sequence);
// The same with an episode (the earliest starts_at of the notification's alerts, Unix ns) and
// whether the notification fires: ids of different episodes of one group differ even where their
// sequences are equal, and a resolve never has the id of a repeat.
std::string NotificationId(std::string_view instance, std::string_view receiver,
                           std::string_view group_key, uint64_t sequence, int64_t episode,
                           bool firing);

}  // namespace traceslo::alerting
