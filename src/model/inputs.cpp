#include "model/inputs.h"

#include <cmath>

namespace microgpt {

InputChannels input_channels(const ModelConfig& model, const TrainConfig& train) {
  const int64_t C = model.n_embd;
  if (train.combine == "concat") return {0, C / 2, C / 2, C};
  return {0, C, 0, C};
}

std::vector<FixedBlock> fixed_inputs(const ModelConfig& model, const TrainConfig& train) {
  const ParamLayout layout(model);
  const InputChannels ch = input_channels(model, train);
  std::vector<FixedBlock> blocks;
  auto fixed = [&](const ParamTensor& t, int64_t begin, int64_t end) {
    if (end > begin) blocks.push_back({t.offset, t.rows, t.cols, begin, end});
  };
  const ParamTensor &wte = layout.wte(), &wpe = layout.wpe();
  if (train.wte == "learned") {
    fixed(wte, 0, ch.token_begin);
    fixed(wte, ch.token_end, wte.cols);
  } else {
    fixed(wte, 0, wte.cols);
  }
  if (train.wpe == "learned") {
    fixed(wpe, 0, ch.position_begin);
    fixed(wpe, ch.position_end, wpe.cols);
  } else {
    fixed(wpe, 0, wpe.cols);
  }
  return blocks;
}

int64_t trained_param_count(const ModelConfig& model, const TrainConfig& train) {
  int64_t n = ParamLayout(model).total();
  for (const FixedBlock& b : fixed_inputs(model, train)) n -= b.rows * (b.col_end - b.col_begin);
  return n;
}

void write_fixed_inputs(const ModelConfig& model, const TrainConfig& train, std::span<float> params) {
  const ParamLayout layout(model);
  const InputChannels ch = input_channels(model, train);
  const ParamTensor &wte = layout.wte(), &wpe = layout.wpe();
  auto at = [&](const ParamTensor& t, int64_t r, int64_t c) -> float& {
    return params[static_cast<size_t>(t.offset + r * t.cols + c)];
  };
  // Outside its channels a vector is zero (concatenation).
  for (int64_t r = 0; r < wte.rows; r++) {
    for (int64_t c = 0; c < wte.cols; c++) {
      if (c >= ch.token_begin && c < ch.token_end) continue;
      at(wte, r, c) = 0.0f;
    }
  }
  for (int64_t r = 0; r < wpe.rows; r++) {
    for (int64_t c = 0; c < wpe.cols; c++) {
      if (c >= ch.position_begin && c < ch.position_end) continue;
      at(wpe, r, c) = 0.0f;
    }
  }
  if (train.wte == "onehot" || train.wte == "scalar") {
    for (int64_t r = 0; r < wte.rows; r++) {
      for (int64_t c = ch.token_begin; c < ch.token_end; c++) {
        const int64_t k = c - ch.token_begin;
        float v = 0.0f;
        if (train.wte == "onehot") v = k == r ? 1.0f : 0.0f;
        else if (k == 0) v = wte.rows > 1 ? static_cast<float>(static_cast<double>(r) / static_cast<double>(wte.rows - 1)) : 0.0f;
        at(wte, r, c) = v;
      }
    }
  }
  if (train.wpe == "none" || train.wpe == "sinusoidal") {
    const int64_t d = ch.position_end - ch.position_begin;
    for (int64_t p = 0; p < wpe.rows; p++) {
      for (int64_t c = ch.position_begin; c < ch.position_end; c++) {
        const int64_t k = c - ch.position_begin;
        float v = 0.0f;
        if (train.wpe == "sinusoidal") {
          // channel pair (2i, 2i+1): sin and cos of p / 10000^(2i/d)
          const double angle = static_cast<double>(p) / std::pow(10000.0, static_cast<double>(k - k % 2) / static_cast<double>(d));
          v = static_cast<float>(k % 2 == 0 ? std::sin(angle) : std::cos(angle));
        }
        at(wpe, p, c) = v;
      }
    }
  }
}

bool default_inputs(const TrainConfig& train) {
  return train.wte == "learned" && train.wpe == "learned" && train.combine == "add";
}

}  // namespace microgpt
