#pragma once

#include <chrono>

namespace traceslo {

// The only source of time. Thread-safe. SystemClock is the real one; tests use
// traceslo::fakes::FakeClock.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps compared with span times.
  virtual std::chrono::system_clock::time_point Now() const = 0;
  // Monotonic time, for deadlines and intervals.
  virtual std::chrono::steady_clock::time_point SteadyNow() const = 0;
  // Blocks the calling thread until SteadyNow() >= `deadline` (returns at once if it already
  // is). The fake clock does not block: it moves its time forward to `deadline`.
  virtual void SleepUntil(std::chrono::steady_clock::time_point deadline) const = 0;
};

// Reads std::chrono clocks. Thread-safe.
class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override;
  std::chrono::steady_clock::time_point SteadyNow() const override;
  void SleepUntil(std::chrono::steady_clock::time_point deadline) const override;
};

}  // namespace traceslo
