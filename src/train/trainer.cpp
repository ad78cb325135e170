#include "train/trainer.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <ostream>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "inspect/plots.h"
#include "train/sampler.h"

namespace microgpt {

namespace {

// JSON lines as the reference logs them: {"step": k, "loss": x}, {"sample": i, "text": "..."};
// and {"step": k, "val_loss": x} for validation. A resumed run appends to its log.
class JsonLog {
 public:
  JsonLog(const std::optional<std::string>& path, bool append) {
    if (!path) return;
    file_.open(*path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
    if (!file_) throw Error("cannot write log file '" + *path + "': " + std::strerror(errno));
    path_ = *path;
  }
  void step(int64_t step, const char* key, double loss) {
    if (file_.is_open()) file_ << "{\"step\": " << step << ", \"" << key << "\": " << python_float_repr(loss) << "}\n";
  }
  void sample(int64_t index, const std::u32string& text) {
    if (file_.is_open()) file_ << "{\"sample\": " << index << ", \"text\": " << json_quote(text) << "}\n";
  }
  void flush() {
    if (file_.is_open()) file_.flush();
  }
  void close() {
    if (!file_.is_open()) return;
    file_.close();
    if (!file_) throw Error("cannot write log file '" + path_ + "': write failed");
  }

 private:
  std::ofstream file_;
  std::string path_;
};

// "step    1 / 1000 | loss 3.3660", as microgpt.py prints it ({:4d} and {:.4f}), without
// printf's cost on every step.
std::string step_line(int64_t step, int64_t steps, const char* what, double loss) {
  char buf[96];
  char* p = buf;
  auto number = [&p](int64_t v) {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, v);
    for (auto n = r.ptr - digits; n < 4; n++) *p++ = ' ';
    p = std::copy(digits, r.ptr, p);
  };
  p = std::copy_n("step ", 5, p);
  number(step);
  p = std::copy_n(" / ", 3, p);
  number(steps);
  p = std::copy_n(" | ", 3, p);
  while (*what) *p++ = *what++;
  *p++ = ' ';
  if (std::isfinite(loss)) {
    p = std::to_chars(p, buf + sizeof buf, loss, std::chars_format::fixed, 4).ptr;
  } else {
    p = std::copy_n(std::isnan(loss) ? "nan" : "inf", 3, p);
  }
  return std::string(buf, p);
}

std::string sample_line(int64_t index, const std::u32string& text) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sample %2lld: ", static_cast<long long>(index));
  return buf + encode_utf8(text);
}

}  // namespace

int64_t validation_count(int64_t n_docs, double val_frac) {
  if (!(val_frac > 0.0)) return 0;
  const auto n_val = static_cast<int64_t>(std::nearbyint(static_cast<double>(n_docs) * val_frac));  // round half even
  return std::min(n_val, n_docs - 1);
}

std::vector<DocRef> Corpus::documents(int64_t begin, int64_t end, TokenizedDocs& out, int64_t max_tokens) const {
  tokenize_documents(data, tokenizer, std::span(order).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)), out,
                     max_tokens);
  std::vector<DocRef> refs;
  for (int64_t i = 0; i < out.size(); i++) refs.emplace_back(out.begin(i), static_cast<size_t>(out.length(i)));
  return refs;
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

