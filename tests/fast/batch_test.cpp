// The fast engine's batches and threads: a batch's loss and gradient are the
// token-weighted combination of its documents', threads change nothing but rounding
// (and a given thread count repeats itself exactly), the gradient accumulates until
// Adam consumes it, evaluate() agrees with forward_backward(), and sample() draws what
// the full forward pass's logits say, within range, never BOS, at most block_size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/python_random.h"
#include "fast/fast_model.h"
#include "train/sampler.h"
#include "fast_test_util.h"

namespace microgpt {
namespace {

using testing::rel_diff;
using testing::rel_l2;

ModelConfig small_config(int64_t block_size = 8) {
  ModelConfig m;
  m.vocab_size = 11;
  m.n_layer = 2;
  m.n_embd = 16;
  m.n_head = 4;
  m.block_size = block_size;
  return m;
}

TrainConfig train_config() {
  TrainConfig t;
  t.init_std = 0.2;  // far enough from zero that attention and ReLU are not near-linear
  t.lr = 0.01;
  return t;
}

// A model with the parameters drawn from `seed` (the same for every thread count).
std::unique_ptr<FastModel> make_model(const ModelConfig& m, int64_t threads, int64_t max_docs, uint64_t seed = 7) {
  auto model = std::make_unique<FastModel>(m, train_config(), threads, max_docs);
  PyRandom rng(seed);
  model->init_params(rng);
  return model;
}

std::vector<DocRef> refs(const std::vector<std::vector<Token>>& docs) {
  return std::vector<DocRef>(docs.begin(), docs.end());
}

int64_t predictions(const std::vector<Token>& doc, int64_t block_size) {
  return std::min(block_size, static_cast<int64_t>(doc.size()) - 1);
}

void expect_tensors_close(const FastModel& model, const std::vector<float>& got, const std::vector<double>& want,
                          double tol) {
  for (const ParamTensor& t : model.layout().tensors()) {
    const auto b = static_cast<size_t>(t.offset), n = static_cast<size_t>(t.numel());
    EXPECT_LE(rel_l2(std::span<const float>(got).subspan(b, n), std::span<const double>(want).subspan(b, n)), tol)
        << t.name;
  }
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
std::vector<float> copy(std::span<const float> v) { return std::vector<float>(v.begin(), v.end()); }

// A document longer than block_size (12 ids, 8 predictions) and a one-letter one.
const std::vector<int64_t> kLengths = {3, 12, 1, 7, 5};

TEST(Batch, LossAndGradientAreTokenWeightedMeansOfTheDocuments) {
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 1);
  int64_t N = 0;
  for (const auto& d : docs) N += predictions(d, m.block_size);

  double sum = 0.0;
  std::vector<double> combined(static_cast<size_t>(make_model(m, 1, 1)->num_params()), 0.0);
  for (const auto& d : docs) {
    auto one = make_model(m, 1, 1);
    const DocRef doc(d);
    const LossSum l = one->forward_backward(std::span(&doc, 1));
    EXPECT_EQ(l.tokens, predictions(d, m.block_size));
    sum += l.sum;
    // each document's gradient is that of its own mean loss; the batch weighs it by its tokens
    const std::vector<float> g = one->gradient();
    for (size_t i = 0; i < g.size(); i++) combined[i] += static_cast<double>(l.tokens) / static_cast<double>(N) * g[i];
  }

  auto batch = make_model(m, 1, static_cast<int64_t>(docs.size()));
  const LossSum l = batch->forward_backward(refs(docs));
  EXPECT_EQ(l.tokens, N);
  EXPECT_LE(rel_diff(l.sum, sum), 1e-6);
  EXPECT_LE(rel_diff(l.mean(), sum / static_cast<double>(N)), 1e-6);
  const std::vector<float> g = batch->gradient();
  EXPECT_LE(rel_l2(std::span<const float>(g), std::span<const double>(combined)), 1e-5);
  expect_tensors_close(*batch, g, combined, 1e-5);
  // and not the plain mean over documents, which differs when lengths differ
  double plain_mean = 0.0;
  for (const auto& d : docs) {
    auto one = make_model(m, 1, 1);
    const DocRef doc(d);
    plain_mean += one->forward_backward(std::span(&doc, 1)).mean() / static_cast<double>(docs.size());
  }
  EXPECT_GT(rel_diff(l.mean(), plain_mean), 1e-3);
}

TEST(Batch, GradientAccumulatesUntilAdamConsumesIt) {
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 2);
  auto model = make_model(m, 1, static_cast<int64_t>(docs.size()));
  const auto batch = refs(docs);
  model->forward_backward(batch);
  const std::vector<float> once = model->gradient();
  EXPECT_EQ(model->gradient(), once);  // reading does not clear
  model->forward_backward(batch);
  const std::vector<float> twice = model->gradient();
  std::vector<double> doubled;
  for (float x : once) doubled.push_back(2.0 * x);
  EXPECT_LE(rel_l2(std::span<const float>(twice), std::span<const double>(doubled)), 1e-6);

