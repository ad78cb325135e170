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

#include "core/error.h"
#include "core/python_random.h"
#include "core/text.h"
#include "data/dataset.h"

namespace microgpt {

namespace {

// JSON lines as the reference logs them: {"step": k, "loss": x}, {"sample": i, "text": "..."};
// and {"step": k, "val_loss": x} for validation.
class JsonLog {
 public:
  explicit JsonLog(const std::optional<std::string>& path) {
    if (!path) return;
    file_.open(*path, std::ios::binary | std::ios::trunc);
    if (!file_) throw Error("cannot write log file '" + *path + "': " + std::strerror(errno));
    path_ = *path;
  }
  void step(int64_t step, const char* key, double loss) {
    if (file_.is_open()) file_ << "{\"step\": " << step << ", \"" << key << "\": " << python_float_repr(loss) << "}\n";
  }
  void sample(int64_t index, const std::u32string& text) {
    if (file_.is_open()) file_ << "{\"sample\": " << index << ", \"text\": " << json_quote(text) << "}\n";
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

std::string format(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

// "step    1 / 1000 | loss 3.3660\n", as microgpt.py prints it ({:4d} and {:.4f}), without
// printf's cost on every step.
void print_step(std::ostream& out, int64_t step, int64_t steps, const char* what, double loss) {
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
  p = std::to_chars(p, buf + sizeof buf - 1, loss, std::chars_format::fixed, 4).ptr;
  *p++ = '\n';
  out.write(buf, p - buf);
}

std::vector<DocRef> doc_refs(const TokenizedDocs& docs) {
  std::vector<DocRef> refs;
  for (int64_t i = 0; i < docs.size(); i++) refs.emplace_back(docs.begin(i), static_cast<size_t>(docs.length(i)));
  return refs;
}

}  // namespace

int64_t validation_count(int64_t n_docs, double val_frac) {
  if (!(val_frac > 0.0)) return 0;
  const auto n_val = static_cast<int64_t>(std::nearbyint(static_cast<double>(n_docs) * val_frac));  // round half even
  return std::min(n_val, n_docs - 1);
}

void run_training(const TrainOptions& options, std::ostream& out) {
  // Usage errors before any work or output.
  options.model.validate();
  if (options.val_frac < 0.0 || options.val_frac >= 1.0) throw usage_error("--val-frac: expected a number from 0 up to (not including) 1");
  if (options.engine.name == "reference" && options.train.batch_size != 1) {
    throw usage_error("--engine reference trains on one document per step, as microgpt.py does; use --batch-size 1 or --engine fast");
  }
  const Dataset data = options.data_path ? load_dataset(*options.data_path) : embedded_dataset();
  JsonLog log(options.log_path);

  // random.shuffle(docs), as a permutation of document indices
  PyRandom rng(options.train.seed);
  std::vector<int64_t> order(static_cast<size_t>(data.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);
  out << "num docs: " << data.size() << "\n";
  const Tokenizer tokenizer(data.chars);
  out << "vocab size: " << tokenizer.vocab_size() << "\n";

  ModelConfig config = options.model;
  config.vocab_size = tokenizer.vocab_size();
  std::unique_ptr<Engine> engine = make_engine(options.engine, config, options.train);
  engine->init_params(rng);
  out << "num params: " << engine->num_params() << "\n";

  // The shuffled list's first n_train documents train; the rest are held out.
  const int64_t n_val = validation_count(data.size(), options.val_frac);
  const int64_t n_train = data.size() - n_val;
  TokenizedDocs val_tokens;
  tokenize_documents(data, tokenizer, std::span(order).subspan(static_cast<size_t>(n_train)), val_tokens);
  const std::vector<DocRef> val_docs = doc_refs(val_tokens);
  if (options.val_frac > 0.0) out << "validation: " << n_val << " docs held out, training on " << n_train << "\n";

  auto validate = [&](int64_t step) {
    if (val_docs.empty()) return;
    const double val = engine->evaluate(val_docs).mean();
    print_step(out, step, options.train.steps, "val loss", val);
    log.step(step, "val_loss", val);
  };

  const int64_t steps = options.train.steps;
  const int64_t B = options.train.batch_size;
  std::vector<int64_t> batch_docs(static_cast<size_t>(B));
  TokenizedDocs batch_tokens;
  for (int64_t step = 0; step < steps; step++) {
    // step s trains on documents s*B .. s*B + B - 1 of the training share, wrapping
    for (int64_t i = 0; i < B; i++) batch_docs[static_cast<size_t>(i)] = order[static_cast<size_t>((step * B + i) % n_train)];
    tokenize_documents(data, tokenizer, batch_docs, batch_tokens);
    const double loss = engine->train_step(step, steps, doc_refs(batch_tokens));
    print_step(out, step + 1, steps, "loss", loss);
    log.step(step + 1, "loss", loss);
    if (options.eval_every > 0 && (step + 1) % options.eval_every == 0 && step + 1 < steps) validate(step + 1);
  }
  validate(steps);

  if (options.train.num_samples > 0) out << "--- inference (new, hallucinated names) ---\n";
  for (int64_t i = 0; i < options.train.num_samples; i++) {
    const std::vector<Token> ids = engine->sample(rng, options.train.temperature);
    std::u32string text;
    for (Token t : ids) text.push_back(tokenizer.chars()[static_cast<size_t>(t)]);
    out << format("sample %2lld: ", static_cast<long long>(i + 1)) << encode_utf8(text) << "\n";
    log.sample(i + 1, text);
  }
  out.flush();
  log.close();
}

}  // namespace microgpt
