// The model driver on a device backend (Kernels::on_device): it must then reach every
// buffer through the table, keep host copies of the weights and Adam's moments that
// push() sends and pull() refreshes, upload each batch's ids, and read losses, logits and
// attention back. Two backends:
//   - "host-as-device", everywhere: the plain CPU kernels behind a table that says its
//     memory is a device's. The kernels are the same, so every number must equal the
//     plain table's to the bit; a forgotten push or pull leaves the device's weights (or
//     the host copies) stale and shows at once.
//   - "gpu", where a GPU is: the CUDA kernels, against the fast engine's CPU kernels
//     within float32 rounding (issue: 20 steps against the fast engine).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/python_random.h"
#include "fast/fast_model.h"
#include "fast/gpu_host_view.h"
#include "fast/kernels.h"
#include "fast_test_util.h"
#include "train/sampler.h"

namespace microgpt {
namespace {

using testing::rel_diff;
using testing::rel_l2;

const Kernels& host_as_device() {
  static const Kernels k = [] {
    Kernels t = *cpu_kernels_named("generic");
    t.name = "host-as-device";
    t.on_device = true;
    return t;
  }();
  return k;
}

struct Case {
  std::string name;
  ModelConfig model;
  TrainConfig train;
  // How far other kernels' weights may be after 20 steps (relative L2 over the buffer).
  double weight_tol = 1e-3;
};

std::vector<Case> setups() {
  ModelConfig m;
  m.vocab_size = 13;
  m.n_layer = 2;
  m.n_embd = 16;
  m.n_head = 4;
  m.block_size = 10;
  TrainConfig plain;
  plain.lr = 0.01;
  plain.init_std = 0.3;
  TrainConfig aids = plain;  // dropout and the average
  aids.dropout = 0.1;
  aids.ema = 0.9;
  TrainConfig fixed = plain;  // fixed inputs: blocks of the gradient zeroed, copied into the average
  fixed.wte = "onehot";
  fixed.wpe = "sinusoidal";
  fixed.combine = "concat";
  fixed.ema = 0.9;
  ModelConfig wide = m;
  wide.n_embd = 32;
  // One-hot and sinusoidal inputs leave parts of layer 0's attention gradient at the
  // level of rounding, which Adam turns into whole steps: the CPU's own AVX-512 and plain
  // kernels end 0.7% apart in layer 0's attn_wk after these 20 steps (measured), the
  // losses on the way agreeing to 1e-7.
  return {{"plain", m, plain}, {"dropout_ema", m, aids}, {"fixed_inputs", wide, fixed, 2e-2}};
}

class DevicePath : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "gpu") {
      std::string why;
      device_ = testing::gpu_backend(&why);
      if (device_ == nullptr) GTEST_SKIP() << "skipped: no GPU here (" << why << ")";
    } else {
      device_ = &host_as_device();
    }
  }
  bool exact() const { return GetParam() != "gpu"; }
  const Kernels& device() const { return *device_; }

  // a relative tolerance for float32 results of the GPU, nothing for the same kernels
  void expect_close(std::span<const float> got, std::span<const float> want, double tol, const std::string& what) {
    if (exact()) {
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << what;
    } else {
      EXPECT_LE(rel_l2(got, want), tol) << what;
    }
  }
  void expect_close(double got, double want, double tol, const std::string& what) {
    if (exact()) {
      EXPECT_EQ(got, want) << what;
    } else {
      EXPECT_LE(rel_diff(got, want), tol) << what << ": " << got << " against " << want;
    }
  }

 private:
  const Kernels* device_ = nullptr;
};

std::vector<std::vector<Token>> batch_of(const ModelConfig& m, int64_t step) {
  return testing::random_docs(m.vocab_size, {3, 9, 1, 6, 12, 4}, 1000 + static_cast<uint64_t>(step));
}

