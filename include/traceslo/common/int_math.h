#pragma once

#include <cstdint>

namespace traceslo {

// a / b rounded toward negative infinity (b > 0): times before 1970 and negative offsets fall in
// the bucket, minute or epoch below, as they must. No overflow for any a.
constexpr int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - static_cast<int64_t>(a % b != 0 && ((a < 0) != (b < 0)));
}

}  // namespace traceslo
