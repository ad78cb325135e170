// Drawing names from a model: the loop microgpt.py runs after training (from BOS, one
// token at a time until BOS or block_size tokens), with the controls of `microgpt
// sample`: temperature 0 for the most likely token, top-k and top-p filtering, a prefix
// every sample starts with, and a length limit. With none of them set it makes exactly
// the draws microgpt.py makes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "train/engine.h"

namespace microgpt {

struct SampleOptions {
  double temperature = 0.5;   // > 0; 0 takes the most likely token every time
  int64_t top_k = 0;          // keep only the k most likely tokens (0: all)
  double top_p = 1.0;         // keep the most likely tokens whose probabilities add up to p
  std::vector<Token> prefix;  // characters every sample starts with
  int64_t max_len = 0;        // at most this many characters (0: block_size)
};

// One sample's characters (token ids, prefix included, BOS excluded).
std::vector<Token> sample_sequence(Engine& engine, PyRandom& rng, const SampleOptions& options, Token bos,
                                   int64_t block_size);

// The index the controls pick from the engine's output (probabilities, or logits when
// temperature is 0). Exposed for tests.
int64_t pick_token(std::vector<double> weights, PyRandom& rng, const SampleOptions& options);

}  // namespace microgpt