// Twenty training steps, then everything a run reads from a model.
TEST_P(DevicePath, TrainsEvaluatesAndSamplesAsTheCpu) {
  for (const Case& s : setups()) {
    SCOPED_TRACE(s.name);
    const int64_t max_docs = 6;
    FastModel cpu(s.model, s.train, 1, max_docs, *cpu_kernels_named("generic"));
    FastModel dev(s.model, s.train, 1, max_docs, device());
    PyRandom r1(5), r2(5);
    cpu.init_params(r1);
    dev.init_params(r2);
    dev.pull();
    expect_close(dev.params(), cpu.params(), 0.0, "initial weights");

    for (int64_t step = 0; step < 20; step++) {
      const auto docs = batch_of(s.model, step);
      const std::vector<DocRef> refs(docs.begin(), docs.end());
      const double a = cpu.train_step(step, 20, refs), b = dev.train_step(step, 20, refs);
      expect_close(b, a, 1e-4, "loss at step " + std::to_string(step));
    }
    dev.pull();
    expect_close(dev.params(), cpu.params(), s.weight_tol, "weights after 20 steps");
    expect_close(dev.model_params(), cpu.model_params(), s.weight_tol, "the model's weights (the average, with --ema)");
    expect_close(dev.adam_m(), cpu.adam_m(), s.weight_tol, "Adam's m");
    expect_close(dev.adam_v(), cpu.adam_v(), s.weight_tol, "Adam's v");

    // From here on both run the same weights: the CPU's, pushed to the device.
    std::copy(cpu.params().begin(), cpu.params().end(), dev.params().begin());
    std::copy(cpu.model_params().begin(), cpu.model_params().end(), dev.model_params().begin());
    dev.push();

    const auto val =
        testing::random_docs(s.model.vocab_size, {2, 8, 5, 11, 3, 7, 1, 9}, 77);  // more than max_docs rows
    const std::vector<DocRef> val_refs(val.begin(), val.end());
    const LossSum la = cpu.evaluate(val_refs), lb = dev.evaluate(val_refs);
    EXPECT_EQ(la.tokens, lb.tokens);
    expect_close(lb.sum, la.sum, 1e-5, "validation loss");
    for (size_t d = 0; d < val.size(); d++) {
      expect_close(dev.doc_losses()[d], cpu.doc_losses()[d], 1e-5, "document " + std::to_string(d) + "'s loss");
    }

    const auto la_rows = cpu.logits(val_refs[3]), lb_rows = dev.logits(val_refs[3]);
    ASSERT_EQ(la_rows.size(), lb_rows.size());
    for (size_t r = 0; r < la_rows.size(); r++)
      expect_close(lb_rows[r], la_rows[r], 1e-5, "logits " + std::to_string(r));

    const std::vector<Token> window(val[3].begin(), val[3].begin() + 6);
    const std::vector<double> wa = cpu.attention_weights(window), wb = dev.attention_weights(window);
    ASSERT_EQ(wa.size(), wb.size());
    if (exact()) {
      EXPECT_EQ(wa, wb) << "attention weights";
    } else {
      EXPECT_LE(testing::rel_inf(wb, wa), 1e-5) << "attention weights";
    }

    // Incremental decoding (the KV cache on the device) gives the same distributions.
    cpu.start_sequence();
    dev.start_sequence();
    for (Token t : window) {
      const std::vector<double> pa = cpu.next(t, 0.7), pb = dev.next(t, 0.7);
      if (exact()) {
        EXPECT_EQ(pa, pb) << "next after token " << t;
      } else {
        EXPECT_LE(testing::rel_inf(pb, pa), 1e-5) << "next after token " << t;
      }
    }
    // And the gradient of a batch, read back.
    const auto docs = batch_of(s.model, 99);
    const std::vector<DocRef> refs(docs.begin(), docs.end());
    cpu.forward_backward(refs);
    dev.forward_backward(refs);
    const std::vector<float> ga = cpu.gradient(), gb = dev.gradient();
    expect_close(gb, ga, 1e-4, "gradient");
  }
}

