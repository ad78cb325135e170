// Drawing from a model. Names: the loop microgpt.py runs after training (from BOS, one
// token at a time until BOS or block_size tokens), with the controls of `microgpt
// sample`: temperature 0 for the most likely token, top-k and top-p filtering, a prefix
// every sample starts with, and a length limit; with none of them set it makes exactly
// the draws microgpt.py makes. Text: any number of characters after a context, the
// window of the last block_size characters sliding along (sample_text).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"

namespace microgpt {

struct SampleOptions {
  double temperature = 0.5;   // > 0; 0 takes the most likely token every time
  int64_t top_k = 0;          // keep only the k most likely tokens (0: all)
  double top_p = 1.0;         // keep the most likely tokens whose probabilities add up to p
  std::vector<Token> prefix;  // characters every sample starts with
  int64_t max_len = 0;        // at most this many characters (0: block_size)
};

// Plain sampling at a temperature, as microgpt.py samples.
inline SampleOptions at_temperature(double temperature) {
  SampleOptions o;
  o.temperature = temperature;
  return o;
}

// The index the controls pick from a model's output (probabilities, or logits when
// temperature is 0).
int64_t pick_token(std::vector<double> weights, PyRandom& rng, const SampleOptions& options);

// Throws a usage error when the prefix leaves no room in a context of block_size.
void check_prefix_fits(const SampleOptions& options, int64_t block_size);

// One sample's characters (token ids, prefix included, BOS excluded). Model: an Engine
// (train/engine.h), or a FastModel or ReferenceModel directly: start_sequence() and
// std::vector<double> next(Token, double temperature).
template <class Model>
std::vector<Token> sample_sequence(Model& model, PyRandom& rng, const SampleOptions& o, Token bos, int64_t block_size) {
  check_prefix_fits(o, block_size);
  const int64_t max_len = o.max_len > 0 ? std::min(o.max_len, block_size) : block_size;
  const auto n_prefix = static_cast<int64_t>(o.prefix.size());
  std::vector<Token> out = o.prefix;
  model.start_sequence();
  Token token = bos;
  // As microgpt.py: at each position feed the current token and draw the next one; the
  // prefix's characters are fed instead of drawn.
  for (int64_t pos = 0; pos < block_size; pos++) {
    std::vector<double> w = model.next(token, o.temperature);
    if (pos < n_prefix) {
      token = o.prefix[static_cast<size_t>(pos)];
      continue;
    }
    token = static_cast<Token>(pick_token(std::move(w), rng, o));
    if (token == bos) break;
    out.push_back(token);
    if (static_cast<int64_t>(out.size()) >= max_len) break;
  }
  return out;
}

// A text model's sample is this many characters unless asked otherwise (the samples
// after training, and `microgpt sample` without --max-len).
inline constexpr int64_t kTextSampleLength = 500;

// Where a text model's sample starts when no prefix is given: after a line break, as a
// new line of the text would (or after the first character of a text without any).
inline Token text_start_token(const Tokenizer& tokenizer) {
  const Token newline = tokenizer.id_of(U'\n');
  return newline >= 0 ? newline : 0;
}

// A text model's sample: `count` tokens drawn after `context` (at least one token: a
// prefix, or a line break), each passed to on_token as it comes. The model reads the
// last block_size tokens: incrementally while the context fits, and then, as the window
// slides, the whole window again for every token (Model: start_sequence, next and
// next_window, as an Engine has them).
template <class Model>
std::vector<Token> sample_text(Model& model, PyRandom& rng, const SampleOptions& o, std::span<const Token> context,
                               int64_t block_size, int64_t count, const std::function<void(Token)>& on_token = {}) {
  std::vector<Token> window(context.begin(), context.end());
  if (static_cast<int64_t>(window.size()) > block_size) window.erase(window.begin(), window.end() - block_size);
  std::vector<Token> out;
  if (count <= 0 || window.empty()) return out;
  std::vector<double> w = model.next_window(window, o.temperature);
  for (int64_t k = 0; k < count; k++) {
    const auto token = static_cast<Token>(pick_token(std::move(w), rng, o));
    out.push_back(token);
    if (on_token) on_token(token);
    if (k + 1 == count) break;
    if (static_cast<int64_t>(window.size()) < block_size) {
      window.push_back(token);
      w = model.next(token, o.temperature);  // the next position of the same window
    } else {
      window.erase(window.begin());
      window.push_back(token);
      w = model.next_window(window, o.temperature);
    }
  }
  return out;
}

}  // namespace microgpt
