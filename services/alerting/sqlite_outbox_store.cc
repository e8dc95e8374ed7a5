#include "traceslo/alerting/sqlite_outbox_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

#include "absl/status/status.h"
#include "traceslo/alerting/notification_codec.h"

namespace traceslo::alerting {
namespace {

// The entry's state after `outcome`: its outcome name, except that a retryable one stays pending.
std::string_view StateOf(DeliveryRecord::Outcome outcome) {
  return outcome == DeliveryRecord::Outcome::kRetryable ? "pending" : OutcomeName(outcome);
}

DeliveryRecord::Outcome ParseOutcome(std::string_view name) {
  for (DeliveryRecord::Outcome o :
       {DeliveryRecord::Outcome::kDelivered, DeliveryRecord::Outcome::kRetryable,
        DeliveryRecord::Outcome::kFailed, DeliveryRecord::Outcome::kExpired,
        DeliveryRecord::Outcome::kSuperseded}) {
    if (OutcomeName(o) == name) return o;
  }
  return DeliveryRecord::Outcome::kFailed;
}

int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }  // SQLite integers are signed

}  // namespace

absl::StatusOr<int64_t> SqliteOutboxStore::Enqueue(const Notification& notification,
                                                   int64_t enqueued_unix_nano) {
  const std::string encoded = EncodeNotification(notification);
  int64_t id = 0;
  absl::Status status = db_.Transact("cannot enqueue a notification", [&](SQLite::Database& db) {
    SQLite::Statement insert(db,
                             "INSERT OR IGNORE INTO outbox (receiver, notification_id, group_key, "
                             "sequence, notification, enqueued_unix_nano, state) "
                             "VALUES (?, ?, ?, ?, ?, ?, 'pending')");
    insert.bind(1, notification.receiver);
    insert.bind(2, notification.id);
    insert.bind(3, notification.group_key);
    insert.bind(4, AsInt(notification.sequence));
    insert.bind(5, encoded);
    insert.bind(6, enqueued_unix_nano);
    if (insert.exec() == 1) id = db.getLastInsertRowid();
  });
  if (!status.ok()) return status;
  if (id == 0) {
    return absl::AlreadyExistsError("receiver " + notification.receiver +
                                    " already has notification " + notification.id);
  }
  return id;
}

absl::StatusOr<std::vector<OutboxEntry>> SqliteOutboxStore::LoadPending() {
  std::vector<OutboxEntry> out;
  std::vector<std::pair<int64_t, std::string>> undecodable;
  absl::Status status = db_.Transact("cannot read the outbox", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "SELECT id, notification, enqueued_unix_nano, attempts FROM outbox "
                        "WHERE state = 'pending' ORDER BY receiver, group_key, sequence, id");
    while (q.executeStep()) {
      absl::StatusOr<Notification> n = DecodeNotification(q.getColumn(1).getString());
      if (!n.ok()) {
        undecodable.emplace_back(q.getColumn(0).getInt64(), std::string(n.status().message()));
        continue;
      }
      out.push_back(OutboxEntry{.id = q.getColumn(0).getInt64(),
                                .notification = std::move(*n),
                                .enqueued_unix_nano = q.getColumn(2).getInt64(),
                                .attempts = static_cast<uint32_t>(q.getColumn(3).getInt64())});
    }
  });
  if (!status.ok()) return status;
  if (!undecodable.empty()) {
    return absl::DataLossError("outbox entry " + std::to_string(undecodable[0].first) + ": " +
                               undecodable[0].second);
  }
  return out;
}