// Weights changed on the host reach the device only through push(); pull() brings the
// device's back.
TEST_P(DevicePath, HostCopiesMoveOnlyWhenAsked) {
  const Case s = setups()[0];
  FastModel dev(s.model, s.train, 1, 4, device());
  PyRandom rng(3);
  dev.init_params(rng);
  const auto docs = testing::random_docs(s.model.vocab_size, {5, 7}, 4);
  const std::vector<DocRef> refs(docs.begin(), docs.end());
  const double before = dev.evaluate(refs).sum;
  for (float& w : dev.params()) w *= 2.0f;
  EXPECT_EQ(dev.evaluate(refs).sum, before) << "the device's weights changed without push()";
  dev.push();
  const double doubled = dev.evaluate(refs).sum;
  EXPECT_NE(doubled, before);
  const std::vector<float> host(dev.params().begin(), dev.params().end());
  dev.train_step(0, 10, refs);
  EXPECT_TRUE(std::equal(host.begin(), host.end(), dev.params().begin())) << "the host copies moved without pull()";
  dev.pull();
  EXPECT_FALSE(std::equal(host.begin(), host.end(), dev.params().begin()))
      << "pull() did not bring the trained weights";
}

TEST_P(DevicePath, RunsOnOneThreadAndKeepsItsGradient) {
  const Case s = setups()[0];
  FastModel dev(s.model, s.train, 4, 4, device());
  EXPECT_EQ(dev.threads(), 1);
  EXPECT_THROW(dev.combined_gradient(), Error);
}

INSTANTIATE_TEST_SUITE_P(Backends, DevicePath, ::testing::Values(std::string("host_as_device"), std::string("gpu")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// --precision tf32 in the driver: documents of 32 rows or more, so that attention takes
// the tensor cores (with the products, on a GPU); twenty steps and a validation against
// the fast engine in float32, each loss within four of TF32's unit roundoffs (2^-11; the
// emulation, with TF32 in attention only, measures up to 1.0e-4). The weights start
// small enough that training is calm: from 0.3, the loss climbs to 13 and any two sets
// of kernels part within a few steps.
class DevicePathTf32 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string why;
    device_ = testing::gpu_backend_tf32(&why);
    if (device_ == nullptr) GTEST_SKIP() << "skipped: no GPU kernels for --precision tf32 here (" << why << ")";
  }
  const Kernels& device() const { return *device_; }

 private:
  const Kernels* device_ = nullptr;
};

TEST_P(DevicePathTf32, TrainsAsTheCpuWithinTf32) {
  const double tol = 4 * 0x1p-11;
  ModelConfig m;
  m.vocab_size = 13;
  m.n_layer = 2;
  m.n_embd = 32;
  m.n_head = 2;
  m.block_size = 48;
  TrainConfig t;
  t.lr = 0.01;
  t.init_std = 0.08;
  FastModel cpu(m, t, 1, 4, *cpu_kernels_named("generic"));
  FastModel dev(m, t, 1, 4, device());
  PyRandom r1(5), r2(5);
  cpu.init_params(r1);
  dev.init_params(r2);
  for (int64_t step = 0; step < 20; step++) {
    const auto docs = testing::random_docs(m.vocab_size, {40, 35, 46, 33}, 2000 + static_cast<uint64_t>(step));
    const std::vector<DocRef> refs(docs.begin(), docs.end());
    const double a = cpu.train_step(step, 20, refs), b = dev.train_step(step, 20, refs);
    EXPECT_LE(testing::rel_diff(b, a), tol) << "loss at step " << step << ": " << b << " against " << a;
  }
  const auto val = testing::random_docs(m.vocab_size, {44, 31, 38}, 78);
  const std::vector<DocRef> val_refs(val.begin(), val.end());
  const double la = cpu.evaluate(val_refs).sum, lb = dev.evaluate(val_refs).sum;
  EXPECT_LE(testing::rel_diff(lb, la), tol) << "validation loss " << lb << " against " << la;
}

INSTANTIATE_TEST_SUITE_P(Gpu, DevicePathTf32, ::testing::Values(std::string("tf32")),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace microgpt
