#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::pipeline {

namespace latency_sketch_internal {

// kScaledBounds[s] = floor(1e9 * 2^(s/64) * 2^32), s in [0, 64). Bucket 64q + s (q = floor(k/64))
// has the upper bound 1e9 * 2^((64q + s)/64) ns = (1e9 * 2^(s/64) * 2^32) / 2^(32 - q), so for an
// integer n: n <= bound  <=>  n * 2^(32 - q) <= 1e9 * 2^(s/64) * 2^32  <=>  n <= kScaledBounds[s]
// >> (32 - q). Every bucket test on integer nanoseconds is therefore exact integer arithmetic.
// Generated with 80-digit decimals:
//   from decimal import *; getcontext().prec = 80
//   [int(10**9 * (Decimal(s) / 64 * Decimal(2).ln()).exp() * 2**32) for s in range(64)]
// and checked bucket by bucket against long double in latency_sketch_test.cc.
inline constexpr std::array<uint64_t, 64> kScaledBounds = {
    0x3b9aca0000000000, 0x3c40f2460d3c3dc8, 0x3ce8e9bca77430cc, 0x3d92b56f056f39d4,
    0x3e3e5a766d6afe52, 0x3eebddfa5c4d7955, 0x3f9b4530ad445009, 0x404c955dc1d29a51,
    0x40ffd3d4aa4e5371, 0x41b505f74eceaa00, 0x426c3136988c69cb, 0x43255b129bb5bdbb,
    0x43e0891ac1b68b51, 0x449dc0edf3f6acb3, 0x455d083ac70f51e7, 0x461e64bfa678d56e,
    0x46e1dc4b00b253ec, 0x47a774bb73e45a66, 0x486f33fffb000226, 0x493920181b5bd52b,
    0x4a053f1412cfd9c1, 0x4ad39715065227be, 0x4ba42e4d31156db0, 0x4c770b00142ad03b,
    0x4d4c3382a6a891c8, 0x4e23ae3b8656f4b6, 0x4efd81a328e4ce34, 0x4fd9b4440da54408,
    0x50b84cbaefd833ab, 0x519951b6f97ec535, 0x527cc9f9f6bdb0e5, 0x5362bc5889cec246,
    0x544b2fba5f832838, 0x55362b1a6458258b, 0x5623b586fa1fba2f, 0x5713d6222e3ee18c,
    0x58069421f08306e1, 0x58fbf6d04a905549, 0x59f4058b97ea8d7b, 0x5aeec7c6be9a0ffe,
    0x5bec4509686ecf50, 0x5cec84f03ce2e22b, 0x5def8f2d1b9e72e3, 0x5ef56b87579ecdad,
    0x5ffe21dbf3025491, 0x6109ba1ddb7b24ab, 0x62183c56276a3d73, 0x6329b0a453a4ffbe,
    0x643e1f3e81e6df61, 0x65559071b7f12772, 0x66700ca21f5ab672, 0x678d9c4b46119cdc,
    0x68ae48005f908e0f, 0x69d2186c86ca18c8, 0x6af9165300cba1f0, 0x6c234a8f801a2205,
    0x6d50be1668caaaed, 0x6e8179f51558c1b1, 0x6fb587521c3c9d44, 0x70ecef6d96436159,
    0x7227bba165ab71ee, 0x7365f5617e070255, 0x74a7a63c2ce70833, 0x75ecd7da6350c131,
};

// floor(upper bound of bucket `index`) in nanoseconds; index in [-1280, 767] (shift in [21, 52]).
constexpr uint64_t UpperBoundFloorNanos(int32_t index) {
  return kScaledBounds[static_cast<uint32_t>(index) & 63] >> (32 - (index >> 6));
}

// The smallest index in [lo, hi] whose bucket holds values >= nanos (binary search on the
// exact bounds); requires nanos <= UpperBoundFloorNanos(hi).
constexpr int32_t SearchIndex(uint64_t nanos, int32_t lo, int32_t hi) {
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (nanos <= UpperBoundFloorNanos(mid)) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// kSegmentFirstIndex[j] + 64e is the bucket of the smallest value n = (128 + j) * 2^(e-7) whose
// eight leading bits are 1jjjjjjj (2^e <= n < 2^(e+1)); the same for every octave e, because
// doubling a value adds exactly 64 to its index. Such a segment spans 64*log2((129+j)/(128+j))
// <= 0.72 buckets, so every value of the segment is in that bucket or the next one.
constexpr std::array<int16_t, 128> MakeSegmentFirstIndex() {
  std::array<int16_t, 128> table{};
  for (uint64_t j = 0; j < 128; ++j) {
    // Octave 30: (128 + j) << 23 ns is 1.07 s to 2.15 s, buckets 7 to 71.
    table[j] = static_cast<int16_t>(SearchIndex((128 + j) << 23, 0, 128) - 64 * 30);
  }
  return table;
}
inline constexpr std::array<int16_t, 128> kSegmentFirstIndex = MakeSegmentFirstIndex();

}  // namespace latency_sketch_internal

// Latency sketch of the SLI engine: a mergeable histogram of span durations from which
// p50/p95/p99 over any window come with a proven relative error. Windows and shards merge
// sketches bucket by bucket; quantiles are never averaged.
//
// Buckets are those of a Prometheus native histogram (and an OpenTelemetry exponential
// histogram at scale 6) of the duration in SECONDS, schema 6: base γ = 2^(2^-6) = 2^(1/64), and
// bucket i holds the durations d with γ^(i-1) < d/1s <= γ^i. Indexing in seconds (not in
// nanoseconds) makes ForEachBucket's (index, count) pairs exactly the positive buckets of a
// `*_seconds` native histogram with schema 6 and zero threshold 1e-6, with no re-bucketing.
// Add takes integer nanoseconds and decides the bucket with exact integer arithmetic
// (latency_sketch_internal), so values on or next to a boundary land where the definition says.
//
// Range. Durations <= kLowNanos (1 µs, zero included) are counted in the low bucket (the
// Prometheus zero bucket, [0, 1e-6 s]). Durations in (1 µs, kMaxNanos] (kMaxNanos ≈ 1 h 0 min
// 36 s, the upper bound of bucket kMaxIndex = 757) go to their exact bucket, kMinIndex = -1275
// to kMaxIndex. Longer durations are clamped into the top bucket kMaxIndex and also counted in
// OverflowCount(). Hence at most kMaxBuckets = 2033 buckets, by construction.
//
// Error bound (proof). Take the quantile as the nearest rank (NearestRank): the r-th smallest
// sample v, r = max(1, ceil(q * n)). A larger value never gets a smaller bucket, so the samples
// sorted by value are the buckets in index order, and v is in the first bucket, scanning upwards,
// where the running count reaches r. The estimate is one representative ρ of that bucket (L, U],
// L = U/γ, so the worst relative error over v in (L, U] is
//   E(ρ) = max over v of |ρ - v| / v = max(ρ/L - 1, 1 - ρ/U)
// (ρ/v - 1 falls as v grows towards ρ, 1 - ρ/v rises as v grows past it). The first term rises
// with ρ and the second falls, so E is smallest where they are equal: ρ/L - 1 = 1 - ρ/U, i.e.
// ρ = 2LU/(L + U) = 2U/(1 + γ), the harmonic mean of the bounds, with
//   E = (γ - 1)/(γ + 1) = 0.541516 %.
// (Geometric mean √(LU): √γ - 1 = 0.542990 %; midpoint: (γ - 1)/2 = 0.544464 %; upper bound U:
// 1 - 1/γ = 1.077 %.) The sketch also keeps the exact min and max: rank 1 and rank n return
// them, and other estimates are clamped into [min, max]; v lies in that interval, so clamping
// moves the estimate towards v and keeps the bound (and makes all-equal sketches exact). Computing
// ρ in double adds under 1e-15 relative; kRelativeErrorBound = E + 1e-12 covers it. The bound holds
// for v in (1 µs, kMaxNanos]. Exceptions, by design: when v is in the low bucket the estimate is
// clamp(1 µs, min, max), off by at most 1 µs (and exact for v = 1 µs); when v is an overflow
// sample (but not the max) the estimate is the top bucket's, 3616.3 s: read it as ">= 1 h".
//
// Memory. One dense window of counters from the lowest to the highest bucket seen (plus a
// little growth slack), with one counter width for the whole sketch, 1, 2, 4 or 8 bytes, widened
// when a count needs it. Measured (sizeof included, 96 bytes): a 100k-sample log-normal takes
// 1.0 KB at σ = 0.5 and 1.9 KB at σ = 1 (p99/p50 = 10); 1000 samples (a 10-second bucket of a busy
// series) 0.4 to 0.7 KB. Worst case, every bucket in use with a count >= 2^32: kMaxBuckets * 8 =
// 16264 bytes + sizeof; with all counts < 2^16: 4066 bytes + sizeof. Clear() keeps the window,
// so a reused sketch does not allocate again.
//
// Not thread-safe: a sketch is owned by one thread (a shard, or the store); copies are
// independent values.
class LatencySketch {
 public:
  static constexpr int kSchema = 6;
  // Durations at or below this go to the low (zero) bucket; the zero threshold is 1e-6 s.
  static constexpr uint64_t kLowNanos = 1000;
  static constexpr int32_t kMaxIndex = 757;
  // Upper bound of bucket kMaxIndex, floored: 3'635'971'056'694 ns ≈ 1 h 0 min 36 s.
  static constexpr uint64_t kMaxNanos = latency_sketch_internal::UpperBoundFloorNanos(kMaxIndex);
  static constexpr int32_t kMinIndex = -1275;
  static constexpr int32_t kMaxBuckets = kMaxIndex - kMinIndex + 1;
  static constexpr double kGrowth = 1.0108892860517005;  // γ = 2^(1/64), rounded to double
  // The proven worst-case relative error of QuantileNanos for v in (kLowNanos, kMaxNanos].
  static constexpr double kRelativeErrorBound = (kGrowth - 1) / (kGrowth + 1) + 1e-12;

