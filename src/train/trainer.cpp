#include "train/trainer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <ostream>

#include "core/error.h"
#include "core/python_random.h"
#include "core/text.h"
#include "data/dataset.h"
#include "reference/reference_model.h"

namespace microgpt {

namespace {

// JSON lines as the reference logs them: {"step": k, "loss": x}, {"sample": i, "text": "..."}.
class JsonLog {
 public:
  explicit JsonLog(const std::optional<std::string>& path) {
    if (!path) return;
    file_.open(*path, std::ios::binary | std::ios::trunc);
    if (!file_) throw Error("cannot write log file '" + *path + "': " + std::strerror(errno));
    path_ = *path;
  }
  void step(int64_t step, double loss) {
    if (file_.is_open()) file_ << "{\"step\": " << step << ", \"loss\": " << python_float_repr(loss) << "}\n";
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

}  // namespace

void run_training(const TrainOptions& options, std::ostream& out) {
  if (options.engine != "reference") throw usage_error("--engine: unknown engine '" + options.engine + "' (accepted: reference)");
  options.model.validate();  // before any work: a bad shape is a usage error
  Dataset data = options.data_path ? load_dataset(*options.data_path) : embedded_dataset();
  JsonLog log(options.log_path);

  PyRandom rng(options.train.seed);
  rng.shuffle(data.docs);
  out << "num docs: " << data.docs.size() << "\n";
  const Tokenizer tokenizer(data.docs);
  out << "vocab size: " << tokenizer.vocab_size() << "\n";

  ModelConfig config = options.model;
  config.vocab_size = tokenizer.vocab_size();
  config.validate();
  ReferenceModel model(config, options.train);
  model.init_params(rng);
  out << "num params: " << model.num_params() << "\n";

  const int64_t steps = options.train.steps;
  const int64_t n_docs = static_cast<int64_t>(data.docs.size());
  for (int64_t step = 0; step < steps; step++) {
    const std::vector<Token> tokens = tokenizer.encode_document(data.docs[static_cast<size_t>(step % n_docs)]);
    const double loss = model.train_step(step, steps, tokens);
    out << format("step %4lld / %4lld | loss %.4f\n", static_cast<long long>(step + 1),
                  static_cast<long long>(steps), loss);
    log.step(step + 1, loss);
  }

  if (options.train.num_samples > 0) out << "--- inference (new, hallucinated names) ---\n";
  for (int64_t i = 0; i < options.train.num_samples; i++) {
    const std::vector<Token> ids = model.sample(rng, options.train.temperature);
    std::u32string text;
    for (Token t : ids) text.push_back(tokenizer.chars()[static_cast<size_t>(t)]);
    out << format("sample %2lld: ", static_cast<long long>(i + 1)) << encode_utf8(text) << "\n";
    log.sample(i + 1, text);
  }
  out.flush();
  log.close();
}

}  // namespace microgpt
