#include "train/sampler.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace microgpt {

int64_t pick_token(std::vector<double> w, PyRandom& rng, const SampleOptions& o) {
  const auto n = static_cast<int64_t>(w.size());
  if (o.temperature == 0.0) {  // greedy: the first of the largest logits
    return std::max_element(w.begin(), w.end()) - w.begin();
  }
  const bool top_k = o.top_k > 0 && o.top_k < n;
  const bool top_p = o.top_p < 1.0;
  if (top_k || top_p) {
    // Most likely first; equal probabilities keep token order.
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return w[static_cast<size_t>(a)] > w[static_cast<size_t>(b)]; });
    int64_t keep = top_k ? o.top_k : n;
    if (top_p) {
      double total = 0.0;
      for (int64_t i = 0; i < keep; i++) total += w[static_cast<size_t>(order[static_cast<size_t>(i)])];
      double sum = 0.0;
      int64_t k = 0;
      while (k < keep) {
        sum += w[static_cast<size_t>(order[static_cast<size_t>(k)])];
        k++;
        if (sum >= o.top_p * total) break;
      }
      keep = k;
    }
    for (int64_t i = keep; i < n; i++) w[static_cast<size_t>(order[static_cast<size_t>(i)])] = 0.0;
  }
  return rng.choices(w);
}

void check_prefix_fits(const SampleOptions& o, int64_t block_size) {
  const auto n_prefix = static_cast<int64_t>(o.prefix.size());
  if (n_prefix >= block_size) {
    throw usage_error("--prefix has " + std::to_string(n_prefix) + " characters; the model's block size (" +
                      std::to_string(block_size) + ") leaves no room to add any");
  }
}

}  // namespace microgpt