absl::StatusOr<std::map<std::pair<std::string, std::string>, uint64_t>>
SqliteOutboxStore::LoadDeliveredSequences() {
  std::map<std::pair<std::string, std::string>, uint64_t> out;
  absl::Status status = db_.Transact("cannot read the outbox", [&](SQLite::Database& db) {
    SQLite::Statement q(db, "SELECT receiver, group_key, delivered_sequence FROM outbox_groups");
    while (q.executeStep()) {
      out[{q.getColumn(0).getString(), q.getColumn(1).getString()}] =
          static_cast<uint64_t>(q.getColumn(2).getInt64());
    }
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status SqliteOutboxStore::Record(const DeliveryRecord& record, std::string_view group_key,
                                       uint64_t sequence) {
  return db_.Transact("cannot record a delivery", [&](SQLite::Database& db) {
    SQLite::Statement log(db,
                          "INSERT INTO delivery_log (entry_id, notification_id, receiver, "
                          "attempt, at_unix_nano, outcome, http_status, error) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    SQLite::bind(log, record.entry_id, record.notification_id, record.receiver,
                 static_cast<int64_t>(record.attempt), record.at_unix_nano,
                 std::string(OutcomeName(record.outcome)), record.http_status, record.error);
    log.exec();
    const bool final = record.outcome != DeliveryRecord::Outcome::kRetryable;
    SQLite::Statement update(db,
                             "UPDATE outbox SET attempts = MAX(attempts, ?), state = ?, "
                             "finished_unix_nano = ? WHERE id = ?");
    update.bind(1, static_cast<int64_t>(record.attempt));
    update.bind(2, std::string(StateOf(record.outcome)));
    update.bind(3, final ? record.at_unix_nano : int64_t{0});
    update.bind(4, record.entry_id);
    update.exec();
    if (record.outcome == DeliveryRecord::Outcome::kDelivered) {
      SQLite::Statement group(
          db,
          "INSERT INTO outbox_groups (receiver, group_key, delivered_sequence, "
          "updated_unix_nano) VALUES (?, ?, ?, ?) ON CONFLICT (receiver, group_key) DO UPDATE "
          "SET delivered_sequence = MAX(delivered_sequence, excluded.delivered_sequence), "
          "updated_unix_nano = excluded.updated_unix_nano");
      group.bind(1, record.receiver);
      group.bind(2, std::string(group_key));
      group.bind(3, AsInt(sequence));
      group.bind(4, record.at_unix_nano);
      group.exec();
    }
  });
}

absl::StatusOr<std::vector<DeliveryRecord>> SqliteOutboxStore::History(
    std::string_view notification_id) {
  std::vector<DeliveryRecord> out;
  absl::Status status = db_.Transact("cannot read the delivery log", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "SELECT entry_id, notification_id, receiver, attempt, at_unix_nano, "
                        "outcome, http_status, error FROM delivery_log WHERE notification_id = ? "
                        "ORDER BY id");
    q.bind(1, std::string(notification_id));
    while (q.executeStep()) {
      out.push_back(DeliveryRecord{.entry_id = q.getColumn(0).getInt64(),
                                   .notification_id = q.getColumn(1).getString(),
                                   .receiver = q.getColumn(2).getString(),
                                   .attempt = static_cast<uint32_t>(q.getColumn(3).getInt64()),
                                   .at_unix_nano = q.getColumn(4).getInt64(),
                                   .outcome = ParseOutcome(q.getColumn(5).getString()),
                                   .http_status = q.getColumn(6).getInt(),
                                   .error = q.getColumn(7).getString()});
    }
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<uint64_t> SqliteOutboxStore::Prune(int64_t before_unix_nano) {
  uint64_t rows = 0;
  absl::Status status = db_.Transact("cannot prune the outbox", [&](SQLite::Database& db) {
    SQLite::Statement log(db, "DELETE FROM delivery_log WHERE at_unix_nano < ?");
    log.bind(1, before_unix_nano);
    rows += static_cast<uint64_t>(log.exec());
    SQLite::Statement entries(
        db, "DELETE FROM outbox WHERE state != 'pending' AND finished_unix_nano < ?");
    entries.bind(1, before_unix_nano);
    rows += static_cast<uint64_t>(entries.exec());
    // A group's delivered sequence is only needed while an older notification of it could still
    // be pending.
    SQLite::Statement groups(
        db,
        "DELETE FROM outbox_groups WHERE updated_unix_nano < ? AND NOT EXISTS (SELECT 1 FROM "
        "outbox o WHERE o.receiver = outbox_groups.receiver AND o.group_key = "
        "outbox_groups.group_key AND o.state = 'pending')");
    groups.bind(1, before_unix_nano);
    rows += static_cast<uint64_t>(groups.exec());
  });
  if (!status.ok()) return status;
  return rows;
}

}  // namespace traceslo::alerting
