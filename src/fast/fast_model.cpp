#include "fast/fast_model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "model/activations.h"
#include "model/limits.h"

namespace microgpt {

void FloatBuffer::Free::operator()(float* p) const { std::free(p); }

FloatBuffer::FloatBuffer(int64_t n, bool zeroed) : size_(n) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  if (zeroed) std::memset(p, 0, bytes);
  data_.reset(static_cast<float*>(p));
}

KernelMemory::KernelMemory(const Kernels& k, int64_t bytes) : data_(k.allocate(bytes), Release{&k}) {
  if (!data_) {
    throw Error(k.on_device ? "out of device memory (" + std::to_string(bytes) + " bytes more wanted by " + k.name + ")"
                            : std::string("out of memory"));
  }
}

void KernelMemory::Release::operator()(void* p) const {
  if (p != nullptr) k->release(p);
}

FastModel::Weights::Weights(const Kernels& k, int64_t count)
    : memory(k, std::max<int64_t>(count, 1) * static_cast<int64_t>(sizeof(float))), n(count) {
  k.zero(memory.floats(), n);
  if (k.on_device) copy = FloatBuffer(n);
}

struct FastModel::Packed {
  std::vector<int32_t> inputs, targets, positions;  // (N)
  std::vector<int64_t> doc_start;                   // (n_docs + 1) rows
  int64_t docs() const { return static_cast<int64_t>(doc_start.size()) - 1; }
  int64_t rows() const { return doc_start.back(); }
};

namespace {

// fn(offset, count) for each run of consecutive fixed weights (model/inputs.h): a whole
// block at once when it spans its tensor's every column.
template <class Fn>
void for_fixed(const std::vector<FixedBlock>& blocks, Fn&& fn) {
  for (const FixedBlock& b : blocks) {
    if (b.col_begin == 0 && b.col_end == b.cols) {
      fn(b.offset, b.rows * b.cols);
      continue;
    }
    for (int64_t r = 0; r < b.rows; r++) fn(b.offset + r * b.cols + b.col_begin, b.col_end - b.col_begin);
  }
}

}  // namespace

