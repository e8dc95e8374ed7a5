#include "traceslo/pipeline/latency_sketch.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace traceslo::pipeline {
namespace {

// Slots added beyond a new extreme bucket when the window grows, so that a stream whose range
// widens slowly reallocates O(log) times, not once per new bucket: 4 + 1/32 of the window.
int32_t GrowthSlack(uint32_t size) { return 4 + static_cast<int32_t>(size / 32); }

// Adds n source counters to n destination counters, stopping before the first sum that does
// not fit Dst; returns how many were added.
template <typename Src, typename Dst>
uint32_t AddCountersAs(const uint8_t* src, uint8_t* dst, uint32_t n) {
  static_assert(sizeof(Src) <= sizeof(Dst));
  for (uint32_t i = 0; i < n; ++i) {
    Src s;
    Dst d;
    std::memcpy(&s, src + i * sizeof(Src), sizeof s);
    std::memcpy(&d, dst + i * sizeof(Dst), sizeof d);
    if (s > static_cast<Dst>(std::numeric_limits<Dst>::max() - d)) return i;
    d = static_cast<Dst>(d + s);
    std::memcpy(dst + i * sizeof(Dst), &d, sizeof d);
  }
  return n;
}

}  // namespace

LatencySketch::LatencySketch(LatencySketch&& other) noexcept { *this = std::move(other); }

LatencySketch& LatencySketch::operator=(LatencySketch&& other) noexcept {
  if (this == &other) return *this;
  counts_ = std::exchange(other.counts_, {});
  offset_ = std::exchange(other.offset_, 0);
  size_ = std::exchange(other.size_, 0);
  width_shift_ = std::exchange(other.width_shift_, 0);
  count_ = std::exchange(other.count_, 0);
  low_count_ = std::exchange(other.low_count_, 0);
  overflow_count_ = std::exchange(other.overflow_count_, 0);
  min_nanos_ = std::exchange(other.min_nanos_, std::numeric_limits<uint64_t>::max());
  max_nanos_ = std::exchange(other.max_nanos_, 0);
  sum_nanos_ = std::exchange(other.sum_nanos_, 0);
  return *this;
}

double LatencySketch::BucketUpperBoundNanos(int32_t index) {
  return 1e9 * std::exp2(static_cast<double>(index) / 64.0);
}

double LatencySketch::BucketRepresentativeNanos(int32_t index) {
  return 2.0 * BucketUpperBoundNanos(index) / (1.0 + kGrowth);
}

uint64_t LatencySketch::NearestRank(double q, uint64_t n) {
  const double rank = std::ceil(q * static_cast<double>(n));
  if (!(rank >= 1)) return 1;
  if (rank >= static_cast<double>(n)) return n;
  return static_cast<uint64_t>(rank);
}

void LatencySketch::Reshape(int32_t offset, uint32_t size, int width_shift) {
  assert(size >= size_ && width_shift >= width_shift_);
  assert(offset >= kMinIndex && offset + static_cast<int64_t>(size) - 1 <= kMaxIndex);
  LatencySketch next;
  next.counts_.assign(static_cast<size_t>(size) << width_shift, 0);
  next.offset_ = offset;
  next.size_ = size;
  next.width_shift_ = width_shift;
  for (uint32_t slot = 0; slot < size_; ++slot) {
    if (const uint64_t count = SlotCount(slot); count != 0) {
      const bool fits = next.TryIncrement(
          static_cast<uint32_t>(offset_ + static_cast<int32_t>(slot) - offset), count);
      assert(fits);
      (void)fits;
    }
  }
  counts_ = std::move(next.counts_);
  offset_ = offset;
  size_ = size;
  width_shift_ = width_shift;
}

void LatencySketch::EnsureWindow(int32_t lo, int32_t hi, int min_width_shift, bool slack) {
  const int width_shift = std::max(width_shift_, min_width_shift);
  if (size_ == 0) {
    Reshape(lo, static_cast<uint32_t>(hi - lo + 1), width_shift);
    return;
  }
  const int32_t end = offset_ + static_cast<int32_t>(size_);  // exclusive
  if (lo >= offset_ && hi < end && width_shift == width_shift_) return;
  const int32_t extra = slack ? GrowthSlack(size_) : 0;
  int32_t new_lo = offset_;
  int32_t new_end = end;
  if (lo < offset_) new_lo = std::max(kMinIndex, lo - extra);
  if (hi >= end) new_end = std::min(kMaxIndex + 1, hi + 1 + extra);
  Reshape(new_lo, static_cast<uint32_t>(new_end - new_lo), width_shift);
}

