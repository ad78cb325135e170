// The training driver: reads the data, shuffles it with the run's generator, holds out
// a validation share, builds the tokenizer and the engine, trains, evaluates and
// samples, printing what microgpt.py prints and optionally logging JSON lines.
// Engines plug in below it (train/engine.h); the command line sits above.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "model/config.h"
#include "train/engine.h"

namespace microgpt {

struct TrainOptions {
  std::optional<std::string> data_path;  // none: the embedded names
  EngineOptions engine;
  ModelConfig model;  // vocab_size is filled in from the data
  TrainConfig train;
  double val_frac = 0.0;   // hold out the last share of the shuffled documents
  int64_t eval_every = 0;  // validation loss every N steps (0: only at the end)
  std::optional<std::string> log_path;
};

// Documents split as the driver splits them: python's int(round(n * frac)) held out,
// at most n - 1.
int64_t validation_count(int64_t n_docs, double val_frac);

// Runs a whole training job; throws Error on bad input. Progress goes to `out`.
void run_training(const TrainOptions& options, std::ostream& out);

}  // namespace microgpt
