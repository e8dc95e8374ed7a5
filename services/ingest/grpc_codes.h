#pragma once

#include <array>
#include <string_view>

namespace traceslo::ingest {

// gRPC status code names, indexed by code (0..16), as gRPC and the semantic conventions
// (rpc.response.status_code) spell them.
inline constexpr std::array<std::string_view, 17> kGrpcCodeNames = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

// The code for a name, or -1.
inline int GrpcCodeFromName(std::string_view name) {
  for (size_t i = 0; i < kGrpcCodeNames.size(); ++i) {
    if (kGrpcCodeNames[i] == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace traceslo::ingest
