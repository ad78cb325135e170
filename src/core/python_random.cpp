// MT19937 as in CPython's Modules/_randommodule.c (the reference algorithm by
// Matsumoto and Nishimura), and the Python-level methods of Lib/random.py.
#include "core/python_random.h"

#include <bit>

#include "core/error.h"
#include "core/pymath.h"

namespace microgpt {

namespace {
constexpr int kN = static_cast<int>(PyRandom::kStateWords);
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;
}  // namespace

PyRandom::PyRandom(uint64_t seed) {
  // Python splits the seed into 32-bit words, least significant first; 0 is [0].
  std::array<uint32_t, 2> key{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  init_by_array(std::span<const uint32_t>(key.data(), (seed >> 32) != 0 ? 2 : 1));
}

void PyRandom::init_genrand(uint32_t s) {
  mt_[0] = s;
  for (int i = 1; i < kN; i++) {
    mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  index_ = kN;
}

void PyRandom::init_by_array(std::span<const uint32_t> key) {
  init_genrand(19650218U);
  const int key_length = static_cast<int>(key.size());
  int i = 1;
  int j = 0;
  for (int k = (kN > key_length ? kN : key_length); k; k--) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] + static_cast<uint32_t>(j);
    i++;
    j++;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= key_length) j = 0;
  }
  for (int k = kN - 1; k; k--) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) - static_cast<uint32_t>(i);
    i++;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000U;  // MSB is 1, assuring a non-zero initial array
  gauss_next_.reset();
}

uint32_t PyRandom::next_u32() {
  if (index_ >= kN) {
    int kk = 0;
    for (; kk < kN - kM; kk++) {
      uint32_t y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + kM] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    }
    for (; kk < kN - 1; kk++) {
      uint32_t y = (mt_[kk] & kUpperMask) | (mt_[kk + 1] & kLowerMask);
      mt_[kk] = mt_[kk + (kM - kN)] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    }
    uint32_t y = (mt_[kN - 1] & kUpperMask) | (mt_[0] & kLowerMask);
    mt_[kN - 1] = mt_[kM - 1] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

double PyRandom::random() {
  uint32_t a = next_u32() >> 5;
  uint32_t b = next_u32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

double PyRandom::gauss(double mu, double sigma) {
  double z;
  if (gauss_next_) {
    z = *gauss_next_;
    gauss_next_.reset();
  } else {
    const double two_pi = 2.0 * 3.141592653589793;
    double x2pi = random() * two_pi;
    double g2rad = pymath::sqrt(-2.0 * pymath::log(1.0 - random()));
    z = pymath::cos(x2pi) * g2rad;
    gauss_next_ = pymath::sin(x2pi) * g2rad;
  }
  return mu + z * sigma;
}

uint64_t PyRandom::getrandbits(int k) {
  if (k <= 0 || k > 64) throw Error("getrandbits: k must be in 1..64");
  if (k <= 32) return next_u32() >> (32 - k);
  // Python fills 32-bit words from the least significant, dropping low bits of the last.
  uint64_t low = next_u32();
  uint64_t high = next_u32() >> (64 - k);
  return low | (high << 32);
}

uint64_t PyRandom::randbelow(uint64_t n) {
  if (n == 0) throw Error("randbelow: n must be positive");
  int k = std::bit_width(n);
  uint64_t r = getrandbits(k);
  while (r >= n) r = getrandbits(k);
  return r;
}

int64_t PyRandom::choices(std::span<const double> weights) {
  const int64_t n = static_cast<int64_t>(weights.size());
  if (n == 0) throw Error("choices: no weights");
  // Cumulative sums left to right; bisect_right over indices 0..n-2 (hi = n - 1).
  // The running sums are recomputed during the search rather than stored: same values.
  double total = 0.0;
  for (double w : weights) total += w;
  const double u = random() * total;
  double c = 0.0;
  for (int64_t i = 0; i < n - 1; i++) {
    c += weights[static_cast<size_t>(i)];
    if (u < c) return i;
  }
  return n - 1;
}

PyRandom::State PyRandom::state() const { return State{mt_, index_, gauss_next_}; }

void PyRandom::set_state(const State& s) {
  if (s.index < 0 || s.index > kN) throw Error("random state: position out of range");
  mt_ = s.mt;
  index_ = s.index;
  gauss_next_ = s.gauss_next;
}

}  // namespace microgpt