  LatencySketch() = default;
  LatencySketch(const LatencySketch&) = default;
  LatencySketch& operator=(const LatencySketch&) = default;
  // Moving leaves `other` empty and usable.
  LatencySketch(LatencySketch&& other) noexcept;
  LatencySketch& operator=(LatencySketch&& other) noexcept;

  // Counts `count` durations of `nanos` nanoseconds. count == 0 is a no-op. Allocates only when
  // the bucket is outside the window (or a counter must widen), which stops once the range of
  // the traffic has been seen.
  void Add(uint64_t nanos, uint64_t count = 1);
  // Adds every count of `other` (which may be *this). Merging is exact: the result equals the
  // sketch of the union of both inputs, and merge order does not matter.
  void Merge(const LatencySketch& other);
  // Empties the sketch; keeps its allocation for reuse.
  void Clear();

  uint64_t Count() const { return count_; }
  // Durations <= kLowNanos: the Prometheus zero bucket's count.
  uint64_t LowCount() const { return low_count_; }
  // Durations > kMaxNanos, also counted in bucket kMaxIndex.
  uint64_t OverflowCount() const { return overflow_count_; }
  // Exact extremes; 0 when empty.
  uint64_t MinNanos() const { return count_ == 0 ? 0 : min_nanos_; }
  uint64_t MaxNanos() const { return max_nanos_; }
  // Exact sum of the durations as added (before clamping), rounded to double.
  double SumNanos() const { return static_cast<double>(sum_nanos_); }

