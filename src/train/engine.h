// What a training run and the commands need from an engine, and the engines behind it:
// "reference" (double precision, bit-exact with microgpt.py, one document per step),
// "fast" (float32 batches on the CPU kernels) and "gpu" (the same float32 model and
// driver on the CUDA kernels of gpu/kernels_cuda.cu; its checkpoints are the fast
// engine's, so either continues or samples the other's). train, sample, eval and embed
// all go through this interface, so every command works with any engine.
//
// A training step comes in two halves, forward_backward and update, so that a run can
// combine the gradients of several processes between them (train/run.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "core/python_random.h"
#include "data/dataset.h"
#include "fast/fast_model.h"
#include "model/config.h"

namespace microgpt {

class Engine {
 public:
  virtual ~Engine() = default;
  virtual int64_t num_params() const = 0;
  virtual void init_params(PyRandom& rng) = 0;
  // Forward and backward over training step `step`'s batch: the gradient of the mean
  // loss over batch.tokens positions is left for update(). Returns the batch's mean
  // loss per predicted token.
  virtual double forward_backward(int64_t step, const Batch& batch) = 0;
  // Adam at step `step` (from 0) of `total_steps` with that gradient, which is then
  // cleared. Returns false if a gradient was infinite or NaN.
  virtual bool update(int64_t step, int64_t total_steps) = 0;
  // Both halves; the mean loss, or NaN if a gradient was not finite.
  double train_step(int64_t step, int64_t total_steps, const Batch& batch);
  // Loss over documents, without training.
  virtual LossSum evaluate(std::span<const DocRef> docs) = 0;
  // Incremental decoding of one sequence: start_sequence() empties the KV cache; next()
  // runs the model on `token` at the next position and returns the next token's
  // probabilities at `temperature` > 0, or the logits when temperature is 0.
  virtual void start_sequence() = 0;
  virtual std::vector<double> next(Token token, double temperature) = 0;
  // The sequence restarted with a whole window (1 to block_size tokens), and the next
  // token's distribution after it: how a text model's sampling slides its context.
  virtual std::vector<double> next_window(std::span<const Token> window, double temperature);
  // The attention weights of every head of every layer over a window, as FastModel's
  // attention_weights gives them; the reference engine has none to give (throws).
  virtual std::vector<double> attention_weights(std::span<const Token> window);
  // Parameters and Adam's moments, in layout order, for checkpoints.
  virtual void save_state(CheckpointData& c) const = 0;
  // The model's parameters [offset, offset + count) in layout order, as save_state gives
  // them (with --ema, the average), and none of the rest: what a snapshot of wte and wpe
  // reads many times a run (the page's), where save_state would copy every parameter
  // and both of Adam's moments.
  virtual std::vector<double> read_params(int64_t offset, int64_t count) const = 0;
  virtual void load_state(const CheckpointData& c) = 0;

  // What a run spread over processes needs (train/data_parallel.h). The reference engine
  // has none of it (one document a step cannot be shared) and throws.
  // Each document's loss sum in the last forward_backward or evaluate.
  virtual std::span<const double> doc_losses() const;
  // The gradient so far, summed over this process's threads, for the caller to combine
  // with other processes' in place before update().
  virtual std::span<float> gradient();
  // The weights update() changes (and, with --ema, their average): what the caller
  // makes whole when each process updates only a part of them.
  virtual std::vector<std::span<float>> trained_weights();
};

struct EngineOptions {
  std::string name = "fast";  // "fast", "gpu" or "reference"
  // "fp32", or "tf32" (gpu: the matrix products on the tensor cores, with 10-bit mantissas)
  std::string precision = "fp32";
  int64_t threads = 1;
  // The parameters whose Adam moments the engine keeps and updates (fast engine; empty:
  // all). A run whose processes share Adam's state gives each its part.
  ParamRange optimizer_part;
};

// Builds the engine; first refuses a configuration outside model/limits.h, and then,
// with the memory it would need, a model that does not fit in this machine's memory or
// (gpu) the GPU's (all usage errors, as is a gpu engine without a usable GPU).
std::unique_ptr<Engine> make_engine(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train);

// About how many bytes training such a model takes: the engine's own (its parameters,
// gradients, optimizer state and activations, or the reference's scalar tape) and the
// checkpoint's copies while it is written. In double, so that absurd sizes do not
// overflow.
double estimated_memory_bytes(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train);

}  // namespace microgpt
