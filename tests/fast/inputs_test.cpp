// What the model receives (model/inputs.h): each choice of token vectors, position
// vectors and their combination puts the documented vectors into wte and wpe; the
// gradient of every number training changes is the derivative of the loss (central
// finite differences); and training leaves every fixed number's bytes as they were,
// with one thread or two, with or without the running average.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/python_random.h"
#include "fast/fast_model.h"
#include "model/inputs.h"
#include "fast_test_util.h"

namespace microgpt {
namespace {

using testing::TestRng;

struct Inputs {
  std::string wte, wpe, combine;
};
std::string name_of(const Inputs& in) { return "wte " + in.wte + ", wpe " + in.wpe + ", " + in.combine; }

// Every token and position choice with `add`, and the four with `concat` that differ in
// how a half is filled.
const std::vector<Inputs> kInputs = {
    {"learned", "learned", "add"},    {"frozen", "learned", "add"},      {"onehot", "learned", "add"},
    {"scalar", "learned", "add"},     {"learned", "none", "add"},        {"learned", "sinusoidal", "add"},
    {"learned", "frozen", "add"},     {"learned", "learned", "concat"},  {"onehot", "sinusoidal", "concat"},
    {"scalar", "none", "concat"},     {"frozen", "frozen", "concat"},
};

ModelConfig config() {
  ModelConfig m;
  m.vocab_size = 6;
  m.n_layer = 1;
  m.n_embd = 12;  // concat: 6 channels each, room for a one-hot of 6 tokens
  m.n_head = 2;
  m.block_size = 8;
  return m;
}

TrainConfig train_config(const Inputs& in, double ema = 0.0) {
  TrainConfig t;
  t.init_std = 0.3;
  t.lr = 0.02;
  t.ema = ema;
  t.wte = in.wte;
  t.wpe = in.wpe;
  t.combine = in.combine;
  return t;
}

const std::vector<int64_t> kLengths = {4, 9, 2, 6};

float at(std::span<const float> p, const ParamTensor& t, int64_t r, int64_t c) {
  return p[static_cast<size_t>(t.offset + r * t.cols + c)];
}

TEST(Inputs, HoldTheDocumentedVectors) {
  const ModelConfig m = config();
  const ParamLayout layout(m);
  const ParamTensor &wte = layout.wte(), &wpe = layout.wpe();
  // the draws every choice starts from
  FastModel learned(m, train_config(kInputs[0]), 1, 1);
  PyRandom rng0(3);
  learned.init_params(rng0);
  for (const Inputs& in : kInputs) {
    SCOPED_TRACE(name_of(in));
    FastModel model(m, train_config(in), 1, 1);
    PyRandom rng(3);
    model.init_params(rng);
    const auto p = model.params(), drawn = learned.params();
    const bool concat = in.combine == "concat";
    const int64_t half = m.n_embd / 2;
    const int64_t t0 = 0, t1 = concat ? half : m.n_embd, p0 = concat ? half : 0, p1 = m.n_embd;
    for (int64_t r = 0; r < wte.rows; r++) {
      for (int64_t c = 0; c < wte.cols; c++) {
        float want = 0.0f;  // outside the token's channels
        if (c >= t0 && c < t1) {
          if (in.wte == "learned" || in.wte == "frozen") want = at(drawn, wte, r, c);
          if (in.wte == "onehot") want = c - t0 == r ? 1.0f : 0.0f;
          if (in.wte == "scalar") want = c == t0 ? static_cast<float>(r / 5.0) : 0.0f;
        }
        ASSERT_EQ(at(p, wte, r, c), want) << "wte[" << r << "][" << c << "]";
      }
    }
    for (int64_t r = 0; r < wpe.rows; r++) {
      for (int64_t c = 0; c < wpe.cols; c++) {
        double want = 0.0;
        if (c >= p0 && c < p1) {
          if (in.wpe == "learned" || in.wpe == "frozen") want = at(drawn, wpe, r, c);
          const int64_t k = c - p0, d = p1 - p0;
          const double angle = static_cast<double>(r) / std::pow(10000.0, static_cast<double>(2 * (k / 2)) / static_cast<double>(d));
          if (in.wpe == "sinusoidal") want = k % 2 == 0 ? std::sin(angle) : std::cos(angle);
        }
        ASSERT_EQ(at(p, wpe, r, c), static_cast<float>(want)) << "wpe[" << r << "][" << c << "]";
      }
    }
    // every other tensor: the same draws
    const auto rest = static_cast<size_t>(layout.lm_head().offset);
    EXPECT_TRUE(std::equal(p.begin() + static_cast<std::ptrdiff_t>(rest), p.end(),
                           drawn.begin() + static_cast<std::ptrdiff_t>(rest)));
    // the count of trained parameters leaves out exactly the fixed numbers
    int64_t fixed = 0;
    for (const FixedBlock& b : fixed_inputs(m, train_config(in))) {
      fixed += b.rows * (b.col_end - b.col_begin);
    }
    const int64_t token_trained = in.wte == "learned" ? wte.rows * (t1 - t0) : 0;
    const int64_t position_trained = in.wpe == "learned" ? wpe.rows * (p1 - p0) : 0;
    EXPECT_EQ(fixed, wte.numel() + wpe.numel() - token_trained - position_trained);
    EXPECT_EQ(trained_param_count(m, train_config(in)), layout.total() - fixed);
  }
}

// Central differences (L(w + h) - L(w - h)) / 2h against the mean of forward_backward's
// gradient at 16 points across [w - h, w + h] (so that a ReLU turning on or off inside
// the interval costs little, as in the dropout test), for the largest and four random
// trained numbers of wte and of wpe, and of one weight matrix (the gradient that reaches
// the rest of the model through the inputs). Weights on the grid of 2^-12, so that w + t
// is exact.
double worst_gradient_error(const Inputs& in, std::string& where) {
  const ModelConfig m = config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 17);
  const std::vector<DocRef> batch(docs.begin(), docs.end());
  const auto n_docs = static_cast<int64_t>(docs.size());
  FastModel model(m, train_config(in), 2, n_docs), probe(m, train_config(in), 2, n_docs);
  PyRandom rng(5);
  model.init_params(rng);
  for (float& w : model.params()) w = static_cast<float>(std::round(static_cast<double>(w) * 4096.0) / 4096.0);
  const std::vector<float> w0(model.params().begin(), model.params().end());
  auto loss_at = [&](size_t i, double w) {
    model.params()[i] = static_cast<float>(w);
    const double loss = model.forward_backward(batch).mean();
    model.params()[i] = w0[i];
    return loss;
  };
  auto gradient_at = [&](size_t i, double w) {
    std::copy(w0.begin(), w0.end(), probe.params().begin());
    probe.params()[i] = static_cast<float>(w);
    probe.forward_backward(batch);
    const std::vector<float> g = probe.gradient();
    probe.adam_step(0, 1);  // clears the gradient
    return g[i];
  };
  const std::vector<FixedBlock> fixed = fixed_inputs(m, train_config(in));
  auto trained = [&](int64_t i) {
    for (const FixedBlock& b : fixed) {
      const int64_t r = (i - b.offset) / b.cols, c = (i - b.offset) % b.cols;
      if (i >= b.offset && r < b.rows && c >= b.col_begin && c < b.col_end) return false;
    }
    return true;
  };
  std::copy(w0.begin(), w0.end(), probe.params().begin());
  probe.forward_backward(batch);
  const std::vector<float> g = probe.gradient();
  probe.adam_step(0, 1);
  const ParamLayout& layout = model.layout();
  double worst = 0.0;
  TestRng pick(11);
  const double h = 0x1p-8;
  for (const ParamTensor* t : {&layout.wte(), &layout.wpe(), layout.layer(0).attn_wq}) {
    std::vector<int64_t> candidates;
    for (int64_t i = t->offset; i < t->offset + t->numel(); i++) {
      if (trained(i)) candidates.push_back(i);
    }
    if (candidates.empty()) continue;  // a fixed tensor: nothing of it is trained
    int64_t largest_at = candidates[0];
    for (int64_t i : candidates) {
      if (std::abs(g[static_cast<size_t>(i)]) > std::abs(g[static_cast<size_t>(largest_at)])) largest_at = i;
    }
    const double largest = std::abs(g[static_cast<size_t>(largest_at)]);
    if (!(largest > 1e-4)) {
      where = "no gradient in " + t->name;
      return 1.0;
    }
    std::vector<int64_t> which = {largest_at};
    for (int k = 0; k < 4; k++) which.push_back(candidates[static_cast<size_t>(pick.below(static_cast<int64_t>(candidates.size())))]);
    for (int64_t i : which) {
      const auto at_i = static_cast<size_t>(i);
      const double w = w0[at_i];
      const double fd = (loss_at(at_i, w + h) - loss_at(at_i, w - h)) / (2.0 * h);
      double mean = 0.0;
      for (int p = 0; p < 16; p++) mean += gradient_at(at_i, w - h + (2 * p + 1) * h / 16) / 16;
      const double err = std::abs(fd - mean) / largest;
      if (!(err <= worst)) {
        worst = err;
        where = t->name + "[" + std::to_string(i - t->offset) + "]: finite differences " + std::to_string(fd) +
                ", forward_backward " + std::to_string(mean);
      }
    }
  }
  return worst;
}

TEST(Inputs, GradientsMatchFiniteDifferences) {
  for (const Inputs& in : kInputs) {
    std::string where;
    const double worst = worst_gradient_error(in, where);
    EXPECT_LE(worst, 0.03) << name_of(in) << ": " << where;
    if (std::getenv("MICROGPT_TEST_VERBOSE")) std::printf("%s: worst %.3g at %s\n", name_of(in).c_str(), worst, where.c_str());
  }
}

// Twenty Adam steps on every kernel set: every fixed number keeps its bytes (in the
// weights and, with the running average, in the model: the plain kernels' average of a
// constant is not always the constant), and every trained tensor moves.
TEST(Inputs, TrainingLeavesFixedNumbersAlone) {
  const ModelConfig m = config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 23);
  const std::vector<DocRef> batch(docs.begin(), docs.end());
  for (const std::string& isa : testing::all_isas()) {
    const Kernels* kernels = cpu_kernels_named(isa);
    if (!kernels) continue;  // this CPU lacks it
    for (const Inputs& in : kInputs) {
      for (const double ema : {0.0, 0.9}) {
        for (const int64_t threads : {int64_t{1}, int64_t{2}}) {
          SCOPED_TRACE(isa + ": " + name_of(in) + ", ema " + std::to_string(ema) + ", threads " + std::to_string(threads));
          FastModel model(m, train_config(in, ema), threads, static_cast<int64_t>(docs.size()), *kernels);
          PyRandom rng(9);
          model.init_params(rng);
          const std::vector<float> before(model.params().begin(), model.params().end());
          for (int64_t s = 0; s < 20; s++) ASSERT_TRUE(std::isfinite(model.train_step(s, 20, batch)));
          const std::vector<FixedBlock> fixed = fixed_inputs(m, train_config(in));
          std::vector<char> is_fixed(before.size(), 0);
          for (const FixedBlock& b : fixed) {
            for (int64_t r = 0; r < b.rows; r++) {
              for (int64_t c = b.col_begin; c < b.col_end; c++) is_fixed[static_cast<size_t>(b.offset + r * b.cols + c)] = 1;
            }
          }
          int64_t all_trained = 0;
          for (const ParamTensor& t : model.layout().tensors()) {
            int64_t moved = 0, trained = 0;
            for (auto i = static_cast<size_t>(t.offset); i < static_cast<size_t>(t.offset + t.numel()); i++) {
              if (is_fixed[i]) {
                ASSERT_EQ(std::memcmp(&model.params()[i], &before[i], sizeof(float)), 0) << "weight " << i;
                ASSERT_EQ(std::memcmp(&model.model_params()[i], &before[i], sizeof(float)), 0) << "model weight " << i;
              } else {
                trained++;
                moved += model.params()[i] != before[i];
              }
            }
            all_trained += trained;
            // Every trained tensor learns (some of a weight matrix may get no gradient when
            // the inputs leave channels at zero); every trained input vector does.
            if (trained > 0) {
              EXPECT_GT(moved, 0) << t.name;
            }
            if (&t == &model.layout().wte() || &t == &model.layout().wpe()) {
              EXPECT_EQ(moved, trained) << t.name;
            }
          }
          EXPECT_EQ(all_trained, trained_param_count(m, train_config(in)));
        }
      }
    }
  }
}

TEST(Inputs, RefusesWhatCannotBe) {
  ModelConfig m = config();
  m.vocab_size = 13;  // wider than 12 channels
  EXPECT_THROW(FastModel(m, train_config({"onehot", "learned", "add"}), 1, 1), Error);
  m.vocab_size = 7;  // fits 12 channels, not the 6 of concat
  EXPECT_NO_THROW(FastModel(m, train_config({"onehot", "learned", "add"}), 1, 1));
  EXPECT_THROW(FastModel(m, train_config({"onehot", "learned", "concat"}), 1, 1), Error);
  EXPECT_THROW(FastModel(m, train_config({"learned", "learned", "sum"}), 1, 1), Error);
}

}  // namespace
}  // namespace microgpt