  // The nearest-rank q-quantile estimate in nanoseconds (see the class comment for its bound):
  // the value of the NearestRank(q, Count())-th smallest sample. NaN when empty or q is not in
  // [0, 1].
  double QuantileNanos(double q) const;
  // max(1, ceil(q * n)) computed in double, capped at n: the 1-based rank of the nearest-rank
  // q-quantile among n samples.
  static uint64_t NearestRank(double q, uint64_t n);

  // A compact, portable encoding of the whole sketch (for the SQLite minute rollups): a version
  // byte, then varints of the counts, extremes and sum, then each non-empty bucket as a varint
  // index step and a varint count. Decode() replaces *this; on malformed input (truncated,
  // inconsistent counts, indices out of range, trailing bytes) it returns false and leaves
  // *this empty. Both are exact: Decode(Encode(s)) == s.
  void AppendEncoded(std::string& out) const;
  bool Decode(std::string_view in);

  // Heap plus object bytes held by this sketch.
  size_t MemoryBytes() const { return sizeof(*this) + counts_.capacity(); }

  // Calls f(int32_t index, uint64_t count) for every non-empty bucket in ascending index order
  // (the low bucket excluded: LowCount(); bucket kMaxIndex includes the overflow). These are the
  // positive buckets of a Prometheus native histogram in seconds, schema 6, zero threshold 1e-6 s.
  template <typename F>
  void ForEachBucket(F&& f) const {
    for (uint32_t slot = 0; slot < size_; ++slot) {
      if (const uint64_t count = SlotCount(slot); count != 0) {
        f(offset_ + static_cast<int32_t>(slot), count);
      }
    }
  }

  // The bucket of a duration in (kLowNanos, kMaxNanos]: the smallest i with nanos <= 1e9 γ^i.
  // No logarithm: the leading eight bits select a segment of at most two buckets, and one exact
  // integer comparison against the boundary picks between them.
  static constexpr int32_t BucketIndex(uint64_t nanos) {
    // The octave (2^octave <= nanos) and the seven bits after the leading one, read from the
    // double's exponent and mantissa: exact, as nanos < 2^53, and cheaper than bsr, which some
    // CPUs microcode (the baseline x86-64 target has no lzcnt).
    const auto bits = std::bit_cast<uint64_t>(static_cast<double>(static_cast<int64_t>(nanos)));
    const int octave = static_cast<int>(bits >> 52) - 1023;
    const uint32_t segment = static_cast<uint32_t>(bits >> 45) & 127;
    const int32_t low = 64 * octave + latency_sketch_internal::kSegmentFirstIndex[segment];
    return low + (nanos > latency_sketch_internal::UpperBoundFloorNanos(low) ? 1 : 0);
  }
  // 1e9 γ^index, in nanoseconds (double).
  static double BucketUpperBoundNanos(int32_t index);
  // The representative reported for a quantile in bucket `index`: 2U/(1 + γ).
  static double BucketRepresentativeNanos(int32_t index);

