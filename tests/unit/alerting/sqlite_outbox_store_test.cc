#include "traceslo/alerting/sqlite_outbox_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/unit/alerting/alerting_test_util.h"
#include "tests/unit/alerting/sqlite_test_util.h"
#include "traceslo/alerting/notification_codec.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {
namespace {

using storage::SqliteStore;
using testing_util::SampleNotification;
using testing_util::ScratchDir;
using Outcome = DeliveryRecord::Outcome;

using testing_util::Count;
using testing_util::HasTable;
using testing_util::OpenStore;
using testing_util::RollBackSchema;

Notification Numbered(std::string receiver, std::string group, uint64_t sequence) {
  Notification n = SampleNotification(std::move(receiver));
  n.group_key = std::move(group);
  n.sequence = sequence;
  n.id = NotificationId("test-instance", n.receiver, n.group_key, sequence);
  return n;
}

TEST(SqliteOutboxStoreTest, MigrationTwoAddsTheOutboxTables) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), storage::kSchemaVersion);
  }
  for (const char* table : {"outbox", "outbox_groups", "delivery_log"}) {
    EXPECT_TRUE(HasTable(path, table)) << table;
  }
  // A file at version 1 (as the release before the outbox left it) is brought to the current
  // version, keeping its data.
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    RollBackSchema(db, 1);
    db.exec("INSERT INTO series (service, operation) VALUES ('checkout', 'GET /')");
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), storage::kSchemaVersion);
  EXPECT_EQ(Count(path, "SELECT COUNT(*) FROM series"), 1);
  SqliteOutboxStore outbox(*store);
  EXPECT_TRUE(outbox.Enqueue(Numbered("oncall", "g", 1), 1).ok());
}

TEST(SqliteOutboxStoreTest, PendingEntriesComeBackInGroupAndSequenceOrder) {
  ScratchDir dir;
  auto db = OpenStore(dir.File("traceslo.db"));
  SqliteOutboxStore outbox(*db);
  ASSERT_TRUE(outbox.Enqueue(Numbered("oncall", "b", 2), 100).ok());
  ASSERT_TRUE(outbox.Enqueue(Numbered("oncall", "a", 1), 101).ok());
  ASSERT_TRUE(outbox.Enqueue(Numbered("oncall", "b", 1), 102).ok());
  ASSERT_TRUE(outbox.Enqueue(Numbered("chat", "a", 1), 103).ok());
  // The same notification again: stored once.
  absl::StatusOr<int64_t> again = outbox.Enqueue(Numbered("oncall", "b", 2), 104);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);

  absl::StatusOr<std::vector<OutboxEntry>> pending = outbox.LoadPending();
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_EQ(pending->size(), 4u);
  auto key = [](const OutboxEntry& e) {
    return e.notification.receiver + "/" + e.notification.group_key + "/" +
           std::to_string(e.notification.sequence);
  };
  EXPECT_EQ(key((*pending)[0]), "chat/a/1");
  EXPECT_EQ(key((*pending)[1]), "oncall/a/1");
  EXPECT_EQ(key((*pending)[2]), "oncall/b/1");
  EXPECT_EQ(key((*pending)[3]), "oncall/b/2");
  EXPECT_EQ((*pending)[3].enqueued_unix_nano, 100);
  EXPECT_EQ((*pending)[3].attempts, 0u);
  // Every field survives the trip.
  EXPECT_EQ(EncodeNotification((*pending)[3].notification),
            EncodeNotification(Numbered("oncall", "b", 2)));
}

TEST(SqliteOutboxStoreTest, RecordKeepsTheLogAndFinishesEntries) {
  ScratchDir dir;
  auto db = OpenStore(dir.File("traceslo.db"));
  SqliteOutboxStore outbox(*db);
  const Notification n = Numbered("oncall", "g", 5);
  absl::StatusOr<int64_t> id = outbox.Enqueue(n, 1'000);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(outbox
                  .Record(DeliveryRecord{.entry_id = *id,
                                         .notification_id = n.id,
                                         .receiver = "oncall",
                                         .attempt = 1,
                                         .at_unix_nano = 2'000,
                                         .outcome = Outcome::kRetryable,
                                         .http_status = 503,
                                         .error = "HTTP 503"},
                          n.group_key, n.sequence)
                  .ok());
  absl::StatusOr<std::vector<OutboxEntry>> pending = outbox.LoadPending();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].attempts, 1u);
  ASSERT_TRUE(outbox
                  .Record(DeliveryRecord{.entry_id = *id,
                                         .notification_id = n.id,
                                         .receiver = "oncall",
                                         .attempt = 2,
                                         .at_unix_nano = 3'000,
                                         .outcome = Outcome::kDelivered,
                                         .http_status = 200},
                          n.group_key, n.sequence)
                  .ok());
  pending = outbox.LoadPending();
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
  auto delivered = outbox.LoadDeliveredSequences();
  ASSERT_TRUE(delivered.ok());
  EXPECT_EQ(*delivered,
            (std::map<std::pair<std::string, std::string>, uint64_t>{{{"oncall", "g"}, 5}}));
  auto history = outbox.History(n.id);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].outcome, Outcome::kRetryable);
  EXPECT_EQ((*history)[0].http_status, 503);
  EXPECT_EQ((*history)[0].error, "HTTP 503");
  EXPECT_EQ((*history)[1].outcome, Outcome::kDelivered);
  EXPECT_EQ((*history)[1].attempt, 2u);
  EXPECT_EQ((*history)[1].at_unix_nano, 3'000);
  // A lower sequence delivered later (it cannot happen through the dispatcher) does not lower
  // the group's mark.
  const Notification older = Numbered("oncall", "g", 4);
  absl::StatusOr<int64_t> older_id = outbox.Enqueue(older, 4'000);
  ASSERT_TRUE(older_id.ok());
  ASSERT_TRUE(outbox
                  .Record(DeliveryRecord{.entry_id = *older_id,
                                         .notification_id = older.id,
                                         .receiver = "oncall",
                                         .attempt = 1,
                                         .at_unix_nano = 5'000,
                                         .outcome = Outcome::kDelivered},
                          older.group_key, older.sequence)
                  .ok());
  EXPECT_EQ(outbox.LoadDeliveredSequences()->at({"oncall", "g"}), 5u);
}

TEST(SqliteOutboxStoreTest, PruneDropsOldFinishedRowsAndKeepsPendingOnes) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  auto db = OpenStore(path);
  SqliteOutboxStore outbox(*db);
  const Notification done = Numbered("oncall", "old", 1);
  const Notification waiting = Numbered("oncall", "old", 2);
  absl::StatusOr<int64_t> done_id = outbox.Enqueue(done, 10);
  ASSERT_TRUE(outbox.Enqueue(waiting, 11).ok());
  ASSERT_TRUE(outbox
                  .Record(DeliveryRecord{.entry_id = *done_id,
                                         .notification_id = done.id,
                                         .receiver = "oncall",
                                         .attempt = 1,
                                         .at_unix_nano = 20,
                                         .outcome = Outcome::kDelivered},
                          done.group_key, done.sequence)
                  .ok());
  absl::StatusOr<uint64_t> rows = outbox.Prune(100);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, 2u);  // the log line and the delivered entry; the group mark stays (pending)
  EXPECT_EQ(Count(path, "SELECT COUNT(*) FROM outbox"), 1);
  EXPECT_EQ(Count(path, "SELECT COUNT(*) FROM outbox_groups"), 1);
  EXPECT_EQ(outbox.LoadPending()->size(), 1u);
}

}  // namespace
}  // namespace traceslo::alerting
