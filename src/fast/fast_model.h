// The fast engine's model driver: microgpt in float32, a whole batch of documents per
// step, on a table of kernels (fast/kernels.h). It owns the parameters (one aligned
// buffer laid out by ParamLayout, exactly as the reference engine orders them), their
// gradients (one buffer per thread), Adam's m and v, and the activations.
//
// Threads split a batch by documents (one task per thread runs forward and backward on
// its share of the documents' rows, with the share's own gradient buffer; data/dataset.h's
// batch_part says where the cuts fall) and then the parameters (each task sums the
// gradient buffers and runs Adam on its slice). A pass is one job of the engine's thread
// pool (fast/task_pool.h), whose threads take its tasks as they come free; gradients are
// always summed in share order, so a run is repeatable for a given thread count, and
// losses are summed document by document in batch order, so they do not depend on it.
//
// For a run spread over processes (train/data_parallel.h): forward_backward takes one
// process's share of a step's batch, combined_gradient() gives its gradient to be summed
// with the others', and Adam's moments may cover only a part of the parameters (the
// part this process updates, --zero 1).
//
// Two training aids microgpt.py lacks, both off by default: dropout (train.dropout)
// zeroes each output of an attention or MLP block with that probability during training
// steps, with a mask that is a function of the seed, step, layer and position only; and
// a running average of the weights (train.ema), which is then the model that evaluate,
// logits and sampling run and that checkpoints store under the parameters' names.
//
// The kernels' memory holds every buffer. With a device backend (Kernels::on_device) the
// weights and Adam's moments also have host copies, which params(), adam_m(), adam_v()
// and model_params() show: pull() refreshes them from the device and push() sends them
// back (with the CPU kernels both do nothing, the copies being the buffers themselves).
// Such a model runs on one host thread.
//
// Not here: data order, logging, checkpoints (the driver in src/train does those).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/python_random.h"
#include "data/dataset.h"
#include "fast/kernels.h"
#include "fast/task_pool.h"
#include "model/config.h"
#include "model/inputs.h"

namespace microgpt {

struct LossSum {
  double sum = 0.0;    // of -log p(target) over every predicted position
  int64_t tokens = 0;  // how many positions
  double mean() const { return tokens > 0 ? sum / static_cast<double>(tokens) : 0.0; }
};

// A float buffer aligned to 64 bytes (a cache line, one AVX-512 vector).
class FloatBuffer {
 public:
  FloatBuffer() = default;
  // n floats, zeroed when `zeroed` (otherwise untouched, so pages are mapped only when
  // first written).
  explicit FloatBuffer(int64_t n, bool zeroed = true);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  int64_t size() const { return size_; }
  std::span<float> span() { return {data_.get(), static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data_.get(), static_cast<size_t>(size_)}; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  int64_t size_ = 0;
};

// Memory of a kernel table (Kernels::allocate): the host's for the CPU kernels, a GPU's
// for a device backend; not initialised. Throws Error when the table has not `bytes`.
class KernelMemory {
 public:
  KernelMemory() : data_(nullptr, Release{}) {}
  KernelMemory(const Kernels& k, int64_t bytes);
  void* get() const { return data_.get(); }
  float* floats() const { return static_cast<float*>(data_.get()); }

 private:
  struct Release {
    const Kernels* k = nullptr;
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Release> data_;
};

class FastModel {
 public:
  // max_batch_docs: the most documents one call to forward_backward receives. Refuses
  // (usage error) a configuration outside model/limits.h.
  // optimizer_part: the parameters whose Adam moments this model keeps and updates
  // (empty: all of them).
  FastModel(const ModelConfig& model, const TrainConfig& train, int64_t threads, int64_t max_batch_docs,
            const Kernels& kernels = cpu_kernels(), ParamRange optimizer_part = {});
  // The bytes such a model allocates: weights, Adam's moments, the average, a gradient
  // buffer and scratch per thread, activations and their gradients for max_batch_docs
  // documents of block_size rows (model/activations.h), the same sums the constructor
  // allocates. In double: absurd sizes are measured, not overflowed.
  static double memory_bytes(const ModelConfig& model, const TrainConfig& train, int64_t threads,
                             int64_t max_batch_docs);
  ~FastModel();
  FastModel(const FastModel&) = delete;
  FastModel& operator=(const FastModel&) = delete;

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  int64_t num_params() const { return layout_.total(); }
  int64_t threads() const { return threads_; }
  const Kernels& kernels() const { return k_; }

