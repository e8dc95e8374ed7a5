#include "traceslo/storage/sqlite_store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <array>
#include <exception>
#include <map>
#include <string_view>
#include <utility>

namespace traceslo::storage {
namespace {

// Versioned migrations: kMigrations[i] takes the schema from version i to i + 1. Only ever
// append; a released migration never changes.
constexpr std::array<std::string_view, kSchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE series (
  id INTEGER PRIMARY KEY,
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  UNIQUE (service, operation)
);
CREATE TABLE series_minutes (
  series_id INTEGER NOT NULL REFERENCES series (id),
  minute INTEGER NOT NULL,
  requests INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  latency BLOB NOT NULL,
  last_bucket_offset INTEGER NOT NULL,
  PRIMARY KEY (series_id, minute)
) WITHOUT ROWID;
CREATE INDEX series_minutes_by_minute ON series_minutes (minute);
CREATE TABLE service_minutes (
  service TEXT NOT NULL,
  minute INTEGER NOT NULL,
  traces INTEGER NOT NULL,
  error_traces_root INTEGER NOT NULL,
  error_traces_origin INTEGER NOT NULL,
  partial_traces INTEGER NOT NULL,
  propagation_breaks INTEGER NOT NULL,
  last_bucket_offset INTEGER NOT NULL,
  PRIMARY KEY (service, minute)
) WITHOUT ROWID;
CREATE INDEX service_minutes_by_minute ON service_minutes (minute);
CREATE TABLE alert_states (
  service TEXT NOT NULL,
  slo TEXT NOT NULL,
  severity TEXT NOT NULL,
  no_data INTEGER NOT NULL,
  state TEXT NOT NULL,
  active_since_unix_nano INTEGER NOT NULL,
  fired_at_unix_nano INTEGER NOT NULL,
  resolved_at_unix_nano INTEGER NOT NULL,
  long_window_ms INTEGER NOT NULL,
  short_window_ms INTEGER NOT NULL,
  burn_rate_long REAL NOT NULL,
  burn_rate_short REAL NOT NULL,
  threshold_burn_rate REAL NOT NULL,
  PRIMARY KEY (service, slo, severity, no_data)
) WITHOUT ROWID;
)sql",
    // 2: the alerting outbox (queries in services/alerting/sqlite_outbox_store.cc). Entries are
    // notifications per receiver (state pending, delivered, failed, expired or superseded);
    // outbox_groups keeps the highest delivered sequence per (receiver, group); delivery_log has
    // one row per attempt or decision.
    R"sql(
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  receiver TEXT NOT NULL,
  notification_id TEXT NOT NULL,
  group_key TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  notification TEXT NOT NULL,
  enqueued_unix_nano INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  finished_unix_nano INTEGER NOT NULL DEFAULT 0,
  UNIQUE (receiver, notification_id)
);
CREATE INDEX outbox_pending ON outbox (receiver, group_key, sequence) WHERE state = 'pending';
CREATE INDEX outbox_finished ON outbox (finished_unix_nano) WHERE state != 'pending';
CREATE TABLE outbox_groups (
  receiver TEXT NOT NULL,
  group_key TEXT NOT NULL,
  delivered_sequence INTEGER NOT NULL,
  updated_unix_nano INTEGER NOT NULL,
  PRIMARY KEY (receiver, group_key)
) WITHOUT ROWID;
CREATE TABLE delivery_log (
  id INTEGER PRIMARY KEY,
  entry_id INTEGER NOT NULL,
  notification_id TEXT NOT NULL,
  receiver TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  at_unix_nano INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  http_status INTEGER NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX delivery_log_by_notification ON delivery_log (notification_id);
CREATE INDEX delivery_log_by_time ON delivery_log (at_unix_nano);
)sql",
    // 3: the alert router's per-group state (services/alerting/sqlite_router_state_store.cc: the
    // last notification of each (receiver, group), its labels and alerts as the outbox's
    // notification JSON, and the acknowledgement), silences (sqlite_silence_store.cc: matchers as
    // JSON), the history of alert state changes (alert_history.cc: causes as JSON; burn rates
    // NULL for NaN), and the file's instance id (InstanceId()).
    R"sql(
