// The training driver: reads the data, shuffles it with the run's generator, holds out
// a validation share, builds the tokenizer and the engine, trains (from scratch or from a
// checkpoint), writes checkpoints, evaluates and samples, printing what microgpt.py
// prints and optionally logging JSON lines. Engines plug in below it (train/engine.h);
// the command line sits above.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "model/config.h"
#include "train/engine.h"
#include "train/progress.h"

namespace microgpt {

struct TrainOptions {
  std::optional<std::string> data_path;  // none: the embedded names
  EngineOptions engine;
  ModelConfig model;  // vocab_size is filled in from the data
  TrainConfig train;
  double val_frac = 0.0;   // hold out the last share of the shuffled documents
  int64_t eval_every = 0;  // validation loss every N steps (0: only at the end)
  std::optional<std::string> log_path;
  std::optional<std::string> out_path;  // the checkpoint (the command line's default: model.safetensors)
  int64_t checkpoint_every = 0;  // also write the checkpoint every N steps
  int64_t stop_after = 0;        // end after this step, checkpoint written (0: run every step)
  // Continue the run saved in this checkpoint, with the configuration stored there;
  // model, engine and train settings above are then ignored (threads too, unless set).
  std::optional<std::string> resume_path;
  bool threads_given = false;
  std::optional<std::string> plot_loss_path;
  // How progress is shown: `progress` (stderr) gets a live status line or periodic
  // lines. With `interactive` (stdout and stderr are one terminal) stdout gets no line
  // per step, only the last step's, since the live status shows the rest.
  bool interactive = false;
  std::ostream* progress = nullptr;
  Progress::Mode progress_mode = Progress::Mode::off;
};

// Documents split as the driver splits them: python's int(round(n * frac)) held out,
// at most n - 1.
int64_t validation_count(int64_t n_docs, double val_frac);

// A dataset as a run sees it: shuffled by the seed's generator, tokenized, split.
struct Corpus {
  Dataset data;
  std::vector<int64_t> order;  // the shuffled list: order[k] is the k-th document
  Tokenizer tokenizer;
  int64_t n_train = 0, n_val = 0;
  // Documents begin..end-1 of the shuffled list, tokenized into `out` (at most
  // max_tokens tokens each, 0: all).
  std::vector<DocRef> documents(int64_t begin, int64_t end, TokenizedDocs& out, int64_t max_tokens = 0) const;
};
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

// Reads the data (none: the embedded names), shuffles it with `rng` (which must be
// freshly seeded, as microgpt.py's is) and splits it.
Corpus prepare_corpus(const std::optional<std::string>& data_path, PyRandom& rng, double val_frac);

// Runs a whole training job; throws Error on bad input. Progress goes to `out`.
void run_training(const TrainOptions& options, std::ostream& out);

}  // namespace microgpt