FastModel::FastModel(const ModelConfig& model, const TrainConfig& train, int64_t threads, int64_t max_batch_docs,
                     const Kernels& kernels, ParamRange optimizer_part)
    : config_(model),
      train_(train),
      layout_(model),
      k_(kernels),
      threads_(kernels.on_device ? 1 : std::max<int64_t>(1, threads)),
      pool_(std::make_unique<TaskPool>(threads_)),
      max_docs_(std::max<int64_t>(1, max_batch_docs)),
      max_rows_(max_docs_ * model.block_size),
      params_(kernels, layout_.total()),
      optimizer_part_(optimizer_part.size() > 0 ? optimizer_part : ParamRange{0, layout_.total()}),
      batch_(std::make_unique<Packed>()) {
  validate_configuration("fast", config_, train_);
  fixed_ = fixed_inputs(config_, train_);
  if (optimizer_part_.begin < 0 || optimizer_part_.end > layout_.total()) throw Error("fast engine: optimizer part out of range");
  m_ = Weights(k_, optimizer_part_.size());
  v_ = Weights(k_, optimizer_part_.size());
  if (train_.ema > 0.0) average_ = Weights(k_, layout_.total());
  for (int64_t t = 0; t < threads_; t++) {
    grads_.emplace_back(k_, layout_.total() * static_cast<int64_t>(sizeof(float)));
    k_.zero(grads_.back().floats(), layout_.total());
  }
  staged_ = KernelMemory(k_, 3 * max_rows_ * static_cast<int64_t>(sizeof(int32_t)));
  staged_docs_ = KernelMemory(k_, (max_rows_ + 1) * static_cast<int64_t>(sizeof(int64_t)));
  doc_loss_ = KernelMemory(k_, max_rows_ * static_cast<int64_t>(sizeof(double)));  // a document has a row or more

  // Activations in one buffer and their gradients in another, carved in the order
  // model/activations.h lists them; each must come out exactly full.
  const ActivationSizes s(config_, train_.dropout > 0.0);
  const int64_t N = max_rows_;
  float* p = nullptr;
  auto take = [&p](int64_t n) {
    float* r = p;
    p += n;
    return r;
  };
  auto expect_full = [&p](const KernelMemory& b, int64_t floats) {
    if (p != b.floats() + floats) throw Error("fast engine: activation buffers do not add up to their allocation");
  };
  const auto forward_floats = N * static_cast<int64_t>(s.forward_per_row());
  const auto backward_floats = N * static_cast<int64_t>(s.backward_per_row());
  acts_ = KernelMemory(k_, forward_floats * static_cast<int64_t>(sizeof(float)));
  p = acts_.floats();
  emb_ = take(N * s.emb);
  rstd0_ = take(N * s.rstd0);
  for (int64_t l = 0; l < config_.n_layer; l++) {
    LayerActs a{};
    a.x = take(N * s.layer.x);
    a.ln1 = take(N * s.layer.ln1);
    a.rstd1 = take(N * s.layer.rstd1);
    a.qkv = take(N * s.layer.qkv);
    a.lse = take(N * s.layer.lse);
    a.atty = take(N * s.layer.atty);
    a.xmid = take(N * s.layer.xmid);
    a.ln2 = take(N * s.layer.ln2);
    a.rstd2 = take(N * s.layer.rstd2);
    a.h = take(N * s.layer.h);
    a.hr = take(N * s.layer.hr);
    layers_.push_back(a);
  }
  x_final_ = take(N * s.x_final);
  logits_ = take(N * s.logits);
  probs_ = take(N * s.probs);
  expect_full(acts_, forward_floats);

  dacts_ = KernelMemory(k_, backward_floats * static_cast<int64_t>(sizeof(float)));
  p = dacts_.floats();
  dx_ = take(N * s.dx);
  dln_ = take(N * s.dln);
  dqkv_ = take(N * s.dqkv);
  datty_ = take(N * s.datty);
  dhr_ = take(N * s.dhr);
  dh_ = take(N * s.dh);
  dlogits_ = take(N * s.dlogits);
  demb_ = take(N * s.demb);
  ddrop_ = take(N * s.ddrop);
  expect_full(dacts_, backward_floats);

  if (s.scratch < attention_scratch(config_.block_size, config_.n_embd)) {
    throw Error("fast engine: scratch smaller than attention needs");
  }
  for (int64_t t = 0; t < threads_; t++) scratch_.emplace_back(k_, s.scratch * static_cast<int64_t>(sizeof(float)));
}

double FastModel::memory_bytes(const ModelConfig& model, const TrainConfig& train, int64_t threads,
                               int64_t max_batch_docs) {
  const ActivationSizes s(model, train.dropout > 0.0);
  const double params = ParamLayout::count(model);
  const double n_threads = static_cast<double>(std::max<int64_t>(1, threads));
  const double rows = static_cast<double>(std::max<int64_t>(1, max_batch_docs)) * static_cast<double>(model.block_size);
  // The weights, Adam's m and v (and the average); per thread a gradient buffer and
  // scratch; the activations and their gradients; the staged batch (three int32 and two
  // 8-byte numbers a row: ids, targets, positions, first rows, losses).
  const double copies = train.ema > 0.0 ? 4.0 : 3.0;
  const double floats = params * copies + n_threads * (params + static_cast<double>(s.scratch)) +
                        rows * (s.forward_per_row() + s.backward_per_row());
  return floats * sizeof(float) + rows * (3 * sizeof(int32_t) + 2 * 8);
}

FastModel::~FastModel() = default;

void FastModel::init_params(PyRandom& rng) {
  const std::span<float> p = params_.host();
  for (const ParamTensor& t : layout_.tensors()) {
    const double std = init_std_of(t, config_, train_);
    for (int64_t i = t.offset; i < t.offset + t.numel(); i++) p[static_cast<size_t>(i)] = static_cast<float>(rng.gauss(0.0, std));
  }
  write_fixed_inputs(config_, train_, p);  // after every draw: the other weights start the same
  if (averaging()) std::copy(p.begin(), p.end(), average_.host().begin());
  push();
}

