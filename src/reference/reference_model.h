// The reference engine: microgpt.py's model, training step and sampler on the scalar
// tape, reproducing the Python program's arithmetic to the last bit (docs/algorithm.md
// §4, §5 and §8). It is written to be read beside the Python and is never optimised
// beyond what keeps it plain; the fast engine is where speed lives.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "model/config.h"
#include "reference/tape.h"

namespace microgpt {

class ReferenceModel {
 public:
  using Id = Tape::Id;

  ReferenceModel(const ModelConfig& model, const TrainConfig& train);
  // About how many bytes training such a model takes: a rough model of the tape of one
  // document, which is far larger than the parameters.
  static double memory_bytes(const ModelConfig& model);

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  int64_t num_params() const { return layout_.total(); }

  // Every weight from gauss(0, init_std_of(its tensor)), tensor by tensor, row by row.
  void init_params(PyRandom& rng);
  double param(int64_t i) const { return tape_.value(tape_.leaf(i)); }
  void set_param(int64_t i, double v) { tape_.set_value(tape_.leaf(i), v); }
  double grad(int64_t i) const { return tape_.grad(tape_.leaf(i)); }

  // Forward one document ([BOS] + ids + [BOS]) and backward; gradients are left in
  // grad(i). Returns the mean loss over its min(block_size, len - 1) positions.
  double forward_backward(std::span<const Token> tokens);
  // Adam at step `step` (counted from 0) of `total_steps`, then zero the gradients.
  // Returns false if a gradient was infinite or NaN.
  bool adam_step(int64_t step, int64_t total_steps);
  // One whole training step: forward_backward then adam_step.
  double train_step(int64_t step, int64_t total_steps, std::span<const Token> tokens);

  // Incremental decoding of one sequence, as microgpt.py samples: start_sequence() empties
  // the KV cache; next() runs the model on `token` at the next position (at most
  // block_size of them) and returns the next token's probabilities at `temperature` > 0,
  // softmax(logits / temperature) computed exactly as microgpt.py does, or the logits
  // themselves when temperature is 0.
  void start_sequence();
  std::vector<double> next(Token token, double temperature);

  // The mean loss of a document, without backward or any change to the model.
  double loss(std::span<const Token> tokens);

  // Logits of every position of a document, as plain numbers (for tests).
  std::vector<std::vector<double>> logits(std::span<const Token> tokens);

  // Adam's moment buffers, for checkpoints.
  std::vector<double>& adam_m() { return m_; }
  std::vector<double>& adam_v() { return v_; }
  const std::vector<double>& adam_m() const { return m_; }
  const std::vector<double>& adam_v() const { return v_; }

 private:
  using Vec = std::vector<Id>;
  // Per layer, the k and v vectors of all earlier positions of this document.
  struct KvCache {
    std::vector<std::vector<Vec>> keys, values;
  };
  KvCache empty_cache() const;

  Vec gpt(Token token, int64_t pos, KvCache& cache);
  // Builds the graph of a document's mean loss on a fresh tape.
  Id loss_node(std::span<const Token> tokens);
  Vec linear(const Vec& x, const ParamTensor& w);
  Vec softmax(const Vec& logits);
  Vec rmsnorm(const Vec& x);
  Id weight(const ParamTensor& w, int64_t row, int64_t col) const {
    return tape_.leaf(w.offset + row * w.cols + col);
  }

  ModelConfig config_;
  TrainConfig train_;
  ParamLayout layout_;
  Tape tape_;
  std::vector<double> m_, v_;
  KvCache decode_cache_;
  int64_t decode_pos_ = 0;
};

}  // namespace microgpt
