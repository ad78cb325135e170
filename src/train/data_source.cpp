#include "train/data_source.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace microgpt {

int64_t held_out_count(int64_t n_docs, double val_frac) {
  if (!(val_frac > 0.0)) return 0;
  const auto n_val = static_cast<int64_t>(std::nearbyint(static_cast<double>(n_docs) * val_frac));  // round half even
  return std::min(n_val, n_docs - 1);
}

EpochOrder::EpochOrder(int64_t n, uint64_t seed, bool reshuffle) : n_(n), seed_(seed), reshuffle_(reshuffle) {}

int64_t EpochOrder::at(int64_t k) {
  const int64_t epoch = k / n_, i = k % n_;
  if (!reshuffle_ || epoch == 0) return i;
  if (epoch != epoch_) {
    perm_.resize(static_cast<size_t>(n_));
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    PyRandom rng(seed_ ^ (static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL));
    rng.shuffle(perm_);
    epoch_ = epoch;
  }
  return perm_[static_cast<size_t>(i)];
}

DocumentSource::DocumentSource(Dataset data, PyRandom& rng, const TrainConfig& train, int64_t block_size)
    : data_(std::move(data)),
      tokenizer_(data_.chars),
      order_(static_cast<size_t>(data_.size())),
      n_val_(held_out_count(data_.size(), train.val_frac)),
      batch_size_(train.batch_size),
      block_size_(block_size),
      epochs_(data_.size() - n_val_, train.seed, train.reshuffle),
      which_(static_cast<size_t>(train.batch_size)) {
  // random.shuffle(docs), as a permutation of document indices
  std::iota(order_.begin(), order_.end(), int64_t{0});
  rng.shuffle(order_);
}

DataIdentity DocumentSource::identity() const { return DataIdentity{data_.source, data_.size(), dataset_crc(data_)}; }

void DocumentSource::fill(std::span<const int64_t> which, TokenizedDocs& tokens, Batch& out) const {
  tokenize_documents(data_, tokenizer_, which, tokens, block_size_ + 1);
  out.docs.clear();
  out.tokens = 0;
  for (int64_t i = 0; i < tokens.size(); i++) {
    out.docs.emplace_back(tokens.begin(i), static_cast<size_t>(tokens.length(i)));
    out.tokens += std::min(block_size_, tokens.length(i) - 1);
  }
}

const Batch& DocumentSource::batch(int64_t step) {
  for (int64_t i = 0; i < batch_size_; i++) {
    which_[static_cast<size_t>(i)] = order_[static_cast<size_t>(epochs_.at(step * batch_size_ + i))];
  }
  fill(which_, batch_tokens_, batch_);
  return batch_;
}

const Batch& DocumentSource::validation() {
  if (!validation_) {
    validation_.emplace();
    fill(std::span(order_).subspan(static_cast<size_t>(train_size())), val_tokens_, *validation_);
  }
  return *validation_;
}

Dataset load_documents(const std::optional<std::string>& path) {
  return path ? load_dataset(*path) : embedded_dataset();
}

}  // namespace microgpt