void FastModel::pull() const {
  if (!k_.on_device) return;
  for (const Weights* w : {&params_, &m_, &v_, &average_}) {
    if (w->n > 0) k_.download(w->copy.data(), w->device(), w->n * static_cast<int64_t>(sizeof(float)));
  }
}

void FastModel::push() {
  if (!k_.on_device) return;
  for (const Weights* w : {&params_, &m_, &v_, &average_}) {
    if (w->n > 0) k_.upload(w->device(), w->copy.data(), w->n * static_cast<int64_t>(sizeof(float)));
  }
}

std::vector<float> FastModel::read(const float* p, int64_t n) const {
  std::vector<float> out(static_cast<size_t>(n));
  k_.download(out.data(), p, n * static_cast<int64_t>(sizeof(float)));
  return out;
}

void FastModel::stage(const Packed& b) {
  if (!k_.on_device) {
    inputs_ = b.inputs.data();
    targets_ = b.targets.data();
    positions_ = b.positions.data();
    doc_start_ = b.doc_start.data();
    return;
  }
  const int64_t n = b.rows();
  auto* ints = static_cast<int32_t*>(staged_.get());
  k_.upload(ints, b.inputs.data(), n * static_cast<int64_t>(sizeof(int32_t)));
  k_.upload(ints + max_rows_, b.targets.data(), n * static_cast<int64_t>(sizeof(int32_t)));
  k_.upload(ints + 2 * max_rows_, b.positions.data(), n * static_cast<int64_t>(sizeof(int32_t)));
  inputs_ = ints;
  targets_ = ints + max_rows_;
  positions_ = ints + 2 * max_rows_;
  auto* docs = static_cast<int64_t*>(staged_docs_.get());
  k_.upload(docs, b.doc_start.data(), static_cast<int64_t>(b.doc_start.size() * sizeof(int64_t)));
  doc_start_ = docs;
}

void FastModel::prepare(std::span<const DocRef> docs, Packed& b) const {
  b.inputs.clear();
  b.targets.clear();
  b.positions.clear();
  b.doc_start.assign(1, 0);
  for (const DocRef& d : docs) {
    const int64_t n = predicted_rows(d, config_.block_size);
    if (n < 1) throw Error("a document needs at least two tokens");
    for (int64_t t = 0; t < n; t++) {
      b.inputs.push_back(d[static_cast<size_t>(t)]);
      b.targets.push_back(d[static_cast<size_t>(t) + 1]);
      b.positions.push_back(static_cast<int32_t>(t));
    }
    b.doc_start.push_back(b.doc_start.back() + n);
  }
  if (b.rows() > max_rows_) throw Error("batch larger than the model was sized for");
}

int64_t FastModel::threads_for(const Packed& b) const { return std::min(threads_, b.docs()); }

// Slices of whole cache lines, four per thread so that threads that come free take up
// the work of one that lost its core (the sums are element by element: the slices do not
// change them); small models need no threads.
int64_t FastModel::slices(int64_t params) const { return params >= 65536 && threads_ > 1 ? 4 * threads_ : 1; }

FastModel::Range FastModel::docs_of_thread(const Packed& b, int64_t thread, int64_t n_threads) const {
  const DocRange d = batch_part(b.doc_start, thread, n_threads);
  return Range{d.begin, d.end};
}

