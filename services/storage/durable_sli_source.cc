#include "traceslo/storage/durable_sli_source.h"

#include <algorithm>

namespace traceslo::storage {
namespace {

using pipeline::kBucketsPerMinute;

// First minute whose first bucket the store holds: earlier minutes are read from SQLite.
int64_t FirstHeldMinute(int64_t oldest_bucket) {
  if (oldest_bucket == INT64_MAX) return INT64_MAX;
  return -pipeline::MinuteOfBucket(-oldest_bucket);  // ceil(oldest / 6)
}

}  // namespace

DurableSliSource::DurableSliSource(const slo::SliSource& recent, const pipeline::SliStore& store,
                                   SqliteStore& sqlite)
    : recent_(recent), store_(store), sqlite_(sqlite) {}

std::vector<slo::Events> DurableSliSource::StoredMinutes(const slo::Slo& slo, int64_t first_minute,
                                                         int64_t last_minute) const {
  std::vector<slo::Events> out;
  if (first_minute > last_minute) return out;
  out.resize(static_cast<size_t>(last_minute - first_minute + 1));
  auto at = [&](int64_t minute) -> slo::Events& {
    return out[static_cast<size_t>(minute - first_minute)];
  };
  switch (slo.sli.kind) {
    case slo::SliKind::kErrors:
    case slo::SliKind::kLatency:
    case slo::SliKind::kLatencyQuantile: {
      const bool latency = slo.sli.kind != slo::SliKind::kErrors;
      auto rows = sqlite_.SeriesMinutes(
          slo.service, [&](std::string_view op) { return slo.filter.Matches(op); }, first_minute,
          last_minute, latency);
      if (!rows.ok()) {
        read_errors_.fetch_add(1);
        break;
      }
      for (const MinuteSums& m : *rows) {
        at(m.minute) = latency ? slo::LatencyEvents(slo, m.latency)
                               : slo::Events{.total = m.requests, .bad = m.errors};
      }
      break;
    }
    case slo::SliKind::kErrorTraces:
    case slo::SliKind::kPartialTraces: {
      auto rows = sqlite_.ServiceMinutes(slo.service, first_minute, last_minute);
      if (!rows.ok()) {
        read_errors_.fetch_add(1);
        break;
      }
      for (const pipeline::ServiceMinute& m : *rows) {
        uint64_t bad = m.partial_traces;
        if (slo.sli.kind == slo::SliKind::kErrorTraces) {
          bad = slo.sli.error_traces.role == slo::ErrorTraceRole::kRoot ? m.error_traces_root
                                                                        : m.error_traces_origin;
        }
        at(m.minute) = slo::Events{.total = m.traces, .bad = bad};
      }
      break;
    }
  }
  return out;
}

slo::Events DurableSliSource::EventsIn(const slo::Slo& slo, int64_t first_bucket,
                                       int64_t last_bucket) const {
  slo::Events out;
  if (first_bucket > last_bucket) return out;
  const int64_t held = FirstHeldMinute(store_.OldestHeldBucket());
  // Minutes whose first bucket lies in the range and before the store's reach.
  const int64_t first_minute = -pipeline::MinuteOfBucket(-first_bucket);
  const int64_t last_minute = std::min(pipeline::MinuteOfBucket(last_bucket), held - 1);
  for (const slo::Events& e : StoredMinutes(slo, first_minute, last_minute)) out += e;
  if (held != INT64_MAX) {
    out += recent_.EventsIn(slo, std::max(first_bucket, held * kBucketsPerMinute), last_bucket);
  }
  return out;
}

pipeline::LatencySketch DurableSliSource::LatencyIn(const slo::Slo& slo, int64_t first_bucket,
                                                    int64_t last_bucket) const {
  pipeline::LatencySketch out;
  if (first_bucket > last_bucket) return out;
  const int64_t held = FirstHeldMinute(store_.OldestHeldBucket());
  const int64_t first_minute = -pipeline::MinuteOfBucket(-first_bucket);
  const int64_t last_minute = std::min(pipeline::MinuteOfBucket(last_bucket), held - 1);
  if (first_minute <= last_minute) {
    auto rows = sqlite_.SeriesMinutes(
        slo.service, [&](std::string_view op) { return slo.filter.Matches(op); }, first_minute,
        last_minute, /*with_latency=*/true);
    if (rows.ok()) {
      for (const MinuteSums& m : *rows) out.Merge(m.latency);
    } else {
      read_errors_.fetch_add(1);
    }
  }
  if (held != INT64_MAX) {
    out.Merge(
        recent_.LatencyIn(slo, std::max(first_bucket, held * kBucketsPerMinute), last_bucket));
  }
  return out;
}

std::vector<slo::Events> DurableSliSource::MinuteEvents(const slo::Slo& slo, int64_t first_minute,
                                                        int64_t last_minute) const {
  if (first_minute > last_minute) return {};
  const int64_t held = FirstHeldMinute(store_.OldestHeldBucket());
  std::vector<slo::Events> out = StoredMinutes(slo, first_minute, std::min(last_minute, held - 1));
  for (int64_t m = std::max(first_minute, held); m <= last_minute; ++m) {
    out.push_back(recent_.EventsIn(slo, m * kBucketsPerMinute,
                                   m * kBucketsPerMinute + kBucketsPerMinute - 1));
  }
  return out;
}

}  // namespace traceslo::storage
