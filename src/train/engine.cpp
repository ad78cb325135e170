#include "train/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/memory.h"
#include "model/limits.h"
#include "reference/reference_model.h"

namespace microgpt {

namespace {

void check_state_size(const CheckpointData& c, int64_t n) {
  if (static_cast<int64_t>(c.params.size()) != n || static_cast<int64_t>(c.adam_m.size()) != n ||
      static_cast<int64_t>(c.adam_v.size()) != n) {
    throw Error("checkpoint state does not match the model's parameter count");
  }
}

void check_range(int64_t offset, int64_t count, int64_t n) {
  if (offset < 0 || count < 0 || offset > n || count > n - offset)
    throw Error("parameters asked for beyond the model's");
}

// make_engine has checked the configuration (validate_configuration): one document per
// step, no dropout, no average.
class ReferenceEngine final : public Engine {
 public:
  ReferenceEngine(const ModelConfig& model, const TrainConfig& train) : model_(model, train) {}
  int64_t num_params() const override { return model_.num_params(); }
  void init_params(PyRandom& rng) override { model_.init_params(rng); }
  double forward_backward(int64_t, const Batch& batch) override {
    if (batch.docs.size() != 1) throw Error("the reference engine takes one document per step");
    return model_.forward_backward(batch.docs[0]);
  }
  bool update(int64_t step, int64_t total_steps) override { return model_.adam_step(step, total_steps); }
  LossSum evaluate(std::span<const DocRef> docs) override {
    LossSum total;
    for (const DocRef& d : docs) {
      const int64_t n = std::min(model_.config().block_size, static_cast<int64_t>(d.size()) - 1);
      total.sum += model_.loss(d) * static_cast<double>(n);
      total.tokens += n;
    }
    return total;
  }
  void start_sequence() override { model_.start_sequence(); }
  std::vector<double> next(Token token, double temperature) override { return model_.next(token, temperature); }
  void save_state(CheckpointData& c) const override {
    const int64_t n = model_.num_params();
    c.f64 = true;
    c.params.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) c.params[static_cast<size_t>(i)] = model_.param(i);
    c.adam_m = model_.adam_m();
    c.adam_v = model_.adam_v();
  }
  std::vector<double> read_params(int64_t offset, int64_t count) const override {
    check_range(offset, count, model_.num_params());
    std::vector<double> out(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; i++) out[static_cast<size_t>(i)] = model_.param(offset + i);
    return out;
  }
  void load_state(const CheckpointData& c) override {
    check_state_size(c, model_.num_params());
    for (int64_t i = 0; i < model_.num_params(); i++) model_.set_param(i, c.params[static_cast<size_t>(i)]);
    model_.adam_m() = c.adam_m;
    model_.adam_v() = c.adam_v;
  }

 private:
  ReferenceModel model_;
};

class FastEngine final : public Engine {
 public:
  FastEngine(const EngineOptions& o, const ModelConfig& model, const TrainConfig& train, const Kernels& kernels)
      : model_(model, train, o.threads, train.batch_size, kernels, o.optimizer_part) {}
  int64_t num_params() const override { return model_.num_params(); }
  void init_params(PyRandom& rng) override { model_.init_params(rng); }
  double forward_backward(int64_t step, const Batch& batch) override {
    model_.set_dropout_step(step);
    return model_.forward_backward(batch.docs, batch.tokens, batch.first_row).mean();
  }
  bool update(int64_t step, int64_t total_steps) override { return model_.adam_step(step, total_steps); }
  LossSum evaluate(std::span<const DocRef> docs) override { return model_.evaluate(docs); }
  void start_sequence() override { model_.start_sequence(); }
  std::vector<double> next(Token token, double temperature) override { return model_.next(token, temperature); }
  std::vector<double> next_window(std::span<const Token> window, double temperature) override {
    return model_.next_window(window, temperature);
  }
  std::vector<double> attention_weights(std::span<const Token> window) override {
    return model_.attention_weights(window);
  }
  std::span<const double> doc_losses() const override { return model_.doc_losses(); }
  std::span<float> gradient() override { return model_.combined_gradient(); }
  std::vector<std::span<float>> trained_weights() override {
    std::vector<std::span<float>> w{model_.params()};
    if (model_.averaging()) w.push_back(model_.model_params());
    return w;
  }
  void save_state(CheckpointData& c) const override {
    c.f64 = false;
    model_.pull();
    auto copy = [](std::span<const float> from) { return std::vector<double>(from.begin(), from.end()); };
    c.params = copy(model_.model_params());
    c.adam_m = copy(model_.adam_m());
    c.adam_v = copy(model_.adam_v());
    c.trained_params = model_.averaging() ? copy(model_.params()) : std::vector<double>{};
  }
  std::vector<double> read_params(int64_t offset, int64_t count) const override {
    check_range(offset, count, model_.num_params());
    model_.pull();
    const auto from = model_.model_params().subspan(static_cast<size_t>(offset), static_cast<size_t>(count));
    return std::vector<double>(from.begin(), from.end());
  }
  void load_state(const CheckpointData& c) override {
    check_state_size(c, model_.num_params());
    auto copy = [](const std::vector<double>& from, std::span<float> to) {
      for (size_t i = 0; i < from.size(); i++) to[i] = static_cast<float>(from[i]);
    };
    // Adam's moments of this engine's part of the parameters.
    const ParamRange part = model_.optimizer_part();
    auto moments = [&](const std::vector<double>& from) {
      return std::vector<double>(from.begin() + part.begin, from.begin() + part.end);
    };
    copy(moments(c.adam_m), model_.adam_m());
    copy(moments(c.adam_v), model_.adam_v());
    if (model_.averaging()) {
      if (c.trained_params.size() != c.params.size()) throw Error("the checkpoint lacks the trained weights of its average");
      copy(c.params, model_.model_params());
      copy(c.trained_params, model_.params());
    } else {
      copy(c.params, model_.params());
    }
    model_.push();
  }

