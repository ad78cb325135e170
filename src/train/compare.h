// `microgpt compare`: the embeddings chapter's questions answered by experiment. Trains
// a list of input variants (model/inputs.h) on the same data, split, batch order and
// budget, each with the same seeds, and prints one row per variant: the validation loss
// (mean and spread over the seeds), the trained parameters, the mean cosine similarity
// of the token vectors within vowels, within consonants and across, and a few samples.
// Optionally the validation curves of all variants in one SVG, and one JSON line per
// variant and seed.
//
// A variant changes one thing from the default input (learned token and position
// vectors, added):
//   learned     the default
//   frozen      --wte frozen        onehot   --wte onehot        scalar  --wte scalar
//   no-wpe      --wpe none          sinusoidal  --wpe sinusoidal
//   concat      --combine concat
//
// The batches of a seed are a function of the seed and step alone (train/data_source.h),
// and every variant draws every weight before writing its fixed inputs, so the variants
// of a seed differ in their inputs only. Each run's log line carries a checksum of the
// token ids of all its batches, so that this can be checked.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "train/run.h"

namespace microgpt {

// The variant names, in the order the table lists them by default.
const std::vector<std::string>& compare_variants();
// Sets the inputs of `train` to the variant's; a usage error for an unknown name.
void apply_variant(const std::string& variant, TrainConfig& train);

struct CompareCommand {
  // Data, sizes, steps, seed (the first of the seeds) and threads, as for train. A
  // validation share and interval are needed: 0.1 (or the text's) and steps / 20
  // unless given.
  TrainOptions base;
  std::vector<std::string> variants = compare_variants();
  int64_t seeds = 1;   // seeds base.train.seed, +1, ...
  int64_t samples = 3;  // drawn by each run after training, shown in the table
  std::optional<std::string> plot_path, log_path;
};

// Runs every variant with every seed and prints the table to `out` (progress, one line
// per run, to `progress` when given). A variant the model cannot have (a one-hot wider
// than n_embd) gets a row saying why; any other error ends the comparison.
void run_compare(const CompareCommand& command, std::ostream& out, std::ostream* progress = nullptr);

}  // namespace microgpt
