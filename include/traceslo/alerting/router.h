#pragma once

// The alert router: alerts in, notifications out, with Alertmanager's routing, grouping, timing
// and dedup. Pure logic over two seams: where notifications go (NotificationSink: the
// dispatcher's outbox in main) and where the per-group delivery state survives a restart
// (RouterStateStore).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/common/mutex.h"
#include "traceslo/config/config.h"

namespace traceslo::alerting {

// Takes the router's notifications. In main, an adapter over Dispatcher::Enqueue (which commits
// to the outbox and wakes the receiver's thread); not OutboxStore::Enqueue, whose entries a
// running dispatcher would not see until the next start. Thread-safe. OK means the notification
// is durably accepted, also when its id was accepted before (sending is idempotent by id); any
// other status means it was not, and the router offers the same notification (same id) again on
// a later Tick().
class NotificationSink {
 public:
  virtual ~NotificationSink() = default;
  virtual absl::Status Send(const Notification& notification) = 0;
};

// What the router remembers of one (receiver, group) across restarts: the last notification it
// sent. A resolved group is kept as a tombstone (`resolved`, no alerts) only so that the group's
// sequence keeps increasing if it fires again (the dispatcher drops sequences at or below one it
// has delivered).
struct RouterGroupState {
  std::string receiver;
  std::string group_key;
  Labels group_labels;
  uint64_t sequence = 0;  // of the last notification sent
  int64_t last_sent_unix_nano = 0;
  bool resolved = false;      // the last notification resolved the group
  std::vector<Alert> alerts;  // the firing alerts of the last notification
};

// Durable per-group state of the router. Thread-safe. Errors are Unavailable (the storage
// failed; nothing was changed). An in-memory fake serves the tests; a SQLite implementation (a
// table in traceslo's file beside the outbox) is still to be written.
class RouterStateStore {
 public:
  virtual ~RouterStateStore() = default;
  // Every saved group, in any order.
  virtual absl::StatusOr<std::vector<RouterGroupState>> Load() = 0;
  // Replaces the state of (state.receiver, state.group_key); committed when OK.
  virtual absl::Status Save(const RouterGroupState& state) = 0;
  // Forgets (receiver, group_key); OK when it was not there.
  virtual absl::Status Erase(const std::string& receiver, const std::string& group_key) = 0;
};

struct RouterOptions {
  std::vector<std::string> group_by{"service", "signature"};
  std::chrono::milliseconds group_wait{30'000};
  std::chrono::milliseconds group_interval{300'000};
  std::chrono::milliseconds repeat_interval{4LL * 3'600'000};
  std::vector<config::RouteConfig> routes;
  std::string default_receiver = "log";
  std::string external_url;  // copied into every notification
  // Values of the `severity` label, highest first. Within a group, a firing alert inhibits the
  // alerts of every lower listed severity; values not listed never inhibit and are never
  // inhibited. Rules may rename severities (`page: {labels: {severity: critical}}`): list them.
  std::vector<std::string> severity_order{"page", "ticket"};
  // Open groups at most; alerts that would open more are dropped (counted in dropped_alerts()).
  size_t max_groups = 10'000;
  // How long a resolved group's tombstone keeps its sequence; as long as the outbox keeps
  // delivered sequences (alerting.delivery.log_retention).
  std::chrono::milliseconds tombstone_retention{7LL * 86'400'000};
};

// The router's settings from the alerting section and web.external_url.
RouterOptions RouterOptionsFrom(const config::AlertingConfig& alerting, std::string external_url);

// Routes alerts to receivers and turns them into one notification per (receiver, group) and
// change, with Alertmanager's semantics:
//
// - Routing: the routes in order, each matching when all its labels are equal; the first match
//   wins unless it has `continue`; no match: default_receiver.
// - Grouping: one group per receiver and distinct values of the group_by labels (absent labels
//   are left out), keyed `{}:{service="payment",signature="…"}`. The same cause firing in several
//   SLOs or tiers is one group, so one notification carrying all its alerts.
// - Inhibition: within a group, an alert is left out (not sent, not shown as resolved) while an
//   alert of a higher severity fires; it comes back when that one resolves.
// - Severity: when the firing alerts of a notification differ in `severity`, common_labels carry
//   the highest of them (of all its alerts when none fires).
// - Timing: a new group is first sent group_wait after its first alert (alerts joining meanwhile
//   ride along). A change of its firing alerts is sent group_interval after the previous
//   notification at the earliest; an unchanged firing group again after repeat_interval. When
//   none of its alerts fires, one resolved notification carries the alerts that resolved, and
//   the group is forgotten. A group whose alerts all resolved before it was first sent is
//   forgotten silently. (Alertmanager checks groups only at group_interval ticks; here each
//   deadline counts from the last notification, so a repeat comes at repeat_interval exactly.)
// - Identity: sequence increases per (receiver, group), also across a resolve and a restart;
//   the id is NotificationId(receiver, group_key, sequence).
// - Durability: after the sink accepts a notification, the group's state is saved. A restart
//   restores groups as last sent, so re-upserting the same firing alerts sends nothing until
//   repeat_interval; the caller upserts what changed while it was down (resolved alerts too).
//   A crash between Send and Save repeats the notification with the same id, which the outbox
//   accepts once.
//
// Upsert() and Tick() take wall-clock time as arguments; the router reads no clock.
// Thread-safe; calls the sink and the store under its lock, so they must not call back into the
// router. `sink` and `store` are borrowed and must outlive the router.
class AlertRouter {
 public:
  // Loads the saved groups. The store's error when it cannot be read.
  static absl::StatusOr<std::unique_ptr<AlertRouter>> Create(RouterOptions options,
                                                             NotificationSink& sink,
                                                             RouterStateStore& store);
  AlertRouter(const AlertRouter&) = delete;
  AlertRouter& operator=(const AlertRouter&) = delete;

  // Adds or replaces the alert with these labels (identified by Fingerprint(labels)) in each of
  // its groups: firing or resolved (ends_at_unix_nano set to `now_unix_nano` when 0). A resolved
  // alert the router does not hold is ignored.
  void Upsert(const Alert& alert, int64_t now_unix_nano);

  // `firing` is every alert that fires now (e.g. from Evaluator::Alerts() after an evaluation):
  // upserts each, and resolves at `now_unix_nano` every held alert not among them. Use it when
  // transitions may have been missed: after a restart, a rule reload that removed an SLO, or an
  // alert whose labels (its signature) changed while it fired.
  void Sync(const std::vector<Alert>& firing, int64_t now_unix_nano);

  // Sends what is due at `now_unix_nano`. On a sink or store error the other groups still go
  // ahead; the first error is returned, and a group whose notification the sink refused is
  // offered again on the next Tick().
  absl::Status Tick(int64_t now_unix_nano);

  // When the next notification may be due (for the caller's timer); nullopt with no open group.
  std::optional<int64_t> NextDueUnixNano() const;

  size_t group_count() const;       // open groups, all receivers
  uint64_t dropped_alerts() const;  // alerts refused because max_groups groups were open

 private:
  using GroupId = std::pair<std::string, std::string>;  // receiver, group key
  struct Group {
    Labels group_labels;
    std::map<std::string, Alert> alerts;  // by fingerprint; firing and resolved-but-unsent
    int64_t created_unix_nano = 0;
    bool sent = false;
    uint64_t sequence = 0;  // of the last notification sent
    int64_t last_sent_unix_nano = 0;
    std::set<std::string> sent_firing;  // fingerprints of the last notification's firing alerts
  };
  struct Tombstone {
    uint64_t sequence = 0;
    int64_t resolved_unix_nano = 0;
  };

  AlertRouter(RouterOptions options, NotificationSink& sink, RouterStateStore& store);

  void UpsertLocked(const Alert& alert, int64_t now_unix_nano) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> ReceiversOf(const Labels& labels) const;
  Labels GroupLabelsOf(const Labels& labels) const;
  // Index in severity_order; severity_order.size() for absent or unlisted values.
  size_t SeverityRank(const Labels& labels) const;
  // The group's firing alerts that are not inhibited.
  std::vector<const Alert*> VisibleFiring(const Group& group) const;
  std::optional<int64_t> DueAt(const Group& group) const;
  Notification Build(const GroupId& id, const Group& group, const std::vector<const Alert*>& firing,
                     int64_t now_unix_nano) const;

  const RouterOptions options_;
  NotificationSink& sink_;
  RouterStateStore& store_;
  mutable Mutex mu_;
  std::map<GroupId, Group> groups_ ABSL_GUARDED_BY(mu_);
  std::map<GroupId, Tombstone> tombstones_ ABSL_GUARDED_BY(mu_);
  uint64_t dropped_alerts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace traceslo::alerting
