#pragma once

#include <chrono>
#include <functional>
#include <thread>

#include "traceslo/common/clock.h"
#include "traceslo/common/mutex.h"

namespace traceslo {

// Calls `tick` every `interval` of `clock`'s steady time on its own thread, until Shutdown().
// The clock must be a real one (waits use std::condition_variable); tests drive the ticked
// object directly instead. Thread-safe. `clock` is borrowed and must outlive the ticker.
class Ticker {
 public:
  Ticker(const Clock& clock, std::chrono::nanoseconds interval, std::function<void()> tick);
  ~Ticker();
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

  // Stops and joins; a tick in progress finishes first. Idempotent.
  void Shutdown();

 private:
  void Run();

  const Clock& clock_;
  const std::chrono::nanoseconds interval_;
  const std::function<void()> tick_;
  Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace traceslo
