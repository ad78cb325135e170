// What the training driver needs from an engine, and the two engines behind it:
// "reference" (double precision, bit-exact with microgpt.py, one document per step)
// and "fast" (float32 batches on the CPU kernels).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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
  virtual std::vector<Token> sample(PyRandom& rng, double temperature) = 0;
};

struct EngineOptions {
  std::string name = "fast";  // "fast" or "reference"
  int64_t threads = 1;
};

std::unique_ptr<Engine> make_engine(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train);

}  // namespace microgpt
