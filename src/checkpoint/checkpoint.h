// Checkpoints in the safetensors format, so that other tools can read the weights:
// an 8-byte little-endian header length, a JSON header, then the raw little-endian
// tensor bytes. Tensors are named as microgpt's parameters (wte, wpe, lm_head,
// layer0.attn_wq, ...) with shape [rows, cols]: F32 from the fast engine, F64 from the
// reference engine. Adam's moments are the flat tensors optimizer.adam_m and
// optimizer.adam_v ([num_params], the parameters' dtype, in layout order; with --ema also
// optimizer.weights, the weights Adam trains, the named tensors being their average) and the random
// generator's 624 words are rng.mt (U32). __metadata__ (strings only, as the format
// requires) holds the format name and version, the whole configuration, the vocabulary
// in token order, the engine, the step reached and the steps planned, the data it was
// trained on, the rest of the generator's state and a CRC-32 of all tensor bytes.
//
// Every file is written to a temporary name and renamed, so a crash leaves the previous
// checkpoint or the new one, never a torn file. Loading checks everything and names the
// file in any error. Little-endian hosts only (x86-64, arm64).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/python_random.h"
#include "model/config.h"

namespace microgpt {

inline constexpr const char* kCheckpointFormat = "microgpt";
inline constexpr int kCheckpointVersion = 1;

struct CheckpointData {
  std::string engine;  // "fast" or "reference"
  ModelConfig model;
  TrainConfig train;
  std::u32string vocab;  // the characters in token order; BOS is vocab.size()
  int64_t step = 0;      // steps done (the plan is train.steps)
  int64_t threads = 1;   // the fast engine's sums depend on it (processes x threads, under mpirun)
  // What it was trained on: the path (or "<embedded names>"), its document count and
  // dataset_crc() of its documents, to refuse resuming on different data.
  std::string data_source;
  int64_t data_docs = 0;
  uint32_t data_crc = 0;
  bool f64 = false;  // tensor dtype: F64 (reference) or F32 (fast)
  std::vector<double> params, adam_m, adam_v;  // layout order; F32 values are exact
  // With train.ema > 0, params is the running average (the model) and these are the
  // weights Adam trains (tensor optimizer.weights); empty otherwise.
  std::vector<double> trained_params;
  PyRandom::State rng;
};

void save_checkpoint(const std::string& path, const CheckpointData& c);
// The settings a checkpoint records under "config": (name, value as JSON) pairs, in
// name order.
std::vector<std::pair<std::string, std::string>> recorded_settings(const ModelConfig& model, const TrainConfig& train);
CheckpointData load_checkpoint(const std::string& path);

}  // namespace microgpt
