// Feeds arbitrary bytes to LatencySketch::Decode, which reads the latency blobs of the SQLite
// minute rollups (a file anyone with access to storage.path can change). Invariants (a violation
// traps): a rejected input leaves the sketch empty; an accepted one is self-consistent (its
// count is its buckets plus its low bucket, extremes ordered, quantiles inside them), encodes to
// bytes that decode to an equal sketch, and that encoding is a fixed point; merging it stays
// consistent.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/pipeline/latency_sketch.h"

namespace {

using traceslo::pipeline::LatencySketch;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// Count() is the sum of the buckets plus the low bucket, and the extremes are ordered.
void CheckConsistent(const LatencySketch& s) {
  uint64_t buckets = 0;
  int32_t previous = LatencySketch::kMinIndex - 1;
  s.ForEachBucket([&](int32_t index, uint64_t count) {
    Check(index > previous && index <= LatencySketch::kMaxIndex);
    previous = index;
    buckets += count;
  });
  Check(s.Count() == buckets + s.LowCount());
  Check(s.LowCount() <= s.Count());
  if (s.Count() > 0) Check(s.MinNanos() <= s.MaxNanos());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  LatencySketch sketch;
  sketch.Add(5'000'000);  // Decode replaces whatever the sketch held
  if (!sketch.Decode(in)) {
    Check(sketch.Count() == 0 && sketch.LowCount() == 0 && sketch.OverflowCount() == 0);
    return 0;
  }
  CheckConsistent(sketch);

  std::string encoded;
  sketch.AppendEncoded(encoded);
  LatencySketch again;
  Check(again.Decode(encoded));
  Check(again == sketch);
  std::string reencoded;
  again.AppendEncoded(reencoded);
  Check(reencoded == encoded);

  for (double q : {0.0, 0.5, 0.99, 1.0}) {
    const double v = sketch.QuantileNanos(q);
    if (sketch.Count() == 0) {
      Check(std::isnan(v));
    } else {
      Check(v >= static_cast<double>(sketch.MinNanos()) &&
            v <= static_cast<double>(sketch.MaxNanos()));
    }
  }

  // Merging a decoded sketch into a live one (what SeriesMinutes does per row) stays consistent.
  LatencySketch merged;
  merged.Add(1'000'000, 3);
  merged.Merge(sketch);
  CheckConsistent(merged);
  Check(merged.Count() == sketch.Count() + 3);
  return 0;
}