CREATE TABLE instance (id TEXT NOT NULL);
CREATE TABLE router_groups (
  receiver TEXT NOT NULL,
  group_key TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  last_sent_unix_nano INTEGER NOT NULL,
  resolved INTEGER NOT NULL,
  acked INTEGER NOT NULL,
  acked_at_unix_nano INTEGER NOT NULL,
  notification TEXT NOT NULL,
  PRIMARY KEY (receiver, group_key)
) WITHOUT ROWID;
CREATE TABLE silences (
  id TEXT NOT NULL PRIMARY KEY,
  matchers TEXT NOT NULL,
  starts_at_unix_nano INTEGER NOT NULL,
  ends_at_unix_nano INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  comment TEXT NOT NULL,
  created_at_unix_nano INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX silences_by_end ON silences (ends_at_unix_nano);
CREATE TABLE alert_history (
  id INTEGER PRIMARY KEY,
  service TEXT NOT NULL,
  slo TEXT NOT NULL,
  severity TEXT NOT NULL,
  no_data INTEGER NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  at_unix_nano INTEGER NOT NULL,
  burn_rate_long REAL,
  burn_rate_short REAL,
  threshold_burn_rate REAL,
  causes TEXT NOT NULL
);
CREATE INDEX alert_history_by_time ON alert_history (at_unix_nano);
)sql",
    // 4: kept exemplar traces (exemplar_store.cc): reasons is a bit set (1 alert-linked, 2 slow,
    // 4 error), spans the versioned binary encoding of kept_trace_codec.h, bytes what the size
    // cap counts; age counts from last_linked_at_unix_nano.
    R"sql(
CREATE TABLE exemplar_traces (
  trace_id BLOB NOT NULL PRIMARY KEY,
  reasons INTEGER NOT NULL,
  service TEXT NOT NULL,
  start_unix_nano INTEGER NOT NULL,
  duration_nanos INTEGER NOT NULL,
  dropped_spans INTEGER NOT NULL,
  kept_at_unix_nano INTEGER NOT NULL,
  last_linked_at_unix_nano INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  spans BLOB NOT NULL
);
CREATE INDEX exemplar_traces_by_age ON exemplar_traces (last_linked_at_unix_nano);
)sql",
    // 5: named progress marks (Kafka mode: the next evaluation time on stream time).
    R"sql(
CREATE TABLE IF NOT EXISTS progress (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
)sql",
};

absl::Status Failed(const std::string& path, std::string_view what, const std::exception& e) {
  return absl::UnavailableError(path + ": " + std::string(what) + ": " + e.what());
}

std::string SeriesKey(std::string_view service, std::string_view operation) {
  std::string key(service);
  key += '\0';
  key += operation;
  return key;
}

int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }  // SQLite integers are signed

// The columns of a service_minutes row as ServiceMinuteAt() reads them.
constexpr char kServiceMinuteColumns[] =
    "minute, traces, error_traces_root, error_traces_origin, partial_traces, "
    "propagation_breaks, last_bucket_offset";

// The row's kServiceMinuteColumns, starting at column `at`; the service id is the caller's.
pipeline::ServiceMinute ServiceMinuteAt(const SQLite::Statement& q, int at) {
  auto count = [&](int i) { return static_cast<uint64_t>(q.getColumn(at + i).getInt64()); };
  return pipeline::ServiceMinute{.minute = q.getColumn(at).getInt64(),
                                 .last_offset = q.getColumn(at + 6).getInt(),
                                 .traces = count(1),
                                 .error_traces_root = count(2),
                                 .error_traces_origin = count(3),
                                 .partial_traces = count(4),
                                 .propagation_breaks = count(5)};
}