  // Same counts, extremes and sum (the window and counter width may differ).
  friend bool operator==(const LatencySketch& a, const LatencySketch& b);

 private:
  __extension__ using Uint128 = unsigned __int128;

  uint64_t SlotCount(uint32_t slot) const {
    const uint8_t* p = counts_.data() + (static_cast<size_t>(slot) << width_shift_);
    switch (width_shift_) {
      case 0:
        return *p;
      case 1: {
        uint16_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
      }
      case 2: {
        uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
      }
      default: {
        uint64_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
      }
    }
  }

  template <typename T>
  static bool TryIncrementAs(uint8_t* p, uint64_t count) {
    T v;
    std::memcpy(&v, p, sizeof v);
    if (count > static_cast<uint64_t>(std::numeric_limits<T>::max() - v)) return false;
    v = static_cast<T>(v + count);
    std::memcpy(p, &v, sizeof v);
    return true;
  }

  // Adds count to the slot unless the sum needs a wider counter (then false, nothing changed).
  bool TryIncrement(uint32_t slot, uint64_t count) {
    uint8_t* p = counts_.data() + (static_cast<size_t>(slot) << width_shift_);
    switch (width_shift_) {
      case 0:
        return TryIncrementAs<uint8_t>(p, count);
      case 1:
        return TryIncrementAs<uint16_t>(p, count);
      case 2:
        return TryIncrementAs<uint32_t>(p, count);
      default:
        return TryIncrementAs<uint64_t>(p, count);
    }
  }

  void AddSlow(int32_t index, uint64_t count);
  void IncrementWidening(uint32_t slot, uint64_t count);
  // Adds n counters of 2^src_shift bytes (src_shift <= width_shift_) to slots slot .. slot+n-1;
  // stops before the first that needs a wider counter and returns how many were added.
  uint32_t AddCounters(const uint8_t* src, int src_shift, uint32_t slot, uint32_t n);
  // Makes the window cover [lo, hi] (growing by some slack) with counters of at least
  // 2^min_width_shift bytes.
  void EnsureWindow(int32_t lo, int32_t hi, int min_width_shift, bool slack);
  void Reshape(int32_t offset, uint32_t size, int width_shift);

  // Counters of buckets offset_ .. offset_ + size_ - 1, 2^width_shift_ bytes each.
  std::vector<uint8_t> counts_;
  int32_t offset_ = 0;
  uint32_t size_ = 0;
  int width_shift_ = 0;
  uint64_t count_ = 0;
  uint64_t low_count_ = 0;
  uint64_t overflow_count_ = 0;
  uint64_t min_nanos_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_nanos_ = 0;
  Uint128 sum_nanos_ = 0;
};

static_assert(LatencySketch::BucketIndex(LatencySketch::kLowNanos + 1) == LatencySketch::kMinIndex);
static_assert(LatencySketch::BucketIndex(LatencySketch::kMaxNanos) == LatencySketch::kMaxIndex);
static_assert(LatencySketch::kMaxNanos == 3'635'971'056'694);
static_assert(LatencySketch::BucketIndex(1'000'000'000) == 0);  // 1 s: bucket (γ^-1, 1]
static_assert(LatencySketch::BucketIndex(1'000'000'001) == 1);

inline void LatencySketch::Add(uint64_t nanos, uint64_t count) {
  if (count == 0) return;
  count_ += count;
  sum_nanos_ += static_cast<Uint128>(nanos) * count;
  min_nanos_ = nanos < min_nanos_ ? nanos : min_nanos_;
  max_nanos_ = nanos > max_nanos_ ? nanos : max_nanos_;
  if (nanos <= kLowNanos) {
    low_count_ += count;
    return;
  }
  int32_t index = kMaxIndex;
  if (nanos <= kMaxNanos) [[likely]] {
    index = BucketIndex(nanos);
  } else {
    overflow_count_ += count;
  }
  const uint32_t slot = static_cast<uint32_t>(index - offset_);
  if (slot < size_ && TryIncrement(slot, count)) [[likely]] {
    return;
  }
  AddSlow(index, count);
}

}  // namespace traceslo::pipeline
