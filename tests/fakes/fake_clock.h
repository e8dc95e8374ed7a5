#pragma once

#include <atomic>
#include <chrono>

#include "traceslo/common/clock.h"

namespace traceslo::fakes {

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::chrono::system_clock::time_point start =
                         std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)))
      : offset_ns_(0), start_(start) {}

  void Advance(std::chrono::nanoseconds d) { offset_ns_.fetch_add(d.count()); }

  // traceslo::Clock
  std::chrono::system_clock::time_point Now() const override {
    return start_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                        std::chrono::nanoseconds(offset_ns_.load()));
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()));
  }
  // Never blocks: moves both times forward to `deadline` if it is later (never backwards).
  void SleepUntil(std::chrono::steady_clock::time_point deadline) const override {
    const int64_t target =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    int64_t current = offset_ns_.load();
    while (current < target && !offset_ns_.compare_exchange_weak(current, target)) {
    }
  }

 private:
  // mutable: SleepUntil is const in the interface (sleeping does not change a real clock).
  mutable std::atomic<int64_t> offset_ns_;
  const std::chrono::system_clock::time_point start_;
};

}  // namespace traceslo::fakes