Corpus prepare_corpus(const std::optional<std::string>& data_path, PyRandom& rng, double val_frac) {
  Dataset data = data_path ? load_dataset(*data_path) : embedded_dataset();
  // random.shuffle(docs), as a permutation of document indices
  std::vector<int64_t> order(static_cast<size_t>(data.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);
  Tokenizer tokenizer(data.chars);
  const int64_t n_val = validation_count(data.size(), val_frac);
  return Corpus{std::move(data), std::move(order), std::move(tokenizer), 0, n_val};
}

void run_training(const TrainOptions& given, std::ostream& out) {
  TrainOptions options = given;
  // A resumed run takes its configuration from the checkpoint.
  std::optional<CheckpointData> resume;
  if (options.resume_path) {
    resume = load_checkpoint(*options.resume_path);
    const CheckpointData& c = *resume;
    options.model = c.model;
    options.train = c.train;
    options.val_frac = c.val_frac;
    options.eval_every = c.eval_every;
    options.engine.name = c.engine;
    if (!options.threads_given) options.engine.threads = c.threads;
    if (!options.data_path && c.data_source != kEmbeddedSource) {
      throw usage_error("checkpoint '" + *options.resume_path + "' was trained on '" + c.data_source +
                        "': give that file again with --data");
    }
    if (c.step >= c.train.steps) {
      throw usage_error("checkpoint '" + *options.resume_path + "' has finished all " + std::to_string(c.train.steps) +
                        " of its steps; there is nothing to resume");
    }
  }
  // Usage errors, and unwritable outputs, before any work or output.
  options.model.validate();
  if (options.val_frac < 0.0 || options.val_frac >= 1.0) throw usage_error("--val-frac: expected a number from 0 up to (not including) 1");
  if (options.engine.name == "reference" && options.train.batch_size != 1) {
    throw usage_error("--engine reference trains on one document per step, as microgpt.py does; use --batch-size 1 or --engine fast");
  }
  if (options.engine.name == "reference" && (options.train.dropout > 0.0 || options.train.ema > 0.0)) {
    throw usage_error("--dropout and --ema are options of the fast engine; the reference engine trains exactly as microgpt.py does");
  }
  if (!(options.train.dropout >= 0.0 && options.train.dropout < 1.0)) throw usage_error("--dropout: expected a number from 0 up to (not including) 1");
  if (!(options.train.ema >= 0.0 && options.train.ema < 1.0)) throw usage_error("--ema: expected a number from 0 up to (not including) 1");
  const int64_t steps = options.train.steps;
  const int64_t first_step = resume ? resume->step : 0;
  if (options.stop_after < 0 || options.stop_after > steps || (options.stop_after > 0 && options.stop_after <= first_step)) {
    throw usage_error("--stop-after " + std::to_string(options.stop_after) + ": expected a step after " +
                      std::to_string(first_step) + " and at most --steps (" + std::to_string(steps) + ")");
  }
  if ((options.checkpoint_every > 0 || options.stop_after > 0) && !options.out_path) {
    throw usage_error("--checkpoint-every and --stop-after need a checkpoint file (--out)");
  }
  if (options.out_path) check_writable(*options.out_path, "checkpoint");
  if (options.log_path) check_writable(*options.log_path, "log file");
  if (options.plot_loss_path) check_writable(*options.plot_loss_path, "plot");
  const int64_t last_step = options.stop_after > 0 ? options.stop_after : steps;

  PyRandom rng(options.train.seed);
  Corpus corpus = prepare_corpus(options.data_path, rng, options.val_frac);
  const Dataset& data = corpus.data;
  const uint32_t data_crc = dataset_crc(data);
  if (resume) {
    if (data.size() != resume->data_docs || data_crc != resume->data_crc) {
      throw Error("data file '" + data.source + "' is not the data checkpoint '" + *options.resume_path +
                  "' was trained on (" + std::to_string(resume->data_docs) + " documents from '" + resume->data_source + "')");
    }
  }
  JsonLog log(options.log_path, resume.has_value());

  ModelConfig config = options.model;
  config.vocab_size = corpus.tokenizer.vocab_size();
  std::unique_ptr<Engine> engine = make_engine(options.engine, config, options.train);  // refuses what cannot fit
  out << "num docs: " << data.size() << "\n";
  out << "vocab size: " << corpus.tokenizer.vocab_size() << "\n";
  if (resume) {
    engine->load_state(*resume);
    rng.set_state(resume->rng);  // where the generator stood after the initial weights
  } else {
    engine->init_params(rng);
  }
  out << "num params: " << engine->num_params() << "\n";

  const int64_t n_train = data.size() - corpus.n_val;
  TokenizedDocs val_tokens;
  const std::vector<DocRef> val_docs = corpus.documents(n_train, data.size(), val_tokens, config.block_size + 1);
  if (options.val_frac > 0.0) out << "validation: " << corpus.n_val << " docs held out, training on " << n_train << "\n";
  if (resume) out << "resuming from '" << *options.resume_path << "' after step " << first_step << "\n";

  std::optional<int64_t> saved_step;  // the last good checkpoint written to out_path
  if (resume && options.out_path && *options.out_path == *options.resume_path) saved_step = first_step;
  auto save = [&](int64_t step_done) {
    CheckpointData c;
    c.engine = options.engine.name;
    c.model = config;
    c.train = options.train;
    c.val_frac = options.val_frac;
    c.eval_every = options.eval_every;
    c.vocab = corpus.tokenizer.chars();
    c.step = step_done;
    c.threads = options.engine.threads;
    c.data_source = data.source;
    c.data_docs = data.size();
    c.data_crc = data_crc;
    engine->save_state(c);
    for (double p : c.params) {
      if (!std::isfinite(p)) {
        throw Error("training diverged by step " + std::to_string(step_done) +
                    ": a parameter is not finite; the last good checkpoint is kept (try a lower --lr)");
      }
    }
    c.rng = rng.state();
    save_checkpoint(*options.out_path, c);
    saved_step = step_done;
  };

  Progress progress(options.progress, options.progress_mode, first_step, steps);
  std::vector<std::pair<int64_t, double>> train_curve, val_curve;
  double first_loss = 0.0;
  auto validate = [&](int64_t step) {
    if (val_docs.empty()) return;
    const double val = engine->evaluate(val_docs).mean();
    progress.clear();
    out << step_line(step, steps, "val loss", val) << "\n";
    log.step(step, "val_loss", val);
    val_curve.emplace_back(step, val);
  };

  const int64_t B = options.train.batch_size;
  EpochOrder epochs(n_train, options.train.seed, options.train.reshuffle);
  std::vector<int64_t> batch_docs(static_cast<size_t>(B));
  TokenizedDocs batch_tokens;
  std::vector<DocRef> batch;
  for (int64_t step = first_step; step < last_step; step++) {
    // step s trains on documents s*B .. s*B + B - 1 of the training share, wrapping
    for (int64_t i = 0; i < B; i++) batch_docs[static_cast<size_t>(i)] = corpus.order[static_cast<size_t>(epochs.at(step * B + i))];
    tokenize_documents(data, corpus.tokenizer, batch_docs, batch_tokens, config.block_size + 1);
    batch.clear();
    int64_t tokens = 0;
    for (int64_t i = 0; i < batch_tokens.size(); i++) {
      batch.emplace_back(batch_tokens.begin(i), static_cast<size_t>(batch_tokens.length(i)));
      tokens += std::min(options.model.block_size, batch_tokens.length(i) - 1);
    }
    const double loss = engine->train_step(step, steps, batch);
    const std::string line = step_line(step + 1, steps, "loss", loss);
    if (!options.interactive) {
      out << line << "\n";
    }
    log.step(step + 1, "loss", loss);
    // A numeric fault: a loss or gradient that is infinite or NaN, or a loss so far above
    // where training started (a thousand times) that the run has blown up even though
    // float arithmetic still holds it (the fast engine's log-sum-exp keeps losses of
    // 1e20 finite).
    if (step == first_step) first_loss = std::max(loss, std::log(static_cast<double>(config.vocab_size)));
    if (!std::isfinite(loss) || loss > 1000 * first_loss) {
      log.flush();
      progress.finish();
      if (options.interactive) out << line << "\n";
      throw Error("training diverged at step " + std::to_string(step + 1) + ": " +
                  (std::isfinite(loss) ? "the loss is over a thousand times the first step's; "
                                       : "the loss or a gradient is not finite; ") +
                  (saved_step ? "the last good checkpoint, '" + *options.out_path + "' at step " + std::to_string(*saved_step) +
                                    ", is kept"
                              : std::string("no checkpoint was written")) +
                  " (try a lower --lr)");
    }
    train_curve.emplace_back(step + 1, loss);
    progress.step(step + 1, loss, tokens);
    if (options.eval_every > 0 && (step + 1) % options.eval_every == 0 && step + 1 < steps) validate(step + 1);
    if (options.checkpoint_every > 0 && (step + 1) % options.checkpoint_every == 0 && step + 1 < last_step) save(step + 1);
  }
  progress.finish();
  if (options.interactive && !train_curve.empty()) out << step_line(last_step, steps, "loss", train_curve.back().second) << "\n";
  if (last_step < steps) {
    save(last_step);
    out << "stopped after step " << last_step << " of " << steps << "; continue with: microgpt train --resume "
        << *options.out_path << (data.source != kEmbeddedSource ? " --data " + data.source : "") << "\n";
    log.close();
    if (options.plot_loss_path) write_loss_plot_svg(*options.plot_loss_path, train_curve, val_curve, "training loss");
    return;
  }
  validate(steps);
  // The checkpoint holds the generator as it stands before sampling, so `microgpt sample`
  // draws the same names as the ones printed below.
  if (options.out_path) save(steps);

  if (options.train.num_samples > 0) out << "--- inference (new, hallucinated names) ---\n";
  SampleOptions sampling;
  sampling.temperature = options.train.temperature;
  for (int64_t i = 0; i < options.train.num_samples; i++) {
    const std::vector<Token> ids = sample_sequence(*engine, rng, sampling, corpus.tokenizer.bos(), config.block_size);
    std::u32string text;
    for (Token t : ids) text.push_back(corpus.tokenizer.chars()[static_cast<size_t>(t)]);
    out << sample_line(i + 1, text) << "\n";
    log.sample(i + 1, text);
  }
  out.flush();
  log.close();
  if (options.plot_loss_path) write_loss_plot_svg(*options.plot_loss_path, train_curve, val_curve, "training loss");
}

}  // namespace microgpt