void FastModel::forward(const Packed& b, Range docs, Range rows, Pass pass, int64_t thread) {
  const int64_t C = config_.n_embd, V = config_.vocab_size, NH = config_.n_head;
  const int64_t r0 = rows.begin, n = rows.end - rows.begin;
  if (n <= 0) return;
  const bool training = pass == Pass::kTrain, incremental = pass == Pass::kIncremental;
  // The documents' rows (for kIncremental, the cached rows too) and their first rows.
  const int64_t n_docs = docs.end - docs.begin;
  const int64_t doc_rows = b.doc_start[static_cast<size_t>(docs.end)] - b.doc_start[static_cast<size_t>(docs.begin)];
  const int64_t* doc_start = doc_start_ + docs.begin;
  const bool drop = training && train_.dropout > 0.0;
  const float p_drop = static_cast<float>(train_.dropout);
  // Training updates params_; everything else runs the model, the average when there is one.
  const float* P = training ? params_.device() : model_weights();
  float* scratch = scratch_[static_cast<size_t>(thread)].floats();
  auto w = [&](const ParamTensor& t) { return P + t.offset; };

  k_.encoder_forward(emb_ + r0 * C, inputs_ + r0, positions_ + r0, w(layout_.wte()), w(layout_.wpe()), n, C);
  float* x = layers_.empty() ? x_final_ : layers_[0].x;
  k_.rmsnorm_forward(x + r0 * C, rstd0_ + r0, emb_ + r0 * C, n, C);
  for (int64_t l = 0; l < config_.n_layer; l++) {
    const LayerActs& a = layers_[static_cast<size_t>(l)];
    const LayerParams lp = layout_.layer(l);
    float* x_out = l + 1 < config_.n_layer ? layers_[static_cast<size_t>(l) + 1].x : x_final_;
    k_.rmsnorm_forward(a.ln1 + r0 * C, a.rstd1 + r0, a.x + r0 * C, n, C);
    // attn_wq, attn_wk, attn_wv are consecutive in the layout: one (3C, C) matrix
    k_.matmul_forward(a.qkv + r0 * 3 * C, a.ln1 + r0 * C, w(*lp.attn_wq), n, C, 3 * C, scratch);
    // (incremental: one document, its last row new)
    k_.attention_forward(a.atty, a.lse, a.qkv, doc_start, n_docs, doc_rows, incremental ? doc_rows - 1 : 0, C, NH,
                         scratch);
    k_.matmul_forward(a.xmid + r0 * C, a.atty + r0 * C, w(*lp.attn_wo), n, C, C, scratch);
    if (drop) k_.dropout_forward(a.xmid + r0 * C, a.xmid + r0 * C, first_row_ + r0, n, C, p_drop, dropout_key(l, 0));
    k_.residual_forward(a.xmid + r0 * C, a.xmid + r0 * C, a.x + r0 * C, n * C);
    k_.rmsnorm_forward(a.ln2 + r0 * C, a.rstd2 + r0, a.xmid + r0 * C, n, C);
    k_.matmul_forward(a.h + r0 * 4 * C, a.ln2 + r0 * C, w(*lp.mlp_fc1), n, C, 4 * C, scratch);
    k_.relu_forward(a.hr + r0 * 4 * C, a.h + r0 * 4 * C, n * 4 * C);
    k_.matmul_forward(x_out + r0 * C, a.hr + r0 * 4 * C, w(*lp.mlp_fc2), n, 4 * C, C, scratch);
    if (drop) k_.dropout_forward(x_out + r0 * C, x_out + r0 * C, first_row_ + r0, n, C, p_drop, dropout_key(l, 1));
    k_.residual_forward(x_out + r0 * C, x_out + r0 * C, a.xmid + r0 * C, n * C);
  }
  k_.matmul_forward(logits_ + r0 * V, x_final_ + r0 * C, w(layout_.lm_head()), n, C, V, scratch);
  if (pass == Pass::kLogits || incremental) return;
  k_.crossentropy_forward(probs_, static_cast<double*>(doc_loss_.get()) + docs.begin, logits_, targets_, doc_start,
                          n_docs, doc_rows, V);
}