  const std::vector<float> before = copy(model->params());
  model->adam_step(0, 10);
  for (float x : model->gradient()) ASSERT_EQ(x, 0.0f);
  EXPECT_NE(copy(model->params()), before);
}

// train_step is forward_backward + adam_step, returning the mean loss.
TEST(Batch, TrainStepIsForwardBackwardThenAdam) {
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 3);
  auto a = make_model(m, 1, 5), b = make_model(m, 1, 5);
  for (int64_t step = 0; step < 3; step++) {
    const double la = a->train_step(step, 3, refs(docs));
    const LossSum lb = b->forward_backward(refs(docs));
    b->adam_step(step, 3);
    EXPECT_EQ(la, lb.mean());
    EXPECT_EQ(copy(a->params()), copy(b->params()));
  }
}

TEST(Batch, ThreadsAgree) {
  const ModelConfig m = small_config();
  // 6 documents, several filling the whole block: the threads get unequal shares
  const auto pool = testing::random_docs(m.vocab_size, {12, 3, 9, 1, 15, 6, 2, 8, 11, 4, 7, 5}, 4);
  auto one = make_model(m, 1, 6), two = make_model(m, 2, 6), two_again = make_model(m, 2, 6);
  auto four = make_model(m, 4, 6);
  EXPECT_EQ(two->threads(), 2);
  const std::vector<DocRef> first(pool.begin(), pool.begin() + 6);
  const LossSum l1 = one->forward_backward(first), l2 = two->forward_backward(first);
  const LossSum l4 = four->forward_backward(first);
  EXPECT_EQ(l1.tokens, l2.tokens);
  // losses are summed document by document, whoever computed them
  EXPECT_EQ(l2.sum, l1.sum);
  EXPECT_EQ(l4.sum, l1.sum);
  const std::vector<double> g1 = to_double(one->gradient());
  expect_tensors_close(*two, two->gradient(), g1, 1e-5);
  expect_tensors_close(*four, four->gradient(), g1, 1e-5);
  one->adam_step(0, 6);
  two->adam_step(0, 6);
  four->adam_step(0, 6);

  // five more steps on other batches, of 6, 2 and 1 documents (fewer than the threads)
  const size_t starts[] = {6, 0, 3, 10, 11};
  const size_t sizes[] = {6, 2, 6, 2, 1};
  for (int64_t s = 0; s < 5; s++) {
    const std::vector<DocRef> batch(pool.begin() + starts[s], pool.begin() + starts[s] + sizes[s]);
    const double a = one->train_step(s + 1, 6, batch);
    EXPECT_LE(rel_diff(two->train_step(s + 1, 6, batch), a), 1e-5) << "step " << s + 1;
    EXPECT_LE(rel_diff(four->train_step(s + 1, 6, batch), a), 1e-5) << "step " << s + 1;
  }
  const std::vector<double> p1 = to_double(copy(one->params()));
  expect_tensors_close(*two, copy(two->params()), p1, 1e-4);
  expect_tensors_close(*four, copy(four->params()), p1, 1e-4);

  // a given thread count repeats itself to the bit
  const std::vector<DocRef> all_first(pool.begin(), pool.begin() + 6);
  auto again = make_model(m, 2, 6);
  const LossSum r1 = again->forward_backward(all_first);
  const LossSum r2 = two_again->forward_backward(all_first);
  EXPECT_EQ(r1.sum, r2.sum);
  EXPECT_EQ(again->gradient(), two_again->gradient());
}

