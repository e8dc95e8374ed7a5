#pragma once

// For the alerting tests that keep tables in traceslo's SQLite file: open it, count rows, and
// take a file back to an older schema version, as an older release left it.

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting::testing_util {

inline std::unique_ptr<storage::SqliteStore> OpenStore(const std::string& path) {
  absl::StatusOr<std::unique_ptr<storage::SqliteStore>> store = storage::SqliteStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

inline int64_t Count(const std::string& path, const std::string& sql) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet(sql).getInt64();
}

inline bool HasTable(const std::string& path, const std::string& table) {
  return Count(path, "SELECT COUNT(*) FROM sqlite_master WHERE name = '" + table + "'") == 1;
}

// The tables each migration of services/storage/sqlite_store.cc creates beyond the first.
inline const std::map<int, std::vector<std::string>>& TablesOfMigration() {
  static const auto* tables = new std::map<int, std::vector<std::string>>{
      {2, {"outbox", "outbox_groups", "delivery_log"}},
      {3, {"router_groups", "silences", "alert_history", "instance"}},
      {4, {"exemplar_traces"}},
  };
  return *tables;
}

// Drops the tables of every migration after `version` and sets user_version to it.
inline void RollBackSchema(SQLite::Database& db, int version) {
  for (const auto& [migration, tables] : TablesOfMigration()) {
    if (migration <= version) continue;
    for (const std::string& table : tables) db.exec("DROP TABLE " + table);
  }
  db.exec("PRAGMA user_version = " + std::to_string(version));
}

}  // namespace traceslo::alerting::testing_util
