// The fast engine (float32, kernels) against the reference engine (double, bit-exact
// with microgpt.py) on identical parameters, one document per step: the same initial
// draws, then logits, loss and every parameter tensor's gradient per document, then
// the losses of 20 Adam steps. Run for several model shapes and every instruction set
// this CPU has; the reference numbers are computed once per shape.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "core/python_random.h"
#include "fast/fast_model.h"
#include "fast_test_util.h"
#include "reference/reference_model.h"

namespace microgpt {
namespace {

using testing::rel_diff;
using testing::rel_inf;
using testing::rel_l2;

// float32 against double: logits and losses to 1e-5 relative, each tensor's gradient
// to 1e-4 in norm (a few rounding errors of float per operation, summed over the
// graph), Adam's losses to 1e-4 (Adam divides by sqrt(v), which magnifies the rounding
// of gradients near zero, but 20 steps at lr 0.01 keep the losses close).
constexpr double kLogitTol = 1e-5, kLossTol = 1e-5, kGradTol = 1e-4, kTrainLossTol = 1e-4;
constexpr int64_t kSteps = 20;

struct Shape {
  std::string name;
  ModelConfig model;
  double init_std;
  std::vector<int64_t> doc_lengths;  // ids per document
};

// what ctest and gtest show for a shape
void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

ModelConfig config(int64_t V, int64_t L, int64_t C, int64_t NH, int64_t BS) {
  ModelConfig m;
  m.vocab_size = V;
  m.n_layer = L;
  m.n_embd = C;
  m.n_head = NH;
  m.block_size = BS;
  return m;
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {
      {"Default", config(28, 1, 16, 4, 16), 0.08, {5, 1, 9, 14}},
      {"TwoLayers", config(11, 2, 16, 4, 16), 0.2, {6, 3, 11}},
      {"OneHead", config(11, 1, 16, 1, 16), 0.2, {7, 2, 12}},
      {"BlockSize4Truncates", config(11, 1, 16, 4, 4), 0.2, {9, 6, 2, 13}},
      {"HeadSize12", config(11, 1, 48, 4, 16), 0.1, {6, 10}},
      {"Width64TwoHeads", config(11, 1, 64, 2, 16), 0.1, {8, 4}},
  };
  return s;
}

TrainConfig train_config(double init_std) {
  TrainConfig t;
  t.lr = 0.01;
  t.init_std = init_std;
  t.steps = kSteps;
  return t;
}

struct ReferenceRun {
  std::vector<std::vector<std::vector<double>>> logits;  // per document
  std::vector<double> losses;                            // per document
  std::vector<std::vector<double>> grads;                // per document, of its mean loss
  std::vector<double> train_losses;                      // kSteps Adam steps, document s % n
};

constexpr uint64_t kSeed = 1234;

ReferenceRun run_reference(const Shape& s, const std::vector<std::vector<Token>>& docs) {
  const TrainConfig train = train_config(s.init_std);
  ReferenceRun r;
  ReferenceModel ref(s.model, train);
  PyRandom rng(kSeed);
  ref.init_params(rng);
  for (const auto& d : docs) {
    r.logits.push_back(ref.logits(d));
    r.losses.push_back(ref.loss(d));
    ReferenceModel fresh(s.model, train);  // leaf gradients accumulate: one model per document
    PyRandom rng2(kSeed);
    fresh.init_params(rng2);
    EXPECT_EQ(fresh.forward_backward(d), r.losses.back());
    std::vector<double> g(static_cast<size_t>(fresh.num_params()));
    for (int64_t i = 0; i < fresh.num_params(); i++) g[static_cast<size_t>(i)] = fresh.grad(i);
    r.grads.push_back(std::move(g));
  }
  for (int64_t step = 0; step < kSteps; step++) {
    r.train_losses.push_back(ref.train_step(step, kSteps, docs[static_cast<size_t>(step) % docs.size()]));
  }
  return r;
}

// The largest differences of one run of the fast engine from the reference's.
struct Errors {
  double logits = 0, loss = 0, grad = 0, train_loss = 0;
  std::string grad_tensor;  // where grad was largest
  std::string failures;     // anything structurally wrong (sizes, draws)
};

Errors compare_with_reference(const Shape& s, const std::vector<std::vector<Token>>& docs, const ReferenceRun& want,
                              const Kernels& k) {
  const TrainConfig train = train_config(s.init_std);
  Errors e;
  ReferenceModel ref(s.model, train);
  PyRandom ref_rng(kSeed);
  ref.init_params(ref_rng);
  FastModel fast(s.model, train, 1, 1, k);
  PyRandom rng(kSeed);
  fast.init_params(rng);
  // the reference's draws rounded to float, which is also what copying them gives
  for (int64_t i = 0; i < fast.num_params(); i++) {
    if (fast.params()[static_cast<size_t>(i)] != static_cast<float>(ref.param(i))) {
      e.failures += "parameter " + std::to_string(i) + " is not the reference's draw\n";
      break;
    }
  }
  for (size_t d = 0; d < docs.size(); d++) {
    const DocRef doc(docs[d]);
    const auto logits = fast.logits(doc);
    if (logits.size() != want.logits[d].size()) e.failures += "document " + std::to_string(d) + ": positions\n";
    for (size_t t = 0; t < std::min(logits.size(), want.logits[d].size()); t++) {
      e.logits = std::max(e.logits, rel_inf(logits[t], want.logits[d][t]));
    }
    e.loss = std::max(e.loss, rel_diff(fast.evaluate(std::span(&doc, 1)).mean(), want.losses[d]));

    FastModel one(s.model, train, 1, 1, k);  // a fresh gradient
    std::copy(fast.params().begin(), fast.params().end(), one.params().begin());
    const LossSum loss = one.forward_backward(std::span(&doc, 1));
    if (loss.tokens != static_cast<int64_t>(want.logits[d].size())) e.failures += "document " + std::to_string(d) + ": tokens\n";
    e.loss = std::max(e.loss, rel_diff(loss.mean(), want.losses[d]));
    const std::vector<float> g = one.gradient();
    for (const ParamTensor& t : fast.layout().tensors()) {
      const auto b = static_cast<size_t>(t.offset), n = static_cast<size_t>(t.numel());
      const double err =
          rel_l2(std::span<const float>(g).subspan(b, n), std::span<const double>(want.grads[d]).subspan(b, n));
      if (!(err <= e.grad)) {
        e.grad = err;
        e.grad_tensor = t.name + " (document " + std::to_string(d) + ")";
      }
    }
  }
  for (int64_t step = 0; step < kSteps; step++) {
    const DocRef doc(docs[static_cast<size_t>(step) % docs.size()]);
    const double loss = fast.train_step(step, kSteps, std::span(&doc, 1));
    e.train_loss = std::max(e.train_loss, rel_diff(loss, want.train_losses[static_cast<size_t>(step)]));
  }
  return e;
}

class FastVsReference : public ::testing::TestWithParam<Shape> {};

TEST_P(FastVsReference, LogitsLossGradientsAndAdamSteps) {
  const Shape& s = GetParam();
  const auto docs = testing::random_docs(s.model.vocab_size, s.doc_lengths, 99);
  const ReferenceRun want = run_reference(s, docs);
  // the steps did train: the last step's document has a lower loss than when first seen
  EXPECT_LT(want.train_losses.back(), want.train_losses[(kSteps - 1) % docs.size()]);
  for (const std::string& isa : testing::available_isas()) {
    SCOPED_TRACE(isa);
    const Errors e = compare_with_reference(s, docs, want, *cpu_kernels_named(isa));
    EXPECT_EQ(e.failures, "");
    EXPECT_LE(e.logits, kLogitTol);
    EXPECT_LE(e.loss, kLossTol);
    EXPECT_LE(e.grad, kGradTol) << e.grad_tensor;
    EXPECT_LE(e.train_loss, kTrainLossTol);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, FastVsReference, ::testing::ValuesIn(shapes()),
                         [](const ::testing::TestParamInfo<Shape>& i) { return i.param.name; });

// Every document is cut at block_size, in both engines: logits for min(block_size,
// len - 1) positions.
TEST(FastVsReferenceShape, TruncationAtBlockSize) {
  const ModelConfig m = config(11, 1, 16, 4, 4);
  FastModel fast(m, train_config(0.1), 1, 1);
  PyRandom rng(3);
  fast.init_params(rng);
  const auto docs = testing::random_docs(11, {1, 3, 4, 10}, 5);
  const size_t want[] = {2, 4, 4, 4};
  for (size_t d = 0; d < docs.size(); d++) {
    EXPECT_EQ(fast.logits(DocRef(docs[d])).size(), want[d]);
    const DocRef doc(docs[d]);
    EXPECT_EQ(fast.evaluate(std::span(&doc, 1)).tokens, static_cast<int64_t>(want[d]));
  }
}

// The comparison sees a wrong kernel in the model: ReLU's backward letting the
// gradient through negative inputs changes the MLP's gradients; an attention that
// forgets 1/sqrt(HS) changes the logits.
void relu_backward_passes_negatives(float* dinp, const float* dout, const float*, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i];
}
void attention_forward_unscaled(float* out, float* lse, const float* qkv, const int64_t* doc_start, int64_t n_docs,
                                int64_t rows, int64_t t0, int64_t C, int64_t NH, float* scratch) {
  // q scaled by sqrt(HS) cancels the kernel's 1/sqrt(HS)
  const int64_t T = doc_start[n_docs];  // rows from the buffers' start
  std::vector<float> q(qkv, qkv + T * 3 * C);
  const float s = std::sqrt(static_cast<float>(C / NH));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t i = 0; i < C; i++) q[static_cast<size_t>(t * 3 * C + i)] *= s;
  }
  cpu_kernels_named("generic")->attention_forward(out, lse, q.data(), doc_start, n_docs, rows, t0, C, NH, scratch);
}

TEST(FastVsReferenceChecks, CatchWrongKernels) {
  const Shape& s = shapes()[0];
  const auto docs = testing::random_docs(s.model.vocab_size, s.doc_lengths, 99);
  const ReferenceRun want = run_reference(s, docs);
  Kernels relu = *cpu_kernels_named("generic");
  relu.relu_backward = relu_backward_passes_negatives;
  const Errors a = compare_with_reference(s, docs, want, relu);
  EXPECT_GT(a.grad, kGradTol);
  EXPECT_LE(a.logits, kLogitTol);  // forward untouched
  Kernels att = *cpu_kernels_named("generic");
  att.attention_forward = attention_forward_unscaled;
  const Errors b = compare_with_reference(s, docs, want, att);
  EXPECT_GT(b.logits, kLogitTol);
  EXPECT_GT(b.train_loss, kTrainLossTol);
}

}  // namespace
}  // namespace microgpt
