#pragma once

#include <string>
#include <string_view>

namespace traceslo::loadgen {

// `data` as a gzip member (RFC 1952), for Content-Encoding: gzip. Thread-safe.
std::string Gzip(std::string_view data);

}  // namespace traceslo::loadgen
