#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "traceslo/common/mutex.h"
#include "traceslo/pipeline/latency_sketch.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"

namespace SQLite {
class Database;
}

namespace traceslo::storage {

// The schema version this build writes; Open() migrates older files up to it and refuses newer.
inline constexpr int kSchemaVersion = 5;

// Sums of one minute over several series of one service.
struct MinuteSums {
  int64_t minute = 0;  // unix minutes
  uint64_t requests = 0;
  uint64_t errors = 0;
  pipeline::LatencySketch latency;  // only when asked for
};

// traceslo's SQLite file (WAL): one-minute SLI rollups per series and per service, the alert
// states of the evaluator, the kept exemplar traces (SqliteExemplarStore), and the tables of the
// alerting module (outbox, router state, silences, alert history; written through Transact()).
// Series are stored by name (service, operation), so ids of a new process's SeriesRegistry need not
// match the last one's. Every write is one transaction; with WAL and synchronous=NORMAL a committed
// transaction survives the process being killed (not necessarily a power loss). Errors of SQLite
// become Status with the file's path; nothing throws. Thread-safe: one connection behind a mutex.
class SqliteStore {
 public:
  // Opens or creates `path` and brings its schema to kSchemaVersion, each migration in its own
  // transaction. FailedPrecondition for a file written by a newer traceslo.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore();

  // Writes the minutes over their previous copies, in one transaction. Names come from
  // `registry` (the ids in `rollups` are its ids).
  absl::Status WriteRollups(const pipeline::MinuteRollups& rollups,
                            const pipeline::SeriesRegistry& registry);
  // The minutes at or after `first_minute`, with ids resolved in `registry` (which creates them,
  // under its caps), for SliStore::Restore().
  absl::StatusOr<pipeline::MinuteRollups> LoadRollups(int64_t first_minute,
                                                      pipeline::SeriesRegistry& registry);
  // Per minute in [first_minute, last_minute] that has rows: sums over the series of `service`
  // whose operation `matches` accepts; latency sketches merged only if `with_latency`.
  absl::StatusOr<std::vector<MinuteSums>> SeriesMinutes(
      std::string_view service, const std::function<bool(std::string_view)>& matches,
      int64_t first_minute, int64_t last_minute, bool with_latency);
  // Trace-level rows of `service` in [first_minute, last_minute] (the `service` field is 0).
  absl::StatusOr<std::vector<pipeline::ServiceMinute>> ServiceMinutes(std::string_view service,
                                                                      int64_t first_minute,
                                                                      int64_t last_minute);
  // Deletes minutes before `first_minute`; returns how many rows went.
  absl::StatusOr<uint64_t> DeleteBefore(int64_t first_minute);

  // Replaces the stored alert states with `alerts`, in one transaction.
  absl::Status SaveAlerts(const std::vector<slo::AlertStatus>& alerts);
  absl::StatusOr<std::vector<slo::AlertStatus>> LoadAlerts();

  // For repositories of other modules that keep their tables in this file (the alerting
  // outbox): runs `fn` on the connection under the store's lock, in one transaction committed
  // when `fn` returns. An exception from `fn` or SQLite rolls the transaction back and becomes
  // Unavailable "<path>: <what>: <reason>".
  absl::Status Transact(std::string_view what, const std::function<void(SQLite::Database&)>& fn);

  // A named mark of progress (Kafka mode: "kafka.next_evaluation_ms"), kept across restarts.
  absl::Status SaveProgress(std::string_view name, int64_t value);
  absl::StatusOr<std::optional<int64_t>> LoadProgress(std::string_view name);

  // The id of this database, made by `make` (random) the first time and kept: what sets one
  // traceslo's notification ids apart from another's (a new volume, a second instance).

  absl::StatusOr<std::string> InstanceId(const std::function<std::string()>& make);

  int schema_version() const;
  const std::string& path() const { return path_; }

 private:
  SqliteStore(std::string path, std::unique_ptr<SQLite::Database> db);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The row id of a series, inserted if new.
  int64_t SeriesRowId(std::string_view service, std::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable Mutex mu_;
  std::unique_ptr<SQLite::Database> db_ ABSL_GUARDED_BY(mu_);
  // (service '\0' operation) -> series row id; bounded by the registries' caps over time.
  absl::flat_hash_map<std::string, int64_t> series_ids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::storage
