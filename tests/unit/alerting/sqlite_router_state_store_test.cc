// The router's SQLite stores (router_groups and silences, migration 3) on a real SqliteStore in a
// temporary directory: round trips, and the router restarting over them.
#include "traceslo/alerting/sqlite_router_state_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/alerting/alerting_test_util.h"
#include "tests/unit/alerting/router_test_util.h"
#include "tests/unit/alerting/sqlite_test_util.h"
#include "traceslo/alerting/notification_codec.h"
#include "traceslo/alerting/sqlite_silence_store.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using storage::SqliteStore;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing_util::kSigA;
using testing_util::kSigB;
using testing_util::MakeAlert;
using testing_util::ScratchDir;

using testing_util::Count;
using testing_util::HasTable;
using testing_util::OpenStore;
using testing_util::RollBackSchema;

// Alerts compared through their stored form (Alert has no operator==).
std::string AlertsJson(const std::vector<Alert>& alerts) {
  Notification n;
  n.alerts = alerts;
  return EncodeNotification(n);
}

RouterGroupState SampleState(std::string receiver, std::string group_key) {
  Alert alert = MakeAlert("payment", "availability", "page", kSigA);
  alert.starts_at_unix_nano = 1'700'000'000'000'000'000;
  alert.generator_url = "http://traceslo.example/alerts?service=payment";
  alert.causes.push_back(Cause{.kind = Cause::Kind::kSignature,
                               .id = std::string(kSigA),
                               .title = "TimeoutError: upstream timed out after <num>ms",
                               .sample_message = "upstream timed out after 5000ms",
                               .count = 42,
                               .share = 0.75,
                               .trace_ids = {"4bf92f3577b34da6a3ce929d0e0e4736"}});
  return RouterGroupState{.receiver = std::move(receiver),
                          .group_key = std::move(group_key),
                          .group_labels = {{"service", "payment"}, {"signature", kSigA}},
                          .sequence = 7,
                          .last_sent_unix_nano = 1'700'000'100'000'000'000,
                          .resolved = false,
                          .alerts = {alert, MakeAlert("payment", "latency", "ticket", kSigA)},
                          .acked = true,
                          .acked_at_unix_nano = 1'700'000'200'000'000'000};
}

void ExpectSameState(const RouterGroupState& got, const RouterGroupState& want) {
  EXPECT_EQ(got.receiver, want.receiver);
  EXPECT_EQ(got.group_key, want.group_key);
  EXPECT_EQ(got.group_labels, want.group_labels);
  EXPECT_EQ(got.sequence, want.sequence);
  EXPECT_EQ(got.last_sent_unix_nano, want.last_sent_unix_nano);
  EXPECT_EQ(got.resolved, want.resolved);
  EXPECT_EQ(AlertsJson(got.alerts), AlertsJson(want.alerts));
  EXPECT_EQ(got.acked, want.acked);
  EXPECT_EQ(got.acked_at_unix_nano, want.acked_at_unix_nano);
}

TEST(SqliteRouterStoresTest, MigrationThreeAddsTheTablesAndKeepsOlderData) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), storage::kSchemaVersion);
  }
  for (const char* table : {"router_groups", "silences", "alert_history", "instance"}) {
    EXPECT_TRUE(HasTable(path, table)) << table;
  }
  // A file at version 2 (as the release before these tables left it) is brought to the current
  // version, keeping its outbox.
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    RollBackSchema(db, 2);
    db.exec(
        "INSERT INTO outbox (receiver, notification_id, group_key, sequence, notification, "
        "enqueued_unix_nano, state) VALUES ('oncall', 'n1', 'g', 1, '{}', 1, 'pending')");
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), storage::kSchemaVersion);
  EXPECT_EQ(Count(path, "SELECT COUNT(*) FROM outbox"), 1);
  SqliteRouterStateStore states(*store);
  EXPECT_TRUE(states.Save(SampleState("oncall", "g")).ok());
  SqliteSilenceStore silences(*store);
  EXPECT_TRUE(silences.Load().ok());
}

