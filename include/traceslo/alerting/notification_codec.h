#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

// The outbox's stored form of a notification: JSON with every field. Decode(Encode(n)) == n.
std::string EncodeNotification(const Notification& notification);

// DataLoss when `json` is not what EncodeNotification writes.
absl::StatusOr<Notification> DecodeNotification(std::string_view json);

}  // namespace traceslo::alerting
