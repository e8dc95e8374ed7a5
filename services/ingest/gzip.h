#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace traceslo::ingest {

// Inflates a gzip (or zlib) body into `out`, stopping as soon as the output would exceed
// `max_bytes`: ResourceExhausted then (a gzip bomb costs at most `max_bytes` of memory and the
// time to inflate that much), InvalidArgument for corrupt or truncated input. Thread-safe.
absl::Status Gunzip(std::string_view in, size_t max_bytes, std::string& out);

}  // namespace traceslo::ingest
