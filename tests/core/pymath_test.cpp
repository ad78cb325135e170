// pymath::pow answers some calls without libm (see pymath.cpp); it must still return
// exactly what libm's pow returns, bit for bit, for every argument.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/pymath.h"

namespace microgpt {
namespace {

bool same_bits(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b) || (std::isnan(a) && std::isnan(b));
}

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// Random doubles of both signs over the whole exponent range, and within the range
// Adam's gradients and second moments live in.
double random_double(uint64_t& s, bool narrow) {
  const uint64_t r = xorshift(s);
  uint64_t exponent = narrow ? 1023 - 60 + (r >> 58) : (r >> 53) & 0x7FF;
  const uint64_t bits = (r & 0x000FFFFFFFFFFFFFULL) | (exponent << 52) | (xorshift(s) & (1ULL << 63));
  return std::bit_cast<double>(bits);
}

TEST(PyMath, PowOfTwoAndHalfEqualLibmOnRandomArguments) {
  uint64_t s = 0x9E3779B97F4A7C15ULL;
  int64_t mismatches = 0;
  for (int i = 0; i < 3000000; i++) {
    const double x = random_double(s, i % 2 == 0);
    for (double y : {2.0, 0.5}) mismatches += !same_bits(pymath::pow(x, y), pymath::libm_pow(x, y));
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(PyMath, PowNearTheShortcutBoundEqualsLibm) {
  // Squares whose exact value lies 0.40..0.45 ULP from a double: the closest calls the
  // shortcut still answers alone, where a wrong bound would show first.
  uint64_t s = 12345;
  int64_t checked = 0;
  int64_t mismatches = 0;
  while (checked < 200000) {
    const double x = std::abs(random_double(s, true));
    const double hi = x * x;
    const double lo = std::fma(x, x, -hi);
    const double ulp = std::nextafter(hi, INFINITY) - hi;
    const double r = std::abs(lo) / ulp;
    if (r < 0.40 || r >= 0.45) continue;
    checked++;
    mismatches += !same_bits(pymath::pow(x, 2.0), pymath::libm_pow(x, 2.0));
    const double v = hi;  // sqrt(v) lands near x
    mismatches += !same_bits(pymath::pow(v, 0.5), pymath::libm_pow(v, 0.5));
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(PyMath, PowSpecialValuesEqualLibm) {
  const double inf = std::numeric_limits<double>::infinity();
  const double specials[] = {0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-160, 1e160,
                             1.7976931348623157e308, inf, -inf, std::numeric_limits<double>::quiet_NaN(),
                             0x1p-900, 0x1p+500, 3.0, -3.0};
  for (double x : specials) {
    for (double y : {2.0, 0.5, -1.0, -0.5, -1.5, -2.0}) {
      EXPECT_TRUE(same_bits(pymath::pow(x, y), pymath::libm_pow(x, y))) << x << " ** " << y;
    }
  }
}

}  // namespace
}  // namespace microgpt
