#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "traceslo/alerting/notifier.h"
#include "traceslo/common/mutex.h"

namespace traceslo::fakes {

// A Notifier that records every attempt and answers from a script (then a default: delivered).
// It can be blocked, so an attempt stays in flight until the test releases it. Thread-safe.
class FakeNotifier final : public alerting::Notifier {
 public:
  explicit FakeNotifier(std::string receiver) : receiver_(std::move(receiver)) {}

  void Push(alerting::DeliveryResult result) {
    MutexLock lock(mu_);
    script_.push_back(std::move(result));
  }
  void SetDefault(alerting::DeliveryResult result) {
    MutexLock lock(mu_);
    default_ = std::move(result);
  }
  // Attempts from now on wait in Deliver() until Unblock().
  void Block() {
    MutexLock lock(mu_);
    blocked_ = true;
  }
  void Unblock() {
    {
      MutexLock lock(mu_);
      blocked_ = false;
    }
    cv_.NotifyAll();
  }

  // Every attempt's notification, in order.
  std::vector<alerting::Notification> attempts() const {
    MutexLock lock(mu_);
    return attempts_;
  }
  size_t attempt_count() const {
    MutexLock lock(mu_);
    return attempts_.size();
  }
  // Waits (real time, at most `timeout`) until `n` attempts were made.
  bool WaitForAttempts(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    MutexLock lock(mu_);
    return cv_.WaitFor(mu_, timeout,
                       [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return attempts_.size() >= n; });
  }

  // traceslo::alerting::Notifier
  const std::string& receiver() const override { return receiver_; }
  alerting::DeliveryResult Deliver(const alerting::Notification& notification) override {
    MutexLock lock(mu_);
    attempts_.push_back(notification);
    cv_.NotifyAll();
    cv_.Wait(mu_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !blocked_; });
    if (script_.empty()) return default_;
    alerting::DeliveryResult result = std::move(script_.front());
    script_.pop_front();
    return result;
  }

 private:
  const std::string receiver_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<alerting::DeliveryResult> script_ ABSL_GUARDED_BY(mu_);
  alerting::DeliveryResult default_ ABSL_GUARDED_BY(mu_);
  std::vector<alerting::Notification> attempts_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace traceslo::fakes
