#include "traceslo/alerting/router.h"

#include <algorithm>
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

}  // namespace

RouterOptions RouterOptionsFrom(const config::AlertingConfig& alerting, std::string external_url) {
  RouterOptions options;
  options.group_by = alerting.group_by;
  options.group_wait = alerting.group_wait;
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
                                                                 RouterStateStore& store) {
  absl::StatusOr<std::vector<RouterGroupState>> saved = store.Load();
  if (!saved.ok()) return saved.status();
  std::unique_ptr<AlertRouter> router(new AlertRouter(std::move(options), sink, store));
  MutexLock lock(router->mu_);
  for (RouterGroupState& state : *saved) {
    GroupId id{std::move(state.receiver), std::move(state.group_key)};
    if (state.resolved) {
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
    for (Alert& alert : state.alerts) {
      std::string fingerprint = Fingerprint(alert.labels);
      group.sent_firing.insert(fingerprint);
      group.alerts[fingerprint] = std::move(alert);
    }
  }
  return router;
}

AlertRouter::AlertRouter(RouterOptions options, NotificationSink& sink, RouterStateStore& store)
    : options_(std::move(options)), sink_(sink), store_(store) {}

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

std::vector<const Alert*> AlertRouter::VisibleFiring(const Group& group) const {
  size_t highest = options_.severity_order.size();
  for (const auto& [fingerprint, alert] : group.alerts) {
    if (alert.firing) highest = std::min(highest, SeverityRank(alert.labels));
  }
  std::vector<const Alert*> visible;
  for (const auto& [fingerprint, alert] : group.alerts) {
    if (!alert.firing) continue;
    size_t rank = SeverityRank(alert.labels);
    bool listed = rank < options_.severity_order.size();
    if (listed && rank > highest) continue;  // inhibited by a firing higher severity
    visible.push_back(&alert);
  }
  return visible;
}

void AlertRouter::Upsert(const Alert& alert, int64_t now_unix_nano) {
  MutexLock lock(mu_);
  UpsertLocked(alert, now_unix_nano);
}

void AlertRouter::Sync(const std::vector<Alert>& firing, int64_t now_unix_nano) {
  std::set<std::string> fingerprints;
  MutexLock lock(mu_);
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
      auto tombstone = tombstones_.find(id);
      if (tombstone != tombstones_.end()) group.sequence = tombstone->second.sequence;
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

std::optional<int64_t> AlertRouter::DueAt(const Group& group) const {
  std::vector<const Alert*> firing = VisibleFiring(group);
  if (!group.sent) return group.created_unix_nano + Nanos(options_.group_wait);
  std::set<std::string> fingerprints;
  for (const Alert* alert : firing) fingerprints.insert(Fingerprint(alert->labels));
  if (fingerprints != group.sent_firing) {
    return group.last_sent_unix_nano + Nanos(options_.group_interval);
  }
  if (!firing.empty()) return group.last_sent_unix_nano + Nanos(options_.repeat_interval);
  return std::nullopt;
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
  notification.id = NotificationId(id.first, id.second, notification.sequence);
  notification.created_unix_nano = now_unix_nano;
  notification.external_url = options_.external_url;

  std::vector<const Alert*> all = firing;
  for (const auto& [fingerprint, alert] : group.alerts) {
    // Resolved alerts are shown only when their firing was.
    if (!alert.firing && group.sent_firing.count(fingerprint) != 0) all.push_back(&alert);
  }
  for (const Alert* alert : all) notification.alerts.push_back(*alert);
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
  absl::Status result;
  for (auto it = groups_.begin(); it != groups_.end();) {
    const GroupId& id = it->first;
    Group& group = it->second;
    std::optional<int64_t> due = DueAt(group);
    if (!due.has_value() || now_unix_nano < *due) {
      ++it;
      continue;
    }
    std::vector<const Alert*> firing = VisibleFiring(group);
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
    group.sent_firing.clear();
    for (const Alert* alert : firing) group.sent_firing.insert(Fingerprint(alert->labels));

    RouterGroupState state{.receiver = id.first,
                           .group_key = id.second,
                           .group_labels = group.group_labels,
                           .sequence = group.sequence,
                           .last_sent_unix_nano = now_unix_nano,
                           .resolved = firing.empty(),
                           .alerts = {}};
    for (const Alert* alert : firing) state.alerts.push_back(*alert);
    if (absl::Status saved = store_.Save(state); !saved.ok() && result.ok()) result = saved;

    if (firing.empty()) {
      tombstones_[id] = Tombstone{.sequence = group.sequence, .resolved_unix_nano = now_unix_nano};
      it = groups_.erase(it);
      continue;
    }
    tombstones_.erase(id);
    for (auto alert = group.alerts.begin(); alert != group.alerts.end();) {
      alert = alert->second.firing ? std::next(alert) : group.alerts.erase(alert);
    }
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
  return result;
}

std::optional<int64_t> AlertRouter::NextDueUnixNano() const {
  MutexLock lock(mu_);
  std::optional<int64_t> next;
  for (const auto& [id, group] : groups_) {
    std::optional<int64_t> due = DueAt(group);
    if (due.has_value() && (!next.has_value() || *due < *next)) next = due;
  }
  return next;
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
