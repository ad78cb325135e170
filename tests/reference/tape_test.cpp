// The scalar tape: every operation against central finite differences, reused nodes,
// backward run twice, and the dot node against the product and sum nodes it stands for.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <random>

#include "reference/tape.h"

namespace microgpt {
namespace {

using Id = Tape::Id;
using Fn = std::function<Id(Tape&, const std::vector<Id>&)>;

// Checks d f / d leaf against (f(x + h) - f(x - h)) / 2h for every leaf.
void check_gradients(const std::string& what, const Fn& f, const std::vector<double>& x) {
  Tape tape(static_cast<int64_t>(x.size()));
  std::vector<Id> leaves;
  for (size_t i = 0; i < x.size(); i++) {
    leaves.push_back(tape.leaf(static_cast<int64_t>(i)));
    tape.set_value(leaves[i], x[i]);
  }
  tape.backward(f(tape, leaves));
  for (size_t i = 0; i < x.size(); i++) {
    auto eval = [&](double xi) {
      Tape t(static_cast<int64_t>(x.size()));
      std::vector<Id> l;
      for (size_t j = 0; j < x.size(); j++) {
        l.push_back(t.leaf(static_cast<int64_t>(j)));
        t.set_value(l[j], j == i ? xi : x[j]);
      }
      return t.value(f(t, l));
    };
    const double h = 1e-6 * std::max(1.0, std::abs(x[i]));
    const double numeric = (eval(x[i] + h) - eval(x[i] - h)) / (2 * h);
    const double analytic = tape.grad(leaves[i]);
    EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << what << ", leaf " << i;
  }
}

TEST(TapeGradients, EveryOperationMatchesFiniteDifferences) {
  const std::vector<double> x = {0.7, -1.3, 2.1};
  check_gradients("add", [](Tape& t, auto& l) { return t.add(l[0], l[1]); }, x);
  check_gradients("add const", [](Tape& t, auto& l) { return t.add(l[0], 2.5); }, x);
  check_gradients("mul", [](Tape& t, auto& l) { return t.mul(l[0], l[1]); }, x);
  check_gradients("mul const", [](Tape& t, auto& l) { return t.mul(l[1], -3.0); }, x);
  for (double c : {2.0, 0.5, -1.0, -0.5, 3.7}) {
    check_gradients("pow " + std::to_string(c), [c](Tape& t, auto& l) { return t.pow(l[2], c); }, x);
  }
  check_gradients("log", [](Tape& t, auto& l) { return t.log(l[2]); }, x);
  check_gradients("exp", [](Tape& t, auto& l) { return t.exp(l[1]); }, x);
  check_gradients("relu +", [](Tape& t, auto& l) { return t.relu(l[0]); }, x);
  check_gradients("relu -", [](Tape& t, auto& l) { return t.relu(l[1]); }, x);
  check_gradients("neg", [](Tape& t, auto& l) { return t.neg(l[0]); }, x);
  check_gradients("sub", [](Tape& t, auto& l) { return t.sub(l[0], l[2]); }, x);
  check_gradients("sub const", [](Tape& t, auto& l) { return t.sub(l[0], 4.0); }, x);
  check_gradients("div", [](Tape& t, auto& l) { return t.div(l[0], l[1]); }, x);
  check_gradients("div const", [](Tape& t, auto& l) { return t.div(l[0], 7.0); }, x);
  check_gradients("sum", [](Tape& t, auto& l) { return t.sum(l); }, x);
  check_gradients("dot", [](Tape& t, auto& l) {
    const std::vector<Id> a = {l[0], l[1], l[2]};
    const std::vector<Id> b = {l[2], l[0], l[1]};
    return t.dot(a, b);
  }, x);
}

TEST(TapeGradients, ReusedNodes) {
  const std::vector<double> x = {0.9, -0.4};
  // y = x0*x0*x0 + x0 * x1 + x0: x0 feeds five edges.
  check_gradients("reused", [](Tape& t, auto& l) {
    const Id sq = t.mul(l[0], l[0]);
    return t.add(t.add(t.mul(sq, l[0]), t.mul(l[0], l[1])), l[0]);
  }, x);
  // dot(x, x), as rmsnorm uses it, and a node used twice inside one dot.
  check_gradients("dot self", [](Tape& t, auto& l) { return t.dot(l, l); }, x);
  check_gradients("dot shared", [](Tape& t, auto& l) {
    const Id e = t.exp(l[0]);
    const std::vector<Id> a = {e, e, l[1]};
    const std::vector<Id> b = {l[1], e, e};
    return t.log(t.dot(a, b));
  }, x);
}

TEST(TapeGradients, ReusedNodeGradientIsExact) {
  Tape t(1);
  t.set_value(t.leaf(0), 3.0);
  const Id x = t.leaf(0);
  t.backward(t.add(t.mul(x, x), x));  // d/dx (x^2 + x) = 2x + 1
  EXPECT_EQ(t.grad(x), 7.0);
}

TEST(TapeGradients, BackwardTwiceAddsLeafGradientsAgain) {
  Tape t(2);
  t.set_value(t.leaf(0), 0.3);
  t.set_value(t.leaf(1), -1.7);
  const Id a = t.leaf(0), b = t.leaf(1);
  const Id y = t.log(t.add(t.exp(t.mul(a, b)), t.pow(a, 2.0)));
  t.backward(y);
  const double ga = t.grad(a), gb = t.grad(b);
  t.backward(y);
  EXPECT_NEAR(t.grad(a), 2 * ga, 1e-15);
  EXPECT_NEAR(t.grad(b), 2 * gb, 1e-15);
  t.zero_leaf_grads();
  t.backward(y);
  EXPECT_EQ(t.grad(a), ga);
  EXPECT_EQ(t.grad(b), gb);
}

TEST(TapeGradients, ResetKeepsLeavesAndDropsTheGraph) {
  Tape t(1);
  t.set_value(t.leaf(0), 2.0);
  const int64_t empty = t.size();
  t.backward(t.mul(t.leaf(0), 3.0));
  EXPECT_GT(t.size(), empty);
  t.reset();
  EXPECT_EQ(t.size(), empty);
  EXPECT_EQ(t.value(t.leaf(0)), 2.0);
  EXPECT_EQ(t.grad(t.leaf(0)), 3.0);
}

// A random graph built twice: once with dot nodes, once with the product and sum nodes
// microgpt.py makes for sum(ai * bi). Values and every leaf gradient must agree to the
// bit, including where a dot's inputs depend on each other or are first reached
// through the dot.
struct Built {
  std::vector<double> values;
  std::vector<double> grads;
};

Built build_random_graph(uint32_t seed, bool use_dot) {
  std::mt19937 rng(seed);
  const int n_leaves = 10;
  Tape t(n_leaves);
  std::vector<Id> pool;
  std::uniform_real_distribution<double> init(-1.0, 1.0);
  for (int i = 0; i < n_leaves; i++) {
    t.set_value(t.leaf(i), init(rng));
    pool.push_back(t.leaf(i));
  }
  auto pick = [&]() { return pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)]; };
  auto dot = [&](const std::vector<Id>& a, const std::vector<Id>& b) {
    if (use_dot) return t.dot(a, b);
    std::vector<Id> products;
    for (size_t i = 0; i < a.size(); i++) products.push_back(t.mul(a[i], b[i]));
    return t.sum(products);
  };
  for (int step = 0; step < 120; step++) {
    const int op = std::uniform_int_distribution<int>(0, 5)(rng);
    Id out;
    if (op <= 2) {  // dot of k terms, scaled down to keep values moderate
      const size_t k = std::uniform_int_distribution<size_t>(1, 6)(rng);
      std::vector<Id> a, b;
      for (size_t i = 0; i < k; i++) {
        a.push_back(pick());
        b.push_back(i % 3 == 2 ? a.back() : pick());
      }
      out = t.mul(dot(a, b), 1.0 / static_cast<double>(k));
    } else if (op == 3) {
      out = t.mul(t.add(pick(), pick()), 0.5);
    } else if (op == 4) {
      out = t.relu(pick());
    } else {
      out = t.pow(t.add(t.mul(pick(), pick()), 1.0), -0.5);
    }
    pool.push_back(out);
  }
  std::vector<Id> tail(pool.end() - 20, pool.end());
  const Id loss = t.log(t.add(dot(tail, tail), 1.0));
  t.backward(loss);
  Built b;
  b.values.push_back(t.value(loss));
  for (int i = 0; i < n_leaves; i++) b.grads.push_back(t.grad(t.leaf(i)));
  return b;
}

TEST(TapeDot, BitIdenticalToProductAndSumNodes) {
  for (uint32_t seed = 1; seed <= 200; seed++) {
    const Built a = build_random_graph(seed, true);
    const Built b = build_random_graph(seed, false);
    ASSERT_EQ(std::bit_cast<uint64_t>(a.values[0]), std::bit_cast<uint64_t>(b.values[0])) << "seed " << seed;
    for (size_t i = 0; i < a.grads.size(); i++) {
      ASSERT_EQ(std::bit_cast<uint64_t>(a.grads[i]), std::bit_cast<uint64_t>(b.grads[i]))
          << "seed " << seed << " leaf " << i << ": " << a.grads[i] << " vs " << b.grads[i];
    }
  }
}

}  // namespace
}  // namespace microgpt
