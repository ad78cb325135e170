#include "train/engine.h"

#include "core/error.h"
#include "reference/reference_model.h"

namespace microgpt {

namespace {

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
  std::vector<Token> sample(PyRandom& rng, double temperature) override { return model_.sample(rng, temperature); }

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
  std::vector<Token> sample(PyRandom& rng, double temperature) override { return model_.sample(rng, temperature); }

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
