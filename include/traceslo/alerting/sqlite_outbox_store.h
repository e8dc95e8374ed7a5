#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "traceslo/alerting/outbox.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {

// The outbox in traceslo's SQLite file (tables outbox, outbox_groups and delivery_log, created by
// the storage module's migration 2). Notifications are stored as JSON. Thread-safe (the
// SqliteStore's connection lock). `db` is borrowed and must outlive the store.
class SqliteOutboxStore final : public OutboxStore {
 public:
  explicit SqliteOutboxStore(storage::SqliteStore& db) : db_(db) {}

  // traceslo::alerting::OutboxStore
  absl::StatusOr<int64_t> Enqueue(const Notification& notification,
                                  int64_t enqueued_unix_nano) override;
  absl::StatusOr<std::vector<OutboxEntry>> LoadPending() override;
  absl::StatusOr<std::map<std::pair<std::string, std::string>, uint64_t>> LoadDeliveredSequences()
      override;
  absl::Status Record(const DeliveryRecord& record, std::string_view group_key,
                      uint64_t sequence) override;
  absl::StatusOr<std::vector<DeliveryRecord>> History(std::string_view notification_id) override;
  absl::StatusOr<uint64_t> Prune(int64_t before_unix_nano) override;

 private:
  storage::SqliteStore& db_;
};

}  // namespace traceslo::alerting
