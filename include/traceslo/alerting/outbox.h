#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

// A notification waiting in the outbox.
struct OutboxEntry {
  int64_t id = 0;  // increases with every enqueue
  Notification notification;
  int64_t enqueued_unix_nano = 0;
  uint32_t attempts = 0;  // attempts recorded so far
};

// One line of the delivery log: an attempt, or a decision taken without one.
struct DeliveryRecord {
  enum class Outcome {
    kDelivered,   // final
    kRetryable,   // the entry stays pending
    kFailed,      // final: a permanent failure
    kExpired,     // final: older than delivery.max_age, given up without an attempt
    kSuperseded,  // final: not sent, a newer state of its group was already delivered
  };
  int64_t entry_id = 0;
  std::string notification_id;
  std::string receiver;
  uint32_t attempt = 0;  // 1-based; 0 for decisions without an attempt
  int64_t at_unix_nano = 0;
  Outcome outcome = Outcome::kDelivered;
  int http_status = 0;
  std::string error;  // never holds a URL or a secret
};

std::string_view OutcomeName(DeliveryRecord::Outcome outcome);

// Where notifications wait until they are delivered: durable, so that a notification enqueued
// before a crash is delivered after the restart. Thread-safe. Errors are Unavailable (the
// storage failed; nothing was changed) unless stated.
class OutboxStore {
 public:
  virtual ~OutboxStore() = default;

  // Stores `notification` as pending; when this returns OK it is committed (survives a kill -9).
  // Returns the entry id. AlreadyExists when this receiver already has a notification with the
  // same id (enqueueing is idempotent).
  virtual absl::StatusOr<int64_t> Enqueue(const Notification& notification,
                                          int64_t enqueued_unix_nano) = 0;

  // Every pending entry, ordered by receiver, group key, sequence and id.
  virtual absl::StatusOr<std::vector<OutboxEntry>> LoadPending() = 0;

  // The highest delivered sequence of each (receiver, group key).
  virtual absl::StatusOr<std::map<std::pair<std::string, std::string>, uint64_t>>
  LoadDeliveredSequences() = 0;

  // Appends `record` to the delivery log and applies it to its entry in one transaction: counts
  // the attempt, finishes the entry unless kRetryable, and for kDelivered raises the group's
  // delivered sequence to `sequence` of `group_key`.
  virtual absl::Status Record(const DeliveryRecord& record, std::string_view group_key,
                              uint64_t sequence) = 0;

  // The delivery log of one notification (all receivers), oldest first.
  virtual absl::StatusOr<std::vector<DeliveryRecord>> History(std::string_view notification_id) = 0;

  // Deletes finished entries and log lines older than `before_unix_nano`, and delivered
  // sequences of groups not delivered to since; returns how many rows went.
  virtual absl::StatusOr<uint64_t> Prune(int64_t before_unix_nano) = 0;
};

}  // namespace traceslo::alerting