slo::AlertState ParseState(std::string_view s) {
  for (slo::AlertState state :
       {slo::AlertState::kPending, slo::AlertState::kFiring, slo::AlertState::kResolved}) {
    if (s == slo::AlertStateName(state)) return state;
  }
  return slo::AlertState::kInactive;
}

}  // namespace

SqliteStore::SqliteStore(std::string path, std::unique_ptr<SQLite::Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

SqliteStore::~SqliteStore() = default;

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  std::unique_ptr<SqliteStore> store;
  try {
    auto db =
        std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db->setBusyTimeout(5'000);
    // WAL: readers (the evaluator) never wait for the flush, and a commit survives kill -9. A
    // file system without it (some network mounts) is refused rather than used unsafely.
    const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          path + ": SQLite cannot use write-ahead logging here (journal mode stays \"" + mode +
          "\"); put storage.path on a local file system");
    }
    db->exec("PRAGMA synchronous = NORMAL");
    db->exec("PRAGMA foreign_keys = ON");
    store.reset(new SqliteStore(path, std::move(db)));
  } catch (const std::exception& e) {
    return Failed(path, "cannot open the database", e);
  }
  MutexLock lock(store->mu_);
  if (absl::Status status = store->Migrate(); !status.ok()) return status;
  try {
    SQLite::Statement q(*store->db_, "SELECT id, service, operation FROM series");
    while (q.executeStep()) {
      store->series_ids_[SeriesKey(q.getColumn(1).getString(), q.getColumn(2).getString())] =
          q.getColumn(0).getInt64();
    }
  } catch (const std::exception& e) {
    return Failed(path, "cannot read the series", e);
  }
  return store;
}

