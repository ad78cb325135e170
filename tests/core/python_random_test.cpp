// Python's random module, checked against values CPython 3.11 printed, e.g.
//   r = random.Random(42); [r.random() for _ in range(5)]
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/python_random.h"

namespace microgpt {
namespace {

TEST(PyRandom, RandomMatchesCPython) {
  PyRandom r(42);
  const double want[] = {0.6394267984578837, 0.025010755222666936, 0.27502931836911926, 0.22321073814882275,
                         0.7364712141640124};
  for (double w : want) EXPECT_EQ(r.random(), w);
}

TEST(PyRandom, SeedsWiderThan32BitsUseEveryWord) {
  PyRandom a(4294967301ULL);  // 2**32 + 5: key [5, 1]
  EXPECT_EQ(a.random(), 0.15727238718789782);
  EXPECT_EQ(a.random(), 0.2824866316461999);
  EXPECT_EQ(a.random(), 0.6044540318498407);
  PyRandom b(18446744073709551615ULL);  // 2**64 - 1
  EXPECT_EQ(b.random(), 0.021825695401270107);
  EXPECT_EQ(b.random(), 0.3380953268613758);
  EXPECT_EQ(b.random(), 0.21196748656082065);
}

TEST(PyRandom, SeedZeroRawWords) {
  PyRandom r(0);  // r.getrandbits(32)
  const uint32_t want[] = {3626764237U, 1654615998U, 3255389356U, 3823568514U, 1806341205U};
  for (uint32_t w : want) EXPECT_EQ(r.next_u32(), w);
}

TEST(PyRandom, GaussKeepsItsSecondValue) {
  PyRandom r(42);  // r.gauss(0, 0.08)
  const double want[] = {-0.011527226366234268, -0.013832288026521545, -0.008905268925412997, 0.05615869800790905,
                         -0.010207062702630967};
  for (double w : want) EXPECT_EQ(r.gauss(0.0, 0.08), w);
}

TEST(PyRandom, GaussAfterRandomWithMuAndSigma) {
  PyRandom r(42);
  r.random();
  EXPECT_EQ(r.gauss(1.5, 2.0), 3.0842894818995816);
  EXPECT_EQ(r.gauss(1.5, 2.0), 1.7510365514065214);
  EXPECT_EQ(r.gauss(1.5, 2.0), 2.047198013116766);
}

TEST(PyRandom, Getrandbits) {
  PyRandom r(7);  // [r.getrandbits(k) for k in (1, 5, 13, 31, 32, 33, 64)]
  EXPECT_EQ(r.getrandbits(1), 0U);
  EXPECT_EQ(r.getrandbits(5), 30U);
  EXPECT_EQ(r.getrandbits(13), 1235U);
  EXPECT_EQ(r.getrandbits(31), 847876999U);
  EXPECT_EQ(r.getrandbits(32), 2795742288U);
  EXPECT_EQ(r.getrandbits(33), 207388624U);
  EXPECT_EQ(r.getrandbits(64), 9885278224986867748ULL);
}

TEST(PyRandom, Randbelow) {
  PyRandom r(9);  // [r.randrange(n) for n in (1, 2, 3, 7, 100, 1000003, 2**40 + 3)]
  EXPECT_EQ(r.randbelow(1), 0U);
  EXPECT_EQ(r.randbelow(2), 1U);
  EXPECT_EQ(r.randbelow(3), 1U);
  EXPECT_EQ(r.randbelow(7), 1U);
  EXPECT_EQ(r.randbelow(100), 23U);
  EXPECT_EQ(r.randbelow(1000003), 908655U);
  EXPECT_EQ(r.randbelow((1ULL << 40) + 3), 15791063902ULL);
}

TEST(PyRandom, Shuffle) {
  PyRandom r(42);
  std::vector<int> x(10);
  std::iota(x.begin(), x.end(), 0);
  r.shuffle(x);
  EXPECT_EQ(x, (std::vector<int>{7, 3, 2, 8, 5, 6, 9, 4, 0, 1}));

  PyRandom r3(3);
  std::vector<int> y(1000);
  std::iota(y.begin(), y.end(), 0);
  r3.shuffle(y);
  EXPECT_EQ(std::vector<int>(y.begin(), y.begin() + 8), (std::vector<int>{316, 974, 262, 342, 905, 932, 567, 511}));
  EXPECT_EQ(std::vector<int>(y.end() - 8, y.end()), (std::vector<int>{485, 618, 937, 378, 133, 557, 606, 243}));
}

TEST(PyRandom, ChoicesWithWeights) {
  PyRandom r(42);  // r.choices(range(5), weights=[.1, .2, .3, .25, .15])[0], 20 times
  const std::vector<double> w = {0.1, 0.2, 0.3, 0.25, 0.15};
  const int64_t want[] = {3, 0, 1, 1, 3, 3, 4, 0, 2, 0, 1, 2, 0, 1, 3, 2, 1, 2, 3, 0};
  for (int64_t k : want) EXPECT_EQ(r.choices(w), k);
}

TEST(PyRandom, StateRoundTrip) {
  PyRandom a(123);
  a.gauss(0, 1);  // leaves a cached gauss value
  for (int i = 0; i < 700; i++) a.next_u32();
  PyRandom b(0);
  b.set_state(a.state());
  for (int i = 0; i < 1000; i++) ASSERT_EQ(a.gauss(0, 1), b.gauss(0, 1));
}

}  // namespace
}  // namespace microgpt