  // The reference's draws, gauss(0, init_std_of(tensor)) in layout order, rounded to float.
  void init_params(PyRandom& rng);
  std::span<float> params() { return params_.host(); }
  std::span<const float> params() const { return params_.host(); }
  // With a device backend: the host copies from the device, and back (see above).
  void pull() const;
  void push();
  // Adam's moments of optimizer_part().
  const ParamRange& optimizer_part() const { return optimizer_part_; }
  std::span<float> adam_m() { return m_.host(); }
  std::span<float> adam_v() { return v_.host(); }
  std::span<const float> adam_m() const { return m_.host(); }
  std::span<const float> adam_v() const { return v_.host(); }
  // With --ema, the running average of the weights (what evaluate, logits and sampling
  // use, and what a checkpoint calls the model); params() are then the weights Adam
  // trains. Without it, both are the same buffer.
  bool averaging() const { return average_.n > 0; }
  std::span<float> model_params() { return averaging() ? average_.host() : params_.host(); }
  std::span<const float> model_params() const { return averaging() ? average_.host() : params_.host(); }
  // The step whose dropout mask forward_backward uses (train_step sets it).
  void set_dropout_step(int64_t step) { dropout_step_ = step; }

  // Forward and backward over a batch with the trained weights (and the dropout mask of
  // the step last given to set_dropout_step or train_step); the gradient of the loss
  // summed over the batch, divided by loss_tokens (0: the batch's own predicted tokens,
  // which makes it the batch's mean loss per token), is added to the gradient buffers.
  // first_row: the row of the step's whole batch at which this one starts (a process's
  // share; it keys the dropout mask). Returns the loss summed over the batch; doc_losses()
  // then holds each document's.
  LossSum forward_backward(std::span<const DocRef> batch, int64_t loss_tokens = 0, int64_t first_row = 0);
  // The gradient gathered so far, summed over the threads (in thread order) into one
  // buffer, for a caller to combine in place with other processes' before adam_step
  // (CPU kernels only: a device model's gradient stays on the device).
  std::span<float> combined_gradient();
  // Adam at step `step` (from 0) of `total_steps` with the summed gradient, over
  // optimizer_part() (the rest of the weights are left to the caller); the gradient is
  // then cleared. Returns false if a gradient was infinite or NaN (the parameters are
  // then no longer usable).
  bool adam_step(int64_t step, int64_t total_steps);
  // forward_backward + adam_step; returns the batch's mean loss per token, or NaN if a
  // gradient was not finite.
  double train_step(int64_t step, int64_t total_steps, std::span<const DocRef> batch);

  // The gradient gathered so far (summed over threads), without clearing it.
  std::vector<float> gradient() const;
  // Loss over documents without training (any number of documents), summed document by
  // document in order; doc_losses() then holds each document's.
  LossSum evaluate(std::span<const DocRef> docs);
  // Each document's loss sum in the last forward_backward or evaluate.
  std::span<const double> doc_losses() const { return doc_losses_; }
  // Logits of every predicted position of one document (for tests and tools).
  std::vector<std::vector<float>> logits(DocRef doc);

  // Incremental decoding of one sequence with a KV cache (each new position runs the
  // model on one row): start_sequence() empties the cache; next() runs the model on
  // `token` at the next position (at most block_size of them) and returns the next
  // token's probabilities at `temperature` > 0 (softmax of logits / temperature, in
  // double), or the logits when temperature is 0. train/sampler.h draws from them.
  void start_sequence();
  std::vector<double> next(Token token, double temperature);
  // The same for a whole window (1 to block_size tokens) at once, from position 0, as a
  // text model's sampling slides its context: the next token's distribution after it.
  // The window then fills the KV cache.
  std::vector<double> next_window(std::span<const Token> window, double temperature);
  // The attention weights of every head of every layer over a window (1 to block_size
  // tokens, from position 0): (n_layer, n_head, T, T) row-major, weight [l][h][t][u] of
  // query t on key u (0 for u > t), recomputed in double from the pass's q, k and lse.
  std::vector<double> attention_weights(std::span<const Token> window);

