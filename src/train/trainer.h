// The training driver: reads the data, shuffles it with the run's generator, builds
// the tokenizer and the model, trains, and samples, printing what microgpt.py prints
// and optionally logging JSON lines. Engines plug in below it; the command line above.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "model/config.h"

namespace microgpt {

struct TrainOptions {
  std::optional<std::string> data_path;  // none: the embedded names
  std::string engine = "reference";
  ModelConfig model;  // vocab_size is filled in from the data
  TrainConfig train;
  std::optional<std::string> log_path;
};

// Runs a whole training job; throws Error on bad input. Progress goes to `out`.
void run_training(const TrainOptions& options, std::ostream& out);

}  // namespace microgpt
