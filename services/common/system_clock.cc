#include "traceslo/common/clock.h"

namespace traceslo {

// The one place that reads the real clocks (scripts/check_time.sh enforces it).
std::chrono::system_clock::time_point SystemClock::Now() const {
  return std::chrono::system_clock::now();
}

std::chrono::steady_clock::time_point SystemClock::SteadyNow() const {
  return std::chrono::steady_clock::now();
}

}  // namespace traceslo
