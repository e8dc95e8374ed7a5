#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "traceslo/common/clock.h"

namespace traceslo {

// A clock whose time is set by its owner: `traceslo test` runs rules on simulated time and
// `traceslo replay` on the time recorded in the spans. Steady time moves with wall time (both
// are one counter), never backwards. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point start)
      : unix_nanos_(std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch())
                        .count()) {}

  // Moves time forward to `t`; a `t` in the past leaves the clock where it is.
  void AdvanceTo(std::chrono::system_clock::time_point t) {
    const int64_t target =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    int64_t current = unix_nanos_.load();
    while (current < target && !unix_nanos_.compare_exchange_weak(current, target)) {
    }
  }
  void Advance(std::chrono::nanoseconds d) { unix_nanos_.fetch_add(d.count()); }

  // traceslo::Clock
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(unix_nanos_.load())));
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(unix_nanos_.load()));
  }
  // Never blocks: moves time forward to `deadline` if it is later.
  void SleepUntil(std::chrono::steady_clock::time_point deadline) const override {
    const int64_t target =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    int64_t current = unix_nanos_.load();
    while (current < target && !unix_nanos_.compare_exchange_weak(current, target)) {
    }
  }

 private:
  mutable std::atomic<int64_t> unix_nanos_;  // mutable: SleepUntil is const in the interface
};

}  // namespace traceslo