TEST(SqliteRouterStateStoreTest, SaveLoadReplaceErase) {
  ScratchDir dir;
  auto db = OpenStore(dir.File("traceslo.db"));
  SqliteRouterStateStore store(*db);
  absl::StatusOr<std::vector<RouterGroupState>> empty = store.Load();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(*empty, IsEmpty());

  const RouterGroupState a = SampleState("oncall", "{}:{service=\"payment\"}");
  RouterGroupState b = SampleState("chat", "{}:{service=\"payment\"}");
  b.resolved = true;
  b.alerts.clear();
  b.acked = false;
  b.acked_at_unix_nano = 0;
  ASSERT_TRUE(store.Save(a).ok());
  ASSERT_TRUE(store.Save(b).ok());
  absl::StatusOr<std::vector<RouterGroupState>> loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(*loaded, SizeIs(2));  // by receiver, then key
  ExpectSameState((*loaded)[0], b);
  ExpectSameState((*loaded)[1], a);

  RouterGroupState a2 = a;
  a2.sequence = 8;
  a2.alerts.pop_back();
  a2.acked = false;
  ASSERT_TRUE(store.Save(a2).ok());
  ASSERT_TRUE(store.Erase("chat", b.group_key).ok());
  ASSERT_TRUE(store.Erase("nobody", "nothing").ok());
  loaded = store.Load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_THAT(*loaded, SizeIs(1));
  ExpectSameState((*loaded)[0], a2);
}

TEST(SqliteRouterStateStoreTest, UndecodableRowIsDataLoss) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  auto db = OpenStore(path);
  SqliteRouterStateStore store(*db);
  ASSERT_TRUE(store.Save(SampleState("oncall", "g")).ok());
  {
    SQLite::Database raw(path, SQLite::OPEN_READWRITE);
    raw.exec("UPDATE router_groups SET notification = '{\"broken\":'");
  }
  absl::StatusOr<std::vector<RouterGroupState>> loaded = store.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loaded.status().message(), HasSubstr("oncall g"));
}

