#include "traceslo/pipeline/latency_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace traceslo::pipeline {
namespace {

using Sketch = LatencySketch;

// Bucket boundaries computed independently of the sketch: floor(1e9 * 2^(k/64)) in long double
// (64-bit mantissa). The true boundaries are at least 1.9e-5 from an integer unless they are one
// (k = 64q, q >= -9), and long double is off by < 1e-6 up to 1 h, so these floors are exact;
// ReferenceBoundsAreUnambiguous checks that margin.
constexpr int32_t kFirstRefIndex = Sketch::kMinIndex - 1;

long double ExactishBound(int32_t k) { return 1e9L * std::exp2l(static_cast<long double>(k) / 64); }

const std::vector<uint64_t>& ReferenceBounds() {
  static const std::vector<uint64_t> bounds = [] {
    std::vector<uint64_t> out;
    for (int32_t k = kFirstRefIndex; k <= Sketch::kMaxIndex; ++k) {
      out.push_back(static_cast<uint64_t>(std::floor(ExactishBound(k))));
    }
    return out;
  }();
  return bounds;
}

// The smallest k with n <= 1e9 * 2^(k/64), for n in (1 µs, kMaxNanos].
int32_t ReferenceIndex(uint64_t n) {
  const auto& bounds = ReferenceBounds();
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), n);
  return kFirstRefIndex + static_cast<int32_t>(it - bounds.begin());
}

// Prometheus client_golang's native-histogram key for a positive value in seconds, schema 6:
// frac, exp = Frexp(v); key = SearchFloat64s(bounds, frac) + (exp-1)*64, bounds[i] = 2^(i/64)/2.
int32_t PrometheusKey(double seconds) {
  static const std::vector<double> bounds = [] {
    std::vector<double> out;
    out.reserve(64);
    for (int i = 0; i < 64; ++i) out.push_back(std::exp2(i / 64.0) / 2);
    return out;
  }();
  int exp = 0;
  const double frac = std::frexp(seconds, &exp);
  const auto pos = std::lower_bound(bounds.begin(), bounds.end(), frac) - bounds.begin();
  return static_cast<int32_t>(pos) + (exp - 1) * 64;
}

// The nearest-rank quantile from sorted samples: the smallest v with at least ceil(q*n) samples
// <= v, i.e. sorted[max(1, ceil(q*n)) - 1]. Written here, not taken from the sketch.
uint64_t ExactQuantile(const std::vector<uint64_t>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<size_t>(std::ceil(q * n));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

Sketch SketchOf(const std::vector<uint64_t>& samples) {
  Sketch sketch;
  for (uint64_t v : samples) sketch.Add(v);
  return sketch;
}

std::map<int32_t, uint64_t> BucketsOf(const Sketch& sketch) {
  std::map<int32_t, uint64_t> out;
  int32_t previous = std::numeric_limits<int32_t>::min();
  sketch.ForEachBucket([&](int32_t index, uint64_t count) {
    EXPECT_GT(index, previous);
    EXPECT_GT(count, 0u);
    previous = index;
    out[index] = count;
  });
  return out;
}

// Buckets of samples computed with the reference index (low and clamped samples as the sketch
// documents them).
std::map<int32_t, uint64_t> ReferenceBucketsOf(const std::vector<uint64_t>& samples) {
  std::map<int32_t, uint64_t> out;
  for (uint64_t v : samples) {
    if (v <= Sketch::kLowNanos) continue;
    ++out[v > Sketch::kMaxNanos ? Sketch::kMaxIndex : ReferenceIndex(v)];
  }
  return out;
}

double RelativeError(double estimate, uint64_t exact) {
  return std::abs(estimate - static_cast<double>(exact)) / static_cast<double>(exact);
}

// Checks every quantile of `qs` against the exact one; returns the worst relative error.
double ExpectQuantilesWithinBound(std::vector<uint64_t> samples, const std::vector<double>& qs,
                                  const std::string& what) {
  const Sketch sketch = SketchOf(samples);
  std::sort(samples.begin(), samples.end());
  double worst = 0;
  for (double q : qs) {
    const uint64_t exact = ExactQuantile(samples, q);
    const double estimate = sketch.QuantileNanos(q);
    if (exact <= Sketch::kLowNanos) {
      EXPECT_LE(std::abs(estimate - static_cast<double>(exact)), 1000.0) << what << " q=" << q;
      continue;
    }
    const double error = RelativeError(estimate, exact);
    worst = std::max(worst, error);
    EXPECT_LE(error, Sketch::kRelativeErrorBound)
        << what << " q=" << q << " exact=" << exact << " estimate=" << estimate;
    EXPECT_LE(error, 0.01) << what << " q=" << q;
  }
  return worst;
}

uint64_t Clamp(double v) {
  return static_cast<uint64_t>(std::clamp(v, 0.0, 1e13));  // 1e13 ns = 2.8 h
}

std::vector<uint64_t> UniformSamples(size_t n, uint64_t lo, uint64_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> dist(lo, hi);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = dist(rng);
  return out;
}

std::vector<uint64_t> LogUniformSamples(size_t n, double lo, double hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(std::log(lo), std::log(hi));
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = Clamp(std::exp(dist(rng)));
  return out;
}

std::vector<uint64_t> LogNormalSamples(size_t n, double median_nanos, double sigma, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(median_nanos), sigma);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = Clamp(dist(rng));
  return out;
}

