#include "traceslo/alerting/sqlite_router_state_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <SQLiteCpp/VariadicBind.h>

#include <utility>

#include "absl/status/status.h"
#include "traceslo/alerting/notification_codec.h"

namespace traceslo::alerting {
namespace {

int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }  // SQLite integers are signed

// The group's labels and alerts travel in the outbox's notification JSON (one codec for alerts);
// the other columns carry the rest.
std::string EncodeGroup(const RouterGroupState& state) {
  Notification n;
  n.receiver = state.receiver;
  n.group_key = state.group_key;
  n.group_labels = state.group_labels;
  n.firing = !state.resolved;
  n.alerts = state.alerts;
  n.sequence = state.sequence;
  n.created_unix_nano = state.last_sent_unix_nano;
  return EncodeNotification(n);
}

}  // namespace

absl::StatusOr<std::vector<RouterGroupState>> SqliteRouterStateStore::Load() {
  std::vector<RouterGroupState> out;
  std::string undecodable;
  absl::Status status = db_.Transact("cannot read the router state", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "SELECT receiver, group_key, sequence, last_sent_unix_nano, resolved, "
                        "acked, acked_at_unix_nano, notification FROM router_groups "
                        "ORDER BY receiver, group_key");
    while (q.executeStep()) {
      absl::StatusOr<Notification> n = DecodeNotification(q.getColumn(7).getString());
      if (!n.ok()) {
        if (undecodable.empty()) {
          undecodable = q.getColumn(0).getString() + " " + q.getColumn(1).getString() + ": " +
                        std::string(n.status().message());
        }
        continue;
      }
      out.push_back(RouterGroupState{.receiver = q.getColumn(0).getString(),
                                     .group_key = q.getColumn(1).getString(),
                                     .group_labels = std::move(n->group_labels),
                                     .sequence = static_cast<uint64_t>(q.getColumn(2).getInt64()),
                                     .last_sent_unix_nano = q.getColumn(3).getInt64(),
                                     .resolved = q.getColumn(4).getInt() != 0,
                                     .alerts = std::move(n->alerts),
                                     .acked = q.getColumn(5).getInt() != 0,
                                     .acked_at_unix_nano = q.getColumn(6).getInt64()});
    }
  });
  if (!status.ok()) return status;
  if (!undecodable.empty()) {
    return absl::DataLossError("a stored router group does not decode: " + undecodable);
  }
  return out;
}

absl::Status SqliteRouterStateStore::Save(const RouterGroupState& state) {
  const std::string encoded = EncodeGroup(state);
  return db_.Transact("cannot save the router state", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "INSERT OR REPLACE INTO router_groups (receiver, group_key, sequence, "
                        "last_sent_unix_nano, resolved, acked, acked_at_unix_nano, notification) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    SQLite::bind(q, state.receiver, state.group_key, AsInt(state.sequence),
                 state.last_sent_unix_nano, state.resolved ? 1 : 0, state.acked ? 1 : 0,
                 state.acked_at_unix_nano, encoded);
    q.exec();
  });
}

absl::Status SqliteRouterStateStore::Erase(const std::string& receiver,
                                           const std::string& group_key) {
  return db_.Transact("cannot erase router state", [&](SQLite::Database& db) {
    SQLite::Statement q(db, "DELETE FROM router_groups WHERE receiver = ? AND group_key = ?");
    q.bind(1, receiver);
    q.bind(2, group_key);
    q.exec();
  });
}

}  // namespace traceslo::alerting