void FastModel::backward(Range docs, Range rows, float dloss, int64_t thread) {
  const int64_t C = config_.n_embd, V = config_.vocab_size, NH = config_.n_head;
  const int64_t r0 = rows.begin, n = rows.end - rows.begin;
  if (n <= 0) return;
  const float* P = params_.device();
  float* grad = grads_[static_cast<size_t>(thread)].floats();
  float* scratch = scratch_[static_cast<size_t>(thread)].floats();
  auto w = [&](const ParamTensor& t) { return P + t.offset; };
  auto g = [&](const ParamTensor& t) { return grad + t.offset; };
  const bool drop = train_.dropout > 0.0;
  const float p_drop = static_cast<float>(train_.dropout);
  // The gradient reaching a block's output projection: dx itself, or dx through the
  // block's dropout mask (the residual path keeps dx unmasked).
  auto through_dropout = [&](int64_t l, int branch) -> const float* {
    if (!drop) return dx_;
    k_.zero(ddrop_ + r0 * C, n * C);
    k_.dropout_backward(ddrop_ + r0 * C, dx_ + r0 * C, first_row_ + r0, n, C, p_drop, dropout_key(l, branch));
    return ddrop_;
  };

  k_.zero(dlogits_ + r0 * V, n * V);
  k_.crossentropy_backward(dlogits_ + r0 * V, probs_ + r0 * V, targets_ + r0, dloss, n, V);
  k_.zero(dx_ + r0 * C, n * C);
  k_.matmul_backward(dx_ + r0 * C, g(layout_.lm_head()), dlogits_ + r0 * V, x_final_ + r0 * C, w(layout_.lm_head()),
                     n, C, V);
  for (int64_t l = config_.n_layer - 1; l >= 0; l--) {
    const LayerActs& a = layers_[static_cast<size_t>(l)];
    const LayerParams lp = layout_.layer(l);
    // x_out = xmid + fc2(relu(fc1(ln2))); dx holds d/dx_out
    k_.zero(dhr_ + r0 * 4 * C, n * 4 * C);
    const float* dmlp = through_dropout(l, 1);
    k_.matmul_backward(dhr_ + r0 * 4 * C, g(*lp.mlp_fc2), dmlp + r0 * C, a.hr + r0 * 4 * C, w(*lp.mlp_fc2), n, 4 * C, C);
    k_.zero(dh_ + r0 * 4 * C, n * 4 * C);
    k_.relu_backward(dh_ + r0 * 4 * C, dhr_ + r0 * 4 * C, a.h + r0 * 4 * C, n * 4 * C);
    k_.zero(dln_ + r0 * C, n * C);
    k_.matmul_backward(dln_ + r0 * C, g(*lp.mlp_fc1), dh_ + r0 * 4 * C, a.ln2 + r0 * C, w(*lp.mlp_fc1), n, C, 4 * C);
    k_.rmsnorm_backward(dx_ + r0 * C, dln_ + r0 * C, a.xmid + r0 * C, a.rstd2 + r0, n, C);  // dx: d/dxmid
    // xmid = x + wo(attention(qkv(ln1)))
    k_.zero(datty_ + r0 * C, n * C);
    const float* dattn = through_dropout(l, 0);
    k_.matmul_backward(datty_ + r0 * C, g(*lp.attn_wo), dattn + r0 * C, a.atty + r0 * C, w(*lp.attn_wo), n, C, C);
    k_.zero(dqkv_ + r0 * 3 * C, n * 3 * C);
    k_.attention_backward(dqkv_, datty_, a.qkv, a.atty, a.lse, doc_start_ + docs.begin, docs.end - docs.begin, n, C,
                          NH, scratch);
    k_.zero(dln_ + r0 * C, n * C);
    k_.matmul_backward(dln_ + r0 * C, g(*lp.attn_wq), dqkv_ + r0 * 3 * C, a.ln1 + r0 * C, w(*lp.attn_wq), n, C,
                       3 * C);
    k_.rmsnorm_backward(dx_ + r0 * C, dln_ + r0 * C, a.x + r0 * C, a.rstd1 + r0, n, C);  // dx: d/dx
  }
  k_.zero(demb_ + r0 * C, n * C);
  k_.rmsnorm_backward(demb_ + r0 * C, dx_ + r0 * C, emb_ + r0 * C, rstd0_ + r0, n, C);
  k_.encoder_backward(g(layout_.wte()), g(layout_.wpe()), demb_ + r0 * C, inputs_ + r0, positions_ + r0, n, C, V,
                      config_.block_size);
}

