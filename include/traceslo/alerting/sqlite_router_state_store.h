#pragma once

#include <string>
#include <vector>

#include "traceslo/alerting/router.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::alerting {

// The alert router's per-group state in traceslo's SQLite file (table router_groups, created by
// the storage module's migration 3). A group's labels and alerts are stored as the outbox's
// notification JSON. Thread-safe (the SqliteStore's connection lock). `db` is borrowed and must
// outlive the store.
class SqliteRouterStateStore final : public RouterStateStore {
 public:
  explicit SqliteRouterStateStore(storage::SqliteStore& db) : db_(db) {}

  // traceslo::alerting::RouterStateStore
  absl::StatusOr<std::vector<RouterGroupState>> Load() override;
  absl::Status Save(const RouterGroupState& state) override;
  absl::Status Erase(const std::string& receiver, const std::string& group_key) override;

 private:
  storage::SqliteStore& db_;
};

}  // namespace traceslo::alerting
