#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

struct DeliveryResult {
  enum class Outcome {
    kDelivered,
    kRetryable,  // network failure, timeout, 408, 429, 5xx: try again later
    kPermanent,  // other 4xx and 3xx, an unusable URL: never retried
  };
  Outcome outcome = Outcome::kDelivered;
  std::optional<std::chrono::milliseconds> retry_after;  // when the receiver said so
  int http_status = 0;                                   // 0 when none came back
  // Why it failed, for logs and the outbox; never contains the receiver's URL or credentials.
  std::string error;
};

// Delivers one notification to one destination (webhook, Slack, PagerDuty, Alertmanager, log).
// Thread-safe. Never throws; each call is one attempt with its own timeout.
// kRetryable: network failure, timeout, 408, 429, 5xx (`retry_after` set when the receiver sent
// Retry-After); kPermanent: other 4xx, redirects, an unusable URL: never retried.
class Notifier {
 public:
  virtual ~Notifier() = default;
  // The receiver's name (alerting.receivers[].name): the outbox and metrics key.
  virtual const std::string& receiver() const = 0;
  virtual DeliveryResult Deliver(const Notification& notification) = 0;
};

}  // namespace traceslo::alerting
