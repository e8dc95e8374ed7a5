#include "traceslo/alerting/dispatcher.h"

#include <algorithm>
#include <deque>
#include <random>
#include <thread>
#include <utility>

#include "absl/status/status.h"

namespace traceslo::alerting {
namespace {

using std::chrono::milliseconds;
using Metric = DispatcherMetrics::Outcome;

constexpr int64_t kPruneEveryNanos = 3'600'000'000'000;  // one hour
constexpr size_t kMaxIdBytes = 128;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t HashName(std::string_view name) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : name) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string FormatDelay(std::chrono::nanoseconds delay) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(delay).count()) + "ms";
}

}  // namespace

// One receiver's queue and thread. Its groups, pending count and flags are guarded by mu_; the
// backoff state belongs to the thread.
class Dispatcher::Receiver {
 public:
  struct Entry {
    int64_t id = 0;
    std::shared_ptr<const Notification> notification;
    int64_t enqueued_unix_nano = 0;
    uint32_t attempts = 0;
  };

  Receiver(Dispatcher& dispatcher, std::unique_ptr<Notifier> notifier, uint64_t seed)
      : dispatcher_(dispatcher),
        notifier_(std::move(notifier)),
        name_(notifier_->receiver()),
        random_(seed ^ HashName(name_)) {}

  const std::string& name() const { return name_; }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  // Queues `entry` in sequence order within its group.
  void Add(Entry entry) {
    {
      MutexLock lock(mu_);
      AddLocked(std::move(entry));
    }
    cv_.NotifyAll();
  }

  void SetDeliveredSequence(const std::string& group_key, uint64_t sequence,
                            int64_t now_unix_nano) {
    MutexLock lock(mu_);
    Group& group = groups_[group_key];
    group.delivered = true;
    group.delivered_sequence = std::max(group.delivered_sequence, sequence);
    group.delivered_unix_nano = now_unix_nano;
  }

  size_t pending() const {
    MutexLock lock(mu_);
    return pending_;
  }

  void Wake() {
    {
      MutexLock lock(mu_);
      ++wakes_;
    }
    cv_.NotifyAll();
  }

  void Stop() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    cv_.NotifyAll();
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  void AddLocked(Entry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::deque<Entry>& queue = groups_[entry.notification->group_key].queue;
    const uint64_t sequence = entry.notification->sequence;
    auto at = std::find_if(queue.begin(), queue.end(), [&](const Entry& e) {
      return e.notification->sequence > sequence ||
             (e.notification->sequence == sequence && e.id > entry.id);
    });
    queue.insert(at, std::move(entry));
    ++pending_;
    dispatcher_.metrics_.SetQueueLength(name_, pending_);
  }

 private:
  struct Group {
    std::deque<Entry> queue;  // by sequence, then id
    bool delivered = false;   // delivered_sequence is meaningful
    uint64_t delivered_sequence = 0;
    int64_t delivered_unix_nano = 0;  // when (or, loaded at start, since when) it is known
    // When its head was last tried: groups take turns, the least recently tried first.
    std::chrono::steady_clock::time_point last_attempt =
        std::chrono::steady_clock::time_point::min();
  };

  // A decision about a group's head taken without an attempt.
  struct Settled {
    Entry entry;
    DeliveryRecord::Outcome outcome;
  };

