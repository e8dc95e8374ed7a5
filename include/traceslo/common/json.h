#pragma once

#include <string>
#include <string_view>

namespace traceslo {

// Appends `s` as a JSON string literal (quotes, backslashes and control characters escaped).
// Bytes >= 0x80 pass through, so valid UTF-8 stays valid.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace traceslo
