#include "traceslo/alerting/alert_history.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "services/alerting/json_writer.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule.h"

namespace traceslo::alerting {
namespace {

// SQLite stores NaN as NULL: the columns are nullable and NULL reads back as NaN.
void BindRate(SQLite::Statement& q, int index, double rate) {
  if (std::isnan(rate)) {
    q.bind(index);
  } else {
    q.bind(index, rate);
  }
}

double RateAt(const SQLite::Statement& q, int index) {
  const SQLite::Column column = q.getColumn(index);
  return column.isNull() ? std::numeric_limits<double>::quiet_NaN() : column.getDouble();
}

}  // namespace

std::string CausesJson(const std::vector<Cause>& causes) {
  JsonWriter w;
  w.BeginArray();
  for (const Cause& cause : causes) WriteCause(w, cause, CauseKindForm::kName);
  w.EndArray();
  return w.Take();
}

AlertHistoryEntry HistoryEntryOf(const slo::AlertTransition& transition, int64_t at_unix_nano,
                                 const std::vector<Cause>& causes) {
  const slo::AlertStatus& s = transition.status;
  return AlertHistoryEntry{.service = s.service,
                           .slo = s.slo,
                           .severity = std::string(slo::SeverityName(s.severity)),
                           .no_data = s.no_data,
                           .from = std::string(slo::AlertStateName(transition.from)),
                           .to = std::string(slo::AlertStateName(s.state)),
                           .at_unix_nano = at_unix_nano,
                           .burn_rate_long = s.burn_rate_long,
                           .burn_rate_short = s.burn_rate_short,
                           .threshold_burn_rate = s.threshold_burn_rate,
                           .causes_json = CausesJson(causes)};
}

absl::Status SqliteAlertHistory::Append(const std::vector<AlertHistoryEntry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  return db_.Transact("cannot append to the alert history", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "INSERT INTO alert_history (service, slo, severity, no_data, from_state, "
                        "to_state, at_unix_nano, burn_rate_long, burn_rate_short, "
                        "threshold_burn_rate, causes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const AlertHistoryEntry& e : entries) {
      q.bind(1, e.service);
      q.bind(2, e.slo);
      q.bind(3, e.severity);
      q.bind(4, e.no_data ? 1 : 0);
      q.bind(5, e.from);
      q.bind(6, e.to);
      q.bind(7, e.at_unix_nano);
      BindRate(q, 8, e.burn_rate_long);
      BindRate(q, 9, e.burn_rate_short);
      BindRate(q, 10, e.threshold_burn_rate);
      q.bind(11, e.causes_json);
      q.exec();
      q.reset();
    }
  });
}

absl::StatusOr<std::vector<AlertHistoryEntry>> SqliteAlertHistory::Recent(size_t limit) {
  std::vector<AlertHistoryEntry> out;
  limit = std::min(limit, kMaxRecent);
  if (limit == 0) return out;
  absl::Status status = db_.Transact("cannot read the alert history", [&](SQLite::Database& db) {
    SQLite::Statement q(db,
                        "SELECT id, service, slo, severity, no_data, from_state, to_state, "
                        "at_unix_nano, burn_rate_long, burn_rate_short, threshold_burn_rate, "
                        "causes FROM alert_history ORDER BY at_unix_nano DESC, id DESC LIMIT ?");
    q.bind(1, static_cast<int64_t>(limit));
    while (q.executeStep()) {
      out.push_back(AlertHistoryEntry{.id = q.getColumn(0).getInt64(),
                                      .service = q.getColumn(1).getString(),
                                      .slo = q.getColumn(2).getString(),
                                      .severity = q.getColumn(3).getString(),
                                      .no_data = q.getColumn(4).getInt() != 0,
                                      .from = q.getColumn(5).getString(),
                                      .to = q.getColumn(6).getString(),
                                      .at_unix_nano = q.getColumn(7).getInt64(),
                                      .burn_rate_long = RateAt(q, 8),
                                      .burn_rate_short = RateAt(q, 9),
                                      .threshold_burn_rate = RateAt(q, 10),
                                      .causes_json = q.getColumn(11).getString()});
    }
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<uint64_t> SqliteAlertHistory::Prune(int64_t before_unix_nano) {
  uint64_t rows = 0;
  absl::Status status = db_.Transact("cannot prune the alert history", [&](SQLite::Database& db) {
    SQLite::Statement q(db, "DELETE FROM alert_history WHERE at_unix_nano < ?");
    q.bind(1, before_unix_nano);
    rows = static_cast<uint64_t>(q.exec());
  });
  if (!status.ok()) return status;
  return rows;
}

}  // namespace traceslo::alerting