LossSum FastModel::forward_backward(std::span<const DocRef> batch, int64_t loss_tokens, int64_t first_row) {
  Packed& b = *batch_;
  prepare(batch, b);
  stage(b);
  const int64_t nt = threads_for(b);
  const float dloss = 1.0f / static_cast<float>(loss_tokens > 0 ? loss_tokens : std::max<int64_t>(1, b.rows()));
  first_row_ = first_row;
  doc_losses_.assign(static_cast<size_t>(b.docs()), 0.0);
  auto work = [&](int64_t t) {
    const Range docs = docs_of_thread(b, t, nt);
    const Range rows{b.doc_start[static_cast<size_t>(docs.begin)], b.doc_start[static_cast<size_t>(docs.end)]};
    forward(b, docs, rows, Pass::kTrain, t);
    backward(docs, rows, dloss, t);
  };
  if (nt > 0) pool_->run(nt, work);  // a process's share may be empty
  k_.download(doc_losses_.data(), doc_loss_.get(), b.docs() * static_cast<int64_t>(sizeof(double)));
  LossSum out;
  for (double l : doc_losses_) out.sum += l;
  out.tokens = b.rows();
  return out;
}

std::span<float> FastModel::combined_gradient() {
  if (k_.on_device) throw Error("a device model's gradient stays on the device: it trains in one process");
  const int64_t P = layout_.total();
  if (grads_.size() > 1 && !combined_) {
    const int64_t nt = slices(P);
    pool_->run(nt, [&](int64_t t) {
      const ParamRange r = param_part(P, t, nt);
      float* g0 = grads_[0].floats();
      for (size_t k = 1; k < grads_.size(); k++) {
        float* gk = grads_[k].floats();
        for (int64_t i = r.begin; i < r.end; i++) g0[i] += gk[i];
        std::memset(gk + r.begin, 0, static_cast<size_t>(r.size()) * sizeof(float));
      }
    });
  }
  combined_ = true;
  return {grads_[0].floats(), static_cast<size_t>(P)};
}

bool FastModel::adam_step(int64_t step, int64_t total_steps) {
  const float lr = static_cast<float>(learning_rate(train_, step, total_steps));
  const float bias1 = static_cast<float>(1.0 - std::pow(train_.beta1, static_cast<double>(step + 1)));
  const float bias2 = static_cast<float>(1.0 - std::pow(train_.beta2, static_cast<double>(step + 1)));
  // AdamW's decoupled weight decay (1: none). Fixed inputs hold zeros where it applies
  // (validate_configuration refuses the others), which it leaves as they are.
  const float shrink = static_cast<float>(1.0 - static_cast<double>(lr) * train_.weight_decay);
  const ParamRange part = optimizer_part_;
  const int64_t P = part.size();
  const int64_t nt = slices(P);
  // After combined_gradient(), the first buffer holds the whole sum.
  const size_t n_grads = combined_ ? 1 : grads_.size();
  std::vector<int64_t> nonfinite(static_cast<size_t>(nt), 0);
  // Fixed inputs (model/inputs.h) get no gradient, so Adam leaves them as they are.
  for (size_t k = 0; k < n_grads; k++) {
    for_fixed(fixed_, [&](int64_t at, int64_t n) { k_.zero(grads_[k].floats() + at, n); });
  }
  // The average: the mean of all weights so far while that is fewer steps than the
  // average's window (1 / (1 - ema)), then the exponential average.
  const float decay = static_cast<float>(std::min(train_.ema, 1.0 - 1.0 / (static_cast<double>(step) + 2.0)));
  auto work = [&](int64_t t) {
    const ParamRange r = param_part(P, t, nt);  // within the part
    const int64_t a = part.begin + r.begin, n = r.size();
    std::vector<float*> g;
    for (size_t k = 0; k < n_grads; k++) g.push_back(grads_[k].floats() + a);
    nonfinite[static_cast<size_t>(t)] =
        k_.adam_update(params_.device() + a, g.data(), static_cast<int64_t>(g.size()), m_.device() + r.begin,
                       v_.device() + r.begin, n, lr, static_cast<float>(train_.beta1), static_cast<float>(train_.beta2),
                       static_cast<float>(train_.eps), bias1, bias2, shrink);
    if (averaging()) k_.average_update(average_.device() + a, params_.device() + a, n, decay);
  };
  pool_->run(nt, work);
  if (averaging()) {  // the average of a constant, exactly
    for_fixed(fixed_, [&](int64_t at, int64_t n) { k_.copy(average_.device() + at, params_.device() + at, n); });
  }
  combined_ = false;
  // The gradient outside the part (another process's to apply) is cleared here.
  if (part.size() < layout_.total()) {
    for (auto& buf : grads_) {
      k_.zero(buf.floats(), part.begin);
      k_.zero(buf.floats() + part.end, layout_.total() - part.end);
    }
  }
  for (int64_t bad : nonfinite) {
    if (bad > 0) return false;
  }
  return true;
}

