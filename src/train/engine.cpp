#include "train/engine.h"

#include <algorithm>

#include "core/error.h"
#include "reference/reference_model.h"

namespace microgpt {

namespace {

void check_state_size(const CheckpointData& c, int64_t n) {
  if (static_cast<int64_t>(c.params.size()) != n || static_cast<int64_t>(c.adam_m.size()) != n ||
      static_cast<int64_t>(c.adam_v.size()) != n) {
    throw Error("checkpoint state does not match the model's parameter count");
  }
}

class ReferenceEngine final : public Engine {
 public:
  ReferenceEngine(const ModelConfig& model, const TrainConfig& train) : model_(model, train) {}
  int64_t num_params() const override { return model_.num_params(); }
  void init_params(PyRandom& rng) override { model_.init_params(rng); }
  double train_step(int64_t step, int64_t total_steps, std::span<const DocRef> batch) override {
    if (batch.size() != 1) throw usage_error("--engine reference trains on one document per step (--batch-size 1)");
    return model_.train_step(step, total_steps, batch[0]);
  }
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
  FastEngine(const EngineOptions& o, const ModelConfig& model, const TrainConfig& train)
      : model_(model, train, o.threads, train.batch_size) {}
  int64_t num_params() const override { return model_.num_params(); }
  void init_params(PyRandom& rng) override { model_.init_params(rng); }
  double train_step(int64_t step, int64_t total_steps, std::span<const DocRef> batch) override {
    return model_.train_step(step, total_steps, batch);
  }
  LossSum evaluate(std::span<const DocRef> docs) override { return model_.evaluate(docs); }
  void start_sequence() override { model_.start_sequence(); }
  std::vector<double> next(Token token, double temperature) override { return model_.next(token, temperature); }
  void save_state(CheckpointData& c) const override {
    c.f64 = false;
    auto copy = [](std::span<const float> from) { return std::vector<double>(from.begin(), from.end()); };
    c.params = copy(model_.params());
    c.adam_m = copy(model_.adam_m());
    c.adam_v = copy(model_.adam_v());
  }
  void load_state(const CheckpointData& c) override {
    check_state_size(c, model_.num_params());
    auto copy = [](const std::vector<double>& from, std::span<float> to) {
      for (size_t i = 0; i < from.size(); i++) to[i] = static_cast<float>(from[i]);
    };
    copy(c.params, model_.params());
    copy(c.adam_m, model_.adam_m());
    copy(c.adam_v, model_.adam_v());
  }

 private:
  FastModel model_;
};

}  // namespace

std::unique_ptr<Engine> make_engine(const EngineOptions& options, const ModelConfig& model, const TrainConfig& train) {
  if (options.name == "reference") {
    if (train.batch_size != 1) {
      throw usage_error("--engine reference trains on one document per step, as microgpt.py does; use --batch-size 1 or --engine fast");
    }
    return std::make_unique<ReferenceEngine>(model, train);
  }
  if (options.name == "fast") return std::make_unique<FastEngine>(options, model, train);
  throw usage_error("--engine: unknown engine '" + options.name + "' (accepted: fast, reference)");
}

}  // namespace microgpt
