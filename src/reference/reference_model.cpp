#include "reference/reference_model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/pymath.h"

namespace microgpt {

ReferenceModel::ReferenceModel(const ModelConfig& model, const TrainConfig& train)
    : config_(model),
      train_(train),
      layout_(model),
      tape_(layout_.total()),
      m_(static_cast<size_t>(layout_.total()), 0.0),
      v_(static_cast<size_t>(layout_.total()), 0.0) {}

double ReferenceModel::memory_bytes(const ModelConfig& model) {
  const double C = static_cast<double>(model.n_embd), L = static_cast<double>(model.n_layer);
  const double V = static_cast<double>(model.vocab_size), T = static_cast<double>(model.block_size);
  const double NH = static_cast<double>(model.n_head);
  // doubles: values and gradients of the parameters on the tape, Adam's m and v; per
  // position of a document the tape holds about one 12-byte term per multiply-add and a
  // few 40-byte nodes per channel, head and earlier position.
  const double terms = T * (L * 12 * C * C + C * V + L * 2 * C * T);
  const double nodes = T * (L * (40 * C + 8 * NH * T) + 6 * V);
  return ParamLayout::count(model) * 8 * 4 + terms * 12 + nodes * 40;
}

void ReferenceModel::init_params(PyRandom& rng) {
  for (const ParamTensor& t : layout_.tensors()) {
    const double std = init_std_of(t, config_, train_);
    for (int64_t i = t.offset; i < t.offset + t.numel(); i++) set_param(i, rng.gauss(0.0, std));
  }
}

ReferenceModel::KvCache ReferenceModel::empty_cache() const {
  KvCache c;
  c.keys.resize(static_cast<size_t>(config_.n_layer));
  c.values.resize(static_cast<size_t>(config_.n_layer));
  return c;
}

// linear(x, w) = [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]
ReferenceModel::Vec ReferenceModel::linear(const Vec& x, const ParamTensor& w) {
  Vec out(static_cast<size_t>(w.rows));
  Vec row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; r++) {
    for (int64_t c = 0; c < w.cols; c++) row[static_cast<size_t>(c)] = weight(w, r, c);
    out[static_cast<size_t>(r)] = tape_.dot(row, x);
  }
  return out;
}

// softmax: exps = [(v - max).exp()]; total = sum(exps); [e / total for e in exps]
ReferenceModel::Vec ReferenceModel::softmax(const Vec& logits) {
  double max_val = tape_.value(logits[0]);
  for (Id l : logits) max_val = std::max(max_val, tape_.value(l));  // first maximum
  Vec exps(logits.size());
  for (size_t i = 0; i < logits.size(); i++) exps[i] = tape_.exp(tape_.sub(logits[i], max_val));
  const Id total = tape_.sum(exps);
  Vec probs(logits.size());
  for (size_t i = 0; i < logits.size(); i++) probs[i] = tape_.div(exps[i], total);
  return probs;
}

// rmsnorm: ms = sum(xi * xi) / len(x); scale = (ms + 1e-5) ** -0.5; [xi * scale]
ReferenceModel::Vec ReferenceModel::rmsnorm(const Vec& x) {
  const Id ms = tape_.div(tape_.dot(x, x), static_cast<double>(x.size()));
  const Id scale = tape_.pow(tape_.add(ms, 1e-5), -0.5);
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); i++) out[i] = tape_.mul(x[i], scale);
  return out;
}

ReferenceModel::Vec ReferenceModel::gpt(Token token, int64_t pos, KvCache& cache) {
  const int64_t C = config_.n_embd;
  const int64_t HS = config_.head_dim();
  Vec x(static_cast<size_t>(C));
  for (int64_t i = 0; i < C; i++) {  // token embedding + position embedding
    x[static_cast<size_t>(i)] = tape_.add(weight(layout_.wte(), token, i), weight(layout_.wpe(), pos, i));
  }
  x = rmsnorm(x);

  // / head_dim**0.5 is a multiplication by (head_dim ** 0.5) ** -1
  const double inv_sqrt_hs = pymath::pow(pymath::pow(static_cast<double>(HS), 0.5), -1.0);
  for (int64_t li = 0; li < config_.n_layer; li++) {
    const LayerParams lp = layout_.layer(li);
    auto& keys = cache.keys[static_cast<size_t>(li)];
    auto& values = cache.values[static_cast<size_t>(li)];
    // 1) multi-head attention
    Vec residual = x;
    x = rmsnorm(x);
    Vec q = linear(x, *lp.attn_wq);
    keys.push_back(linear(x, *lp.attn_wk));
    values.push_back(linear(x, *lp.attn_wv));
    Vec x_attn;
    x_attn.reserve(static_cast<size_t>(C));
    const size_t T = keys.size();
    Vec v_column(T);
    for (int64_t h = 0; h < config_.n_head; h++) {
      const size_t hs = static_cast<size_t>(h * HS);
      const std::span<const Id> q_h(q.data() + hs, static_cast<size_t>(HS));
      Vec attn_logits(T);
      for (size_t t = 0; t < T; t++) {
        const std::span<const Id> k_h(keys[t].data() + hs, static_cast<size_t>(HS));
        attn_logits[t] = tape_.mul(tape_.dot(q_h, k_h), inv_sqrt_hs);
      }
      Vec attn_weights = softmax(attn_logits);
      for (size_t j = 0; j < static_cast<size_t>(HS); j++) {
        for (size_t t = 0; t < T; t++) v_column[t] = values[t][hs + j];
        x_attn.push_back(tape_.dot(attn_weights, v_column));
      }
    }
    x = linear(x_attn, *lp.attn_wo);
    for (int64_t i = 0; i < C; i++) x[static_cast<size_t>(i)] = tape_.add(x[static_cast<size_t>(i)], residual[static_cast<size_t>(i)]);
    // 2) MLP
    residual = x;
    x = rmsnorm(x);
    x = linear(x, *lp.mlp_fc1);
    for (Id& xi : x) xi = tape_.relu(xi);
    x = linear(x, *lp.mlp_fc2);
    for (int64_t i = 0; i < C; i++) x[static_cast<size_t>(i)] = tape_.add(x[static_cast<size_t>(i)], residual[static_cast<size_t>(i)]);
  }
  return linear(x, layout_.lm_head());
}