// 80 % fast (cache hits, ~2 ms), 20 % slow (~400 ms).
std::vector<uint64_t> BimodalSamples(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> fast(std::log(2e6), 0.3);
  std::lognormal_distribution<double> slow(std::log(4e8), 0.5);
  std::bernoulli_distribution is_slow(0.2);
  std::vector<uint64_t> out(n);
  for (auto& v : out) v = Clamp(is_slow(rng) ? slow(rng) : fast(rng));
  return out;
}

std::vector<double> HeadlineQuantiles() { return {0.5, 0.95, 0.99}; }

std::vector<double> QuantileGrid() {
  std::vector<double> qs = {0.0, 0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0};
  for (int i = 1; i < 1000; ++i) qs.push_back(i / 1000.0);
  return qs;
}

// --- bucket index -------------------------------------------------------------------------------

TEST(LatencySketchIndex, ReferenceBoundsAreUnambiguous) {
  for (int32_t k = kFirstRefIndex; k <= Sketch::kMaxIndex; ++k) {
    const long double bound = ExactishBound(k);
    const long double frac = bound - std::floor(bound);
    if (k % 64 == 0 && k >= -9 * 64) {
      EXPECT_EQ(frac, 0.0L) << k;  // 1e9 * 2^q is an integer for q >= -9
    } else {
      EXPECT_GT(frac, 1e-6L) << k;
      EXPECT_LT(frac, 1 - 1e-6L) << k;
    }
  }
}

TEST(LatencySketchIndex, ScaledBoundsMatchLongDouble) {
  for (int s = 0; s < 64; ++s) {
    const long double expected = 1e9L * std::exp2l(s / 64.0L) * 4294967296.0L;
    const auto table = static_cast<long double>(latency_sketch_internal::kScaledBounds[s]);
    EXPECT_LE(std::abs(table - expected), 2.0L) << s;
  }
}

TEST(LatencySketchIndex, RangeConstants) {
  EXPECT_EQ(Sketch::kMinIndex, ReferenceIndex(Sketch::kLowNanos + 1));
  EXPECT_EQ(Sketch::kMaxIndex, ReferenceIndex(3'600'000'000'000));  // 1 h
  EXPECT_EQ(Sketch::kMaxNanos, ReferenceBounds().back());
  EXPECT_EQ(Sketch::kMaxBuckets, 2033);
  EXPECT_GT(Sketch::kMaxNanos, 3'600'000'000'000u);
  // 1 µs itself: bucket -1275 would hold it; the sketch counts it in the low bucket.
  EXPECT_EQ(ReferenceIndex(Sketch::kLowNanos), Sketch::kMinIndex);
}

// Both sides of every boundary in range: the largest value of bucket k and the next one.
TEST(LatencySketchIndex, EveryBoundaryBothSides) {
  const auto& bounds = ReferenceBounds();
  int checked = 0;
  for (int32_t k = Sketch::kMinIndex; k <= Sketch::kMaxIndex; ++k) {
    const uint64_t top = bounds[k - kFirstRefIndex];  // largest integer in bucket k
    ASSERT_GT(top, Sketch::kLowNanos);
    EXPECT_EQ(Sketch::BucketIndex(top), k) << top;
    if (top - 1 > Sketch::kLowNanos) {
      EXPECT_EQ(Sketch::BucketIndex(top - 1), top - 1 > bounds[k - 1 - kFirstRefIndex] ? k : k - 1)
          << top - 1;
    }
    ++checked;
    if (top + 1 <= Sketch::kMaxNanos) {
      EXPECT_EQ(Sketch::BucketIndex(top + 1), k + 1) << top + 1;
    }
  }
  EXPECT_EQ(checked, Sketch::kMaxBuckets);
}

