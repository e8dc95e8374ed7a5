#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "traceslo/alerting/silence.h"

namespace traceslo::web {

// The silence a POST /api/v1/silences body describes, in Alertmanager's field names:
// {matchers: [{name, value, isEqual}], startsAt?, endsAt | duration, createdBy, comment?}.
// startsAt defaults to (and is clamped up to) `now_unix_nano`. InvalidArgument with a message
// for the user for anything else (not JSON, nesting deeper than 8, unknown fields, regex
// matchers, bad times, an end that does not fit, what alerting::ValidateSilence refuses).
absl::StatusOr<alerting::Silence> ParseSilenceRequest(std::string_view body, int64_t now_unix_nano);

}  // namespace traceslo::web
