// Where a training run gets its data. A source owns the tokenizer, gives the batch of
// any step and the held-out set, and says what it was made from, so that a checkpoint
// can refuse to resume on other data. Documents (one per line: names) are today's
// source; the order in which they are visited is docs/algorithm.md §2.
//
// Not here: reading and tokenizing files (data/dataset.h), what a run does with a batch
// (train/run.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "model/config.h"

namespace microgpt {

// What a checkpoint records of its data: the path (or "<embedded names>"), the number
// of documents and the CRC-32 of the bytes they were read from.
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
  virtual int64_t size() const = 0;              // documents in all
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

// The documents of a data file, or the embedded names without one.
Dataset load_documents(const std::optional<std::string>& path);

}  // namespace microgpt
