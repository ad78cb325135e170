// What the drivers need from an engine, and the two engines behind it: "reference"
// (double precision, bit-exact with microgpt.py, one document per step) and "fast"
// (float32 batches on the CPU kernels). train, sample, eval and embed all go through
// this interface, so every command works with either engine.
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
  // One optimizer step on a batch; returns the batch's mean loss per predicted token.
  virtual double train_step(int64_t step, int64_t total_steps, std::span<const DocRef> batch) = 0;
  // Loss over documents, without training.
  virtual LossSum evaluate(std::span<const DocRef> docs) = 0;
  // Incremental decoding of one sequence: start_sequence() empties the KV cache; next()
  // runs the model on `token` at the next position and returns the next token's
  // probabilities at `temperature` > 0, or the logits when temperature is 0.
  virtual void start_sequence() = 0;
  virtual std::vector<double> next(Token token, double temperature) = 0;
  // Parameters and Adam's moments, in layout order, for checkpoints.
  virtual void save_state(CheckpointData& c) const = 0;
  virtual void load_state(const CheckpointData& c) = 0;
};

struct EngineOptions {
  std::string name = "fast";  // "fast" or "reference"
  int64_t threads = 1;
};

// Builds the engine; first refuses, with the memory it would need, a model that does
// not fit in this machine's memory (a usage error).
std::unique_ptr<Engine> make_engine(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train);

// About how many bytes an engine of this shape needs while training (parameters,
// gradients, optimizer state, activations or the scalar tape), computed in double so
// that absurd sizes do not overflow.
double estimated_memory_bytes(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train);
// The memory this process may still use: MemAvailable, or the cgroup's limit if lower.
double available_memory_bytes();

}  // namespace microgpt
