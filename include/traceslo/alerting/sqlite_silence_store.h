#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "traceslo/alerting/silence.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {

// Silences in traceslo's SQLite file (table silences, created by the storage module's migration
// 3; matchers stored as JSON). Thread-safe (the SqliteStore's connection lock). `db` is borrowed
// and must outlive the store.
class SqliteSilenceStore final : public SilenceStore {
 public:
  explicit SqliteSilenceStore(storage::SqliteStore& db) : db_(db) {}

  // traceslo::alerting::SilenceStore
  absl::StatusOr<std::vector<Silence>> Load() override;
  absl::Status Save(const Silence& silence) override;
  absl::Status Expire(const std::string& id, int64_t at_unix_nano) override;
  absl::StatusOr<uint64_t> Prune(int64_t ended_before_unix_nano) override;

 private:
  storage::SqliteStore& db_;
};

}  // namespace traceslo::alerting
