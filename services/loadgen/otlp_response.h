#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace traceslo::loadgen {

// Readers of what OTLP receivers answer, written against the wire format (no generated types).
// Pure functions; nullopt when the input is malformed.

// ExportTraceServiceResponse.partial_success.rejected_spans (0 when absent).
std::optional<int64_t> RejectedSpansFromProtobuf(std::string_view body);
// The same from OTLP/JSON ({"partialSuccess":{"rejectedSpans":"3"}}).
std::optional<int64_t> RejectedSpansFromJson(std::string_view body);
// The retry_delay of a google.rpc.RetryInfo among the details of a google.rpc.Status (the
// grpc-status-details-bin trailer).
std::optional<std::chrono::milliseconds> RetryDelayFromRpcStatus(std::string_view status);
// Retry-After as delay-seconds (HTTP dates are not used by OTLP receivers: nullopt).
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value);

}  // namespace traceslo::loadgen
