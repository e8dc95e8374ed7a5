#include "services/storage/kept_trace_codec.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace traceslo::storage {
namespace {

constexpr size_t kStringsPerSpan = 5;  // service, operation, exception type, message, top frame
// Three fixed ids, five indexes, kind, flags, offset and duration: the least a span takes.
constexpr size_t kMinSpanBytes = 3 * 8 + kStringsPerSpan + 2 + 2;
constexpr uint8_t kErrorFlag = 1;
constexpr uint8_t kOrphanFlag = 2;
constexpr uint8_t kMaxKind = static_cast<uint8_t>(SpanKind::kConsumer);

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutFixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>(v & 0xff));
    v >>= 8;
  }
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

// Reads `bytes` front to back; every read checks what is left.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  size_t offset() const { return at_; }
  size_t left() const { return bytes_.size() - at_; }

  std::optional<uint8_t> Byte() {
    if (left() < 1) return std::nullopt;
    return static_cast<uint8_t>(bytes_[at_++]);
  }
  std::optional<uint64_t> Fixed64() {
    if (left() < 8) return std::nullopt;
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
      v = (v << 8) | static_cast<uint8_t>(bytes_[at_ + static_cast<size_t>(i)]);
    }
    at_ += 8;
    return v;
  }
  // LEB128 of at most 10 bytes whose value fits 64 bits.
  std::optional<uint64_t> Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::optional<uint8_t> b = Byte();
      if (!b) return std::nullopt;
      if (shift == 63 && *b > 1) return std::nullopt;
      v |= static_cast<uint64_t>(*b & 0x7f) << shift;
      if ((*b & 0x80) == 0) return v;
    }
    return std::nullopt;
  }
  std::optional<std::string_view> Bytes(uint64_t n) {
    if (n > left()) return std::nullopt;
    std::string_view out = bytes_.substr(at_, static_cast<size_t>(n));
    at_ += static_cast<size_t>(n);
    return out;
  }

 private:
  std::string_view bytes_;
  size_t at_ = 0;
};

absl::Status Corrupt(const Reader& r, std::string_view what) {
  return absl::InvalidArgumentError("kept spans: " + std::string(what) + " at byte " +
                                    std::to_string(r.offset()));
}

// Indexes of the distinct strings of an encoding, first use first.
class StringTable {
 public:
  uint64_t Index(std::string_view text) {
    text = TruncateText(text, kMaxKeptStringBytes);
    auto [it, inserted] = index_.try_emplace(text, strings_.size());
    if (inserted) strings_.push_back(text);
    return it->second;
  }
  const std::vector<std::string_view>& strings() const { return strings_; }

 private:
  absl::flat_hash_map<std::string_view, uint64_t> index_;
  std::vector<std::string_view> strings_;
};

}  // namespace

std::string_view TruncateText(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t cut = max_bytes;
  // A UTF-8 continuation byte (10xxxxxx) at the cut: back off to the character's first byte.
  for (size_t back = 0; back < 3 && cut > 0; ++back) {
    if ((static_cast<uint8_t>(text[cut]) & 0xc0) != 0x80) break;
    --cut;
  }
  if ((static_cast<uint8_t>(text[cut]) & 0xc0) == 0x80) cut = max_bytes;  // not UTF-8
  return text.substr(0, cut);
}

std::string EncodeKeptSpans(const std::vector<KeptSpan>& spans) {
  const size_t n = std::min(spans.size(), kMaxKeptSpans);
  StringTable table;
  std::vector<uint64_t> indexes;
  indexes.reserve(n * kStringsPerSpan);
  for (size_t i = 0; i < n; ++i) {
    const KeptSpan& s = spans[i];
    for (const std::string* text :
         {&s.service, &s.operation, &s.exception_type, &s.message, &s.top_frame}) {
      indexes.push_back(table.Index(*text));
    }
  }
  std::string out;
  out.push_back(static_cast<char>(kKeptSpansVersion));
  PutVarint(out, table.strings().size());
  for (std::string_view text : table.strings()) {
    PutVarint(out, text.size());
    out.append(text);
  }
  PutVarint(out, n);
  for (size_t i = 0; i < n; ++i) {
    const KeptSpan& s = spans[i];
    PutFixed64(out, s.span_id);
    PutFixed64(out, s.parent_span_id);
    PutFixed64(out, s.signature);
    for (size_t k = 0; k < kStringsPerSpan; ++k) PutVarint(out, indexes[i * kStringsPerSpan + k]);
    out.push_back(static_cast<char>(std::min(static_cast<uint8_t>(s.kind), kMaxKind)));
    out.push_back(static_cast<char>((s.error ? kErrorFlag : 0) | (s.orphan ? kOrphanFlag : 0)));
    PutVarint(out, ZigZag(s.start_offset_nanos));
    PutVarint(out, s.duration_nanos);
  }
  return out;
}

