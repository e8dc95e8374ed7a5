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

 private:
  std::atomic<int64_t> offset_ns_;
  const std::chrono::system_clock::time_point start_;
};

}  // namespace traceslo::fakes