absl::Status SqliteStore::Migrate() {
  try {
    const int version = db_->execAndGet("PRAGMA user_version").getInt();
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(
          path_ + ": the database has schema version " + std::to_string(version) +
          ", newer than this traceslo knows (" + std::to_string(kSchemaVersion) +
          "); run a newer traceslo or point storage.path elsewhere");
    }
    for (int v = version; v < kSchemaVersion; ++v) {
      SQLite::Transaction txn(*db_);
      db_->exec(std::string(kMigrations[static_cast<size_t>(v)]));
      db_->exec("PRAGMA user_version = " + std::to_string(v + 1));
      txn.commit();
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot migrate the schema", e);
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Transact(std::string_view what,
                                   const std::function<void(SQLite::Database&)>& fn) {
  MutexLock lock(mu_);
  try {
    SQLite::Transaction txn(*db_);
    fn(*db_);
    txn.commit();
  } catch (const std::exception& e) {
    return Failed(path_, what, e);
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::SaveProgress(std::string_view name, int64_t value) {
  return Transact("progress", [&](SQLite::Database& db) {
    SQLite::Statement upsert(db,
                             "INSERT INTO progress (name, value) VALUES (?, ?) "
                             "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    upsert.bind(1, std::string(name));
    upsert.bind(2, value);
    upsert.exec();
  });
}

absl::StatusOr<std::optional<int64_t>> SqliteStore::LoadProgress(std::string_view name) {
  std::optional<int64_t> value;
  absl::Status status = Transact("progress", [&](SQLite::Database& db) {
    SQLite::Statement select(db, "SELECT value FROM progress WHERE name = ?");
    select.bind(1, std::string(name));
    if (select.executeStep()) value = select.getColumn(0).getInt64();
  });
  if (!status.ok()) return status;
  return value;
}

absl::StatusOr<std::string> SqliteStore::InstanceId(const std::function<std::string()>& make) {
  std::string id;
  absl::Status status = Transact("instance id", [&](SQLite::Database& db) {
    SQLite::Statement select(db, "SELECT id FROM instance LIMIT 1");
    if (select.executeStep()) {
      id = select.getColumn(0).getString();
      return;
    }
    id = make();
    SQLite::Statement insert(db, "INSERT INTO instance (id) VALUES (?)");
    insert.bind(1, id);
    insert.exec();
  });
  if (!status.ok()) return status;
  return id;
}

int SqliteStore::schema_version() const {
  MutexLock lock(mu_);
  try {
    return db_->execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception&) {
    return -1;
  }
}

int64_t SqliteStore::SeriesRowId(std::string_view service, std::string_view operation) {
  const std::string key = SeriesKey(service, operation);
  if (auto it = series_ids_.find(key); it != series_ids_.end()) return it->second;
  SQLite::Statement insert(*db_, "INSERT INTO series (service, operation) VALUES (?, ?)");
  insert.bind(1, std::string(service));
  insert.bind(2, std::string(operation));
  insert.exec();
  const int64_t id = db_->getLastInsertRowid();
  series_ids_[key] = id;
  return id;
}

absl::Status SqliteStore::WriteRollups(const pipeline::MinuteRollups& rollups,
                                       const pipeline::SeriesRegistry& registry) {
  if (rollups.empty()) return absl::OkStatus();
  MutexLock lock(mu_);
  auto ids_before = series_ids_;  // a failed transaction must not leave ids it rolled back
  try {
    SQLite::Transaction txn(*db_);
    SQLite::Statement series(*db_,
                             "INSERT OR REPLACE INTO series_minutes "
                             "(series_id, minute, requests, errors, latency, last_bucket_offset) "
                             "VALUES (?, ?, ?, ?, ?, ?)");
    std::string blob;
    for (const pipeline::SeriesMinute& m : rollups.series) {
      const int64_t id =
          SeriesRowId(registry.ServiceName(m.service), registry.OperationName(m.series));
      blob.clear();
      m.latency.AppendEncoded(blob);
      series.bind(1, id);
      series.bind(2, m.minute);
      series.bind(3, AsInt(m.requests));
      series.bind(4, AsInt(m.errors));
      series.bind(5, blob.data(), static_cast<int>(blob.size()));
      series.bind(6, m.last_offset);
      series.exec();
      series.reset();
    }
    SQLite::Statement services(
        *db_,
        "INSERT OR REPLACE INTO service_minutes (service, minute, traces, error_traces_root, "
        "error_traces_origin, partial_traces, propagation_breaks, last_bucket_offset) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    for (const pipeline::ServiceMinute& m : rollups.services) {
      services.bind(1, std::string(registry.ServiceName(m.service)));
      services.bind(2, m.minute);
      services.bind(3, AsInt(m.traces));
      services.bind(4, AsInt(m.error_traces_root));
      services.bind(5, AsInt(m.error_traces_origin));
      services.bind(6, AsInt(m.partial_traces));
      services.bind(7, AsInt(m.propagation_breaks));
      services.bind(8, m.last_offset);
      services.exec();
      services.reset();
    }
    txn.commit();
  } catch (const std::exception& e) {
    series_ids_ = std::move(ids_before);
    return Failed(path_, "cannot write SLI rollups", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<pipeline::MinuteRollups> SqliteStore::LoadRollups(
    int64_t first_minute, pipeline::SeriesRegistry& registry) {
  pipeline::MinuteRollups out;
  MutexLock lock(mu_);
  try {
    SQLite::Statement series(*db_,
                             "SELECT s.service, s.operation, m.minute, m.requests, m.errors, "
                             "m.latency, m.last_bucket_offset FROM series_minutes m "
                             "JOIN series s ON s.id = m.series_id "
                             "WHERE m.minute >= ? ORDER BY m.minute, s.id");
    series.bind(1, first_minute);
    while (series.executeStep()) {
      const pipeline::SeriesRegistry::Ids ids =
          registry.Resolve(series.getColumn(0).getString(), series.getColumn(1).getString());
      pipeline::SeriesMinute m{.series = ids.series,
                               .service = ids.service,
                               .minute = series.getColumn(2).getInt64(),
                               .last_offset = series.getColumn(6).getInt(),
                               .requests = static_cast<uint64_t>(series.getColumn(3).getInt64()),
                               .errors = static_cast<uint64_t>(series.getColumn(4).getInt64())};
      const SQLite::Column blob = series.getColumn(5);
      if (!m.latency.Decode(std::string_view(static_cast<const char*>(blob.getBlob()),
                                             static_cast<size_t>(blob.getBytes())))) {
        return absl::DataLossError(path_ + ": a latency rollup of minute " +
                                   std::to_string(m.minute) + " does not decode");
      }
      out.series.push_back(std::move(m));
    }
    SQLite::Statement services(*db_, std::string("SELECT service, ") + kServiceMinuteColumns +
                                         " FROM service_minutes WHERE minute >= ? "
                                         "ORDER BY minute, service");
    services.bind(1, first_minute);
    while (services.executeStep()) {
      pipeline::ServiceMinute m = ServiceMinuteAt(services, 1);
      m.service = registry.ResolveService(services.getColumn(0).getString());
      out.services.push_back(m);
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot read SLI rollups", e);
  }
  return out;
}

absl::StatusOr<std::vector<MinuteSums>> SqliteStore::SeriesMinutes(
    std::string_view service, const std::function<bool(std::string_view)>& matches,
    int64_t first_minute, int64_t last_minute, bool with_latency) {
  std::vector<MinuteSums> out;
  if (first_minute > last_minute) return out;
  MutexLock lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT s.operation, m.minute, m.requests, m.errors, m.latency "
                        "FROM series s JOIN series_minutes m ON m.series_id = s.id "
                        "WHERE s.service = ? AND m.minute BETWEEN ? AND ? ORDER BY m.minute");
    q.bind(1, std::string(service));
    q.bind(2, first_minute);
    q.bind(3, last_minute);
    pipeline::LatencySketch sketch;
    while (q.executeStep()) {
      if (!matches(q.getColumn(0).getString())) continue;
      const int64_t minute = q.getColumn(1).getInt64();
      if (out.empty() || out.back().minute != minute) out.push_back(MinuteSums{.minute = minute});
      MinuteSums& sums = out.back();
      sums.requests += static_cast<uint64_t>(q.getColumn(2).getInt64());
      sums.errors += static_cast<uint64_t>(q.getColumn(3).getInt64());
      if (!with_latency) continue;
      const SQLite::Column blob = q.getColumn(4);
      if (!sketch.Decode(std::string_view(static_cast<const char*>(blob.getBlob()),
                                          static_cast<size_t>(blob.getBytes())))) {
        return absl::DataLossError(path_ + ": a latency rollup of minute " +
                                   std::to_string(minute) + " does not decode");
      }
      sums.latency.Merge(sketch);
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot read SLI rollups", e);
  }
  return out;
}

absl::StatusOr<std::vector<pipeline::ServiceMinute>> SqliteStore::ServiceMinutes(
    std::string_view service, int64_t first_minute, int64_t last_minute) {
  std::vector<pipeline::ServiceMinute> out;
  if (first_minute > last_minute) return out;
  MutexLock lock(mu_);
  try {
    SQLite::Statement q(*db_, std::string("SELECT ") + kServiceMinuteColumns +
                                  " FROM service_minutes WHERE service = ? AND minute BETWEEN ? "
                                  "AND ? ORDER BY minute");
    q.bind(1, std::string(service));
    q.bind(2, first_minute);
    q.bind(3, last_minute);
    while (q.executeStep()) out.push_back(ServiceMinuteAt(q, 0));
  } catch (const std::exception& e) {
    return Failed(path_, "cannot read SLI rollups", e);
  }
  return out;
}

absl::StatusOr<uint64_t> SqliteStore::DeleteBefore(int64_t first_minute) {
  MutexLock lock(mu_);
  try {
    SQLite::Transaction txn(*db_);
    SQLite::Statement series(*db_, "DELETE FROM series_minutes WHERE minute < ?");
    series.bind(1, first_minute);
    uint64_t rows = static_cast<uint64_t>(series.exec());
    SQLite::Statement services(*db_, "DELETE FROM service_minutes WHERE minute < ?");
    services.bind(1, first_minute);
    rows += static_cast<uint64_t>(services.exec());
    txn.commit();
    return rows;
  } catch (const std::exception& e) {
    return Failed(path_, "cannot delete old SLI rollups", e);
  }
}

absl::Status SqliteStore::SaveAlerts(const std::vector<slo::AlertStatus>& alerts) {
  MutexLock lock(mu_);
  try {
    SQLite::Transaction txn(*db_);
    db_->exec("DELETE FROM alert_states");
    SQLite::Statement insert(
        *db_,
        "INSERT OR REPLACE INTO alert_states (service, slo, severity, no_data, state, "
        "active_since_unix_nano, fired_at_unix_nano, resolved_at_unix_nano, long_window_ms, "
        "short_window_ms, burn_rate_long, burn_rate_short, threshold_burn_rate) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const slo::AlertStatus& a : alerts) {
      insert.bind(1, a.service);
      insert.bind(2, a.slo);
      insert.bind(3, std::string(slo::SeverityName(a.severity)));
      insert.bind(4, a.no_data ? 1 : 0);
      insert.bind(5, std::string(slo::AlertStateName(a.state)));
      insert.bind(6, a.active_since_unix_nano);
      insert.bind(7, a.fired_at_unix_nano);
      insert.bind(8, a.resolved_at_unix_nano);
      insert.bind(9, static_cast<int64_t>(a.long_window.count()));
      insert.bind(10, static_cast<int64_t>(a.short_window.count()));
      insert.bind(11, a.burn_rate_long);
      insert.bind(12, a.burn_rate_short);
      insert.bind(13, a.threshold_burn_rate);
      insert.exec();
      insert.reset();
    }
    txn.commit();
  } catch (const std::exception& e) {
    return Failed(path_, "cannot save alert states", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<slo::AlertStatus>> SqliteStore::LoadAlerts() {
  std::vector<slo::AlertStatus> out;
  MutexLock lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT service, slo, severity, no_data, state, active_since_unix_nano, "
                        "fired_at_unix_nano, resolved_at_unix_nano, long_window_ms, "
                        "short_window_ms, burn_rate_long, burn_rate_short, threshold_burn_rate "
                        "FROM alert_states ORDER BY service, slo, severity, no_data");
    while (q.executeStep()) {
      slo::AlertStatus a;
      a.service = q.getColumn(0).getString();
      a.slo = q.getColumn(1).getString();
      a.severity = q.getColumn(2).getString() == slo::SeverityName(slo::Severity::kTicket)
                       ? slo::Severity::kTicket
                       : slo::Severity::kPage;
      a.no_data = q.getColumn(3).getInt() != 0;
      a.state = ParseState(q.getColumn(4).getString());
      a.active_since_unix_nano = q.getColumn(5).getInt64();
      a.fired_at_unix_nano = q.getColumn(6).getInt64();
      a.resolved_at_unix_nano = q.getColumn(7).getInt64();
      a.long_window = std::chrono::milliseconds(q.getColumn(8).getInt64());
      a.short_window = std::chrono::milliseconds(q.getColumn(9).getInt64());
      a.burn_rate_long = q.getColumn(10).getDouble();
      a.burn_rate_short = q.getColumn(11).getDouble();
      a.threshold_burn_rate = q.getColumn(12).getDouble();
      out.push_back(std::move(a));
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot read alert states", e);
  }
  return out;
}

}  // namespace traceslo::storage
