#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/mutex.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::storage {

struct StorageWriterOptions {
  std::chrono::milliseconds retention{35LL * 86'400'000};  // storage.retention
};

// Moves SLI state to SQLite off the span path: Flush() takes the minutes the SLI store changed
// since the last flush and writes them in one transaction, then deletes minutes past retention;
// SaveAlerts() stores the evaluator's alert states. A failed flush keeps its minutes and writes
// them with the next one (a newer copy of a minute replaces the older). Flush() and SaveAlerts()
// are called from one thread at a time (the storage ticker, the evaluator, shutdown); Collect()
// from any. Everything is borrowed and must outlive the writer.
class StorageWriter final : public prometheus::Collectable {
 public:
  StorageWriter(const StorageWriterOptions& options, const Clock& clock, pipeline::SliStore& store,
                const pipeline::SeriesRegistry& registry, SqliteStore& sqlite);

  absl::Status Flush();
  absl::Status SaveAlerts(const std::vector<slo::AlertStatus>& alerts);

  // traceslo_storage_flushes_total{result}, traceslo_storage_rows_written_total,
  // traceslo_storage_rows_deleted_total, traceslo_storage_pending_rows,
  // traceslo_storage_last_flush_success_timestamp_seconds,
  // traceslo_storage_last_flush_duration_seconds, traceslo_storage_alert_saves_total{result}.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const StorageWriterOptions options_;
  const Clock& clock_;
  pipeline::SliStore& store_;
  const pipeline::SeriesRegistry& registry_;
  SqliteStore& sqlite_;

  mutable Mutex mu_;
  // Minutes not yet written (after a failed flush), by (id, minute).
  std::map<std::pair<uint32_t, int64_t>, pipeline::SeriesMinute> pending_series_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, int64_t>, pipeline::ServiceMinute> pending_services_
      ABSL_GUARDED_BY(mu_);
  int64_t last_retention_minute_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
  uint64_t flushes_ok_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t flushes_failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rows_written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rows_deleted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t alert_saves_ok_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t alert_saves_failed_ ABSL_GUARDED_BY(mu_) = 0;
  double last_success_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  double last_duration_seconds_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace traceslo::storage
