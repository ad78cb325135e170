// Python's `random` module, reproduced bit for bit: MT19937 seeded with init_by_array
// from the seed's 32-bit words, random(), gauss() with its cached second value,
// getrandbits(), randbelow(), shuffle() and choices() with weights.
// Only the parts microgpt uses; no other distributions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace microgpt {

class PyRandom {
 public:
  static constexpr int64_t kStateWords = 624;

  // Python's random.seed(a) for a non-negative integer a.
  explicit PyRandom(uint64_t seed);

  uint32_t next_u32();                        // genrand_uint32
  double random();                            // [0, 1) with 53 random bits
  double gauss(double mu, double sigma);      // Box-Muller, one value cached
  uint64_t getrandbits(int k);                // 0 < k <= 64
  uint64_t randbelow(uint64_t n);             // uniform in [0, n), n > 0

  // random.shuffle(x)
  template <class T>
  void shuffle(std::vector<T>& x) {
    for (size_t i = x.size(); i-- > 1;) {
      size_t j = static_cast<size_t>(randbelow(static_cast<uint64_t>(i) + 1));
      std::swap(x[i], x[j]);
    }
  }

  // random.choices(range(len(weights)), weights=weights)[0]
  int64_t choices(std::span<const double> weights);

  // The complete state, for checkpoints: the 624 words, the position in them and the
  // cached gauss value.
  struct State {
    std::array<uint32_t, kStateWords> mt{};
    int64_t index = 0;
    std::optional<double> gauss_next;
  };
  State state() const;
  void set_state(const State& s);

 private:
  void init_genrand(uint32_t s);
  void init_by_array(std::span<const uint32_t> key);

  std::array<uint32_t, kStateWords> mt_{};
  int64_t index_ = kStateWords + 1;
  std::optional<double> gauss_next_;
};

}  // namespace microgpt
