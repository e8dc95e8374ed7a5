#include "traceslo/alerting/router.h"

#include <algorithm>
#include <tuple>
#include <utility>

namespace traceslo::alerting {
namespace {

constexpr std::string_view kSeverity = "severity";

int64_t Nanos(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// Alertmanager's group key for the root route: {}:{name="value",...}, values quoted as Go's %q
// quotes them (for the characters label values carry).
std::string GroupKey(const Labels& group_labels) {
  std::string key = "{}:{";
  bool first = true;
  for (const auto& [name, value] : group_labels) {
    if (!first) key += ',';
    first = false;
    key += name;
    key += "=\"";
    for (char c : value) {
      switch (c) {
        case '"':
          key += "\\\"";
          break;
        case '\\':
          key += "\\\\";
          break;
        case '\n':
          key += "\\n";
          break;
        default:
          key += c;
      }
    }
    key += '"';
  }
  key += '}';
  return key;
}

bool Matches(const config::RouteConfig& route, const Labels& labels) {
  for (const auto& [name, value] : route.match) {
    auto it = labels.find(name);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

// The name/value pairs every map in `maps` has.
template <typename Get>
Labels Common(const std::vector<const Alert*>& alerts, Get get) {
  if (alerts.empty()) return {};
  Labels common = get(*alerts.front());
  for (size_t i = 1; i < alerts.size(); ++i) {
    const Labels& other = get(*alerts[i]);
    for (auto it = common.begin(); it != common.end();) {
      auto found = other.find(it->first);
      if (found == other.end() || found->second != it->second) {
        it = common.erase(it);
      } else {
        ++it;
      }
    }
  }
  return common;
}

bool Silenced(const Labels& labels, const std::vector<const Silence*>& active) {
  return std::any_of(active.begin(), active.end(),
                     [&](const Silence* silence) { return SilenceMatches(*silence, labels); });
}

std::set<std::string> FingerprintsOf(const std::vector<const Alert*>& alerts) {
  std::set<std::string> out;
  for (const Alert* alert : alerts) out.insert(Fingerprint(alert->labels));
  return out;
}

}  // namespace

RouterOptions RouterOptionsFrom(const config::AlertingConfig& alerting, std::string external_url) {
  RouterOptions options;
  options.group_by = alerting.group_by;
  options.group_wait = alerting.group_wait;
  options.group_wait_from_warming = alerting.group_wait_start == "warming";
  options.group_interval = alerting.group_interval;
  options.repeat_interval = alerting.repeat_interval;
  options.routes = alerting.routes;
  options.default_receiver = alerting.default_receiver;
  options.external_url = std::move(external_url);
  options.tombstone_retention = alerting.delivery.log_retention;
  return options;
}

absl::StatusOr<std::unique_ptr<AlertRouter>> AlertRouter::Create(RouterOptions options,
                                                                 NotificationSink& sink,
                                                                 RouterStateStore& store,
                                                                 SilenceStore& silences) {
  absl::StatusOr<std::vector<RouterGroupState>> saved = store.Load();
  if (!saved.ok()) return saved.status();
  absl::StatusOr<std::vector<Silence>> saved_silences = silences.Load();
  if (!saved_silences.ok()) return saved_silences.status();
  std::unique_ptr<AlertRouter> router(new AlertRouter(std::move(options), sink, store, silences));
  MutexLock lock(router->mu_);
  for (Silence& silence : *saved_silences) {
    std::string id = silence.id;
    router->silences_.emplace(std::move(id), std::move(silence));
  }
  for (RouterGroupState& state : *saved) {
    GroupId id{std::move(state.receiver), std::move(state.group_key)};
    if (state.resolved || state.alerts.empty()) {
      router->tombstones_[id] =
          Tombstone{.sequence = state.sequence, .resolved_unix_nano = state.last_sent_unix_nano};
      continue;
    }
    Group& group = router->groups_[id];
    group.group_labels = std::move(state.group_labels);
    group.created_unix_nano = state.last_sent_unix_nano;
    group.sent = true;
    group.sequence = state.sequence;
    group.last_sent_unix_nano = state.last_sent_unix_nano;
    group.acked = state.acked;
    group.acked_at_unix_nano = state.acked_at_unix_nano;
    for (Alert& alert : state.alerts) {
      std::string fingerprint = Fingerprint(alert.labels);
      group.sent_firing.insert(fingerprint);
      group.alerts[fingerprint] = std::move(alert);
    }
  }
  return router;
}

AlertRouter::AlertRouter(RouterOptions options, NotificationSink& sink, RouterStateStore& store,
                         SilenceStore& silence_store)
    : options_(std::move(options)),
      sink_(sink),
      store_(store),
      silence_store_(silence_store),
      silence_ids_(options_.silence_id_seed) {}

void AlertRouter::SeeTime(int64_t now_unix_nano) {
  latest_unix_nano_ = std::max(latest_unix_nano_, now_unix_nano);
}

std::vector<std::string> AlertRouter::ReceiversOf(const Labels& labels) const {
  std::vector<std::string> receivers;
  for (const config::RouteConfig& route : options_.routes) {
    if (!Matches(route, labels)) continue;
    if (std::find(receivers.begin(), receivers.end(), route.receiver) == receivers.end()) {
      receivers.push_back(route.receiver);
    }
    if (!route.continue_matching) break;
  }
  if (receivers.empty()) receivers.push_back(options_.default_receiver);
  return receivers;
}

Labels AlertRouter::GroupLabelsOf(const Labels& labels) const {
  Labels group_labels;
  for (const std::string& name : options_.group_by) {
    auto it = labels.find(name);
    if (it != labels.end()) group_labels.insert(*it);
  }
  return group_labels;
}

size_t AlertRouter::SeverityRank(const Labels& labels) const {
  auto it = labels.find(std::string(kSeverity));
  if (it == labels.end()) return options_.severity_order.size();
  auto pos = std::find(options_.severity_order.begin(), options_.severity_order.end(), it->second);
  return static_cast<size_t>(pos - options_.severity_order.begin());
}

size_t AlertRouter::HighestFiringRank(const Group& group) const {
  size_t highest = options_.severity_order.size();
  for (const auto& [fingerprint, alert] : group.alerts) {
    if (alert.firing) highest = std::min(highest, SeverityRank(alert.labels));
  }
  return highest;
}

bool AlertRouter::Inhibited(const Labels& labels, size_t highest) const {
  const size_t rank = SeverityRank(labels);
  return rank < options_.severity_order.size() && rank > highest;
}

AlertRouter::ActiveSilences AlertRouter::ActiveAt(int64_t now_unix_nano) const {
  ActiveSilences active;
  for (const auto& [id, silence] : silences_) {
    if (SilenceStateAt(silence, now_unix_nano) == SilenceState::kActive) active.push_back(&silence);
  }
  return active;
}

bool AlertRouter::CausedElsewhere(const Labels& labels) const {
  if (options_.cause_service_label.empty()) return false;
  auto origin = labels.find(options_.cause_service_label);
  auto signature = labels.find("signature");
  if (origin == labels.end() || signature == labels.end()) return false;
  for (const auto& [id, group] : groups_) {
    for (const auto& [fingerprint, alert] : group.alerts) {
      if (!alert.firing || alert.labels.count(options_.cause_service_label) != 0) continue;
      auto service = alert.labels.find("service");
      auto other = alert.labels.find("signature");
      if (service != alert.labels.end() && service->second == origin->second &&
          other != alert.labels.end() && other->second == signature->second) {
        return true;
      }
    }
  }
  return false;
}

std::vector<const Alert*> AlertRouter::VisibleFiring(const Group& group,
                                                     const ActiveSilences& active) const {
  const size_t highest = HighestFiringRank(group);
  std::vector<const Alert*> visible;
  for (const auto& [fingerprint, alert] : group.alerts) {
    if (!alert.firing || Inhibited(alert.labels, highest) || Silenced(alert.labels, active) ||
        CausedElsewhere(alert.labels)) {
      continue;
    }
    visible.push_back(&alert);
  }
  return visible;
}

void AlertRouter::Upsert(const Alert& alert, int64_t now_unix_nano) {
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  UpsertLocked(alert, now_unix_nano);
}

void AlertRouter::Sync(const std::vector<Alert>& firing, int64_t now_unix_nano) {
  Sync(firing, {}, now_unix_nano);
}

void AlertRouter::Sync(const std::vector<Alert>& firing, const std::vector<Alert>& warming,
                       int64_t now_unix_nano) {
  std::set<std::string> fingerprints;
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  // Upserted against the previous warming set: an alert that fires now warmed until the last
  // Sync(), and is not listed as warming any more.
  for (const Alert& alert : firing) {
    if (!alert.firing) continue;  // not firing: resolved below like any alert not listed
    fingerprints.insert(Fingerprint(alert.labels));
    UpsertLocked(alert, now_unix_nano);
  }
  for (auto& [id, group] : groups_) {
    for (auto& [fingerprint, alert] : group.alerts) {
      if (!alert.firing || fingerprints.count(fingerprint) != 0) continue;
      alert.firing = false;
      alert.ends_at_unix_nano = now_unix_nano;
    }
  }
  std::map<GroupId, int64_t> since;
  if (options_.group_wait_from_warming) {
    for (const Alert& alert : warming) {
      const std::string group_key = GroupKey(GroupLabelsOf(alert.labels));
      for (std::string& receiver : ReceiversOf(alert.labels)) {
        if (since.size() >= options_.max_groups) break;
        GroupId id{std::move(receiver), group_key};
        auto previous = warming_since_.find(id);
        since.emplace(id, previous == warming_since_.end() ? now_unix_nano : previous->second);
      }
    }
  }
  warming_since_ = std::move(since);
}

absl::Status AlertRouter::Forget(const std::function<bool(const Alert&)>& elsewhere) {
  absl::Status result;
  MutexLock lock(mu_);
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& group = it->second;
    bool changed = false;
    for (auto alert = group.alerts.begin(); alert != group.alerts.end();) {
      if (!elsewhere(alert->second)) {
        ++alert;
        continue;
      }
      group.sent_firing.erase(alert->first);
      alert = group.alerts.erase(alert);
      changed = true;
    }
    if (!changed) {
      ++it;
      continue;
    }
    // What is left neither fires nor was sent firing (silenced or inhibited, then resolved):
    // nothing would ever be sent for it, so the group closes too.
    if (std::none_of(group.alerts.begin(), group.alerts.end(), [&](const auto& held) {
          return held.second.firing || group.sent_firing.contains(held.first);
        })) {
      group.alerts.clear();
    }
    absl::Status status =
        group.alerts.empty()
            ? store_.Erase(it->first.first, it->first.second)
            : (group.sent ? store_.Save(StateOf(it->first, group)) : absl::OkStatus());
    if (!status.ok() && result.ok()) result = status;
    if (group.alerts.empty()) {
      warming_since_.erase(it->first);
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  return result;
}

void AlertRouter::UpsertLocked(const Alert& alert, int64_t now_unix_nano) {
  const std::string fingerprint = Fingerprint(alert.labels);
  const Labels group_labels = GroupLabelsOf(alert.labels);
  const std::string group_key = GroupKey(group_labels);
  for (std::string& receiver : ReceiversOf(alert.labels)) {
    GroupId id{std::move(receiver), group_key};
    auto it = groups_.find(id);
    if (it == groups_.end()) {
      if (!alert.firing) continue;  // nothing of it was held, nothing to resolve
      if (groups_.size() >= options_.max_groups) {
        ++dropped_alerts_;
        continue;
      }
      Group group;
      group.group_labels = group_labels;
      group.created_unix_nano = now_unix_nano;
      if (auto warm = warming_since_.find(id); warm != warming_since_.end()) {
        group.created_unix_nano = std::min(now_unix_nano, warm->second);
      }
      // A new episode: its ids differ from earlier ones by the episode (episode_in_id), or by a
      // sequence that goes on from the last one.
      auto tombstone = tombstones_.find(id);
      if (tombstone != tombstones_.end() && !options_.episode_in_id) {
        group.sequence = tombstone->second.sequence;
      }
      it = groups_.emplace(std::move(id), std::move(group)).first;
    } else if (!alert.firing && it->second.alerts.count(fingerprint) == 0) {
      continue;
    }
    Alert& held = it->second.alerts[fingerprint];
    held = alert;
    if (!held.firing && held.ends_at_unix_nano == 0) held.ends_at_unix_nano = now_unix_nano;
    if (held.firing) held.ends_at_unix_nano = 0;
  }
}

std::optional<int64_t> AlertRouter::DueAt(const Group& group, const ActiveSilences& active) const {
  const std::vector<const Alert*> firing = VisibleFiring(group, active);
  const bool any_firing = std::any_of(group.alerts.begin(), group.alerts.end(),
                                      [](const auto& entry) { return entry.second.firing; });
  if (!group.sent) {
    if (firing.empty() && any_firing) return std::nullopt;  // all silenced: when one ends
    return group.created_unix_nano + Nanos(options_.group_wait);
  }
  const std::set<std::string> now_firing = FingerprintsOf(firing);
  if (now_firing != group.sent_firing) {
    // Only some alerts resolved while others of the group still fire: no notification of its
    // own (the group goes on firing, and on-call is not told the same page again); the
    // resolutions ride along with the next repeat, change or the group's resolve.
    const bool added = std::any_of(now_firing.begin(), now_firing.end(),
                                   [&](const auto& f) { return group.sent_firing.count(f) == 0; });
    if (!firing.empty() && !added) {
      if (group.acked) return std::nullopt;
      return group.last_sent_unix_nano + Nanos(options_.repeat_interval);
    }
    // A notification needs something to show: a firing alert, or the resolution of one the
    // receiver was told about (not one that was only silenced meanwhile).
    const bool shows_resolved =
        std::any_of(group.alerts.begin(), group.alerts.end(), [&](const auto& entry) {
          return !entry.second.firing && group.sent_firing.count(entry.first) != 0;
        });
    if (firing.empty() && !shows_resolved) return std::nullopt;
    return group.last_sent_unix_nano + Nanos(options_.group_interval);
  }
  if (!firing.empty() && !group.acked) {
    return group.last_sent_unix_nano + Nanos(options_.repeat_interval);
  }
  return std::nullopt;
}

std::optional<int64_t> AlertRouter::NextSilenceChange(int64_t after_unix_nano) const {
  // Whether `silence` matches a firing alert of an open group.
  auto matters = [](const std::map<GroupId, Group>& groups, const Silence& silence) {
    for (const auto& entry : groups) {
      for (const auto& held : entry.second.alerts) {
        if (held.second.firing && SilenceMatches(silence, held.second.labels)) return true;
      }
    }
    return false;
  };
  std::optional<int64_t> next;
  for (const auto& [id, silence] : silences_) {
    for (int64_t at : {silence.starts_at_unix_nano, silence.ends_at_unix_nano}) {
      if (at <= after_unix_nano || (next.has_value() && *next <= at)) continue;
      if (matters(groups_, silence)) next = at;
    }
  }
  return next;
}

RouterGroupState AlertRouter::StateOf(const GroupId& id, const Group& group) {
  RouterGroupState state{.receiver = id.first,
                         .group_key = id.second,
                         .group_labels = group.group_labels,
                         .sequence = group.sequence,
                         .last_sent_unix_nano = group.last_sent_unix_nano,
                         .resolved = group.sent_firing.empty(),
                         .alerts = {},
                         .acked = group.acked,
                         .acked_at_unix_nano = group.acked_at_unix_nano};
  for (const std::string& fingerprint : group.sent_firing) {
    auto it = group.alerts.find(fingerprint);
    if (it == group.alerts.end()) continue;
    Alert alert = it->second;
    alert.firing = true;  // as the notification carried it, also when it resolved since
    alert.ends_at_unix_nano = 0;
    state.alerts.push_back(std::move(alert));
  }
  return state;
}

Notification AlertRouter::Build(const GroupId& id, const Group& group,
                                const std::vector<const Alert*>& firing,
                                int64_t now_unix_nano) const {
  Notification notification;
  notification.receiver = id.first;
  notification.group_key = id.second;
  notification.group_labels = group.group_labels;
  notification.firing = !firing.empty();
  notification.sequence = group.sequence + 1;
  notification.created_unix_nano = now_unix_nano;
  notification.external_url = options_.external_url;

  std::vector<const Alert*> all = firing;
  for (const auto& [fingerprint, alert] : group.alerts) {
    // Resolved alerts are shown only when their firing was.
    if (!alert.firing && group.sent_firing.count(fingerprint) != 0) all.push_back(&alert);
  }
  for (const Alert* alert : all) notification.alerts.push_back(*alert);
  if (options_.episode_in_id) {
    int64_t episode = INT64_MAX;
    for (const Alert* alert : all) episode = std::min(episode, alert->starts_at_unix_nano);
    notification.id =
        NotificationId(options_.instance_id, id.first, id.second, notification.sequence,
                       all.empty() ? 0 : episode, notification.firing);
  } else {
    notification.id =
        NotificationId(options_.instance_id, id.first, id.second, notification.sequence);
  }
  notification.common_labels =
      Common(all, [](const Alert& a) -> const Labels& { return a.labels; });
  notification.common_annotations =
      Common(all, [](const Alert& a) -> const Labels& { return a.annotations; });

  // The highest severity of the firing alerts (of all when none fires) when they differ.
  const std::vector<const Alert*>& ranked = firing.empty() ? all : firing;
  const Alert* highest = nullptr;
  for (const Alert* alert : ranked) {
    if (alert->labels.count(std::string(kSeverity)) == 0) continue;
    if (highest == nullptr || SeverityRank(alert->labels) < SeverityRank(highest->labels)) {
      highest = alert;
    }
  }
  if (highest != nullptr) {
    notification.common_labels[std::string(kSeverity)] = highest->labels.at(std::string(kSeverity));
  }
  return notification;
}

absl::Status AlertRouter::Tick(int64_t now_unix_nano) {
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  const ActiveSilences active = ActiveAt(now_unix_nano);
  absl::Status result;
  for (auto it = groups_.begin(); it != groups_.end();) {
    const GroupId& id = it->first;
    Group& group = it->second;
    if (!group.sent && VisibleFiring(group, active).empty() &&
        std::any_of(group.alerts.begin(), group.alerts.end(), [&](const auto& entry) {
          return entry.second.firing && CausedElsewhere(entry.second.labels);
        })) {
      // Held back because the service where its cause began pages: group_wait starts when it
      // can be shown, so that when that page resolves first, this one resolving within
      // group_wait stays quiet.
      group.created_unix_nano = now_unix_nano;
    }
    std::optional<int64_t> due = DueAt(group, active);
    if (!due.has_value() || now_unix_nano < *due) {
      ++it;
      continue;
    }
    std::vector<const Alert*> firing = VisibleFiring(group, active);
    if (!group.sent && firing.empty()) {  // resolved before it was ever sent
      it = groups_.erase(it);
      continue;
    }
    Notification notification = Build(id, group, firing, now_unix_nano);
    if (absl::Status sent = sink_.Send(notification); !sent.ok()) {
      if (result.ok()) result = sent;
      ++it;
      continue;
    }
    group.sent = true;
    group.sequence = notification.sequence;
    group.last_sent_unix_nano = now_unix_nano;
    group.sent_firing = FingerprintsOf(firing);
    if (firing.empty()) {  // resolved: the acknowledgement ends with it
      group.acked = false;
      group.acked_at_unix_nano = 0;
    }
    if (absl::Status saved = store_.Save(StateOf(id, group)); !saved.ok() && result.ok()) {
      result = saved;
    }

    for (auto alert = group.alerts.begin(); alert != group.alerts.end();) {
      alert = alert->second.firing ? std::next(alert) : group.alerts.erase(alert);
    }
    if (firing.empty()) {
      tombstones_[id] = Tombstone{.sequence = group.sequence, .resolved_unix_nano = now_unix_nano};
      if (group.alerts.empty()) {
        it = groups_.erase(it);
        continue;
      }
      // Silenced alerts still fire: the group starts over, unsent, its sequence continuing.
      group.sent = false;
      group.created_unix_nano = now_unix_nano;
      ++it;
      continue;
    }
    tombstones_.erase(id);
    ++it;
  }

  const int64_t expired_before = now_unix_nano - Nanos(options_.tombstone_retention);
  for (auto it = tombstones_.begin(); it != tombstones_.end();) {
    if (it->second.resolved_unix_nano >= expired_before || groups_.count(it->first) != 0) {
      ++it;
      continue;
    }
    absl::Status erased = store_.Erase(it->first.first, it->first.second);
    if (!erased.ok()) {
      if (result.ok()) result = erased;
      ++it;
      continue;
    }
    it = tombstones_.erase(it);
  }

  const int64_t silences_before = now_unix_nano - Nanos(options_.silence_retention);
  if (std::any_of(silences_.begin(), silences_.end(), [&](const auto& entry) {
        return entry.second.ends_at_unix_nano < silences_before;
      })) {
    absl::StatusOr<uint64_t> pruned = silence_store_.Prune(silences_before);
    if (pruned.ok()) {
      std::erase_if(silences_, [&](const auto& entry) {
        return entry.second.ends_at_unix_nano < silences_before;
      });
    } else if (result.ok()) {
      result = pruned.status();
    }
  }
  return result;
}

std::optional<int64_t> AlertRouter::NextDueUnixNano() const {
  MutexLock lock(mu_);
  const ActiveSilences active = ActiveAt(latest_unix_nano_);
  std::optional<int64_t> next = NextSilenceChange(latest_unix_nano_);
  for (const auto& [id, group] : groups_) {
    std::optional<int64_t> due = DueAt(group, active);
    if (due.has_value() && (!next.has_value() || *due < *next)) next = due;
  }
  return next;
}

absl::Status AlertRouter::Ack(const std::string& alert_fingerprint, int64_t now_unix_nano) {
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  bool found = false;
  absl::Status result;
  for (auto& [id, group] : groups_) {
    auto alert = group.alerts.find(alert_fingerprint);
    if (alert == group.alerts.end() || !alert->second.firing) continue;
    found = true;
    if (group.acked) continue;
    group.acked = true;
    group.acked_at_unix_nano = now_unix_nano;
    if (!group.sent) continue;  // saved with its first notification
    if (absl::Status saved = store_.Save(StateOf(id, group)); !saved.ok()) {
      group.acked = false;
      group.acked_at_unix_nano = 0;
      if (result.ok()) result = saved;
    }
  }
  if (!found) {
    return absl::NotFoundError("no open group holds a firing alert with fingerprint " +
                               alert_fingerprint);
  }
  return result;
}

std::vector<RouterGroupView> AlertRouter::Snapshot(int64_t now_unix_nano) const {
  MutexLock lock(mu_);
  const ActiveSilences active = ActiveAt(now_unix_nano);
  std::vector<RouterGroupView> out;
  out.reserve(groups_.size());
  for (const auto& [id, group] : groups_) {
    RouterGroupView view{.receiver = id.first,
                         .group_key = id.second,
                         .group_labels = group.group_labels,
                         .alerts = {},
                         .sent = group.sent,
                         .sequence = group.sequence,
                         .last_sent_unix_nano = group.last_sent_unix_nano,
                         .acked = group.acked,
                         .acked_at_unix_nano = group.acked_at_unix_nano,
                         .next_due_unix_nano = DueAt(group, active)};
    const size_t highest = HighestFiringRank(group);
    for (const auto& [fingerprint, alert] : group.alerts) {
      RouterAlertView alert_view{.fingerprint = fingerprint,
                                 .alert = alert,
                                 .inhibited = alert.firing && (Inhibited(alert.labels, highest) ||
                                                               CausedElsewhere(alert.labels)),
                                 .silenced_by = {},
                                 .notified = group.sent_firing.count(fingerprint) != 0};
      for (const Silence* silence : active) {
        if (SilenceMatches(*silence, alert.labels)) alert_view.silenced_by.push_back(silence->id);
      }
      view.alerts.push_back(std::move(alert_view));
    }
    out.push_back(std::move(view));
  }
  return out;
}

absl::StatusOr<Silence> AlertRouter::AddSilence(Silence silence, int64_t now_unix_nano) {
  if (absl::Status valid = ValidateSilence(silence); !valid.ok()) return valid;
  if (silence.ends_at_unix_nano <= now_unix_nano) {
    return absl::InvalidArgumentError("ends_at (" + std::to_string(silence.ends_at_unix_nano) +
                                      ") has passed already (now is " +
                                      std::to_string(now_unix_nano) + ")");
  }
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  if (silences_.size() >= options_.max_silences) {
    // Room is made by forgetting the silence that ended first, before silence_retention.
    const Silence* first_ended = nullptr;
    for (const auto& [id, held] : silences_) {
      if (held.ends_at_unix_nano > now_unix_nano) continue;
      if (first_ended == nullptr || held.ends_at_unix_nano < first_ended->ends_at_unix_nano) {
        first_ended = &held;
      }
    }
    if (first_ended == nullptr) {
      return absl::ResourceExhaustedError(
          "there are " + std::to_string(silences_.size()) +
          " active or pending silences, the most allowed; expire one first");
    }
    const int64_t ended_before = first_ended->ends_at_unix_nano + 1;
    absl::StatusOr<uint64_t> pruned = silence_store_.Prune(ended_before);
    if (!pruned.ok()) return pruned.status();
    std::erase_if(silences_,
                  [&](const auto& entry) { return entry.second.ends_at_unix_nano < ended_before; });
  }
  do {
    silence.id = NewSilenceId(silence_ids_);
  } while (silences_.count(silence.id) != 0);
  silence.created_at_unix_nano = now_unix_nano;
  if (absl::Status saved = silence_store_.Save(silence); !saved.ok()) return saved;
  silences_[silence.id] = silence;
  return silence;
}

absl::Status AlertRouter::ExpireSilence(const std::string& id, int64_t now_unix_nano) {
  MutexLock lock(mu_);
  SeeTime(now_unix_nano);
  auto it = silences_.find(id);
  if (it == silences_.end()) return absl::NotFoundError("no silence " + id);
  Silence expired = it->second;
  if (!ExpireSilenceAt(expired, now_unix_nano)) return absl::OkStatus();
  if (absl::Status status = silence_store_.Expire(id, now_unix_nano); !status.ok()) return status;
  it->second = std::move(expired);
  return absl::OkStatus();
}

std::vector<SilenceStatus> AlertRouter::Silences(int64_t now_unix_nano) const {
  MutexLock lock(mu_);
  std::vector<SilenceStatus> out;
  out.reserve(silences_.size());
  for (const auto& [id, silence] : silences_) {
    out.push_back(
        SilenceStatus{.silence = silence, .state = SilenceStateAt(silence, now_unix_nano)});
  }
  auto order = [](SilenceState state) {
    switch (state) {
      case SilenceState::kActive:
        return 0;
      case SilenceState::kPending:
        return 1;
      case SilenceState::kExpired:
        return 2;
    }
    return 2;
  };
  std::sort(out.begin(), out.end(), [&](const SilenceStatus& a, const SilenceStatus& b) {
    return std::make_tuple(order(a.state), a.silence.starts_at_unix_nano, a.silence.id) <
           std::make_tuple(order(b.state), b.silence.starts_at_unix_nano, b.silence.id);
  });
  return out;
}

size_t AlertRouter::group_count() const {
  MutexLock lock(mu_);
  return groups_.size();
}

uint64_t AlertRouter::dropped_alerts() const {
  MutexLock lock(mu_);
  return dropped_alerts_;
}

}  // namespace traceslo::alerting