absl::StatusOr<std::vector<KeptSpan>> DecodeKeptSpans(std::string_view bytes) {
  Reader r(bytes);
  const std::optional<uint8_t> version = r.Byte();
  if (!version) return Corrupt(r, "empty");
  if (*version != kKeptSpansVersion) {
    return Corrupt(r, "unknown version " + std::to_string(*version));
  }
  const std::optional<uint64_t> n_strings = r.Varint();
  if (!n_strings) return Corrupt(r, "truncated string count");
  // Every string takes at least its length byte; the spans can use at most 5 each.
  if (*n_strings > r.left() || *n_strings > kMaxKeptSpans * kStringsPerSpan) {
    return Corrupt(r, "too many strings");
  }
  std::vector<std::string_view> strings;
  strings.reserve(static_cast<size_t>(*n_strings));
  for (uint64_t i = 0; i < *n_strings; ++i) {
    const std::optional<uint64_t> size = r.Varint();
    if (!size) return Corrupt(r, "truncated string length");
    if (*size > kMaxKeptStringBytes) return Corrupt(r, "string too long");
    const std::optional<std::string_view> text = r.Bytes(*size);
    if (!text) return Corrupt(r, "truncated string");
    strings.push_back(*text);
  }
  const std::optional<uint64_t> n_spans = r.Varint();
  if (!n_spans) return Corrupt(r, "truncated span count");
  if (*n_spans > kMaxKeptSpans) return Corrupt(r, "too many spans");
  if (*n_spans > r.left() / kMinSpanBytes) return Corrupt(r, "truncated spans");
  std::vector<KeptSpan> spans;
  spans.reserve(static_cast<size_t>(*n_spans));
  for (uint64_t i = 0; i < *n_spans; ++i) {
    KeptSpan& s = spans.emplace_back();
    const std::optional<uint64_t> span_id = r.Fixed64();
    const std::optional<uint64_t> parent = r.Fixed64();
    const std::optional<uint64_t> signature = r.Fixed64();
    if (!span_id || !parent || !signature) return Corrupt(r, "truncated span ids");
    s.span_id = *span_id;
    s.parent_span_id = *parent;
    s.signature = *signature;
    for (std::string* text :
         {&s.service, &s.operation, &s.exception_type, &s.message, &s.top_frame}) {
      const std::optional<uint64_t> index = r.Varint();
      if (!index) return Corrupt(r, "truncated string index");
      if (*index >= strings.size()) return Corrupt(r, "string index out of range");
      text->assign(strings[static_cast<size_t>(*index)]);
    }
    const std::optional<uint8_t> kind = r.Byte();
    const std::optional<uint8_t> flags = r.Byte();
    if (!kind || !flags) return Corrupt(r, "truncated span");
    if (*kind > kMaxKind) return Corrupt(r, "unknown span kind");
    if ((*flags & ~(kErrorFlag | kOrphanFlag)) != 0) return Corrupt(r, "unknown span flags");
    s.kind = static_cast<SpanKind>(*kind);
    s.error = (*flags & kErrorFlag) != 0;
    s.orphan = (*flags & kOrphanFlag) != 0;
    const std::optional<uint64_t> start = r.Varint();
    const std::optional<uint64_t> duration = r.Varint();
    if (!start || !duration) return Corrupt(r, "truncated span times");
    s.start_offset_nanos = UnZigZag(*start);
    s.duration_nanos = *duration;
  }
  if (r.left() != 0) return Corrupt(r, "bytes after the last span");
  return spans;
}

}  // namespace traceslo::storage