  void Run();
  // Removes group heads that expired or were superseded; returns them for recording.
  std::vector<Settled> SettleHeads(int64_t now_unix_nano) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordSettled(const Settled& settled, int64_t now_unix_nano);
  // Metrics and logs of an attempt's outcome (after it was recorded and the queue updated).
  void Report(const Entry& entry, const DeliveryRecord& record, std::chrono::nanoseconds delay);
  std::chrono::nanoseconds Backoff();
  // Removes the entry `id` of `group_key` after a final outcome.
  void Remove(const std::string& group_key, int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Dispatcher& dispatcher_;
  const std::unique_ptr<Notifier> notifier_;
  const std::string name_;

  mutable Mutex mu_;
  CondVar cv_;
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wakes_ ABSL_GUARDED_BY(mu_) = 0;

  // The thread's own: the receiver's backoff.
  uint32_t failures_ = 0;
  std::chrono::steady_clock::time_point not_before_ = std::chrono::steady_clock::time_point::min();
  std::mt19937_64 random_;
  std::thread thread_;
};

std::vector<Dispatcher::Receiver::Settled> Dispatcher::Receiver::SettleHeads(
    int64_t now_unix_nano) {
  std::vector<Settled> out;
  const int64_t max_age =
      std::chrono::duration_cast<std::chrono::nanoseconds>(dispatcher_.options_.max_age).count();
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& group = it->second;
    while (!group.queue.empty()) {
      Entry& head = group.queue.front();
      DeliveryRecord::Outcome outcome;
      if (group.delivered && head.notification->sequence <= group.delivered_sequence) {
        outcome = DeliveryRecord::Outcome::kSuperseded;
      } else if (now_unix_nano - head.enqueued_unix_nano > max_age) {
        outcome = DeliveryRecord::Outcome::kExpired;
      } else {
        break;
      }
      out.push_back(Settled{.entry = std::move(head), .outcome = outcome});
      group.queue.pop_front();
      --pending_;
    }
    // An idle group's state is kept while a late, older notification of it is plausible
    // (max_age); the store keeps the delivered sequence for the next start either way.
    if (group.queue.empty() &&
        (!group.delivered || now_unix_nano - group.delivered_unix_nano > max_age)) {
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
  if (!out.empty()) dispatcher_.metrics_.SetQueueLength(name_, pending_);
  return out;
}

void Dispatcher::Receiver::RecordSettled(const Settled& settled, int64_t now_unix_nano) {
  const Notification& n = *settled.entry.notification;
  const bool expired = settled.outcome == DeliveryRecord::Outcome::kExpired;
  const DeliveryRecord record{.entry_id = settled.entry.id,
                              .notification_id = n.id,
                              .receiver = name_,
                              .attempt = 0,
                              .at_unix_nano = now_unix_nano,
                              .outcome = settled.outcome,
                              .error = expired ? "older than alerting.delivery.max_age"
                                               : "a newer notification of the group was delivered"};
  if (absl::Status s = dispatcher_.store_.Record(record, n.group_key, n.sequence); !s.ok()) {
    dispatcher_.logger_.Error("cannot record a notification in the outbox",
                              {{"receiver", name_}, {"error", std::string(s.message())}});
  }
  if (expired) {
    dispatcher_.logger_.Error("notification expired undelivered",
                              {{"receiver", name_},
                               {"id", n.id},
                               {"group", n.group_key},
                               {"attempts", std::to_string(settled.entry.attempts)}});
  } else {
    dispatcher_.logger_.Info("notification superseded",
                             {{"receiver", name_}, {"id", n.id}, {"group", n.group_key}});
  }
  dispatcher_.metrics_.Count(name_, expired ? Metric::kExpired : Metric::kSuperseded);
}

std::chrono::nanoseconds Dispatcher::Receiver::Backoff() {
  const DispatcherOptions& o = dispatcher_.options_;
  const int shift = static_cast<int>(std::min<uint32_t>(failures_ - 1, 30));
  const int64_t initial = o.initial_backoff.count();
  const int64_t cap =
      initial > (o.max_backoff.count() >> shift) ? o.max_backoff.count() : initial << shift;
  std::uniform_int_distribution<int64_t> full_jitter(0, std::max<int64_t>(cap, 0));
  return milliseconds(full_jitter(random_));
}

void Dispatcher::Receiver::Remove(const std::string& group_key, int64_t id) {
  auto it = groups_.find(group_key);
  if (it == groups_.end()) return;
  std::deque<Entry>& queue = it->second.queue;
  auto entry = std::find_if(queue.begin(), queue.end(), [&](const Entry& e) { return e.id == id; });
  if (entry == queue.end()) return;
  queue.erase(entry);
  --pending_;
  dispatcher_.metrics_.SetQueueLength(name_, pending_);
}

void Dispatcher::Receiver::Run() {
  const Clock& clock = dispatcher_.clock_;
  MutexLock lock(mu_);
  while (!stopping_) {
    const int64_t now_unix_nano = UnixNanos(clock.Now());
    std::vector<Settled> settled = SettleHeads(now_unix_nano);
    if (!settled.empty()) {
      mu_.Unlock();
      for (const Settled& s : settled) RecordSettled(s, now_unix_nano);
      mu_.Lock();
      continue;
    }
    const uint64_t wakes = wakes_;
    auto woken = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || wakes_ != wakes; };
    if (pending_ == 0) {
      const size_t before = pending_;
      cv_.Wait(mu_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return woken() || pending_ != before; });
      continue;
    }
    const auto now = clock.SteadyNow();
    if (now < not_before_) {
      cv_.WaitFor(mu_, not_before_ - now, woken);
      continue;
    }
    // The group whose head was tried least recently (never tried: the oldest first).
    Group* next = nullptr;
    std::string group_key;
    for (auto& [key, group] : groups_) {
      if (group.queue.empty()) continue;
      if (next == nullptr || group.last_attempt < next->last_attempt ||
          (group.last_attempt == next->last_attempt &&
           group.queue.front().id < next->queue.front().id)) {
        next = &group;
        group_key = key;
      }
    }
    if (next == nullptr) continue;  // cannot happen: pending_ > 0
    Entry entry = next->queue.front();
    next->last_attempt = now;
    const uint32_t attempt = entry.attempts + 1;

    mu_.Unlock();
    const DeliveryResult result = notifier_->Deliver(*entry.notification);
    const auto wall = clock.Now();
    const auto after = clock.SteadyNow();
    const Notification& n = *entry.notification;
    DeliveryRecord record{.entry_id = entry.id,
                          .notification_id = n.id,
                          .receiver = name_,
                          .attempt = attempt,
                          .at_unix_nano = UnixNanos(wall),
                          .http_status = result.http_status,
                          .error = result.error};
    std::chrono::nanoseconds delay{0};
    switch (result.outcome) {
      case DeliveryResult::Outcome::kDelivered:
        record.outcome = DeliveryRecord::Outcome::kDelivered;
        failures_ = 0;
        break;
      case DeliveryResult::Outcome::kPermanent:
        record.outcome = DeliveryRecord::Outcome::kFailed;
        failures_ = 0;  // the receiver answered: it is up
        break;
      case DeliveryResult::Outcome::kRetryable:
        record.outcome = DeliveryRecord::Outcome::kRetryable;
        ++failures_;
        delay = result.retry_after ? std::chrono::nanoseconds(std::min(
                                         *result.retry_after, dispatcher_.options_.max_backoff))
                                   : Backoff();
        break;
    }
    // Recorded first, then the queue, then metrics and logs: whoever sees the count sees the rest.
    if (absl::Status s = dispatcher_.store_.Record(record, n.group_key, n.sequence); !s.ok()) {
      dispatcher_.logger_.Error("cannot record a notification in the outbox",
                                {{"receiver", name_}, {"error", std::string(s.message())}});
    }
    dispatcher_.MaybePrune(record.at_unix_nano);
    mu_.Lock();
    not_before_ = after + delay;
    if (record.outcome == DeliveryRecord::Outcome::kRetryable) {
      auto it = groups_.find(group_key);
      if (it != groups_.end()) {
        for (Entry& e : it->second.queue) {
          if (e.id == entry.id) e.attempts = attempt;
        }
      }
    } else {
      Remove(group_key, entry.id);
      if (record.outcome == DeliveryRecord::Outcome::kDelivered) {
        Group& group = groups_[group_key];
        group.delivered_sequence =
            group.delivered ? std::max(group.delivered_sequence, n.sequence) : n.sequence;
        group.delivered = true;
        group.delivered_unix_nano = record.at_unix_nano;
      }
    }
    mu_.Unlock();
    Report(entry, record, delay);
    mu_.Lock();
  }
}

