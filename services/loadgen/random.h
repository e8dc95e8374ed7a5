#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace traceslo::loadgen {

// Distributions over a borrowed std::mt19937_64, written out here rather than taken from
// <random>: the standard fixes mt19937_64's output but not how std::*_distribution consume it,
// so only these give the same traffic for the same seed with every standard library.
// Owned by one thread (like the engine).
class Random {
 public:
  explicit Random(std::mt19937_64& engine) : engine_(engine) {}

  uint64_t Next() { return engine_(); }

  // Uniform in [0, 1), 53 random bits.
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

  // True with probability `p` (p <= 0: never, p >= 1: always; both without a draw).
  bool Bernoulli(double p) {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return Uniform() < p;
  }

  // Uniform integer in [lo, hi] (hi >= lo), by multiply-shift (bias below 2^-32 for small ranges).
  int64_t UniformInt(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    if (span == 0) return static_cast<int64_t>(engine_());
    const unsigned __int128 product = static_cast<unsigned __int128>(engine_()) * span;
    return lo + static_cast<int64_t>(static_cast<uint64_t>(product >> 64));
  }

  // Standard normal, by Box-Muller (two draws, the second value discarded so every call costs
  // the same number of draws).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

  // Log-normal with the given median and shape sigma.
  double LogNormal(double median, double sigma) { return median * std::exp(sigma * Normal()); }

  // A non-zero 64-bit id.
  uint64_t NonZero() {
    for (;;) {
      if (uint64_t v = engine_(); v != 0) return v;
    }
  }

 private:
  std::mt19937_64& engine_;
};

}  // namespace traceslo::loadgen
