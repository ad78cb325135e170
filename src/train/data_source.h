// Where a training run gets its data. A source owns the tokenizer, gives the batch of
// any step and the held-out set, and says what it was made from, so that a checkpoint
// can refuse to resume on other data. Two sources: documents, one per line (names), and
// a continuous text (a book) read in windows; docs/algorithm.md §2 says which step reads
// what.
//
// Not here: reading and tokenizing files (data/dataset.h), what a run does with a batch
// (train/run.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "data/text.h"
#include "model/config.h"

namespace microgpt {

// What a checkpoint records of its data: the path (or "<embedded names>"), the number
// of documents (of characters, for a text) and the CRC-32 of the bytes they were read
// from.
struct DataIdentity {
  std::string source;
  int64_t docs = 0;
  uint32_t crc = 0;
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual const Tokenizer& tokenizer() const = 0;
  virtual DataIdentity identity() const = 0;
  virtual int64_t size() const = 0;              // documents (characters of a text) in all
  virtual int64_t train_size() const = 0;        // of them, trained on
  virtual int64_t validation_size() const = 0;   // of them, held out
  // The batch of training step `step` (from 0); valid until the next call.
  virtual const Batch& batch(int64_t step) = 0;
  // The held-out documents (no documents without a validation share).
  virtual const Batch& validation() = 0;
};

// Python's int(round(n * frac)) documents held out, at most n - 1.
int64_t held_out_count(int64_t n_docs, double val_frac);

// Which training document (0..n-1, in the shuffled order) the k-th document a run
// trains on is: k mod n, as microgpt.py does, in every pass over the data; with
// reshuffle, pass e >= 1 instead follows random.shuffle(range(n)) with a generator seeded
// by seed ^ (e * 0x9E3779B97F4A7C15), a function of (seed, e) only, so a resumed run
// sees the same order. The first pass is unchanged either way.
class EpochOrder {
 public:
  EpochOrder(int64_t n, uint64_t seed, bool reshuffle);
  int64_t at(int64_t k);

 private:
  int64_t n_;
  uint64_t seed_;
  bool reshuffle_;
  int64_t epoch_ = -1;
  std::vector<int64_t> perm_;
};

// A list of documents, as microgpt.py trains on it: shuffled once by the run's
// generator, the last share held out, step s taking documents s*B .. s*B+B-1 of the
// training share (wrapping, in EpochOrder), each cut to block_size + 1 tokens.
class DocumentSource final : public DataSource {
 public:
  // Shuffles with `rng`, which must be freshly seeded with the run's seed: the draws
  // come before the initial weights', as in microgpt.py. Uses train.batch_size,
  // train.val_frac, train.seed and train.reshuffle.
  DocumentSource(Dataset data, PyRandom& rng, const TrainConfig& train, int64_t block_size);

  const Tokenizer& tokenizer() const override { return tokenizer_; }
  DataIdentity identity() const override;
  int64_t size() const override { return data_.size(); }
  int64_t train_size() const override { return data_.size() - n_val_; }
  int64_t validation_size() const override { return n_val_; }
  const Batch& batch(int64_t step) override;
  const Batch& validation() override;

  const Dataset& dataset() const { return data_; }
  // The shuffled list: order()[k] is the k-th document.
  const std::vector<int64_t>& order() const { return order_; }

 private:
  void fill(std::span<const int64_t> which, TokenizedDocs& tokens, Batch& out) const;

  Dataset data_;
  Tokenizer tokenizer_;
  std::vector<int64_t> order_;
  int64_t n_val_;
  int64_t batch_size_, block_size_;
  EpochOrder epochs_;
  std::vector<int64_t> which_;
  TokenizedDocs batch_tokens_, val_tokens_;
  Batch batch_;
  std::optional<Batch> validation_;
};

// Windows over a stretch of text for evaluation: starting block_size apart, each
// block_size + 1 tokens long (the last what is left, at least 2), so that every token but
// the first is predicted once. The windows point into `storage`.
void text_windows(std::span<const Token> tokens, int64_t block_size, std::vector<Token>& storage, Batch& out);

// A continuous text, as nanoGPT trains on a book: the last held_out_count(n, val_frac)
// characters held out; step s takes batch_size windows of block_size + 1 characters of
// the rest (each predicting block_size of them) at offsets drawn by a generator seeded
// with (seed, s) alone, so a resumed run draws the same ones. The held-out characters
// are read in windows block_size apart, so each but the first is predicted once.
class TextSource final : public DataSource {
 public:
  // Uses train.batch_size, train.val_frac and train.seed. Throws Error naming the file
  // when the text is too short for one window (or, with a validation share, for one
  // held-out prediction).
  TextSource(const Text& text, const TrainConfig& train, int64_t block_size);

  const Tokenizer& tokenizer() const override { return tokenizer_; }
  DataIdentity identity() const override { return identity_; }
  int64_t size() const override { return n_; }
  int64_t train_size() const override { return n_ - n_val_; }
  int64_t validation_size() const override { return n_val_; }
  const Batch& batch(int64_t step) override;
  const Batch& validation() override;

  // The offset of window i of step s (for tests).
  std::vector<int64_t> offsets(int64_t step) const;

 private:
  void append_tokens(int64_t begin, int64_t end, std::vector<Token>& out) const;

  Tokenizer tokenizer_;
  DataIdentity identity_;
  // The text as token ids, two bytes each while the vocabulary allows, four otherwise.
  std::vector<uint16_t> narrow_;
  std::vector<Token> wide_;
  int64_t n_, n_val_, batch_size_, block_size_;
  uint64_t seed_;
  std::vector<Token> batch_tokens_, val_tokens_;
  Batch batch_;
  std::optional<Batch> validation_;
};

// The documents of a data file, or the embedded names without one.
Dataset load_documents(const std::optional<std::string>& path);

// The source a run of this format reads: documents (shuffled by `rng`, which must be
// freshly seeded) or a text (for which `rng` is left as it is).
std::unique_ptr<DataSource> make_data_source(const std::optional<std::string>& path, PyRandom& rng,
                                             const TrainConfig& train, int64_t block_size);

}  // namespace microgpt
