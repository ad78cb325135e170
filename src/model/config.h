// The model's configuration and the one description of its parameters: names as in
// microgpt (wte, wpe, lm_head, layer0.attn_wq, ...), shapes and offsets into one flat
// buffer, in creation order (docs/algorithm.md §3). Engines, checkpoints, the memory
// estimate and the inspection tools all read this; nothing else decides where a
// parameter lives or how many there are.
//
// Not here: the bounds on each value and the checks of a whole configuration
// (model/limits.h), the activation sizes of an engine pass (model/activations.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace microgpt {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t n_embd = 16;
  int64_t n_head = 4;
  int64_t n_layer = 1;
  int64_t block_size = 16;

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t mlp_hidden() const { return 4 * n_embd; }
};

// Everything about training and sampling that is not the model's shape; a checkpoint
// stores all of it.
struct TrainConfig {
  uint64_t seed = 42;
  int64_t steps = 1000;
  double lr = 0.01;
  double beta1 = 0.85;
  double beta2 = 0.99;
  double eps = 1e-8;
  double init_std = 0.08;
  // How the weights start (docs/algorithm.md §3): "microgpt", every weight from
  // gauss(0, init_std), as microgpt.py draws them; or "gpt2", GPT-2's scheme that keeps
  // the first losses near ln(vocab_size) at any width and depth: std 0.02, and the
  // projections that write into the residual stream (attn_wo, mlp_fc2) 0.02 /
  // sqrt(2 * n_layer). Both draw in the same order, tensor by tensor.
  std::string init = "microgpt";
  // What the model receives (model/inputs.h; fast engine only): the token vectors
  // ("learned", "frozen", "onehot", "scalar"), the position vectors ("learned", "none",
  // "sinusoidal", "frozen") and how they are combined ("add", "concat").
  std::string wte = "learned";
  std::string wpe = "learned";
  std::string combine = "add";
  // Steps over which the learning rate rises linearly from lr / warmup to lr before it
  // decays (0: none, as microgpt.py). Big models need a few: Adam's first steps move
  // every weight by about lr at once.
  int64_t warmup = 0;
  double temperature = 0.5;
  int64_t num_samples = 20;
  int64_t batch_size = 1;  // documents per step
  double val_frac = 0.0;   // hold out the last share of the shuffled documents
  int64_t eval_every = 0;  // validation loss every N steps (0: only at the end)
  // Fast engine only (microgpt.py has neither): the probability of zeroing each output
  // of an attention or MLP block while training, and the decay of the running average
  // of the weights that becomes the model (0: off). See fast/fast_model.h.
  double dropout = 0.0;
  double ema = 0.0;
  // Fast engine only: AdamW's decoupled weight decay, every weight multiplied by
  // 1 - lr * weight_decay each step before Adam's update (0: off, as microgpt.py).
  double weight_decay = 0.0;
  // Either engine: visit the training documents in a new order in every pass over them
  // after the first (microgpt.py keeps one order). See train/data_source.h.
  bool reshuffle = false;
  // What the data file is: "lines", one document per line (names, as microgpt.py reads
  // them), or "text", one continuous stream of characters (a book) trained on in windows
  // of block_size + 1 characters. See train/data_source.h.
  std::string format = "lines";
  bool is_text() const { return format == "text"; }
};

struct ParamTensor {
  std::string name;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t offset = 0;  // in elements, into the flat parameter buffer
  int64_t numel() const { return rows * cols; }
};

// Offsets of the tensors of one layer, so engines need no string lookups.
struct LayerParams {
  const ParamTensor* attn_wq;
  const ParamTensor* attn_wk;
  const ParamTensor* attn_wv;
  const ParamTensor* attn_wo;
  const ParamTensor* mlp_fc1;
  const ParamTensor* mlp_fc2;
};

// The learning rate of step `step` (from 0) of `total_steps`: lr * (1 - step /
// total_steps), as microgpt.py computes it, times (step + 1) / warmup during the warmup.
double learning_rate(const TrainConfig& train, int64_t step, int64_t total_steps);

// The standard deviation the initial weights of tensor `t` are drawn with.
double init_std_of(const ParamTensor& t, const ModelConfig& model, const TrainConfig& train);

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& config);

  // The parameter count of a configuration, from the same description, in double so
  // that sizes too large to allocate can be measured (and refused) without overflow
  // and without building a layout of millions of tensors.
  static double count(const ModelConfig& config);

  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }
  const ParamTensor& wte() const { return tensors_[0]; }
  const ParamTensor& wpe() const { return tensors_[1]; }
  const ParamTensor& lm_head() const { return tensors_[2]; }
  LayerParams layer(int64_t i) const;
  // nullptr when there is no tensor of that name.
  const ParamTensor* find(const std::string& name) const;

 private:
  std::vector<ParamTensor> tensors_;
  int64_t total_ = 0;
};

// A run of the flat parameter buffer, [begin, end).
struct ParamRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Part `part` of `parts` of `total` parameters: near-equal runs, cut on multiples of 16
// floats (a cache line). How the fast engine's threads share Adam's update, and how the
// processes of a run with --zero 1 share Adam's moments.
ParamRange param_part(int64_t total, int64_t part, int64_t parts);

}  // namespace microgpt
