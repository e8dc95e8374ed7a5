#pragma once

// The alert router: alerts in, notifications out, with Alertmanager's routing, grouping, timing,
// dedup, inhibition and silences, and acknowledgements. Pure logic over three seams: where
// notifications go (NotificationSink: the dispatcher's outbox in main), where the per-group
// delivery state survives a restart (RouterStateStore) and where silences do (SilenceStore).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/silence.h"
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
// sent and whether the group is acknowledged. A resolved group is kept as a tombstone
// (`resolved`, no alerts, not acked) only so that the group's sequence keeps increasing if it
// fires again (the dispatcher drops sequences at or below one it has delivered).
struct RouterGroupState {
  std::string receiver;
  std::string group_key;
  Labels group_labels;
  uint64_t sequence = 0;  // of the last notification sent
  int64_t last_sent_unix_nano = 0;
  bool resolved = false;      // the last notification resolved the group
  std::vector<Alert> alerts;  // the firing alerts of the last notification
  bool acked = false;         // AlertRouter::Ack(): no repeats until the group resolves
  int64_t acked_at_unix_nano = 0;
};

// Durable per-group state of the router. Thread-safe. Errors are Unavailable (the storage
// failed; nothing was changed); Load() returns DataLoss for a saved group that does not decode.
// SqliteRouterStateStore (sqlite_router_state_store.h) keeps it in traceslo's file beside the
// outbox; tests use an in-memory fake.
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
  // True: a group's group_wait counts from the first Sync() that listed a warming alert of the
  // group, when that is earlier than its first firing alert (alerting.group_wait_start: warming).
  bool group_wait_from_warming = true;
  std::chrono::milliseconds group_interval{300'000};
  std::chrono::milliseconds repeat_interval{4LL * 3'600'000};
  std::vector<config::RouteConfig> routes;
  std::string default_receiver = "log";
  std::string external_url;  // copied into every notification
  std::string instance_id;   // the database's id, part of every notification id
  // Kafka mode, where instance_id is shared by every instance: the id also takes the episode
  // (the earliest starts_at of the notification's alerts) and whether it fires, and a group's
  // sequence starts at 1 in each episode. Two instances that evaluated the same transitions
  // (a zombie and the owner after it; an instance that took the group's service over and
  // derived its alert states again) send the same ids, which a receiver drops; no id of an
  // earlier episode is used again, and a resolve never has a repeat's id.
  bool episode_in_id = false;
  // Values of the `severity` label, highest first. Within a group, a firing alert inhibits the
  // alerts of every lower listed severity; values not listed never inhibit and are never
  // inhibited. Rules may rename severities (`page: {labels: {severity: critical}}`): list them.
  std::vector<std::string> severity_order{"page", "ticket"};
  // An alert labelled with this (cause_service="payment", as the alert feed labels a cause that
  // began in another service) and `signature` is left out while any group holds a firing alert
  // of that service with that signature and without this label: the service where the error
  // began pages, the services it reached stay quiet. Empty: no such inhibition.
  std::string cause_service_label = "cause_service";
  // Open groups at most; alerts that would open more are dropped (counted in dropped_alerts()).
  size_t max_groups = 10'000;
  // How long a resolved group's tombstone keeps its sequence; as long as the outbox keeps
  // delivered sequences (alerting.delivery.log_retention).
  std::chrono::milliseconds tombstone_retention{7LL * 86'400'000};
  // How long a silence stays listed (and stored) after it ended, as Alertmanager's
  // --data.retention.
  std::chrono::milliseconds silence_retention{5LL * 86'400'000};
  // Silences held at most, expired ones within silence_retention included (the one that ended
  // first makes room for a new one).
  size_t max_silences = 1'000;
  // Seeds the generator of silence ids; main passes a random seed. Ids never repeat one the
  // router holds, whatever the seed.
  uint64_t silence_id_seed = 0;
};

// One alert of an open group as the API shows it.
struct RouterAlertView {
  std::string fingerprint;  // Fingerprint(alert.labels)
  Alert alert;              // firing, or resolved and not yet notified
  bool inhibited = false;   // left out while an alert of a higher severity of its group fires
  std::vector<std::string> silenced_by;  // ids of the silences active at the snapshot's time
  bool notified = false;                 // among the firing alerts of the group's last notification
};

// One open (receiver, group).
struct RouterGroupView {
  std::string receiver;
  std::string group_key;
  Labels group_labels;
  std::vector<RouterAlertView> alerts;  // by fingerprint
  bool sent = false;      // a notification of this group went out (since it last resolved)
  uint64_t sequence = 0;  // of its last notification, also one before a resolve; 0: none
  int64_t last_sent_unix_nano = 0;
  bool acked = false;
  int64_t acked_at_unix_nano = 0;
  std::optional<int64_t> next_due_unix_nano;  // when a notification may be due; nullopt: none
};