void Dispatcher::Receiver::Report(const Entry& entry, const DeliveryRecord& record,
                                  std::chrono::nanoseconds delay) {
  const Notification& n = *entry.notification;
  const std::string attempt = std::to_string(record.attempt);
  // The log line first, then the count: a test that waits for the count finds the line.
  switch (record.outcome) {
    case DeliveryRecord::Outcome::kDelivered:
      dispatcher_.logger_.Debug("notification delivered",
                                {{"receiver", name_},
                                 {"id", n.id},
                                 {"group", n.group_key},
                                 {"status", n.firing ? "firing" : "resolved"},
                                 {"attempt", attempt}});
      dispatcher_.metrics_.ObserveDelivery(
          name_, static_cast<double>(record.at_unix_nano - entry.enqueued_unix_nano) / 1e9);
      dispatcher_.metrics_.Count(name_, Metric::kDelivered);
      break;
    case DeliveryRecord::Outcome::kFailed:
      dispatcher_.logger_.Error("notification refused by the receiver, not retried",
                                {{"receiver", name_},
                                 {"id", n.id},
                                 {"group", n.group_key},
                                 {"http_status", std::to_string(record.http_status)},
                                 {"error", record.error}});
      dispatcher_.metrics_.Count(name_, Metric::kFailed);
      break;
    default:
      dispatcher_.logger_.Warn("notification delivery failed, retrying",
                               {{"receiver", name_},
                                {"id", n.id},
                                {"attempt", attempt},
                                {"http_status", std::to_string(record.http_status)},
                                {"error", record.error},
                                {"retry_in", FormatDelay(delay)}});
      dispatcher_.metrics_.Count(name_, Metric::kRetried);
      break;
  }
}