void LatencySketch::IncrementWidening(uint32_t slot, uint64_t count) {
  while (!TryIncrement(slot, count)) {
    // Only counters narrower than 8 bytes refuse (an 8-byte one takes anything).
    Reshape(offset_, size_, width_shift_ + 1);
  }
}

void LatencySketch::AddSlow(int32_t index, uint64_t count) {
  EnsureWindow(index, index, width_shift_, /*slack=*/true);
  IncrementWidening(static_cast<uint32_t>(index - offset_), count);
}

void LatencySketch::Merge(const LatencySketch& other) {
  if (&other == this) {
    Merge(LatencySketch(other));
    return;
  }
  if (other.count_ == 0) return;
  count_ += other.count_;
  low_count_ += other.low_count_;
  overflow_count_ += other.overflow_count_;
  sum_nanos_ += other.sum_nanos_;
  min_nanos_ = std::min(min_nanos_, other.min_nanos_);
  max_nanos_ = std::max(max_nanos_, other.max_nanos_);

  uint32_t first = 0;
  while (first < other.size_ && other.SlotCount(first) == 0) ++first;
  if (first == other.size_) return;  // only low-bucket samples
  uint32_t last = other.size_ - 1;
  while (other.SlotCount(last) == 0) --last;
  EnsureWindow(other.offset_ + static_cast<int32_t>(first),
               other.offset_ + static_cast<int32_t>(last), other.width_shift_, /*slack=*/false);
  // EnsureWindow may have moved offset_; it made our counters at least as wide as other's.
  const auto target = static_cast<uint32_t>(other.offset_ + static_cast<int32_t>(first) - offset_);
  const uint32_t n = last - first + 1;
  uint32_t done = 0;
  while (done < n) {
    done += AddCounters(
        other.counts_.data() + (static_cast<size_t>(first + done) << other.width_shift_),
        other.width_shift_, target + done, n - done);
    if (done < n) {
      IncrementWidening(target + done, other.SlotCount(first + done));
      ++done;
    }
  }
}

uint32_t LatencySketch::AddCounters(const uint8_t* src, int src_shift, uint32_t slot, uint32_t n) {
  uint8_t* dst = counts_.data() + (static_cast<size_t>(slot) << width_shift_);
  switch (src_shift * 4 + width_shift_) {
    case 0 * 4 + 0:
      return AddCountersAs<uint8_t, uint8_t>(src, dst, n);
    case 0 * 4 + 1:
      return AddCountersAs<uint8_t, uint16_t>(src, dst, n);
    case 0 * 4 + 2:
      return AddCountersAs<uint8_t, uint32_t>(src, dst, n);
    case 0 * 4 + 3:
      return AddCountersAs<uint8_t, uint64_t>(src, dst, n);
    case 1 * 4 + 1:
      return AddCountersAs<uint16_t, uint16_t>(src, dst, n);
    case 1 * 4 + 2:
      return AddCountersAs<uint16_t, uint32_t>(src, dst, n);
    case 1 * 4 + 3:
      return AddCountersAs<uint16_t, uint64_t>(src, dst, n);
    case 2 * 4 + 2:
      return AddCountersAs<uint32_t, uint32_t>(src, dst, n);
    case 2 * 4 + 3:
      return AddCountersAs<uint32_t, uint64_t>(src, dst, n);
    case 3 * 4 + 3:
      return AddCountersAs<uint64_t, uint64_t>(src, dst, n);
    default:
      assert(false && "destination counters narrower than the source");
      return 0;
  }
}

void LatencySketch::Clear() {
  std::fill(counts_.begin(), counts_.end(), uint8_t{0});
  count_ = 0;
  low_count_ = 0;
  overflow_count_ = 0;
  min_nanos_ = std::numeric_limits<uint64_t>::max();
  max_nanos_ = 0;
  sum_nanos_ = 0;
}

