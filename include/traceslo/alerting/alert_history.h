#pragma once

// The alert history: every state change of the evaluator's alerts (pending, firing, resolved,
// ...), with its burn rates and causes, kept in traceslo's SQLite file for the API and the alerts
// page. It lives in alerting rather than storage because the causes (alerting::Cause) do.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::slo {
struct AlertTransition;
}

namespace traceslo::alerting {

struct AlertHistoryEntry {
  int64_t id = 0;  // the row's id, increasing; set by Recent(), ignored by Append()
  std::string service;
  std::string slo;
  std::string severity;  // slo::SeverityName
  bool no_data = false;  // the SLO's no-data alert
  std::string from;      // slo::AlertStateName of the state before
  std::string to;        // and after the change
  int64_t at_unix_nano = 0;
  double burn_rate_long = 0;  // NaN stays NaN
  double burn_rate_short = 0;
  double threshold_burn_rate = 0;
  // [{"kind":"signature","id":"…","title":"…","sampleMessage":"…","count":3,"share":0.5,
  //   "traceIds":["…"]}]; kind is signature, slow_operation or propagation_break.
  std::string causes_json = "[]";
  bool operator==(const AlertHistoryEntry&) const = default;
};

// The history entry of `transition` at `at_unix_nano` (the evaluation's time), with `causes`.
AlertHistoryEntry HistoryEntryOf(const slo::AlertTransition& transition, int64_t at_unix_nano,
                                 const std::vector<Cause>& causes = {});

// `causes` as AlertHistoryEntry::causes_json writes them.
std::string CausesJson(const std::vector<Cause>& causes);

// The history in table alert_history (migration 3 of the storage module). Thread-safe (the
// SqliteStore's connection lock); errors are Unavailable with the file's path. `db` is borrowed
// and must outlive the history.
class SqliteAlertHistory {
 public:
  // Recent() returns at most this many entries, whatever the limit asked.
  static constexpr size_t kMaxRecent = 10'000;

  explicit SqliteAlertHistory(storage::SqliteStore& db) : db_(db) {}

  // Appends `entries` in one transaction, in order.
  absl::Status Append(const std::vector<AlertHistoryEntry>& entries);
  // The newest `limit` entries (at most kMaxRecent), newest first (by time, then by id).
  absl::StatusOr<std::vector<AlertHistoryEntry>> Recent(size_t limit);
  // Deletes the entries before `before_unix_nano`; how many went.
  absl::StatusOr<uint64_t> Prune(int64_t before_unix_nano);

 private:
  storage::SqliteStore& db_;
};

}  // namespace traceslo::alerting