// A silence and its state at the time asked.
struct SilenceStatus {
  Silence silence;
  SilenceState state = SilenceState::kPending;
  bool active() const { return state == SilenceState::kActive; }
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
//   alert of a higher severity fires; it comes back when that one resolves. Across groups, an
//   alert whose cause began in another service (cause_service_label) is left out while that
//   service's own alert for the same signature fires. A group not sent yet whose firing alerts
//   are all left out waits: its group_wait starts when one can be shown.
// - Severity: when the firing alerts of a notification differ in `severity`, common_labels carry
//   the highest of them (of all its alerts when none fires).
// - Timing: a new group is first sent group_wait after its first alert (alerts joining meanwhile
//   ride along), or, with group_wait_from_warming, after the first Sync() that listed a warming
//   alert of the group, if that came first: the alerts of one cause warm up together while their
//   long windows fill, so the wait that collects them overlaps the confirmation instead of
//   following it, and a page goes out when its first alert fires once group_wait has passed.
//   Warming alerts are never sent and never open a group by themselves. A new firing alert in the
//   group is sent group_interval after the previous notification at the earliest; an unchanged
//   firing group again after repeat_interval. Alerts that resolve while others of the group still
//   fire are no notification of their own (unlike Alertmanager): they ride along with the next one.
//   When none of its alerts fires, one resolved notification carries the alerts that resolved, and
//   the group is forgotten. A group whose alerts all resolved before it was first sent is
//   forgotten silently. (Alertmanager checks groups only at group_interval ticks; here each
//   deadline counts from the last notification, so a repeat comes at repeat_interval exactly.)
// - Identity: sequence increases per (receiver, group), also across a resolve (unless
//   episode_in_id) and a restart; the id is NotificationId(instance_id, receiver, group_key,
//   sequence), with the episode and firing when episode_in_id.
// - Silences: an alert matched by a silence active at the Tick's time (starts_at <= now <
//   ends_at) is left out like an inhibited one: not sent, not shown as resolved. When its
//   silence ends while it fires and the receiver's last notification did not carry it, it is a
//   change of the group (sent group_interval after the previous notification at the earliest;
//   at once after group_wait for a group never sent). An alert silenced after it was sent is in
//   the receiver's last notification already: when its silence ends it comes again with the
//   next change or repeat. A group whose alerts are all left out sends nothing, not even a
//   repeat; when the last visible alerts of a sent group resolve, the resolved notification goes
//   out and the silenced alerts that still fire stay in the group as if it had just opened.
//   Silenced alerts still inhibit lower severities (as in Alertmanager). A resolution is shown
//   for every alert of the last notification, silenced or not.
// - Acknowledgement: an acknowledged group sends no repeats; its changes and its resolved
//   notification still go out, and the acknowledgement ends when the group resolves.
// - Durability: after the sink accepts a notification, the group's state is saved (with its
//   acknowledgement). A restart restores groups as last sent, so re-upserting the same firing
//   alerts sends nothing until repeat_interval; the caller upserts what changed while it was
//   down (resolved alerts too). A crash between Send and Save repeats the notification with the
//   same id, which the outbox accepts once. Silences are saved before AddSilence() or
//   ExpireSilence() return.
//
// Every method that depends on time takes wall-clock time as an argument; the router reads no
// clock. Thread-safe; calls the sink and the stores under its lock, so they must not call back
// into the router. `sink`, `store` and `silences` are borrowed and must outlive the router.
class AlertRouter {
 public:
  // Loads the saved groups and silences. The stores' error when they cannot be read.
  static absl::StatusOr<std::unique_ptr<AlertRouter>> Create(RouterOptions options,
                                                             NotificationSink& sink,
                                                             RouterStateStore& store,
                                                             SilenceStore& silences);
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
  // The same, and `warming` is every alert that does not fire but may soon (an SLO alert whose
  // short window burns while its long window has yet to confirm, or a pending alert), labelled
  // as it will fire: the groups they fall in start their group_wait (see Timing). Groups no
  // warming alert maps to any more forget when they started to warm.
  void Sync(const std::vector<Alert>& firing, const std::vector<Alert>& warming,
            int64_t now_unix_nano);

  // Drops the held alerts `elsewhere` answers true for, without a notification: Kafka mode calls
  // it for the alerts of services whose deltas partition another instance took over (that
  // instance evaluates them now). A group left without alerts is closed and its saved state
  // erased; one that keeps others is saved. The state store's first error (the rest still go
  // ahead); the groups are dropped from memory either way.
  absl::Status Forget(const std::function<bool(const Alert&)>& elsewhere);

  // Sends what is due at `now_unix_nano`. On a sink or store error the other groups still go
  // ahead; the first error is returned, and a group whose notification the sink refused is
  // offered again on the next Tick().
  absl::Status Tick(int64_t now_unix_nano);

