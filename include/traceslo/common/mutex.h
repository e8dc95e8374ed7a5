#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace traceslo {

// std::mutex with clang thread-safety annotations (Debian's absl::Mutex trips TSan with false
// races, see toolchain.md).
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

// Waits on a Mutex held by the caller through MutexLock.
class CondVar {
 public:
  template <typename Predicate>
  void Wait(Mutex& mu, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    cv_.wait(lock, pred);
    lock.release();
  }
  // Returns pred() at the end: false when `deadline` passed first.
  template <typename TimePoint, typename Predicate>
  bool WaitUntil(Mutex& mu, TimePoint deadline, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    bool result = cv_.wait_until(lock, deadline, pred);
    lock.release();
    return result;
  }
  // Returns pred() at the end: false when `timeout` (of real time) passed first. For waits whose
  // length comes from an injected Clock (a deadline minus its SteadyNow()).
  template <typename Rep, typename Period, typename Predicate>
  bool WaitFor(Mutex& mu, std::chrono::duration<Rep, Period> timeout, Predicate pred) {
    std::unique_lock<std::mutex> lock(mu.native(), std::adopt_lock);
    bool result = cv_.wait_for(lock, timeout, pred);
    lock.release();
    return result;
  }
  void NotifyAll() { cv_.notify_all(); }
  void NotifyOne() { cv_.notify_one(); }

 private:
  std::condition_variable cv_;
};

}  // namespace traceslo
