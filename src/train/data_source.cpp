#include "train/data_source.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/text.h"

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

TextSource::TextSource(const Text& text, const TrainConfig& train, int64_t block_size)
    : tokenizer_(text.chars, /*with_bos=*/false),
      identity_{text.source, text.size(), text.bytes_crc},
      n_(text.size()),
      n_val_(held_out_count(text.size(), train.val_frac)),
      batch_size_(train.batch_size),
      block_size_(block_size),
      seed_(train.seed) {
  if (train_size() < block_size + 1) {
    throw Error("data file '" + text.source + "' has " + std::to_string(train_size()) + " characters to train on" +
                (n_val_ > 0 ? " (" + std::to_string(n_val_) + " more are held out)" : std::string()) +
                ", but a window of --block-size " + std::to_string(block_size) + " needs at least " +
                std::to_string(block_size + 1));
  }
  if (train.val_frac > 0.0 && n_val_ < 2) {
    throw Error("data file '" + text.source + "' is too short to hold out anything to validate on (--val-frac " +
                python_float_repr(train.val_frac) + " of " + std::to_string(n_) +
                " characters is less than 2); use --val-frac 0");
  }
  if (tokenizer_.vocab_size() <= 65536) {
    narrow_.reserve(static_cast<size_t>(n_));
    for (char32_t c : text.chars) narrow_.push_back(static_cast<uint16_t>(tokenizer_.id_of(c)));
  } else {
    wide_.reserve(static_cast<size_t>(n_));
    for (char32_t c : text.chars) wide_.push_back(tokenizer_.id_of(c));
  }
}

void TextSource::append_tokens(int64_t begin, int64_t end, std::vector<Token>& out) const {
  for (int64_t i = begin; i < end; i++) {
    out.push_back(narrow_.empty() ? wide_[static_cast<size_t>(i)] : static_cast<Token>(narrow_[static_cast<size_t>(i)]));
  }
}

std::vector<int64_t> TextSource::offsets(int64_t step) const {
  // A generator of its own for each step: a function of (seed, step) alone.
  PyRandom rng(seed_ ^ ((static_cast<uint64_t>(step) + 1) * 0xBF58476D1CE4E5B9ULL));
  std::vector<int64_t> out(static_cast<size_t>(batch_size_));
  const auto starts = static_cast<uint64_t>(train_size() - block_size_);  // windows that fit
  for (int64_t& o : out) o = static_cast<int64_t>(rng.randbelow(starts));
  return out;
}

const Batch& TextSource::batch(int64_t step) {
  const int64_t span = block_size_ + 1;
  batch_tokens_.clear();
  batch_tokens_.reserve(static_cast<size_t>(batch_size_ * span));
  for (int64_t o : offsets(step)) append_tokens(o, o + span, batch_tokens_);
  batch_.docs.clear();
  for (int64_t i = 0; i < batch_size_; i++) batch_.docs.emplace_back(batch_tokens_.data() + i * span, static_cast<size_t>(span));
  batch_.tokens = batch_size_ * block_size_;
  return batch_;
}

const Batch& TextSource::validation() {
  if (!validation_) {
    std::vector<Token> held_out;
    append_tokens(train_size(), n_, held_out);
    validation_.emplace();
    text_windows(held_out, block_size_, val_tokens_, *validation_);
  }
  return *validation_;
}

void text_windows(std::span<const Token> tokens, int64_t block_size, std::vector<Token>& storage, Batch& out) {
  const auto n = static_cast<int64_t>(tokens.size());
  storage.clear();
  out.docs.clear();
  out.tokens = 0;
  std::vector<std::pair<int64_t, int64_t>> windows;
  for (int64_t s = 0; s + 1 < n; s += block_size) windows.emplace_back(s, std::min(s + block_size + 1, n));
  for (const auto& [b, e] : windows) storage.insert(storage.end(), tokens.begin() + b, tokens.begin() + e);
  int64_t at = 0;
  for (const auto& [b, e] : windows) {  // pointers taken once storage is whole
    out.docs.emplace_back(storage.data() + at, static_cast<size_t>(e - b));
    out.tokens += e - b - 1;
    at += e - b;
  }
}

Dataset load_documents(const std::optional<std::string>& path) {
  return path ? load_dataset(*path) : embedded_dataset();
}

std::unique_ptr<DataSource> make_data_source(const std::optional<std::string>& path, PyRandom& rng,
                                             const TrainConfig& train, int64_t block_size) {
  if (train.is_text()) {
    if (!path) throw usage_error("--format text needs a text file (--data): the embedded names are a list of lines");
    return std::make_unique<TextSource>(load_text(*path), train, block_size);
  }
  return std::make_unique<DocumentSource>(load_documents(path), rng, train, block_size);
}

}  // namespace microgpt
