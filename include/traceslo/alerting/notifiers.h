#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/alerting/dispatcher.h"
#include "traceslo/alerting/notifier.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/config/config.h"

namespace traceslo::alerting {

struct NotifierOptions {
  std::chrono::milliseconds timeout{10'000};  // alerting.delivery.timeout, per attempt
  std::string trace_url;                      // links.trace_url ("{trace_id}" is replaced)
};

// The notifier of one receiver: WebhookNotifier, SlackNotifier, PagerDutyNotifier,
// AlertmanagerNotifier or LogNotifier. InvalidArgument naming the receiver (never its URL or
// secrets) when it cannot be built, e.g. an unreadable ca_file. `clock` (webhook signature
// timestamps, Retry-After dates) and `logger` (the log receiver) are borrowed and must outlive
// the notifier.
absl::StatusOr<std::unique_ptr<Notifier>> CreateNotifier(const config::ReceiverConfig& receiver,
                                                         const NotifierOptions& options,
                                                         const Clock& clock, Logger& logger);

// The notifiers of every configured receiver, in configuration order.
absl::StatusOr<std::vector<std::unique_ptr<Notifier>>> CreateNotifiers(
    const config::AlertingConfig& alerting, const config::LinksConfig& links, const Clock& clock,
    Logger& logger);

// The dispatcher's settings from alerting.delivery (the jitter seed is the caller's).
DispatcherOptions DispatcherOptionsFrom(const config::DeliveryConfig& delivery);

}  // namespace traceslo::alerting