double LatencySketch::QuantileNanos(double q) const {
  if (count_ == 0 || !(q >= 0.0 && q <= 1.0)) return std::numeric_limits<double>::quiet_NaN();
  const uint64_t rank = NearestRank(q, count_);
  // The extremes are kept exactly.
  if (rank == 1) return static_cast<double>(min_nanos_);
  if (rank == count_) return static_cast<double>(max_nanos_);
  double estimate = static_cast<double>(kLowNanos);
  if (rank > low_count_) {
    // The rank among bucketed samples; scan from the nearer end (p99 from the top).
    const uint64_t bucketed = count_ - low_count_;
    const uint64_t wanted = rank - low_count_;
    uint32_t found = 0;
    uint64_t running = 0;
    if (wanted <= bucketed / 2) {
      for (found = 0; found < size_; ++found) {
        running += SlotCount(found);
        if (running >= wanted) break;
      }
    } else {
      const uint64_t wanted_from_top = bucketed - wanted + 1;
      for (found = size_; found-- > 0;) {
        running += SlotCount(found);
        if (running >= wanted_from_top) break;
      }
    }
    assert(found < size_);
    estimate = BucketRepresentativeNanos(offset_ + static_cast<int32_t>(found));
  }
  return std::clamp(estimate, static_cast<double>(min_nanos_), static_cast<double>(max_nanos_));
}

bool operator==(const LatencySketch& a, const LatencySketch& b) {
  if (a.count_ != b.count_ || a.low_count_ != b.low_count_ ||
      a.overflow_count_ != b.overflow_count_ || a.sum_nanos_ != b.sum_nanos_ ||
      a.MinNanos() != b.MinNanos() || a.max_nanos_ != b.max_nanos_) {
    return false;
  }
  std::vector<std::pair<int32_t, uint64_t>> buckets_a;
  std::vector<std::pair<int32_t, uint64_t>> buckets_b;
  a.ForEachBucket([&](int32_t index, uint64_t count) { buckets_a.emplace_back(index, count); });
  b.ForEachBucket([&](int32_t index, uint64_t count) { buckets_b.emplace_back(index, count); });
  return buckets_a == buckets_b;
}

namespace {

constexpr uint8_t kEncodingVersion = 1;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    if (shift == 63 && byte > 1) return false;
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

void LatencySketch::AppendEncoded(std::string& out) const {
  out.push_back(static_cast<char>(kEncodingVersion));
  PutVarint(out, count_);
  PutVarint(out, low_count_);
  PutVarint(out, overflow_count_);
  PutVarint(out, MinNanos());
  PutVarint(out, max_nanos_);
  PutVarint(out, static_cast<uint64_t>(sum_nanos_));
  PutVarint(out, static_cast<uint64_t>(sum_nanos_ >> 64));
  uint64_t buckets = 0;
  ForEachBucket([&](int32_t, uint64_t) { ++buckets; });
  PutVarint(out, buckets);
  int32_t previous = kMinIndex - 1;
  ForEachBucket([&](int32_t index, uint64_t count) {
    PutVarint(out, static_cast<uint64_t>(index - previous));  // > 0: ascending order
    PutVarint(out, count);
    previous = index;
  });
}

bool LatencySketch::Decode(std::string_view in) {
  Clear();
  uint64_t count = 0, low = 0, overflow = 0, min = 0, max = 0, sum_lo = 0, sum_hi = 0;
  uint64_t buckets = 0;
  const bool header_ok = !in.empty() && static_cast<uint8_t>(in.front()) == kEncodingVersion &&
                         (in.remove_prefix(1), true) && GetVarint(in, count) &&
                         GetVarint(in, low) && GetVarint(in, overflow) && GetVarint(in, min) &&
                         GetVarint(in, max) && GetVarint(in, sum_lo) && GetVarint(in, sum_hi) &&
                         GetVarint(in, buckets) && buckets <= static_cast<uint64_t>(kMaxBuckets) &&
                         low <= count && min <= max;
  if (!header_ok) return false;
  uint64_t in_buckets = 0;
  int64_t index = kMinIndex - 1;
  for (uint64_t i = 0; i < buckets; ++i) {
    uint64_t step = 0, n = 0;
    if (!GetVarint(in, step) || !GetVarint(in, n) || step == 0 || n == 0 ||
        step > static_cast<uint64_t>(kMaxBuckets) || n > count - in_buckets) {
      Clear();
      return false;
    }
    index += static_cast<int64_t>(step);
    if (index > kMaxIndex) {
      Clear();
      return false;
    }
    AddSlow(static_cast<int32_t>(index), n);
    in_buckets += n;
  }
  if (!in.empty() || in_buckets + low != count || (count > 0 && low < count && max == 0)) {
    Clear();
    return false;
  }
  count_ = count;
  low_count_ = low;
  overflow_count_ = overflow;
  min_nanos_ = count == 0 ? std::numeric_limits<uint64_t>::max() : min;
  max_nanos_ = max;
  sum_nanos_ = (static_cast<Uint128>(sum_hi) << 64) | sum_lo;
  return true;
}

}  // namespace traceslo::pipeline
