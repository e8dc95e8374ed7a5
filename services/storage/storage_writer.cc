#include "traceslo/storage/storage_writer.h"

#include <utility>

#include "traceslo/common/metric_values.h"

namespace traceslo::storage {
namespace {

using metrics::Counter;
using metrics::Family;
using metrics::Gauge;

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double Seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

}  // namespace

StorageWriter::StorageWriter(const StorageWriterOptions& options, const Clock& clock,
                             pipeline::SliStore& store, const pipeline::SeriesRegistry& registry,
                             SqliteStore& sqlite)
    : options_(options), clock_(clock), store_(store), registry_(registry), sqlite_(sqlite) {}

absl::Status StorageWriter::Flush() {
  const auto started = clock_.SteadyNow();
  pipeline::MinuteRollups changed = store_.TakeChangedMinutes();
  MutexLock lock(mu_);
  for (pipeline::SeriesMinute& m : changed.series) {
    pending_series_[{m.series, m.minute}] = std::move(m);
  }
  for (const pipeline::ServiceMinute& m : changed.services) {
    pending_services_[{m.service, m.minute}] = m;
  }
  pipeline::MinuteRollups batch;
  for (const auto& [key, m] : pending_series_) batch.series.push_back(m);
  for (const auto& [key, m] : pending_services_) batch.services.push_back(m);
  absl::Status status = sqlite_.WriteRollups(batch, registry_);
  if (status.ok()) {
    rows_written_ += batch.series.size() + batch.services.size();
    pending_series_.clear();
    pending_services_.clear();
    // Retention: at most once a minute.
    const int64_t now_minute =
        std::chrono::duration_cast<std::chrono::minutes>(clock_.Now().time_since_epoch()).count();
    if (now_minute != last_retention_minute_) {
      auto deleted = sqlite_.DeleteBefore(now_minute - options_.retention.count() / 60'000);
      if (deleted.ok()) {
        rows_deleted_ += *deleted;
        last_retention_minute_ = now_minute;
      } else {
        status = deleted.status();
      }
    }
  }
  if (status.ok()) {
    ++flushes_ok_;
    last_success_seconds_ = Seconds(clock_.Now());
  } else {
    ++flushes_failed_;
  }
  last_duration_seconds_ = std::chrono::duration<double>(clock_.SteadyNow() - started).count();
  return status;
}

absl::Status StorageWriter::SaveAlerts(const std::vector<slo::AlertStatus>& alerts) {
  absl::Status status = sqlite_.SaveAlerts(alerts);
  MutexLock lock(mu_);
  ++(status.ok() ? alert_saves_ok_ : alert_saves_failed_);
  return status;
}

std::vector<MetricFamily> StorageWriter::Collect() const {
  MutexLock lock(mu_);
  std::vector<MetricFamily> out;
  auto flushes = Family("traceslo_storage_flushes_total",
                        "Flushes of SLI minute rollups to SQLite, by result.", MetricType::Counter);
  flushes.metric.push_back(Counter({{"result", "success"}}, static_cast<double>(flushes_ok_)));
  flushes.metric.push_back(Counter({{"result", "failure"}}, static_cast<double>(flushes_failed_)));
  out.push_back(std::move(flushes));
  auto written = Family("traceslo_storage_rows_written_total",
                        "Minute rollup rows written to SQLite (a minute is rewritten while late "
                        "spans change it).",
                        MetricType::Counter);
  written.metric.push_back(Counter({}, static_cast<double>(rows_written_)));
  out.push_back(std::move(written));
  auto deleted = Family("traceslo_storage_rows_deleted_total",
                        "Minute rollup rows deleted past storage.retention.", MetricType::Counter);
  deleted.metric.push_back(Counter({}, static_cast<double>(rows_deleted_)));
  out.push_back(std::move(deleted));
  auto pending = Family("traceslo_storage_pending_rows",
                        "Minute rollups waiting for a flush to succeed.", MetricType::Gauge);
  pending.metric.push_back(
      Gauge({}, static_cast<double>(pending_series_.size() + pending_services_.size())));
  out.push_back(std::move(pending));
  auto last = Family("traceslo_storage_last_flush_success_timestamp_seconds",
                     "When a flush last succeeded (unix seconds; 0: never).", MetricType::Gauge);
  last.metric.push_back(Gauge({}, last_success_seconds_));
  out.push_back(std::move(last));
  auto duration = Family("traceslo_storage_last_flush_duration_seconds",
                         "How long the last flush took.", MetricType::Gauge);
  duration.metric.push_back(Gauge({}, last_duration_seconds_));
  out.push_back(std::move(duration));
  auto saves = Family("traceslo_storage_alert_saves_total",
                      "Saves of the alert states to SQLite, by result.", MetricType::Counter);
  saves.metric.push_back(Counter({{"result", "success"}}, static_cast<double>(alert_saves_ok_)));
  saves.metric.push_back(
      Counter({{"result", "failure"}}, static_cast<double>(alert_saves_failed_)));
  out.push_back(std::move(saves));
  return out;
}

}  // namespace traceslo::storage