  // When the next notification may be due, or a silence that matters to an open group starts or
  // ends (for the caller's timer), as of the latest time the router was given; nullopt with
  // nothing to wait for.
  std::optional<int64_t> NextDueUnixNano() const;

  // Acknowledges every open group holding the firing alert with this fingerprint (see
  // Fingerprint()); a group acknowledged already keeps its first time. NotFound when no open
  // group holds it firing; the state store's error when a sent group's state was not saved (that
  // group stays unacknowledged; calling again is safe). A group not sent yet saves its
  // acknowledgement with its first notification.
  absl::Status Ack(const std::string& alert_fingerprint, int64_t now_unix_nano);

  // The open groups at `now_unix_nano` (silences are judged at that time), by receiver and key.
  std::vector<RouterGroupView> Snapshot(int64_t now_unix_nano) const;

  // Checks `silence` with ValidateSilence() (InvalidArgument), refuses one that has ended at
  // `now_unix_nano` (InvalidArgument), assigns its id (a new one: whatever the caller set is
  // replaced) and created_at (`now_unix_nano`), saves it (the store's error: nothing changed) and
  // applies it from the next Tick(). Returns the silence as saved. With max_silences held, the
  // silence that ended first is forgotten to make room; ResourceExhausted when none has ended.
  absl::StatusOr<Silence> AddSilence(Silence silence, int64_t now_unix_nano);
  // Ends silence `id` at `now_unix_nano` (ExpireSilenceAt()), saved before it returns; alerts it
  // held back are due again from the next Tick(). OK for a silence that has ended already,
  // NotFound for an id the router does not hold, the store's error (nothing changed).
  absl::Status ExpireSilence(const std::string& id, int64_t now_unix_nano);
  // Every silence held (expired ones until silence_retention after their end), with its state at
  // `now_unix_nano`: active ones first, then pending, then expired; by start time within each.
  std::vector<SilenceStatus> Silences(int64_t now_unix_nano) const;

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
    bool acked = false;
    int64_t acked_at_unix_nano = 0;
  };
  struct Tombstone {
    uint64_t sequence = 0;
    int64_t resolved_unix_nano = 0;
  };

  // The silences active at one time.
  using ActiveSilences = std::vector<const Silence*>;

  AlertRouter(RouterOptions options, NotificationSink& sink, RouterStateStore& store,
              SilenceStore& silence_store);

  void UpsertLocked(const Alert& alert, int64_t now_unix_nano) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SeeTime(int64_t now_unix_nano) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> ReceiversOf(const Labels& labels) const;
  Labels GroupLabelsOf(const Labels& labels) const;
  // Index in severity_order; severity_order.size() for absent or unlisted values.
  size_t SeverityRank(const Labels& labels) const;
  ActiveSilences ActiveAt(int64_t now_unix_nano) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The highest severity (lowest SeverityRank) among the group's firing alerts.
  size_t HighestFiringRank(const Group& group) const;
  // Whether a firing alert with `labels` is inhibited where `highest` is the highest firing rank.
  bool Inhibited(const Labels& labels, size_t highest) const;
  // Whether the alert names a cause that began in another service (cause_service_label) whose
  // own alert for that signature fires in any group.
  bool CausedElsewhere(const Labels& labels) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The group's firing alerts that are neither inhibited nor silenced.
  std::vector<const Alert*> VisibleFiring(const Group& group, const ActiveSilences& active) const;
  std::optional<int64_t> DueAt(const Group& group, const ActiveSilences& active) const;
  // The earliest start or end of a silence after `after_unix_nano` that matches a firing alert of
  // an open group.
  std::optional<int64_t> NextSilenceChange(int64_t after_unix_nano) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Notification Build(const GroupId& id, const Group& group, const std::vector<const Alert*>& firing,
                     int64_t now_unix_nano) const;
  // The group's state as of its last notification (sent groups only).
  static RouterGroupState StateOf(const GroupId& id, const Group& group);

  const RouterOptions options_;
  NotificationSink& sink_;
  RouterStateStore& store_;
  SilenceStore& silence_store_;
  mutable Mutex mu_;
  std::map<GroupId, Group> groups_ ABSL_GUARDED_BY(mu_);
  std::map<GroupId, Tombstone> tombstones_ ABSL_GUARDED_BY(mu_);
  // Groups that warming alerts of the last Sync() fall in, and since when they warm (at most
  // max_groups).
  std::map<GroupId, int64_t> warming_since_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Silence> silences_ ABSL_GUARDED_BY(mu_);  // by id
  std::mt19937_64 silence_ids_ ABSL_GUARDED_BY(mu_);
  int64_t latest_unix_nano_ ABSL_GUARDED_BY(mu_) = 0;  // the latest time the router was given
  uint64_t dropped_alerts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace traceslo::alerting