TEST(Batch, EvaluateEqualsForwardBackwardLoss) {
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, {12, 3, 9, 1, 15, 6, 2}, 5);
  auto trainer = make_model(m, 1, static_cast<int64_t>(docs.size()));
  const LossSum want = trainer->forward_backward(refs(docs));
  for (int64_t threads : {1, 2}) {
    for (int64_t max_docs : {int64_t{1}, int64_t{2}, static_cast<int64_t>(docs.size())}) {
      SCOPED_TRACE(std::to_string(threads) + " threads, batches of " + std::to_string(max_docs));
      // more documents than one batch holds: evaluate goes through them in pieces
      auto model = make_model(m, threads, max_docs);
      const std::vector<float> params = copy(model->params());
      const LossSum got = model->evaluate(refs(docs));
      EXPECT_EQ(got.tokens, want.tokens);
      // document by document: the same sum whatever the threads and pieces
      EXPECT_EQ(got.sum, want.sum);
      EXPECT_TRUE(std::ranges::equal(model->doc_losses(), trainer->doc_losses()));
      for (float x : model->gradient()) ASSERT_EQ(x, 0.0f);  // no gradient, no change
      EXPECT_EQ(copy(model->params()), params);
    }
  }
}

// What a run over processes relies on (train/data_parallel.h): one model of one thread
// per share of a batch (data/dataset.h batch_part, each told the row its share starts
// at) computes exactly what each thread of one model computes, dropout included, so that
// their gradients summed in order are the threaded model's gradient to the bit.
TEST(Batch, SharesOfABatchComputeWhatThreadsCompute) {
  const ModelConfig m = small_config();
  TrainConfig t = train_config();
  t.dropout = 0.2;
  const auto docs = testing::random_docs(m.vocab_size, {12, 3, 9, 1, 15, 6, 2}, 6);
  const std::vector<DocRef> batch = refs(docs);
  std::vector<int64_t> starts{0};
  for (const DocRef& d : batch) starts.push_back(starts.back() + predicted_rows(d, m.block_size));
  for (int64_t n : {2, 3}) {
    SCOPED_TRACE(std::to_string(n) + " shares");
    FastModel threaded(m, t, n, 7);
    PyRandom rng(7);
    threaded.init_params(rng);
    threaded.set_dropout_step(3);
    const LossSum whole = threaded.forward_backward(batch);
    const std::vector<float> want = copy(threaded.combined_gradient());
    std::vector<float> sum(want.size(), 0.0f);
    std::vector<double> losses;
    for (int64_t part = 0; part < n; part++) {
      FastModel one(m, t, 1, 7);
      PyRandom r(7);
      one.init_params(r);
      one.set_dropout_step(3);
      const DocRange share = batch_part(starts, part, n);
      one.forward_backward(std::span<const DocRef>(batch).subspan(static_cast<size_t>(share.begin),
                                                                   static_cast<size_t>(share.end - share.begin)),
                           whole.tokens, starts[static_cast<size_t>(share.begin)]);
      const std::span<const float> g = one.combined_gradient();
      for (size_t i = 0; i < sum.size(); i++) sum[i] = part == 0 ? g[i] : sum[i] + g[i];
      losses.insert(losses.end(), one.doc_losses().begin(), one.doc_losses().end());
    }
    EXPECT_EQ(sum, want);
    EXPECT_TRUE(std::ranges::equal(losses, threaded.doc_losses()));
  }
}

// Adam's update is element by element: models that each keep the moments of a part of
// the parameters (--zero 1) update their parts exactly as one model updates them all.
TEST(Batch, AdamOnPartsOfTheParametersEqualsAdamOnAll) {
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, {12, 3, 9, 1}, 8);
  auto whole = make_model(m, 1, 4);
  const int64_t P = whole->num_params();
  std::vector<std::unique_ptr<FastModel>> parts;
  for (int64_t k = 0; k < 3; k++) {
    parts.push_back(std::make_unique<FastModel>(m, train_config(), 1, 4, cpu_kernels(), param_part(P, k, 3)));
    PyRandom rng(7);
    parts.back()->init_params(rng);
    EXPECT_EQ(parts.back()->adam_m().size(), static_cast<size_t>(param_part(P, k, 3).size()));
  }
  for (int64_t step = 0; step < 3; step++) {
    whole->train_step(step, 3, refs(docs));
    for (auto& part : parts) part->train_step(step, 3, refs(docs));
    // Each part's weights gathered into every model, as the processes do.
    std::vector<float> gathered(static_cast<size_t>(P));
    for (int64_t k = 0; k < 3; k++) {
      const ParamRange r = param_part(P, k, 3);
      std::copy_n(parts[static_cast<size_t>(k)]->params().begin() + r.begin, r.size(), gathered.begin() + r.begin);
    }
    for (auto& part : parts) std::copy(gathered.begin(), gathered.end(), part->params().begin());
  }
  for (int64_t k = 0; k < 3; k++) {
    const ParamRange r = param_part(P, k, 3);
    auto slice = [&](std::span<const float> v) { return copy(v.subspan(static_cast<size_t>(r.begin), static_cast<size_t>(r.size()))); };
    EXPECT_EQ(slice(parts[static_cast<size_t>(k)]->params()), slice(whole->params())) << "part " << k;
    EXPECT_EQ(copy(parts[static_cast<size_t>(k)]->adam_m()), slice(whole->adam_m())) << "part " << k;
    EXPECT_EQ(copy(parts[static_cast<size_t>(k)]->adam_v()), slice(whole->adam_v())) << "part " << k;
  }
}

