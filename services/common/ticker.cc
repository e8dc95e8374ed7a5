#include "traceslo/common/ticker.h"

#include <utility>

namespace traceslo {

Ticker::Ticker(const Clock& clock, std::chrono::nanoseconds interval, std::function<void()> tick)
    : clock_(clock), interval_(interval), tick_(std::move(tick)) {
  thread_ = std::thread([this] { Run(); });
}

Ticker::~Ticker() { Shutdown(); }

void Ticker::Shutdown() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

void Ticker::Run() {
  auto next = clock_.SteadyNow() + interval_;
  while (true) {
    {
      MutexLock lock(mu_);
      if (cv_.WaitUntil(mu_, next, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; })) {
        return;
      }
    }
    tick_();
    // Fixed rate; after a stall, continue from now instead of catching up with a burst.
    next += interval_;
    if (const auto now = clock_.SteadyNow(); next < now) next = now + interval_;
  }
}

}  // namespace traceslo