 private:
  FastModel model_;
};

}  // namespace

double estimated_memory_bytes(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train) {
  // (the gpu engine's buffers are on the GPU: here, its host copies of the weights,
  // Adam's moments and the average)
  const double engine = options.name == "reference" ? ReferenceModel::memory_bytes(model)
                        : options.name == "gpu"
                            ? ParamLayout::count(model) * (train.ema > 0.0 ? 4 : 3) * static_cast<double>(sizeof(float))
                            : FastModel::memory_bytes(model, train, options.threads, train.batch_size);
  // While a checkpoint is written: the weights and Adam's moments (and the trained
  // weights of an average) as doubles, and the file's bytes in their own dtype.
  const double tensors = ParamLayout::count(model) * (train.ema > 0.0 ? 4 : 3);
  const double checkpoint = tensors * (8 + (options.name == "reference" ? 8 : 4));
  // What the sums leave out (the allocator's and the pages' rounding, threads' stacks,
  // the checkpoint's header): 5% and 16 MB. tests/train/memory_test.cpp measures real
  // runs against this.
  return (engine + checkpoint) * 1.05 + 16e6;
}

std::vector<double> Engine::next_window(std::span<const Token> window, double temperature) {
  if (window.empty()) throw Error("an empty window");
  start_sequence();
  std::vector<double> w;
  for (Token t : window) w = next(t, temperature);
  return w;
}

std::vector<double> Engine::attention_weights(std::span<const Token>) {
  throw usage_error("the attention weights are shown for models of the fast engine only");
}

// Only the fast engine trains across processes (TrainingRun refuses the reference first).
std::span<const double> Engine::doc_losses() const { throw Error("this engine cannot train across processes"); }
std::span<float> Engine::gradient() { throw Error("this engine cannot train across processes"); }
std::vector<std::span<float>> Engine::trained_weights() { throw Error("this engine cannot train across processes"); }

double Engine::train_step(int64_t step, int64_t total_steps, const Batch& batch) {
  const double loss = forward_backward(step, batch);
  return update(step, total_steps) ? loss : NAN;
}

namespace {

// The GPU engine's own limits: its attention keeps a head's vectors in a block's shared
// memory, and the model (one thread's buffers) must fit in the GPU's free memory.
void check_fits_gpu(const ModelConfig& model, const TrainConfig& train) {
  const int64_t head = model.n_embd / model.n_head;
  if (head > kGpuMaxHeadSize) {
    throw usage_error("--engine gpu: heads of at most " + std::to_string(kGpuMaxHeadSize) + " channels (this model's are " +
                      std::to_string(head) + ": n_embd " + std::to_string(model.n_embd) + " / n_head " +
                      std::to_string(model.n_head) + "); use more heads");
  }
  const GpuDevice gpu = gpu_device();
  const double need = FastModel::memory_bytes(model, train, 1, train.batch_size);
  if (need > 0.95 * static_cast<double>(gpu.free_bytes)) {
    throw usage_error("--engine gpu: out of device memory for this size: it needs about " + human_bytes(need) +
                      " and the " + gpu.name + " has " + human_bytes(static_cast<double>(gpu.free_bytes)) +
                      " free; choose smaller sizes");
  }
}

}  // namespace

std::unique_ptr<Engine> make_engine(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train) {
  validate_configuration(options.name, model, train);
  check(names::precision, options.precision);
  if (options.precision != "fp32" && options.name != "gpu") {
    throw usage_error("--precision " + options.precision + " is the gpu engine's (the " + options.name +
                      " engine computes in " + (options.name == "reference" ? "double" : "float32") + ")");
  }
  const double need = estimated_memory_bytes(options, model, train);
  const double have = available_memory_bytes();
  if (need > 0.9 * have) {
    throw usage_error("this model would need about " + human_bytes(need) + " of memory (" +
                      human_count(ParamLayout::count(model)) + " parameters: n_embd " + std::to_string(model.n_embd) +
                      ", n_layer " + std::to_string(model.n_layer) + ", vocab " + std::to_string(model.vocab_size) +
                      ", block_size " + std::to_string(model.block_size) + ", batch " + std::to_string(train.batch_size) +
                      ", engine " + options.name + ") but " + human_bytes(have) + " is available; choose smaller sizes");
  }
  if (options.name == "reference") return std::make_unique<ReferenceEngine>(model, train);
  if (options.name == "gpu") {
    const Kernels& kernels = gpu_kernels(options.precision);
    check_fits_gpu(model, train);
    return std::make_unique<FastEngine>(options, model, train, kernels);
  }
  return std::make_unique<FastEngine>(options, model, train, cpu_kernels());
}

}  // namespace microgpt