Dispatcher::Dispatcher(const Clock& clock, OutboxStore& store, DispatcherMetrics& metrics,
                       Logger& logger, const DispatcherOptions& options)
    : clock_(clock), store_(store), metrics_(metrics), logger_(logger), options_(options) {}

absl::StatusOr<std::unique_ptr<Dispatcher>> Dispatcher::Create(
    const Clock& clock, OutboxStore& store, DispatcherMetrics& metrics, Logger& logger,
    std::vector<std::unique_ptr<Notifier>> notifiers, const DispatcherOptions& options) {
  std::unique_ptr<Dispatcher> d(new Dispatcher(clock, store, metrics, logger, options));
  for (std::unique_ptr<Notifier>& notifier : notifiers) {
    const std::string name = notifier->receiver();
    if (d->receivers_.contains(name)) {
      return absl::InvalidArgumentError("two notifiers for receiver \"" + name + "\"");
    }
    d->receivers_[name] = std::make_unique<Receiver>(*d, std::move(notifier), options.jitter_seed);
  }
  absl::StatusOr<std::map<std::pair<std::string, std::string>, uint64_t>> delivered =
      store.LoadDeliveredSequences();
  if (!delivered.ok()) return delivered.status();
  const int64_t now = UnixNanos(clock.Now());
  for (const auto& [key, sequence] : *delivered) {
    auto it = d->receivers_.find(key.first);
    if (it != d->receivers_.end()) it->second->SetDeliveredSequence(key.second, sequence, now);
  }
  absl::StatusOr<std::vector<OutboxEntry>> pending = store.LoadPending();
  if (!pending.ok()) return pending.status();
  std::map<std::string, size_t> unconfigured;
  for (OutboxEntry& e : *pending) {
    auto it = d->receivers_.find(e.notification.receiver);
    if (it == d->receivers_.end()) {
      ++unconfigured[e.notification.receiver];
      continue;
    }
    it->second->Add(Receiver::Entry{
        .id = e.id,
        .notification = std::make_shared<const Notification>(std::move(e.notification)),
        .enqueued_unix_nano = e.enqueued_unix_nano,
        .attempts = e.attempts});
  }
  for (const auto& [receiver, count] : unconfigured) {
    logger.Warn(
        "outbox has notifications for a receiver that is not configured; they stay "
        "stored until it is configured again",
        {{"receiver", receiver}, {"pending", std::to_string(count)}});
  }
  d->MaybePrune(now);
  for (auto& [name, receiver] : d->receivers_) receiver->Start();
  return d;
}

