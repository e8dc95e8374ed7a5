#pragma once

// JSON values from untrusted text and from doubles, for the pages' JSON twins.

#include <boost/json.hpp>
#include <cmath>
#include <string>
#include <string_view>

#include "services/web/html.h"

namespace traceslo::web {

// `text` made valid UTF-8 (JSON parsers refuse invalid UTF-8), as a JSON string.
inline boost::json::string JsonText(std::string_view text) {
  const std::string valid = ValidUtf8(text);
  return boost::json::string(valid.data(), valid.size());
}

// `value`, or null when it is NaN or infinite (JSON has neither).
inline boost::json::value JsonNumber(double value) {
  return std::isfinite(value) ? boost::json::value(value) : boost::json::value(nullptr);
}

}  // namespace traceslo::web