TEST(SqliteSilenceStoreTest, SaveLoadExpirePrune) {
  ScratchDir dir;
  auto db = OpenStore(dir.File("traceslo.db"));
  SqliteSilenceStore store(*db);
  const Silence active{.id = "0123456789abcdef0123456789abcdef",
                       .matchers = {{.name = "service", .value = "pay\"ment\n", .equal = true},
                                    {.name = "slo", .value = "", .equal = false}},
                       .starts_at_unix_nano = 1'000,
                       .ends_at_unix_nano = 5'000,
                       .created_by = "alice",
                       .comment = "deploy, see \"INC-1\"",
                       .created_at_unix_nano = 900};
  Silence pending = active;
  pending.id = "fedcba9876543210fedcba9876543210";
  pending.starts_at_unix_nano = 3'000;
  pending.matchers = {{.name = "team", .value = "db", .equal = true}};
  ASSERT_TRUE(store.Save(active).ok());
  ASSERT_TRUE(store.Save(pending).ok());
  absl::StatusOr<std::vector<Silence>> loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, (std::vector<Silence>{active, pending}));

  ASSERT_TRUE(store.Expire(active.id, 2'000).ok());   // ends now
  ASSERT_TRUE(store.Expire(pending.id, 2'000).ok());  // had not started: starts and ends now
  ASSERT_TRUE(store.Expire(active.id, 2'500).ok());   // ended already: unchanged
  absl::Status unknown = store.Expire("nope", 2'000);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound) << unknown;
  Silence want_active = active;
  ExpireSilenceAt(want_active, 2'000);
  Silence want_pending = pending;
  ExpireSilenceAt(want_pending, 2'000);
  loaded = store.Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, (std::vector<Silence>{want_active, want_pending}));
  EXPECT_EQ(want_pending.starts_at_unix_nano, 2'000);

  Silence later = active;
  later.id = "11111111111111111111111111111111";
  later.ends_at_unix_nano = 9'000;
  ASSERT_TRUE(store.Save(later).ok());
  absl::StatusOr<uint64_t> pruned = store.Prune(2'001);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 2u);
  loaded = store.Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, std::vector<Silence>{later});
}

// --- The router over the SQLite stores --------------------------------------------------------

class SqliteRouterTest : public testing_util::RouterTest {
 protected:
  SqliteRouterTest()
      : db_(OpenStore(dir_.File("traceslo.db"))), states_(*db_), silence_rows_(*db_) {
    state_store_ = &states_;
    silence_store_ = &silence_rows_;
  }

  ScratchDir dir_;
  std::unique_ptr<SqliteStore> db_;
  SqliteRouterStateStore states_;
  SqliteSilenceStore silence_rows_;
};

TEST_F(SqliteRouterTest, RestartSendsNothingNewBeforeRepeatInterval) {
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigB);
  {
    auto router = MakeRouter();
    Upsert(*router, availability);
    Upsert(*router, error_traces);
    AdvanceAndTick(*router, seconds(30));
    ASSERT_THAT(sink_.sent, SizeIs(2));
  }
  const int64_t first_sent = sink_.sent[0].created_unix_nano;
  // The process restarts: a new SqliteStore on the same file.
  db_.reset();
  db_ = OpenStore(dir_.File("traceslo.db"));
  SqliteRouterStateStore states(*db_);
  SqliteSilenceStore silences(*db_);
  state_store_ = &states;
  silence_store_ = &silences;

  auto router = MakeRouter();
  EXPECT_EQ(router->group_count(), 2u);
  for (int i = 0; i < 47; ++i) {
    router->Sync({availability, error_traces}, Now());
    AdvanceAndTick(*router, minutes(5));
  }
  AdvanceAndTick(*router, minutes(5) - seconds(1));  // 4 h minus 1 s after the first
  EXPECT_THAT(sink_.sent, SizeIs(2));
  AdvanceAndTick(*router, seconds(1));
  ASSERT_THAT(sink_.sent, SizeIs(4));
  for (size_t i = 2; i < 4; ++i) {
    EXPECT_EQ(sink_.sent[i].sequence, 2u);
    EXPECT_EQ(sink_.sent[i].created_unix_nano,
              first_sent + std::chrono::nanoseconds(hours(4)).count());
  }
}

TEST_F(SqliteRouterTest, AckAndSilenceSurviveARestart) {
  const Alert availability = MakeAlert("payment", "availability", "page", kSigA);
  const Alert error_traces = MakeAlert("payment", "error-traces", "page", kSigB);
  std::string silence_id;
  {
    auto router = MakeRouter();
    Upsert(*router, availability);
    AdvanceAndTick(*router, seconds(30));
    ASSERT_THAT(sink_.sent, SizeIs(1));
    ASSERT_TRUE(router->Ack(Fingerprint(availability.labels), Now()).ok());
    absl::StatusOr<Silence> silence = router->AddSilence(
        SilenceOf({{.name = "signature", .value = kSigB, .equal = true}}, seconds(0), hours(6)),
        Now());
    ASSERT_TRUE(silence.ok()) << silence.status();
    silence_id = silence->id;
  }
  db_.reset();
  db_ = OpenStore(dir_.File("traceslo.db"));
  SqliteRouterStateStore states(*db_);
  SqliteSilenceStore silences(*db_);
  state_store_ = &states;
  silence_store_ = &silences;

  auto router = MakeRouter();
  ASSERT_THAT(router->Snapshot(Now()), SizeIs(1));
  EXPECT_TRUE(router->Snapshot(Now())[0].acked);
  ASSERT_THAT(router->Silences(Now()), SizeIs(1));
  EXPECT_EQ(router->Silences(Now())[0].silence.id, silence_id);
  EXPECT_TRUE(router->Silences(Now())[0].active());

  router->Sync({availability, error_traces}, Now());
  for (int i = 0; i < 5 * 12; ++i) AdvanceAndTick(*router, minutes(5));  // 5 h: no repeat
  EXPECT_THAT(sink_.sent, SizeIs(1));                                    // kSigB is silenced

  ASSERT_TRUE(router->ExpireSilence(silence_id, Now()).ok());
  AdvanceAndTick(*router, seconds(0));
  ASSERT_THAT(sink_.sent, SizeIs(2));
  EXPECT_EQ(sink_.sent[1].group_labels.at("signature"), kSigB);
  absl::StatusOr<std::vector<Silence>> stored = silences.Load();
  ASSERT_TRUE(stored.ok());
  ASSERT_THAT(*stored, SizeIs(1));
  EXPECT_EQ((*stored)[0].ends_at_unix_nano, Now());

  // The resolve clears the ack in the file too.
  Alert resolved = availability;
  resolved.firing = false;
  router->Upsert(resolved, Now());
  AdvanceAndTick(*router, minutes(5));
  ASSERT_THAT(sink_.sent, SizeIs(3));
  EXPECT_FALSE(sink_.sent[2].firing);
  absl::StatusOr<std::vector<RouterGroupState>> saved = states.Load();
  ASSERT_TRUE(saved.ok());
  for (const RouterGroupState& state : *saved) {
    if (state.group_key != sink_.sent[2].group_key) continue;
    EXPECT_TRUE(state.resolved);
    EXPECT_FALSE(state.acked);
  }
}

}  // namespace
}  // namespace traceslo::alerting
