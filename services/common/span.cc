#include "traceslo/common/span.h"

namespace traceslo {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string TraceIdHex(const TraceId& trace_id) {
  std::string out;
  out.reserve(2 * trace_id.size());
  for (uint8_t b : trace_id) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 0xf];
  }
  return out;
}

std::optional<TraceId> ParseTraceIdHex(std::string_view hex) {
  TraceId id{};
  if (hex.size() != 2 * id.size()) return std::nullopt;
  bool zero = true;
  for (size_t i = 0; i < id.size(); ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    id[i] = static_cast<uint8_t>(high << 4 | low);
    zero = zero && id[i] == 0;
  }
  if (zero) return std::nullopt;
  return id;
}

}  // namespace traceslo