ReferenceModel::Id ReferenceModel::loss_node(std::span<const Token> tokens) {
  tape_.reset();
  const int64_t n = std::min(config_.block_size, static_cast<int64_t>(tokens.size()) - 1);
  KvCache cache = empty_cache();
  Vec losses(static_cast<size_t>(n));
  for (int64_t pos = 0; pos < n; pos++) {
    Vec logits = gpt(tokens[static_cast<size_t>(pos)], pos, cache);
    Vec probs = softmax(logits);
    // loss_t = -probs[target].log()
    losses[static_cast<size_t>(pos)] = tape_.neg(tape_.log(probs[static_cast<size_t>(tokens[static_cast<size_t>(pos) + 1])]));
  }
  // loss = (1 / n) * sum(losses)
  return tape_.mul(tape_.sum(losses), 1.0 / static_cast<double>(n));
}

double ReferenceModel::forward_backward(std::span<const Token> tokens) {
  const Id loss = loss_node(tokens);
  tape_.backward(loss);
  return tape_.value(loss);
}

double ReferenceModel::loss(std::span<const Token> tokens) {
  const double value = tape_.value(loss_node(tokens));
  tape_.reset();
  return value;
}

bool ReferenceModel::adam_step(int64_t step, int64_t total_steps) {
  bool finite = true;
  const double b1 = train_.beta1;
  const double b2 = train_.beta2;
  const double lr_t = learning_rate(train_, step, total_steps);
  const double bias1 = 1.0 - pymath::pow(b1, static_cast<double>(step + 1));
  const double bias2 = 1.0 - pymath::pow(b2, static_cast<double>(step + 1));
  for (int64_t i = 0; i < layout_.total(); i++) {
    const Id p = tape_.leaf(i);
    const double g = tape_.grad(p);
    finite = finite && std::isfinite(g);
    double& m = m_[static_cast<size_t>(i)];
    double& v = v_[static_cast<size_t>(i)];
    m = b1 * m + (1.0 - b1) * g;
    v = b2 * v + (1.0 - b2) * pymath::pow(g, 2.0);
    const double m_hat = m / bias1;
    const double v_hat = v / bias2;
    tape_.set_value(p, tape_.value(p) - lr_t * m_hat / (pymath::pow(v_hat, 0.5) + train_.eps));
    tape_.set_grad(p, 0.0);
  }
  return finite;
}

double ReferenceModel::train_step(int64_t step, int64_t total_steps, std::span<const Token> tokens) {
  const double loss = forward_backward(tokens);
  return adam_step(step, total_steps) ? loss : NAN;
}

void ReferenceModel::start_sequence() {
  tape_.reset();
  decode_cache_ = empty_cache();
  decode_pos_ = 0;
}

std::vector<double> ReferenceModel::next(Token token, double temperature) {
  if (decode_pos_ >= config_.block_size) throw Error("decoding past block_size");
  Vec logits = gpt(token, decode_pos_++, decode_cache_);
  std::vector<double> out(logits.size());
  if (temperature == 0.0) {
    for (size_t i = 0; i < logits.size(); i++) out[i] = tape_.value(logits[i]);
    return out;
  }
  // probs = softmax([l / temperature for l in logits]); l / t is l * t**-1
  const double inv_temperature = pymath::pow(temperature, -1.0);
  for (Id& l : logits) l = tape_.mul(l, inv_temperature);
  const Vec probs = softmax(logits);
  for (size_t i = 0; i < probs.size(); i++) out[i] = tape_.value(probs[i]);
  return out;
}

std::vector<std::vector<double>> ReferenceModel::logits(std::span<const Token> tokens) {
  tape_.reset();
  const int64_t n = std::min(config_.block_size, static_cast<int64_t>(tokens.size()) - 1);
  KvCache cache = empty_cache();
  std::vector<std::vector<double>> out;
  for (int64_t pos = 0; pos < n; pos++) {
    Vec l = gpt(tokens[static_cast<size_t>(pos)], pos, cache);
    std::vector<double> row;
    for (Id id : l) row.push_back(tape_.value(id));
    out.push_back(std::move(row));
  }
  tape_.reset();
  return out;
}

}  // namespace microgpt