uint64_t FastModel::dropout_key(int64_t layer, int branch) const {
  // Distinct for every (seed, step, layer, branch); the kernel mixes in the position.
  const uint64_t site = (static_cast<uint64_t>(dropout_step_) << 20) ^ (static_cast<uint64_t>(layer) << 1) ^
                        static_cast<uint64_t>(branch);
  return (train_.seed * 0xD1B54A32D192ED03ULL) ^ (site * 0x9E3779B97F4A7C15ULL);
}

double FastModel::train_step(int64_t step, int64_t total_steps, std::span<const DocRef> batch) {
  dropout_step_ = step;
  const LossSum loss = forward_backward(batch);
  return adam_step(step, total_steps) ? loss.mean() : NAN;
}

std::vector<float> FastModel::gradient() const {
  std::vector<float> g(static_cast<size_t>(layout_.total()), 0.0f);
  for (const auto& buf : grads_) {
    const std::vector<float> part = read(buf.floats(), layout_.total());
    for (size_t i = 0; i < g.size(); i++) g[i] += part[i];
  }
  return g;
}

LossSum FastModel::evaluate(std::span<const DocRef> docs) {
  std::vector<double> losses(docs.size(), 0.0);
  int64_t tokens = 0;
  Packed& b = *batch_;
  size_t i = 0;
  while (i < docs.size()) {
    // As many documents as a training batch holds (and the activations): a batch of
    // short names fills a few rows of activations sized for batch_size x block_size;
    // packing held-out names into all of them would make every row resident (591 MB
    // against 216 for a 256-wide model with a context of 256), for no gain in speed.
    size_t j = i;
    int64_t rows = 0;
    while (j < docs.size() && static_cast<int64_t>(j - i) < max_docs_) {
      const int64_t n = predicted_rows(docs[j], config_.block_size);
      if (rows + n > max_rows_) break;
      rows += n;
      j++;
    }
    prepare(docs.subspan(i, j - i), b);
    stage(b);
    const int64_t nt = threads_for(b);
    auto work = [&](int64_t t) {
      const Range d = docs_of_thread(b, t, nt);
      const Range r{b.doc_start[static_cast<size_t>(d.begin)], b.doc_start[static_cast<size_t>(d.end)]};
      forward(b, d, r, Pass::kEvaluate, t);
    };
    pool_->run(nt, work);
    k_.download(losses.data() + i, doc_loss_.get(), b.docs() * static_cast<int64_t>(sizeof(double)));
    tokens += b.rows();
    i = j;
  }
  doc_losses_ = std::move(losses);
  LossSum total;
  for (double l : doc_losses_) total.sum += l;
  total.tokens = tokens;
  return total;
}

