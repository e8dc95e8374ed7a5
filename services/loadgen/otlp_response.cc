#include "services/loadgen/otlp_response.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <string>

namespace traceslo::loadgen {
namespace {

// A minimal protobuf wire reader: fields of one message, in order.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : rest_(bytes) {}

  struct Field {
    uint32_t number = 0;
    uint32_t wire_type = 0;
    uint64_t varint = 0;    // wire types 0, 1 (fixed64), 5 (fixed32)
    std::string_view data;  // wire type 2
  };

  // The next field; false at the end. `ok()` tells a clean end from malformed input.
  bool Next(Field& field) {
    if (rest_.empty() || !ok_) return false;
    uint64_t key = 0;
    if (!Varint(key) || key >> 3 == 0 || key >> 3 > UINT32_MAX) return Fail();
    field.number = static_cast<uint32_t>(key >> 3);
    field.wire_type = static_cast<uint32_t>(key & 7);
    switch (field.wire_type) {
      case 0:
        return Varint(field.varint) || Fail();
      case 1:
      case 5: {
        const size_t n = field.wire_type == 1 ? 8 : 4;
        if (rest_.size() < n) return Fail();
        field.varint = 0;
        for (size_t i = 0; i < n; ++i) {
          field.varint |= uint64_t{static_cast<uint8_t>(rest_[i])} << (8 * i);
        }
        rest_.remove_prefix(n);
        return true;
      }
      case 2: {
        uint64_t length = 0;
        if (!Varint(length) || length > rest_.size()) return Fail();
        field.data = rest_.substr(0, length);
        rest_.remove_prefix(length);
        return true;
      }
      default:
        return Fail();
    }
  }
  bool ok() const { return ok_; }

 private:
  bool Varint(uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return false;
      const uint8_t byte = static_cast<uint8_t>(rest_.front());
      rest_.remove_prefix(1);
      out |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool Fail() {
    ok_ = false;
    return false;
  }

  std::string_view rest_;
  bool ok_ = true;
};

}  // namespace

std::optional<int64_t> RejectedSpansFromProtobuf(std::string_view body) {
  int64_t rejected = 0;
  WireReader response(body);
  WireReader::Field field;
  while (response.Next(field)) {
    if (field.number != 1 || field.wire_type != 2) continue;  // partial_success
    WireReader partial(field.data);
    WireReader::Field inner;
    while (partial.Next(inner)) {
      if (inner.number == 1 && inner.wire_type == 0) rejected = static_cast<int64_t>(inner.varint);
    }
    if (!partial.ok()) return std::nullopt;
  }
  if (!response.ok()) return std::nullopt;
  return rejected;
}

std::optional<int64_t> RejectedSpansFromJson(std::string_view body) {
  if (body.empty()) return 0;
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(body, ec);
  if (ec || !value.is_object()) return std::nullopt;
  const boost::json::value* partial = value.as_object().if_contains("partialSuccess");
  if (partial == nullptr) partial = value.as_object().if_contains("partial_success");
  if (partial == nullptr || partial->is_null()) return 0;
  if (!partial->is_object()) return std::nullopt;
  const boost::json::value* rejected = partial->as_object().if_contains("rejectedSpans");
  if (rejected == nullptr) rejected = partial->as_object().if_contains("rejected_spans");
  if (rejected == nullptr || rejected->is_null()) return 0;
  if (rejected->is_int64()) return rejected->as_int64();
  if (rejected->is_uint64()) return static_cast<int64_t>(rejected->as_uint64());
  if (rejected->is_string()) {
    const boost::json::string& s = rejected->as_string();
    int64_t n = 0;
    auto [ptr, ec2] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec2 == std::errc() && ptr == s.data() + s.size()) return n;
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> RetryDelayFromRpcStatus(std::string_view status) {
  constexpr std::string_view kRetryInfo = "type.googleapis.com/google.rpc.RetryInfo";
  WireReader reader(status);
  WireReader::Field field;
  while (reader.Next(field)) {
    if (field.number != 3 || field.wire_type != 2) continue;  // details: Any
    std::string_view type_url;
    std::string_view value;
    WireReader any(field.data);
    WireReader::Field f;
    while (any.Next(f)) {
      if (f.wire_type != 2) continue;
      if (f.number == 1) type_url = f.data;
      if (f.number == 2) value = f.data;
    }
    if (!any.ok() || type_url != kRetryInfo) continue;
    WireReader retry(value);
    while (retry.Next(f)) {
      if (f.number != 1 || f.wire_type != 2) continue;  // retry_delay: Duration
      int64_t seconds = 0;
      int64_t nanos = 0;
      WireReader duration(f.data);
      WireReader::Field d;
      while (duration.Next(d)) {
        if (d.wire_type != 0) continue;
        if (d.number == 1) seconds = static_cast<int64_t>(d.varint);
        if (d.number == 2) nanos = static_cast<int32_t>(d.varint);
      }
      if (!duration.ok() || seconds < 0 || seconds > 86'400 || nanos < 0) return std::nullopt;
      return std::chrono::milliseconds(seconds * 1000 + nanos / 1'000'000);
    }
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  int64_t seconds = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || seconds < 0 ||
      seconds > 86'400) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(seconds * 1000);
}

}  // namespace traceslo::loadgen
