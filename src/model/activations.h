// The sizes of an engine pass on the kernel table (fast/kernels.h): for each buffer of
// activations and of their gradients, how many floats it holds per row of a batch (a
// row is one predicted position of one document). FastModel carves its buffers from
// these numbers and its memory estimate sums them, so the two cannot disagree.
//
// Not here: the parameters (model/config.h), the buffers' meaning (fast/fast_model.cpp).
#pragma once

#include <cstdint>

#include "model/config.h"

namespace microgpt {

struct ActivationSizes {
  ActivationSizes(const ModelConfig& c, bool dropout);

  // Forward, kept for backward. Before the blocks: the embedding sum and its rmsnorm.
  int64_t emb, rstd0;
  // Each block's, per layer: its input, the attention half (rmsnorm, q k v, each head's
  // softmax log-normaliser (lse), the attention output, the residual sum)
  // and the MLP half (rmsnorm, fc1, its ReLU).
  struct Layer {
    int64_t x, ln1, rstd1, qkv, lse, atty, xmid, ln2, rstd2, h, hr;
    int64_t total() const { return x + ln1 + rstd1 + qkv + lse + atty + xmid + ln2 + rstd2 + h + hr; }
  } layer;
  // After the blocks: the last block's output, the logits and their softmax.
  int64_t x_final, logits, probs;
  int64_t n_layer;

  // Backward: gradients of activations, one set reused by every layer, and the masked
  // gradient of a block's output when dropout is on.
  int64_t dx, dln, dqkv, datty, dhr, dh, dlogits, demb, ddrop;

  // Per thread, not per row: room for a transposed weight matrix or attention's tiles.
  int64_t scratch;

  // Totals per row, in double: a configuration far too large to allocate is measured
  // (and refused) without overflow.
  double forward_per_row() const;
  double backward_per_row() const;
};

}  // namespace microgpt