std::vector<std::vector<float>> FastModel::logits(DocRef doc) {
  Packed& b = *batch_;
  prepare(std::span<const DocRef>(&doc, 1), b);
  stage(b);
  pool_->run(1, [&](int64_t) { forward(b, Range{0, 1}, Range{0, b.rows()}, Pass::kLogits, 0); });
  std::vector<std::vector<float>> out;
  const int64_t V = config_.vocab_size;
  const std::vector<float> all = read(logits_, b.rows() * V);
  for (int64_t r = 0; r < b.rows(); r++) out.emplace_back(all.begin() + r * V, all.begin() + (r + 1) * V);
  return out;
}

void FastModel::start_sequence() {
  Packed& b = *batch_;
  b.inputs.clear();
  b.targets.clear();
  b.positions.clear();
}

std::vector<double> FastModel::next(Token token, double temperature) {
  Packed& b = *batch_;
  const int64_t pos = static_cast<int64_t>(b.inputs.size());
  if (pos >= config_.block_size) throw Error("decoding past block_size");
  // The document grows by one row; the rows before it are the KV cache.
  b.inputs.push_back(token);
  b.targets.push_back(0);
  b.positions.push_back(static_cast<int32_t>(pos));
  b.doc_start = {0, pos + 1};
  stage(b);
  pool_->run(1, [&](int64_t) { forward(b, Range{0, 1}, Range{pos, pos + 1}, Pass::kIncremental, 0); });
  return next_of_row(pos, temperature);
}

std::vector<double> FastModel::next_window(std::span<const Token> window, double temperature) {
  const auto n = static_cast<int64_t>(window.size());
  if (n < 1 || n > config_.block_size) throw Error("a window of 1 to block_size tokens is needed");
  Packed& b = *batch_;
  b.inputs.assign(window.begin(), window.end());
  b.targets.assign(static_cast<size_t>(n), 0);
  b.positions.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; t++) b.positions[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  b.doc_start = {0, n};
  stage(b);
  pool_->run(1, [&](int64_t) { forward(b, Range{0, 1}, Range{0, n}, Pass::kLogits, 0); });
  return next_of_row(n - 1, temperature);
}

std::vector<double> FastModel::attention_weights(std::span<const Token> window) {
  next_window(window, 1.0);  // the pass whose q, k and lse the weights come from
  const int64_t T = static_cast<int64_t>(window.size()), C = config_.n_embd, NH = config_.n_head, HS = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  std::vector<double> w(static_cast<size_t>(config_.n_layer * NH * T * T), 0.0);
  for (int64_t l = 0; l < config_.n_layer; l++) {
    const LayerActs& a = layers_[static_cast<size_t>(l)];
    const std::vector<float> qkv = read(a.qkv, T * 3 * C), lse = read(a.lse, T * NH);
    for (int64_t h = 0; h < NH; h++) {
      double* out = w.data() + (l * NH + h) * T * T;
      for (int64_t t = 0; t < T; t++) {
        const float* q = qkv.data() + t * 3 * C + h * HS;
        for (int64_t u = 0; u <= t; u++) {
          const float* k = qkv.data() + u * 3 * C + C + h * HS;
          double dot = 0.0;
          for (int64_t i = 0; i < HS; i++) dot += static_cast<double>(q[i]) * static_cast<double>(k[i]);
          out[t * T + u] = std::exp(dot * scale - static_cast<double>(lse[static_cast<size_t>(t * NH + h)]));
        }
      }
    }
  }
  return w;
}

std::vector<double> FastModel::next_of_row(int64_t row, double temperature) const {
  const int64_t V = config_.vocab_size;
  const std::vector<float> l = read(logits_ + row * V, V);
  std::vector<double> out(l.begin(), l.end());
  if (temperature == 0.0) return out;
  double maxv = out[0];
  for (double x : out) maxv = std::max(maxv, x);
  double sum = 0.0;
  for (double& x : out) {
    x = std::exp((x - maxv) / temperature);
    sum += x;
  }
  for (double& x : out) x /= sum;
  return out;
}

}  // namespace microgpt
