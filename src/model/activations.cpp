#include "model/activations.h"

#include <algorithm>

namespace microgpt {

ActivationSizes::ActivationSizes(const ModelConfig& c, bool dropout) {
  const int64_t C = c.n_embd, V = c.vocab_size, T = c.block_size, NH = c.n_head, H = c.mlp_hidden();
  emb = C;
  rstd0 = 1;
  // Attention keeps no weights, only their log-normaliser: NH floats per row.
  layer = Layer{C, C, 1, 3 * C, NH, C, C, C, 1, H, H};
  x_final = C;
  logits = V;
  probs = V;
  n_layer = c.n_layer;
  dx = C;
  dln = C;
  dqkv = 3 * C;
  datty = C;
  dhr = H;
  dh = H;
  dlogits = V;
  demb = C;
  ddrop = dropout ? C : 0;
  // matmul transposes the weight (up to 3C x C for q, k, v together, H x C for the MLP,
  // V x C for lm_head); attention transposes a head's keys and values and works on tiles
  // of 16 queries (fast/kernels.h's attention_scratch, which the engine checks against).
  scratch = std::max({H * C, 3 * C * C, V * C, T * (2 * C + 32)});
}

double ActivationSizes::forward_per_row() const {
  return static_cast<double>(emb + rstd0) + static_cast<double>(n_layer) * static_cast<double>(layer.total()) +
         static_cast<double>(x_final + logits + probs);
}

double ActivationSizes::backward_per_row() const {
  return static_cast<double>(dx + dln + dqkv + datty + dhr + dh + dlogits + demb + ddrop);
}

}  // namespace microgpt