// Whatever the engine does to the floating-point mode (flushing denormals, say) it
// undoes before returning: the reference engine, in the same process, needs IEEE
// arithmetic to stay bit-exact.
TEST(Batch, LeavesTheCallersFloatingPointModeAlone) {
  auto subnormals_work = [] {
    volatile float a = 1e-30f, b = 1e-9f;
    const float c = a * b;  // 1e-39, below the smallest normal float
    volatile float d = c;
    return d != 0.0f && d * 2.0f > d;
  };
  ASSERT_TRUE(subnormals_work());
  const ModelConfig m = small_config();
  const auto docs = testing::random_docs(m.vocab_size, kLengths, 6);
  for (int64_t threads : {1, 2}) {
    auto model = make_model(m, threads, 5);
    model->train_step(0, 2, refs(docs));
    EXPECT_TRUE(subnormals_work());
    model->evaluate(refs(docs));
    model->logits(DocRef(docs[0]));
    PyRandom rng(1);
    sample_sequence(*model, rng, at_temperature(1.0), static_cast<Token>(m.vocab_size - 1), m.block_size);
    EXPECT_TRUE(subnormals_work()) << threads << " threads";
  }
}

// The KV-cache path of sampling (next()) against the full forward pass: replaying the draws
// with logits() of the prefix and a copy of the generator gives the same tokens.
TEST(Sample, DrawsFromTheFullForwardLogits) {
  const ModelConfig m = small_config(6);
  auto model = make_model(m, 1, 1, 11);
  const Token bos = static_cast<Token>(m.vocab_size - 1);
  PyRandom rng(5);
  int64_t full_length = 0, total = 0;
  for (double temperature : {0.5, 1.0, 2.0}) {
    for (int i = 0; i < 30; i++) {
      PyRandom replay = rng;
      const std::vector<Token> got = sample_sequence(*model, rng, at_temperature(temperature), bos, m.block_size);
      ASSERT_LE(static_cast<int64_t>(got.size()), m.block_size);
      std::vector<Token> prefix{bos}, want;
      while (static_cast<int64_t>(prefix.size()) <= m.block_size) {
        std::vector<Token> doc = prefix;
        doc.push_back(0);  // any target: logits() predicts every position but the last
        const auto logits = model->logits(DocRef(doc));
        const std::vector<float>& l = logits.back();
        const double mx = *std::max_element(l.begin(), l.end());
        std::vector<double> w;
        double sum = 0.0;
        for (float x : l) sum += w.emplace_back(std::exp((static_cast<double>(x) - mx) / temperature));
        for (double& x : w) x /= sum;
        const auto token = static_cast<Token>(replay.choices(w));
        if (token == bos) break;
        want.push_back(token);
        prefix.push_back(token);
      }
      EXPECT_EQ(got, want) << "sample " << i << " at temperature " << temperature;
      EXPECT_EQ(rng.state().mt, replay.state().mt);
      EXPECT_EQ(rng.state().index, replay.state().index);
      for (Token t : got) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, bos);  // in range and never BOS
      }
      full_length += static_cast<int64_t>(got.size()) == m.block_size;
      total++;
    }
  }
  // both ways of stopping happened: at block_size and at BOS
  EXPECT_GT(full_length, 0);
  EXPECT_LT(full_length, total);
}

}  // namespace
}  // namespace microgpt
