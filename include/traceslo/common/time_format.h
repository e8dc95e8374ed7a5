#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace traceslo {

// RFC 3339 in UTC with the fraction's trailing zeros dropped, as Go's time.RFC3339Nano writes it
// (Alertmanager, Prometheus): "2023-11-14T22:13:20.25Z"; 0 is Go's zero time
// "0001-01-01T00:00:00Z".
std::string FormatRfc3339(int64_t unix_nano);

// Reads "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" (a lower-case t/z too; at most 9 fraction
// digits) into unix nanoseconds. nullopt for anything else, for impossible dates and for times
// outside years 1970..2262 (what int64 nanoseconds hold).
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace traceslo
