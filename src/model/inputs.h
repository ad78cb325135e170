// What the model receives at each position: a token vector and a position vector,
// added (or side by side), and which of their numbers training may change. The chapter
// on embeddings asks what learned vectors buy; these are the alternatives `microgpt
// compare` measures (fast engine only; the reference engine is microgpt.py's):
//
//   --wte learned     (default) a trained row per token
//         frozen      the same random rows, never trained
//         onehot      row t is the unit vector e_t (needs the width to hold the vocabulary)
//         scalar      the token id itself, scaled to [0, 1], in the first channel, zeros
//                     elsewhere: literally "just the token id"
//   --wpe learned     (default) a trained row per position
//         none        zeros: the model is told nothing of position
//         sinusoidal  the original Transformer's fixed vectors, sin and cos of p / 10000^(2i/d)
//         frozen      random rows, never trained
//   --combine add     (default) wte[token] + wpe[position], each n_embd wide
//             concat  the token vector in the first n_embd/2 channels and the position
//                     vector in the rest (each then half as wide), side by side
//
// Every choice is held in the same two tensors, wte (vocab, n_embd) and wpe (block_size,
// n_embd), so the parameter layout, the kernels, checkpoints, sampling and inspection do
// not change: a fixed vector is written into them once, after the random draws (which
// are drawn for every choice, so the other weights start the same), and concatenation
// is addition of vectors that are zero in each other's channels. Training leaves the
// fixed numbers alone: their gradient is zeroed before Adam, so they keep their bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"

namespace microgpt {

// A block of a tensor that training does not change: rows [0, rows) of columns
// [col_begin, col_end), in a row-major tensor starting at `offset` with `cols` columns.
struct FixedBlock {
  int64_t offset = 0, rows = 0, cols = 0, col_begin = 0, col_end = 0;
};

// The channels of wte and wpe that hold the token and the position vectors.
struct InputChannels {
  int64_t token_begin = 0, token_end = 0, position_begin = 0, position_end = 0;
};
InputChannels input_channels(const ModelConfig& model, const TrainConfig& train);

// The parts of wte and wpe that training does not change.
std::vector<FixedBlock> fixed_inputs(const ModelConfig& model, const TrainConfig& train);
// The parameters training changes (all of them but the fixed inputs).
int64_t trained_param_count(const ModelConfig& model, const TrainConfig& train);
// Writes the fixed vectors (one-hot, scalar, sinusoidal, zeros) into the wte and wpe of
// `params`, which hold the random draws; frozen rows keep their draws (outside their
// channels, zeros).
void write_fixed_inputs(const ModelConfig& model, const TrainConfig& train, std::span<float> params);

// Whether the input is the default (learned, learned, add): microgpt.py's.
bool default_inputs(const TrainConfig& train);

}  // namespace microgpt
