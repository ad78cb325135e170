#include "model/config.h"

#include <cmath>
#include <string_view>

namespace microgpt {

namespace {

// The parameters in creation order: fn(name, rows, cols) for the tensors every model
// has, then, for each layer, the same six (their names get the prefix "layerN.").
template <class Fn>
void model_tensors(const ModelConfig& c, Fn&& fn) {
  fn("wte", c.vocab_size, c.n_embd);
  fn("wpe", c.block_size, c.n_embd);
  fn("lm_head", c.vocab_size, c.n_embd);
}
template <class Fn>
void layer_tensors(const ModelConfig& c, Fn&& fn) {
  fn("attn_wq", c.n_embd, c.n_embd);
  fn("attn_wk", c.n_embd, c.n_embd);
  fn("attn_wv", c.n_embd, c.n_embd);
  fn("attn_wo", c.n_embd, c.n_embd);
  fn("mlp_fc1", c.mlp_hidden(), c.n_embd);
  fn("mlp_fc2", c.n_embd, c.mlp_hidden());
}

}  // namespace

ParamLayout::ParamLayout(const ModelConfig& c) {
  auto add = [&](std::string name, int64_t rows, int64_t cols) {
    tensors_.push_back(ParamTensor{std::move(name), rows, cols, total_});
    total_ += rows * cols;
  };
  model_tensors(c, [&](std::string_view name, int64_t rows, int64_t cols) { add(std::string(name), rows, cols); });
  for (int64_t i = 0; i < c.n_layer; i++) {
    const std::string prefix = "layer" + std::to_string(i) + ".";
    layer_tensors(c, [&](std::string_view name, int64_t rows, int64_t cols) { add(prefix + std::string(name), rows, cols); });
  }
}

double ParamLayout::count(const ModelConfig& c) {
  double shared = 0.0, per_layer = 0.0;
  model_tensors(c, [&](std::string_view, int64_t rows, int64_t cols) { shared += static_cast<double>(rows) * static_cast<double>(cols); });
  layer_tensors(c, [&](std::string_view, int64_t rows, int64_t cols) { per_layer += static_cast<double>(rows) * static_cast<double>(cols); });
  return shared + static_cast<double>(c.n_layer) * per_layer;
}

double learning_rate(const TrainConfig& train, int64_t step, int64_t total_steps) {
  // microgpt.py's expression, evaluated as it evaluates it (the reference engine's bits
  // depend on it); the warmup's factor only when there is one.
  const double lr = train.lr * (1.0 - static_cast<double>(step) / static_cast<double>(total_steps));
  if (step >= train.warmup) return lr;
  return lr * (static_cast<double>(step + 1) / static_cast<double>(train.warmup));
}

double init_std_of(const ParamTensor& t, const ModelConfig& model, const TrainConfig& train) {
  if (train.init != "gpt2") return train.init_std;
  const bool residual = t.name.ends_with(".attn_wo") || t.name.ends_with(".mlp_fc2");
  return residual ? 0.02 / std::sqrt(2.0 * static_cast<double>(model.n_layer)) : 0.02;
}

LayerParams ParamLayout::layer(int64_t i) const {
  const size_t b = 3 + 6 * static_cast<size_t>(i);
  return LayerParams{&tensors_[b], &tensors_[b + 1], &tensors_[b + 2],
                     &tensors_[b + 3], &tensors_[b + 4], &tensors_[b + 5]};
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

ParamRange param_part(int64_t total, int64_t part, int64_t parts) {
  auto cut = [&](int64_t k) { return k >= parts ? total : (total * k / parts) / 16 * 16; };
  return ParamRange{cut(part), cut(part + 1)};
}

}  // namespace microgpt
