// Compiled with -fno-builtin (see src/CMakeLists.txt): these must be real libm calls,
// or values proven equal to what the libm call returns. (__builtin_sqrt and
// __builtin_fabs below are meant: both are exact, so the instruction equals the call.)
#include "core/pymath.h"

#include <math.h>

#include <bit>
#include <cstdint>

namespace microgpt::pymath {

namespace {

// a*a = hi + lo exactly (Dekker's product with Veltkamp's split; no FMA needed).
// Exact while a*a neither overflows nor underflows, which the callers check.
void exact_square(double a, double& hi, double& lo) {
  const double c = 134217729.0 * a;  // 2^27 + 1
  const double a_hi = c - (c - a);
  const double a_lo = a - a_hi;
  hi = a * a;
  lo = ((a_hi * a_hi - hi) + 2.0 * a_hi * a_lo) + a_lo * a_lo;
}

// glibc's pow is within 0.54 ULP of the exact result (the bound stated in its
// sysdeps/ieee754/dbl-64/e_pow.c). So where the exact value lies within 0.45 ULP of a
// double d, d is the only double within 0.54 ULP of it and pow must return d; only
// the remaining ~10% of arguments need the real call. Adam calls pow(g, 2) and
// pow(v, 0.5) for every parameter at every step, which made pow a fifth of a run.
// tests/core/pymath_test.cpp checks the shortcut against libm on millions of values.
constexpr double kSafeUlps = 0.45;
constexpr double kTiny = 0x1p-900;  // far from underflow for squares and residuals
constexpr double kHuge = 0x1p+500;  // far from overflow

// The spacing of doubles at a positive normal x: 2^(exponent - 52).
double ulp(double x) {
  const uint64_t exponent_bits = std::bit_cast<uint64_t>(x) & 0x7FF0000000000000ULL;
  return std::bit_cast<double>(exponent_bits - (uint64_t{52} << 52));
}

double pow_two(double x) {
  const double ax = __builtin_fabs(x);
  if (ax > kTiny && ax < kHuge) {
    double hi, lo;
    exact_square(ax, hi, lo);
    if (__builtin_fabs(lo) < kSafeUlps * ulp(hi)) return hi;
  }
  return ::pow(x, 2.0);
}

double pow_half(double x) {
  if (x > kTiny && x < kHuge) {
    const double s = __builtin_sqrt(x);  // the sqrtsd instruction: correctly rounded
    double hi, lo;
    exact_square(s, hi, lo);
    // sqrt(x) - s = (x - s*s) / (sqrt(x) + s) ~ ((x - hi) - lo) / (2 s); x - hi is exact.
    const double distance = __builtin_fabs(((x - hi) - lo) / (2.0 * s));
    if (distance < kSafeUlps * ulp(s)) return s;
  }
  return ::pow(x, 0.5);
}

}  // namespace

double pow(double x, double y) {
  if (y == 2.0) return pow_two(x);
  if (y == 0.5) return pow_half(x);
  return ::pow(x, y);
}
double libm_pow(double x, double y) { return ::pow(x, y); }
double exp(double x) { return ::exp(x); }
double log(double x) { return ::log(x); }
double cos(double x) { return ::cos(x); }
double sin(double x) { return ::sin(x); }
double sqrt(double x) { return ::sqrt(x); }

}  // namespace microgpt::pymath
