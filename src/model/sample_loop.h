// microgpt.py's sampling loop, for any model that decodes one position at a time: from
// BOS, feed the current token, draw the next one from the probabilities with
// random.choices, stop at BOS or after block_size positions. The engines' sample()
// methods use it; the `sample` command's controls (prefix, top-k, ...) live in
// src/train/sampler.h.
#pragma once

#include <cstdint>
#include <vector>

#include "core/python_random.h"

namespace microgpt {

// Model: start_sequence() and std::vector<double> next(TokenT token, double temperature).
template <class TokenT, class Model>
std::vector<TokenT> sample_loop(Model& model, PyRandom& rng, double temperature, TokenT bos, int64_t block_size) {
  std::vector<TokenT> out;
  TokenT token = bos;
  model.start_sequence();
  for (int64_t pos = 0; pos < block_size; pos++) {
    token = static_cast<TokenT>(rng.choices(model.next(token, temperature)));
    if (token == bos) break;
    out.push_back(token);
  }
  return out;
}

}  // namespace microgpt
