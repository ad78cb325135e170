// Named sets of hyperparameters for `microgpt train --preset NAME`. Flags given
// explicitly override a preset's values.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"

namespace microgpt {

struct Preset {
  std::string name;
  std::string description;
  int64_t n_layer, n_embd, n_head, block_size;
  int64_t batch_size, steps;
  double lr;
  int64_t eval_every;  // 0: validation only at the end
  double dropout, ema;  // fast-engine training aids (0: off)
  bool reshuffle;       // a new document order in every pass
  std::string format = "lines";   // "text": one continuous text in windows (a book)
  std::string init = "microgpt";  // "gpt2": std 0.02, residual projections scaled down
  int64_t warmup = 0;             // steps of linearly rising learning rate
};

const std::vector<Preset>& presets();
const Preset* find_preset(const std::string& name);

// Sets the preset's values in `model` and `train`, except the settings `given` says were
// chosen explicitly (asked by their names: "n_layer", "n_embd", "n_head", "block_size",
// "batch_size", "steps", "lr", "eval_every", "dropout", "ema", "reshuffle", "format",
// "init", "warmup").
void apply_preset(const Preset& preset, ModelConfig& model, TrainConfig& train,
                  const std::function<bool(const std::string& setting)>& given);

}  // namespace microgpt
