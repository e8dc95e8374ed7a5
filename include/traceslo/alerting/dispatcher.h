#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/notifier.h"
#include "traceslo/alerting/outbox.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/common/mutex.h"

namespace traceslo::alerting {

struct DispatcherOptions {
  std::chrono::milliseconds initial_backoff{1'000};           // alerting.delivery.initial_backoff
  std::chrono::milliseconds max_backoff{300'000};             // alerting.delivery.max_backoff
  std::chrono::milliseconds max_age{86'400'000};              // alerting.delivery.max_age
  std::chrono::milliseconds log_retention{7LL * 86'400'000};  // alerting.delivery.log_retention
  // Pending notifications per receiver; Enqueue refuses more (ResourceExhausted).
  size_t max_pending_per_receiver = 10'000;
  // Seeds the backoff jitter (each receiver's generator is seeded from it and its name), so a
  // test can reproduce delays; main passes a random seed.
  uint64_t jitter_seed = 0;
};

// The outbox metrics, by receiver: traceslo_notifications_total{receiver,outcome} (outcome:
// delivered, retried, failed, expired, superseded, dropped), traceslo_notification_queue_length
// {receiver} and traceslo_notification_delivery_seconds{receiver} (enqueue to delivered).
// Receivers are registered once, so every series exists from the start. Thread-safe.
class DispatcherMetrics final : public prometheus::Collectable {
 public:
  enum class Outcome { kDelivered, kRetried, kFailed, kExpired, kSuperseded, kDropped };
  static constexpr size_t kOutcomes = 6;

  explicit DispatcherMetrics(const std::vector<std::string>& receivers);

  // Unknown receivers are ignored (a bug, not outside input).
  void Count(const std::string& receiver, Outcome outcome);
  void SetQueueLength(const std::string& receiver, size_t length);
  void ObserveDelivery(const std::string& receiver, double seconds);

  uint64_t count(const std::string& receiver, Outcome outcome) const;
  size_t queue_length(const std::string& receiver) const;

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Series {
    std::array<uint64_t, kOutcomes> counts{};
    size_t queue_length = 0;
    std::vector<uint64_t> buckets;  // per bound, not cumulative
    uint64_t observations = 0;
    double sum = 0;
  };
  mutable Mutex mu_;
  std::map<std::string, Series> series_ ABSL_GUARDED_BY(mu_);
};

// Delivers the outbox: every notification enqueued (and everything pending from before a
// restart) reaches its receiver at least once.
//
// - Enqueue() commits the notification to the OutboxStore before any network call.
// - One thread per receiver, so a dead or slow receiver never delays another.
// - Per (receiver, group) strictly in sequence order: a group's next notification waits until
//   the previous one is delivered, failed or expired; a notification whose group had a newer
//   one delivered (within max_age, across restarts too) is dropped as superseded (a stale
//   PagerDuty trigger never follows its resolve).
// - Retryable failures wait an exponential backoff with full jitter (uniform in [0, min(max,
//   initial * 2^(failures-1))]), or Retry-After when the receiver sent it (capped at
//   max_backoff); the backoff is the receiver's, and groups take turns between attempts.
//   Permanent failures are recorded and never retried. Entries older than max_age are expired.
// - A crash can repeat at most the one attempt in flight per receiver.
//
// Thread-safe. Owns its receiver threads; Shutdown(deadline) stops them (an attempt in flight
// finishes first, bounded by the notifier's timeout) and joins. Waits read `clock`; with a fake
// clock, call Wake() after moving it. `clock`, `store`, `metrics` and `logger` are borrowed and
// must outlive the dispatcher.
class Dispatcher {
 public:
  // Loads the pending entries of the receivers in `notifiers` and starts their threads. Entries
  // of receivers that are not configured stay in the store untouched (logged). Unavailable when
  // the store cannot be read; InvalidArgument for two notifiers with one receiver name.
  static absl::StatusOr<std::unique_ptr<Dispatcher>> Create(
      const Clock& clock, OutboxStore& store, DispatcherMetrics& metrics, Logger& logger,
      std::vector<std::unique_ptr<Notifier>> notifiers, const DispatcherOptions& options);
  ~Dispatcher();  // Shutdown() if not done
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Durably enqueues `notification` for its receiver. NotFound for a receiver that is not
  // configured; InvalidArgument for an id that is empty, longer than 128 bytes or not printable
  // ASCII without spaces (it goes into headers); ResourceExhausted when the receiver already has
  // max_pending_per_receiver pending (counted as dropped); the store's error when it cannot
  // commit. A notification id the receiver already has is accepted once (OK, not queued again).
  absl::Status Enqueue(const Notification& notification);

  // Makes every receiver thread read the clock again (for tests that move a fake clock).
  void Wake();

  // Pending notifications of `receiver` (0 for unknown receivers).
  size_t pending(const std::string& receiver) const;

  // Stops the threads; pending notifications stay in the store for the next start. Idempotent.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

 private:
  class Receiver;
  Dispatcher(const Clock& clock, OutboxStore& store, DispatcherMetrics& metrics, Logger& logger,
             const DispatcherOptions& options);
  // Deletes log lines and finished entries past log_retention, at most once an hour.
  void MaybePrune(int64_t now_unix_nano);

  const Clock& clock_;
  OutboxStore& store_;
  DispatcherMetrics& metrics_;
  Logger& logger_;
  const DispatcherOptions options_;
  std::map<std::string, std::unique_ptr<Receiver>> receivers_;  // fixed after Create()
  Mutex prune_mu_;
  int64_t last_prune_unix_nano_ ABSL_GUARDED_BY(prune_mu_) = 0;
  std::atomic<bool> shut_down_{false};
};

}  // namespace traceslo::alerting