Dispatcher::~Dispatcher() { Shutdown(std::chrono::steady_clock::time_point::max()); }

absl::Status Dispatcher::Enqueue(const Notification& notification) {
  auto it = receivers_.find(notification.receiver);
  if (it == receivers_.end()) {
    return absl::NotFoundError("no receiver named \"" + notification.receiver + "\"");
  }
  // The id goes into headers (X-Traceslo-Notification-Id, webhook-id): printable, no spaces.
  if (notification.id.empty() || notification.id.size() > kMaxIdBytes ||
      !std::all_of(notification.id.begin(), notification.id.end(),
                   [](char c) { return c > 0x20 && c < 0x7f; })) {
    return absl::InvalidArgumentError(
        "a notification id must be 1 to 128 printable characters without spaces");
  }
  Receiver& receiver = *it->second;
  if (receiver.pending() >= options_.max_pending_per_receiver) {
    metrics_.Count(receiver.name(), Metric::kDropped);
    logger_.Error("notification dropped: the receiver's queue is full",
                  {{"receiver", receiver.name()},
                   {"id", notification.id},
                   {"pending", std::to_string(options_.max_pending_per_receiver)}});
    return absl::ResourceExhaustedError("receiver \"" + receiver.name() + "\" has " +
                                        std::to_string(options_.max_pending_per_receiver) +
                                        " notifications pending");
  }
  const int64_t now = UnixNanos(clock_.Now());
  absl::StatusOr<int64_t> id = store_.Enqueue(notification, now);
  if (absl::IsAlreadyExists(id.status())) return absl::OkStatus();
  if (!id.ok()) return id.status();
  receiver.Add(Receiver::Entry{.id = *id,
                               .notification = std::make_shared<const Notification>(notification),
                               .enqueued_unix_nano = now});
  return absl::OkStatus();
}

void Dispatcher::Wake() {
  for (auto& [name, receiver] : receivers_) receiver->Wake();
}

size_t Dispatcher::pending(const std::string& receiver) const {
  auto it = receivers_.find(receiver);
  return it == receivers_.end() ? 0 : it->second->pending();
}

void Dispatcher::MaybePrune(int64_t now_unix_nano) {
  {
    MutexLock lock(prune_mu_);
    if (last_prune_unix_nano_ != 0 && now_unix_nano - last_prune_unix_nano_ < kPruneEveryNanos) {
      return;
    }
    last_prune_unix_nano_ = now_unix_nano;
  }
  const int64_t before =
      now_unix_nano -
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.log_retention).count();
  if (absl::StatusOr<uint64_t> rows = store_.Prune(before); !rows.ok()) {
    logger_.Error("cannot prune the outbox", {{"error", std::string(rows.status().message())}});
  }
}

void Dispatcher::Shutdown(std::chrono::steady_clock::time_point deadline) {
  if (shut_down_.exchange(true)) return;
  for (auto& [name, receiver] : receivers_) receiver->Stop();
  for (auto& [name, receiver] : receivers_) receiver->Join();
  if (clock_.SteadyNow() > deadline) {
    logger_.Warn("alerting dispatcher stopped after its deadline (an attempt was in flight)");
  }
}

}  // namespace traceslo::alerting