 private:
  struct Packed;  // a batch laid out for the kernels
  struct Range {
    int64_t begin = 0, end = 0;
  };
  void prepare(std::span<const DocRef> docs, Packed& b) const;
  // Makes the batch's token ids and positions visible to the kernels (a copy in their
  // memory on a device; the vectors themselves on the host).
  void stage(const Packed& b);
  Range docs_of_thread(const Packed& b, int64_t thread, int64_t n_threads) const;
  enum class Pass {
    kTrain,        // the trained weights, dropout, loss
    kEvaluate,     // the model's weights, loss
    kLogits,       // the model's weights, logits only
    kIncremental,  // the model's weights, one new row of a document (the rows before it cached)
  };
  // Runs the model on rows `rows` (whole documents `docs`, or one new row of a single
  // document for kIncremental); for kTrain and kEvaluate, writes each document's loss
  // sum to doc_loss_[d] (the kernels' memory).
  void forward(const Packed& b, Range docs, Range rows, Pass pass, int64_t thread);
  const float* model_weights() const { return averaging() ? average_.device() : params_.device(); }
  // n floats (or doubles) of the kernels' memory, on the host
  std::vector<float> read(const float* p, int64_t n) const;
  uint64_t dropout_key(int64_t layer, int branch) const;
  // The next token's probabilities (or logits, at temperature 0) from a row's logits.
  std::vector<double> next_of_row(int64_t row, double temperature) const;
  // Adds the gradient of dloss * (loss sum of those rows) into thread `thread`'s buffer.
  void backward(Range docs, Range rows, float dloss, int64_t thread);
  int64_t threads_for(const Packed& b) const;
  // How many tasks sum the gradients or run Adam over this many parameters.
  int64_t slices(int64_t params) const;

  ModelConfig config_;
  TrainConfig train_;
  ParamLayout layout_;
  const Kernels& k_;
  int64_t threads_;
  std::unique_ptr<TaskPool> pool_;  // threads_ threads, the caller's among them
  int64_t max_docs_;                // the most documents a training batch holds
  int64_t max_rows_;  // activations are sized for this many rows

  // A buffer of the kernels' memory, with its host copy when that memory is a device's.
  struct Weights {
    KernelMemory memory;
    mutable FloatBuffer copy;  // empty for the CPU kernels
    int64_t n = 0;
    Weights() = default;
    Weights(const Kernels& k, int64_t n);
    float* device() const { return memory.floats(); }
    std::span<float> host() const {
      return {copy.size() > 0 ? copy.data() : memory.floats(), static_cast<size_t>(n)};
    }
  };
  Weights params_, m_, v_;
  Weights average_;        // empty without --ema
  int64_t dropout_step_ = 0;
  int64_t first_row_ = 0;  // of the batch in forward_backward, in its step's whole batch
  ParamRange optimizer_part_;
  std::vector<FixedBlock> fixed_;  // the inputs training does not change (model/inputs.h)
  bool combined_ = false;  // the threads' gradients are summed in the first buffer
  std::vector<double> doc_losses_;
  std::vector<KernelMemory> grads_;  // one per thread
  // The batch as the kernels see it: token ids, targets and positions (int32, rows), the
  // documents' first rows (int64, documents + 1), and each document's loss (double).
  KernelMemory staged_, staged_docs_, doc_loss_;
  const int32_t *inputs_ = nullptr, *targets_ = nullptr, *positions_ = nullptr;
  const int64_t* doc_start_ = nullptr;

  // Activations (rows x width), shared by the threads, each writing only its rows.
  KernelMemory acts_;
  struct LayerActs {
    float *x, *ln1, *rstd1, *qkv, *lse, *atty, *xmid, *ln2, *rstd2, *h, *hr;
  };
  float *emb_, *rstd0_, *x_final_, *logits_, *probs_;
  std::vector<LayerActs> layers_;
  // Gradients of activations, likewise shared by rows.
  KernelMemory dacts_;
  float *dx_, *dln_, *dqkv_, *datty_, *dhr_, *dh_, *dlogits_, *demb_, *ddrop_;
  // Per-thread scratch: a transposed weight matrix or attention's tiles.
  std::vector<KernelMemory> scratch_;
  std::unique_ptr<Packed> batch_;
};

}  // namespace microgpt
