#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::storage {

// The evaluator's source in `traceslo serve`: buckets the SLI store still holds come from it
// (`recent`), older minutes from the SQLite rollups, so a 30-day compliance window and a 6 h
// burn-rate window read the same after a restart as before it. A minute is read from SQLite when
// its first bucket is older than the store's oldest held bucket. Read failures count in
// read_errors() and read as no events. Thread-safe; everything is borrowed.
class DurableSliSource final : public slo::SliSource {
 public:
  DurableSliSource(const slo::SliSource& recent, const pipeline::SliStore& store,
                   SqliteStore& sqlite);

  // traceslo::slo::SliSource
  slo::Events EventsIn(const slo::Slo& slo, int64_t first_bucket,
                       int64_t last_bucket) const override;
  pipeline::LatencySketch LatencyIn(const slo::Slo& slo, int64_t first_bucket,
                                    int64_t last_bucket) const override;
  std::vector<slo::Events> MinuteEvents(const slo::Slo& slo, int64_t first_minute,
                                        int64_t last_minute) const override;

  uint64_t read_errors() const { return read_errors_.load(); }

 private:
  // Events per minute of [first_minute, last_minute] from SQLite (absent minutes: none).
  std::vector<slo::Events> StoredMinutes(const slo::Slo& slo, int64_t first_minute,
                                         int64_t last_minute) const;

  const slo::SliSource& recent_;
  const pipeline::SliStore& store_;
  SqliteStore& sqlite_;
  mutable std::atomic<uint64_t> read_errors_{0};
};

}  // namespace traceslo::storage
