#include "model/config.h"

#include "core/error.h"

namespace microgpt {

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* flag) {
    if (v < 1) throw usage_error(std::string(flag) + ": must be a whole number >= 1, got " + std::to_string(v));
  };
  positive(n_embd, "--n-embd");
  positive(n_head, "--n-head");
  positive(n_layer, "--n-layer");
  positive(block_size, "--block-size");
  if (n_embd % n_head != 0) {
    throw usage_error("--n-embd " + std::to_string(n_embd) + " is not divisible by --n-head " +
                      std::to_string(n_head) + " (each head gets n_embd / n_head dimensions)");
  }
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  auto add = [&](std::string name, int64_t rows, int64_t cols) {
    tensors_.push_back(ParamTensor{std::move(name), rows, cols, total_});
    total_ += rows * cols;
  };
  add("wte", c.vocab_size, c.n_embd);
  add("wpe", c.block_size, c.n_embd);
  add("lm_head", c.vocab_size, c.n_embd);
  for (int64_t i = 0; i < c.n_layer; i++) {
    const std::string p = "layer" + std::to_string(i) + ".";
    add(p + "attn_wq", c.n_embd, c.n_embd);
    add(p + "attn_wk", c.n_embd, c.n_embd);
    add(p + "attn_wv", c.n_embd, c.n_embd);
    add(p + "attn_wo", c.n_embd, c.n_embd);
    add(p + "mlp_fc1", c.mlp_hidden(), c.n_embd);
    add(p + "mlp_fc2", c.n_embd, c.mlp_hidden());
  }
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

}  // namespace microgpt
