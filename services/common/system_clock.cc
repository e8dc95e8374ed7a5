#include <thread>

#include "traceslo/common/clock.h"

namespace traceslo {

// The one place that reads the real clocks or sleeps (scripts/check_time.sh enforces it).
std::chrono::system_clock::time_point SystemClock::Now() const {
  return std::chrono::system_clock::now();
}

std::chrono::steady_clock::time_point SystemClock::SteadyNow() const {
  return std::chrono::steady_clock::now();
}

void SystemClock::SleepUntil(std::chrono::steady_clock::time_point deadline) const {
  std::this_thread::sleep_until(deadline);
}

}  // namespace traceslo
