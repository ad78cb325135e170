// Helpers for the fast engine's tests: a small deterministic generator (the same
// numbers on every platform, unlike <random>'s distributions), error norms, random
// documents, and the list of instruction sets this CPU runs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "fast/kernels.h"

namespace microgpt::testing {

// splitmix64
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform(double a, double b) { return a + (b - a) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // On the grid of multiples of 2^-12, so that x + k h is an exact float for the
  // finite-difference steps h = 2^-7 .. 2^-10 used by the kernel tests.
  float grid(double a, double b) { return static_cast<float>(std::round(uniform(a, b) * 4096.0) / 4096.0); }
  int32_t below(int64_t n) { return static_cast<int32_t>(next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t s_;
};

inline double max_abs(std::span<const double> a) {
  double m = 0.0;
  for (double x : a) m = std::max(m, std::abs(x));
  return m;
}

// max |a - b| / max |b|: the error relative to the tensor's scale (NaN compares as failure).
template <class A, class B>
double rel_inf(std::span<const A> a, std::span<const B> b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    if (!(d <= diff)) diff = d;  // NaN makes it NaN
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  if (a.size() != b.size()) return INFINITY;
  return diff == 0.0 ? 0.0 : diff / std::max(scale, 1e-30);
}
template <class A, class B>
double rel_inf(const std::vector<A>& a, const std::vector<B>& b) {
  return rel_inf(std::span<const A>(a), std::span<const B>(b));
}

// ||a - b||_2 / ||b||_2
template <class A, class B>
double rel_l2(std::span<const A> a, std::span<const B> b) {
  if (a.size() != b.size()) return INFINITY;
  double d2 = 0.0, b2 = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    d2 += d * d;
    b2 += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  if (d2 == 0.0) return 0.0;
  return std::sqrt(d2) / std::max(std::sqrt(b2), 1e-300);
}

inline double rel_diff(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

// Documents [BOS] + ids + [BOS] with ids below vocab_size - 1 (BOS = vocab_size - 1);
// lengths count the ids.
inline std::vector<std::vector<Token>> random_docs(int64_t vocab_size, const std::vector<int64_t>& lengths,
                                                   uint64_t seed) {
  TestRng rng(seed);
  const auto bos = static_cast<Token>(vocab_size - 1);
  std::vector<std::vector<Token>> docs;
  for (int64_t n : lengths) {
    std::vector<Token> d{bos};
    for (int64_t i = 0; i < n; i++) d.push_back(rng.below(vocab_size - 1));
    d.push_back(bos);
    docs.push_back(std::move(d));
  }
  return docs;
}

// The instruction sets this build has kernels for (the target's: see kernels.h).
inline const std::vector<std::string>& all_isas() { return cpu_kernel_names(); }

// The instruction sets this CPU runs (generic always).
inline std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const std::string& isa : all_isas()) {
    if (cpu_kernels_named(isa) != nullptr) out.push_back(isa);
  }
  return out;
}

}  // namespace microgpt::testing