// The fast path reads a segment (the eight leading bits) and picks one of two buckets. Checking
// both ends of every segment of every octave in range covers every value, since the index is
// monotone in the value.
TEST(LatencySketchIndex, EverySegmentEndMatchesReference) {
  int checked = 0;
  for (int octave = 9; octave <= 41; ++octave) {
    for (uint64_t j = 0; j < 128; ++j) {
      const uint64_t first = (128 + j) << (octave - 7);
      const uint64_t last = ((129 + j) << (octave - 7)) - 1;
      for (uint64_t n : {first, last}) {
        if (n <= Sketch::kLowNanos || n > Sketch::kMaxNanos) continue;
        ASSERT_EQ(Sketch::BucketIndex(n), ReferenceIndex(n)) << n;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 8000);
}

TEST(LatencySketchIndex, PowersOfTwo) {
  // 2^q seconds, exact integers of nanoseconds for q >= -9: the top of bucket 64q.
  for (int q = -9; q <= 11; ++q) {
    const uint64_t n = uint64_t{1953125} << (q + 9);
    EXPECT_EQ(Sketch::BucketIndex(n), 64 * q) << n;
    EXPECT_EQ(Sketch::BucketIndex(n + 1), 64 * q + 1) << n;
    EXPECT_EQ(Sketch::BucketIndex(n - 1), 64 * q) << n;
    EXPECT_EQ(PrometheusKey(static_cast<double>(n) / 1e9), 64 * q) << n;
  }
  // 2^e nanoseconds and their neighbours.
  for (int e = 10; e <= 41; ++e) {
    for (uint64_t n : {(uint64_t{1} << e) - 1, uint64_t{1} << e, (uint64_t{1} << e) + 1}) {
      EXPECT_EQ(Sketch::BucketIndex(n), ReferenceIndex(n)) << n;
    }
  }
}

// The same keys Prometheus client_golang computes for the same durations in seconds.
TEST(LatencySketchIndex, MatchesPrometheusClientAndReferenceOnRandomValues) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> log_value(
      std::log(1001.0), std::log(static_cast<double>(Sketch::kMaxNanos)));
  std::vector<uint64_t> values;
  values.reserve(300000 + 3 * ReferenceBounds().size());
  for (int i = 0; i < 300000; ++i) values.push_back(Clamp(std::exp(log_value(rng))));
  for (uint64_t b : ReferenceBounds()) values.insert(values.end(), {b - 1, b, b + 1});
  int checked = 0;
  for (uint64_t n : values) {
    if (n <= Sketch::kLowNanos || n > Sketch::kMaxNanos) continue;
    const int32_t index = Sketch::BucketIndex(n);
    ASSERT_EQ(index, ReferenceIndex(n)) << n;
    ASSERT_EQ(index, PrometheusKey(static_cast<double>(n) / 1e9)) << n;
    ++checked;
  }
  EXPECT_GT(checked, 300000);
}

// --- representative and error bound ------------------------------------------------------------

TEST(LatencySketchBound, RepresentativeEqualisesBothEnds) {
  const long double gamma = std::exp2l(1.0L / 64);
  const long double proven = (gamma - 1) / (gamma + 1);
  EXPECT_NEAR(static_cast<double>(proven), 0.005415159415902577, 1e-15);
  EXPECT_LE(proven, Sketch::kRelativeErrorBound);
  EXPECT_LT(Sketch::kRelativeErrorBound, 0.00542);
  for (int32_t k = Sketch::kMinIndex; k <= Sketch::kMaxIndex; ++k) {
    const long double upper = ExactishBound(k);
    const long double lower = ExactishBound(k - 1);
    const long double rep = Sketch::BucketRepresentativeNanos(k);
    const long double from_lower = (rep - lower) / lower;
    const long double from_upper = (upper - rep) / upper;
    ASSERT_LE(from_lower, Sketch::kRelativeErrorBound) << k;
    ASSERT_LE(from_upper, Sketch::kRelativeErrorBound) << k;
    ASSERT_NEAR(static_cast<double>(from_lower), static_cast<double>(proven), 1e-13) << k;
    ASSERT_NEAR(static_cast<double>(from_upper), static_cast<double>(proven), 1e-13) << k;
  }
}

// The bound is tight: a quantile at the very top of a bucket (min and max elsewhere, so the
// clamp does not help) is off by the full (γ-1)/(γ+1).
TEST(LatencySketchBound, BoundIsAttainedAtBucketTop) {
  const uint64_t top = ReferenceBounds()[0 - kFirstRefIndex];  // 1 s, top of bucket 0
  const std::vector<uint64_t> samples = {10'000, top, top, top, 900'000'000'000};
  const Sketch sketch = SketchOf(samples);
  const double error = RelativeError(sketch.QuantileNanos(0.5), top);
  EXPECT_LE(error, Sketch::kRelativeErrorBound);
  EXPECT_GT(error, 0.0054);
}

// --- quantiles against exact nearest-rank quantiles --------------------------------------------

TEST(LatencySketchQuantile, UniformOverOneMicrosecondToOneHour) {
  const auto samples = UniformSamples(100000, 1000, 3'600'000'000'000, 1);
  ExpectQuantilesWithinBound(samples, HeadlineQuantiles(), "uniform");
  ExpectQuantilesWithinBound(samples, QuantileGrid(), "uniform grid");
}

TEST(LatencySketchQuantile, UniformMilliseconds) {
  const auto samples = UniformSamples(100000, 1'000'000, 250'000'000, 2);
  ExpectQuantilesWithinBound(samples, QuantileGrid(), "uniform ms");
}

TEST(LatencySketchQuantile, LogUniformOverOneMicrosecondToOneHour) {
  const auto samples = LogUniformSamples(100000, 1000, 3.6e12, 3);
  ExpectQuantilesWithinBound(samples, QuantileGrid(), "log-uniform");
}

TEST(LatencySketchQuantile, LogNormal) {
  for (double sigma : {0.25, 0.5, 1.0, 2.0}) {
    const auto samples = LogNormalSamples(100000, 5e7, sigma, 4);
    ExpectQuantilesWithinBound(samples, QuantileGrid(),
                               "log-normal sigma " + std::to_string(sigma));
  }
}

TEST(LatencySketchQuantile, Bimodal) {
  const auto samples = BimodalSamples(100000, 5);
  ExpectQuantilesWithinBound(samples, QuantileGrid(), "bimodal");
}

TEST(LatencySketchQuantile, ConstantAndAllEqualAreExact) {
  for (uint64_t v : {uint64_t{0}, uint64_t{999}, uint64_t{1000}, uint64_t{1001},
                     uint64_t{12'345'678}, Sketch::kMaxNanos, uint64_t{1} << 50}) {
    Sketch sketch;
    for (int i = 0; i < 100000; ++i) sketch.Add(v);
    for (double q : QuantileGrid()) {
      ASSERT_EQ(sketch.QuantileNanos(q), static_cast<double>(v)) << v << " q=" << q;
    }
  }
}

TEST(LatencySketchQuantile, TinyCounts) {
  const std::vector<std::vector<uint64_t>> cases = {
      {42'000'000},
      {3'000, 5'000'000'000},
      {1'500'000, 2'000'000, 2'500'000},
      {7'777'777, 7'777'777, 7'777'777},
      {3'000, 3'001},
  };
  for (const auto& samples : cases) {
    ExpectQuantilesWithinBound(samples, QuantileGrid(),
                               std::to_string(samples.size()) + " samples");
    // min and max are exact.
    const Sketch sketch = SketchOf(samples);
    EXPECT_EQ(sketch.QuantileNanos(0),
              static_cast<double>(*std::min_element(samples.begin(), samples.end())));
    EXPECT_EQ(sketch.QuantileNanos(1),
              static_cast<double>(*std::max_element(samples.begin(), samples.end())));
  }
  EXPECT_EQ(SketchOf({42'000'000}).QuantileNanos(0.99), 42'000'000.0);
  // Nearest rank of 2 samples: p50 is the smaller one (ceil(0.5 * 2) = 1), p51 the larger.
  const Sketch two = SketchOf({2'000'000, 9'000'000});
  EXPECT_LE(RelativeError(two.QuantileNanos(0.5), 2'000'000), Sketch::kRelativeErrorBound);
  EXPECT_LE(RelativeError(two.QuantileNanos(0.51), 9'000'000), Sketch::kRelativeErrorBound);
}

TEST(LatencySketchQuantile, NearestRankDefinition) {
  EXPECT_EQ(Sketch::NearestRank(0.0, 10), 1u);
  EXPECT_EQ(Sketch::NearestRank(0.1, 10), 1u);
  EXPECT_EQ(Sketch::NearestRank(0.11, 10), 2u);
  EXPECT_EQ(Sketch::NearestRank(0.5, 2), 1u);
  EXPECT_EQ(Sketch::NearestRank(0.99, 100), 99u);
  EXPECT_EQ(Sketch::NearestRank(0.991, 100), 100u);
  EXPECT_EQ(Sketch::NearestRank(1.0, 100), 100u);
}

TEST(LatencySketchQuantile, EmptyAndInvalid) {
  Sketch sketch;
  EXPECT_TRUE(std::isnan(sketch.QuantileNanos(0.5)));
  sketch.Add(5'000'000);
  EXPECT_TRUE(std::isnan(sketch.QuantileNanos(-0.1)));
  EXPECT_TRUE(std::isnan(sketch.QuantileNanos(1.5)));
  EXPECT_TRUE(std::isnan(sketch.QuantileNanos(std::nan(""))));
  EXPECT_EQ(sketch.QuantileNanos(0.5), 5'000'000.0);
}

// --- low bucket, overflow, zero ------------------------------------------------------------------

TEST(LatencySketchRange, LowBucket) {
  Sketch sketch;
  for (uint64_t v : {0, 1, 500, 999, 1000}) sketch.Add(v);
  EXPECT_EQ(sketch.LowCount(), 5u);
  EXPECT_EQ(sketch.Count(), 5u);
  EXPECT_TRUE(BucketsOf(sketch).empty());
  EXPECT_EQ(sketch.MinNanos(), 0u);
  EXPECT_EQ(sketch.MaxNanos(), 1000u);
  EXPECT_EQ(sketch.SumNanos(), 2500.0);
  // Reported as 1 µs clamped into [min, max].
  EXPECT_EQ(sketch.QuantileNanos(0.5), 1000.0);
  sketch.Add(1001);
  EXPECT_EQ(BucketsOf(sketch), (std::map<int32_t, uint64_t>{{Sketch::kMinIndex, 1}}));
  EXPECT_EQ(sketch.QuantileNanos(1), 1001.0);

  Sketch zeros;
  zeros.Add(0, 3);
  EXPECT_EQ(zeros.LowCount(), 3u);
  EXPECT_EQ(zeros.QuantileNanos(0.99), 0.0);
}

TEST(LatencySketchRange, OverflowIsClampedIntoTopBucketAndCounted) {
  Sketch sketch;
  sketch.Add(Sketch::kMaxNanos);
  EXPECT_EQ(sketch.OverflowCount(), 0u);
  sketch.Add(Sketch::kMaxNanos + 1);
  sketch.Add(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(sketch.OverflowCount(), 2u);
  EXPECT_EQ(BucketsOf(sketch), (std::map<int32_t, uint64_t>{{Sketch::kMaxIndex, 3}}));
  EXPECT_EQ(sketch.MaxNanos(), std::numeric_limits<uint64_t>::max());
  // The sum is exact (128-bit) before rounding to double.
  const double expected_sum = 2.0 * static_cast<double>(Sketch::kMaxNanos) + 1.0 +
                              static_cast<double>(std::numeric_limits<uint64_t>::max());
  EXPECT_DOUBLE_EQ(sketch.SumNanos(), expected_sum);
  EXPECT_EQ(sketch.QuantileNanos(1), static_cast<double>(std::numeric_limits<uint64_t>::max()));
  // An overflow rank (other than the max) reads as the top bucket's representative: >= 1 h.
  sketch.Add(1'000'000, 10);
  const double p90 = sketch.QuantileNanos(0.9);
  EXPECT_EQ(p90, Sketch::BucketRepresentativeNanos(Sketch::kMaxIndex));
  EXPECT_GT(p90, 3.6e12);
}

TEST(LatencySketchRange, CountParameterEqualsRepeatedAdds) {
  Sketch once;
  Sketch repeated;
  for (uint64_t v : {0ull, 5'000ull, 7'000'000ull, 7'000'000ull, 9'000'000'000'000ull}) {
    once.Add(v, 300);
    for (int i = 0; i < 300; ++i) repeated.Add(v);
  }
  once.Add(123'456, 0);  // no-op
  EXPECT_EQ(once, repeated);
  EXPECT_EQ(once.Count(), 1500u);
}

// --- counters, window growth ---------------------------------------------------------------------

TEST(LatencySketchStorage, CountersWidenWithoutLoss) {
  Sketch sketch;
  const uint64_t v = 5'000'000;
  uint64_t expected = 0;
  for (uint64_t count : {uint64_t{255}, uint64_t{1}, uint64_t{65'280}, uint64_t{1},
                         uint64_t{1} << 32, uint64_t{1} << 40}) {
    sketch.Add(v, count);
    expected += count;
    EXPECT_EQ(BucketsOf(sketch), (std::map<int32_t, uint64_t>{{Sketch::BucketIndex(v), expected}}));
  }
  sketch.Add(2'000, 1);
  EXPECT_EQ(sketch.Count(), expected + 1);
  EXPECT_EQ(sketch.QuantileNanos(0), 2'000.0);
}

TEST(LatencySketchStorage, WindowGrowsBothWaysInAnyOrder) {
  std::vector<uint64_t> samples = LogUniformSamples(20000, 900, 5e12, 11);
  for (int order = 0; order < 3; ++order) {
    if (order == 1) std::sort(samples.begin(), samples.end());
    if (order == 2) std::sort(samples.rbegin(), samples.rend());
    const Sketch sketch = SketchOf(samples);
    EXPECT_EQ(BucketsOf(sketch), ReferenceBucketsOf(samples)) << order;
    EXPECT_LE(sketch.MemoryBytes(), sizeof(Sketch) + size_t{Sketch::kMaxBuckets} * 2);
  }
}

TEST(LatencySketchStorage, ClearKeepsMemoryAndStartsOver) {
  Sketch sketch = SketchOf(LogNormalSamples(1000, 5e7, 1, 12));
  const size_t memory = sketch.MemoryBytes();
  sketch.Clear();
  EXPECT_EQ(sketch, Sketch());
  EXPECT_EQ(sketch.Count(), 0u);
  EXPECT_EQ(sketch.MinNanos(), 0u);
  EXPECT_TRUE(std::isnan(sketch.QuantileNanos(0.5)));
  EXPECT_EQ(sketch.MemoryBytes(), memory);
  const std::vector<uint64_t> again = {3'000'000, 4'000'000};
  for (uint64_t v : again) sketch.Add(v);
  EXPECT_EQ(sketch, SketchOf(again));
  EXPECT_EQ(sketch.MemoryBytes(), memory);
}

TEST(LatencySketchStorage, CopiesAreIndependent) {
  Sketch a = SketchOf({1'000'000, 2'000'000});
  Sketch b = a;
  b.Add(3'000'000);
  EXPECT_EQ(a.Count(), 2u);
  EXPECT_EQ(b.Count(), 3u);
  const Sketch expected = b;
  Sketch c = std::move(b);
  EXPECT_EQ(c, expected);
  // A moved-from sketch is empty and usable.
  EXPECT_EQ(b, Sketch());  // NOLINT(bugprone-use-after-move)
  b.Add(9'000'000);        // NOLINT(clang-analyzer-cplusplus.Move)
  EXPECT_EQ(b, SketchOf({9'000'000}));
  Sketch d;
  d = std::move(c);
  EXPECT_EQ(d, expected);
  EXPECT_EQ(c, Sketch());  // NOLINT(bugprone-use-after-move)
  c.Merge(d);              // NOLINT(clang-analyzer-cplusplus.Move)
  EXPECT_EQ(c, expected);
}

// --- merge
// ----------------------------------------------------------------------------------------

TEST(LatencySketchMerge, EqualsSketchOfUnionBucketByBucket) {
  const auto a = LogNormalSamples(30000, 2e6, 0.5, 21);    // narrow, fast
  const auto b = BimodalSamples(30000, 22);                // wide
  const auto c = LogUniformSamples(30000, 500, 5e12, 23);  // low, overflow, everything
  std::vector<uint64_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  all.insert(all.end(), c.begin(), c.end());

  Sketch merged = SketchOf(a);
  merged.Merge(SketchOf(b));
  merged.Merge(SketchOf(c));
  const Sketch direct = SketchOf(all);
  EXPECT_EQ(merged, direct);
  EXPECT_EQ(BucketsOf(merged), ReferenceBucketsOf(all));
  EXPECT_EQ(merged.Count(), all.size());
  EXPECT_EQ(merged.LowCount(), static_cast<uint64_t>(std::count_if(
                                   all.begin(), all.end(), [](uint64_t v) { return v <= 1000; })));
  for (double q : QuantileGrid()) EXPECT_EQ(merged.QuantileNanos(q), direct.QuantileNanos(q));
}

TEST(LatencySketchMerge, CommutativeAssociativeEmptyIsIdentity) {
  const Sketch a = SketchOf(LogNormalSamples(5000, 3e6, 0.3, 31));
  const Sketch b = SketchOf(LogNormalSamples(5000, 3e8, 1.0, 32));
  const Sketch c = SketchOf(UniformSamples(5000, 1, 2'000, 33));

  Sketch ab = a;
  ab.Merge(b);
  Sketch ba = b;
  ba.Merge(a);
  EXPECT_EQ(ab, ba);

  Sketch ab_c = ab;
  ab_c.Merge(c);
  Sketch bc = b;
  bc.Merge(c);
  Sketch a_bc = a;
  a_bc.Merge(bc);
  EXPECT_EQ(ab_c, a_bc);

  Sketch a_empty = a;
  a_empty.Merge(Sketch());
  EXPECT_EQ(a_empty, a);
  Sketch empty_a;
  empty_a.Merge(a);
  EXPECT_EQ(empty_a, a);
  Sketch empties;
  empties.Merge(Sketch());
  EXPECT_EQ(empties, Sketch());
}

TEST(LatencySketchMerge, SelfMergeDoubles) {
  const auto samples = BimodalSamples(2000, 41);
  Sketch sketch = SketchOf(samples);
  sketch.Merge(sketch);
  Sketch doubled;
  for (uint64_t v : samples) doubled.Add(v, 2);
  EXPECT_EQ(sketch, doubled);
}

TEST(LatencySketchMerge, WidensCountersAcrossSketches) {
  Sketch wide;
  wide.Add(5'000'000, uint64_t{1} << 33);
  Sketch narrow;
  narrow.Add(5'000'000, 200);
  narrow.Add(9'000'000'000, 1);
  narrow.Merge(wide);
  EXPECT_EQ(BucketsOf(narrow), (std::map<int32_t, uint64_t>{
                                   {Sketch::BucketIndex(5'000'000), (uint64_t{1} << 33) + 200},
                                   {Sketch::BucketIndex(9'000'000'000), 1}}));
  // A merge that overflows byte counters midway through the window.
  Sketch left;
  Sketch right;
  std::map<int32_t, uint64_t> expected;
  for (uint64_t k = 0; k < 10; ++k) {
    const uint64_t v = 1'000'000 * (k + 1);
    left.Add(v, 200);
    right.Add(v, 50 + 10 * k);
    expected[Sketch::BucketIndex(v)] = 250 + 10 * k;
  }
  left.Merge(right);
  EXPECT_EQ(BucketsOf(left), expected);
  // Many merges of byte-wide sketches overflow the byte counters of the accumulator.
  Sketch accumulator;
  Sketch small;
  small.Add(5'000'000, 200);
  for (int i = 0; i < 1000; ++i) accumulator.Merge(small);
  EXPECT_EQ(BucketsOf(accumulator),
            (std::map<int32_t, uint64_t>{{Sketch::BucketIndex(5'000'000), 200'000}}));
}

// Shards each sketch their spans; the window's quantile is read from the merge, and equals the
// quantile of one sketch that saw everything (never an average of per-shard quantiles).
TEST(LatencySketchMerge, ShardsThenWindowsMergeToTheGlobalQuantile) {
  const auto samples = BimodalSamples(60000, 51);
  std::vector<Sketch> shards(4);
  for (size_t i = 0; i < samples.size(); ++i) shards[i % 4].Add(samples[i]);
  Sketch window;
  for (const Sketch& shard : shards) window.Merge(shard);
  std::vector<uint64_t> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  for (double q : HeadlineQuantiles()) {
    EXPECT_LE(RelativeError(window.QuantileNanos(q), ExactQuantile(sorted, q)),
              Sketch::kRelativeErrorBound);
  }
  EXPECT_EQ(window, SketchOf(samples));
}

// --- memory
// ---------------------------------------------------------------------------------------

TEST(LatencySketchMemory, TypicalSketchesAreSmall) {
  const Sketch lognormal = SketchOf(LogNormalSamples(100000, 5e7, 1.0, 61));
  EXPECT_LT(lognormal.MemoryBytes(), 2048u) << lognormal.MemoryBytes();
  const Sketch narrow = SketchOf(LogNormalSamples(100000, 5e7, 0.5, 62));
  EXPECT_LT(narrow.MemoryBytes(), 1280u) << narrow.MemoryBytes();
  // A 10-second bucket of one series: a thousand spans.
  const Sketch ten_seconds = SketchOf(LogNormalSamples(1000, 5e7, 0.5, 63));
  EXPECT_LT(ten_seconds.MemoryBytes(), 640u) << ten_seconds.MemoryBytes();
  EXPECT_LE(Sketch().MemoryBytes(), 128u);
}

TEST(LatencySketchMemory, WorstCaseIsBounded) {
  Sketch sketch;
  for (int32_t k = Sketch::kMinIndex; k <= Sketch::kMaxIndex; ++k) {
    sketch.Add(ReferenceBounds()[k - kFirstRefIndex], uint64_t{1} << 33);  // top of bucket k
  }
  sketch.Add(0, 1);
  sketch.Add(std::numeric_limits<uint64_t>::max(), 1);
  EXPECT_EQ(BucketsOf(sketch).size(), static_cast<size_t>(Sketch::kMaxBuckets));
  EXPECT_LE(sketch.MemoryBytes(), sizeof(Sketch) + Sketch::kMaxBuckets * sizeof(uint64_t));
  // Merging more cannot grow it further.
  Sketch copy = sketch;
  sketch.Merge(copy);
  EXPECT_LE(sketch.MemoryBytes(), sizeof(Sketch) + Sketch::kMaxBuckets * sizeof(uint64_t));
}

TEST(LatencySketchEncoding, RoundTripsExactly) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> log2(0, 62);
  for (int round = 0; round < 200; ++round) {
    LatencySketch sketch;
    const int n = round % 50;
    for (int i = 0; i < n; ++i) {
      const uint64_t v = rng() >> log2(rng);  // every magnitude: low bucket, overflow, in range
      sketch.Add(v, rng() % 3 == 0 ? 1 + rng() % 100'000 : 1);
    }
    std::string bytes;
    sketch.AppendEncoded(bytes);
    LatencySketch back;
    back.Add(123);  // Decode replaces what was there
    ASSERT_TRUE(back.Decode(bytes)) << round;
    EXPECT_TRUE(back == sketch) << round;
    EXPECT_EQ(back.Count(), sketch.Count());
    EXPECT_EQ(back.SumNanos(), sketch.SumNanos());
  }
}

TEST(LatencySketchEncoding, RefusesMalformedInput) {
  LatencySketch sketch;
  for (uint64_t v : {500u, 2'000u, 50'000'000u, 50'000'001u, 3'000'000'000u}) sketch.Add(v, 3);
  std::string good;
  sketch.AppendEncoded(good);
  LatencySketch out;
  ASSERT_TRUE(out.Decode(good));
  EXPECT_FALSE(out.Decode(""));
  EXPECT_EQ(out.Count(), 0u);                                         // left empty
  EXPECT_FALSE(out.Decode(std::string(1, '\x02') + good.substr(1)));  // unknown version
  for (size_t cut = 1; cut < good.size(); ++cut) {
    EXPECT_FALSE(out.Decode(good.substr(0, cut))) << "truncated at " << cut;
  }
  EXPECT_FALSE(out.Decode(good + "x"));  // trailing bytes
  // Counts that do not add up: the total says one more than the buckets and the low bucket hold.
  LatencySketch one;
  one.Add(5'000'000);
  std::string bytes;
  one.AppendEncoded(bytes);
  bytes[1] = 2;  // count_ varint
  EXPECT_FALSE(out.Decode(bytes));
  // Every single-byte corruption either decodes to some valid sketch or is refused; never UB.
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x55);
    if (out.Decode(bad)) {
      uint64_t buckets = 0;
      out.ForEachBucket([&](int32_t, uint64_t c) { buckets += c; });
      EXPECT_EQ(buckets + out.LowCount(), out.Count());
    }
  }
}

}  // namespace
}  // namespace traceslo::pipeline
