// Every bound on a value that a user or a checkpoint can set, defined once. The command
// line builds its flag checks and their messages from this table, a training run
// validates its options with it, and the checkpoint loader checks what a file says
// against it, so the three always agree.
//
// Not here: limits of the machine (the memory a model needs: train/engine.h) and of a
// file format's own fields (checkpoint/checkpoint.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace microgpt {

inline constexpr int64_t kMaxSize = int64_t{1} << 24;   // a width, depth, length or batch
inline constexpr int64_t kMaxCount = int64_t{1} << 40;  // steps, samples, intervals

struct WholeRange {
  std::string_view flag;  // as the command line spells it, e.g. "--n-layer"
  int64_t min, max;
  bool contains(int64_t v) const { return v >= min && v <= max; }
  std::string expected() const;  // "a whole number from 1 to 16777216"
};

struct RealRange {
  std::string_view flag;
  double min, max;
  bool min_open, max_open;    // whether the bound itself is excluded
  std::string_view expected;  // "a number greater than 0"
  bool contains(double v) const;  // never for NaN or infinity
};

namespace limits {
// The model's shape.
inline constexpr WholeRange n_layer{"--n-layer", 1, kMaxSize};
inline constexpr WholeRange n_embd{"--n-embd", 1, kMaxSize};
inline constexpr WholeRange n_head{"--n-head", 1, kMaxSize};
inline constexpr WholeRange block_size{"--block-size", 1, kMaxSize};
inline constexpr WholeRange vocab_size{"vocab size", 1, 0x110001};  // a text of one character, at the least
// Training.
inline constexpr WholeRange batch_size{"--batch-size", 1, kMaxSize};
inline constexpr WholeRange steps{"--steps", 1, kMaxCount};
inline constexpr RealRange lr{"--lr", 0.0, 1e300, true, false, "a number greater than 0, at most 1e300"};
inline constexpr RealRange dropout{"--dropout", 0.0, 0.95, false, false, "a number from 0 to 0.95"};
inline constexpr RealRange ema{"--ema", 0.0, 0.99999, false, false, "a number from 0 to 0.99999"};
inline constexpr RealRange weight_decay{"--weight-decay", 0.0, 10.0, false, false, "a number from 0 to 10"};
inline constexpr RealRange val_frac{"--val-frac", 0.0, 0.99, false, false, "a number from 0 to 0.99"};
inline constexpr WholeRange eval_every{"--eval-every", 0, kMaxCount};
inline constexpr WholeRange warmup{"--warmup", 0, kMaxCount};
inline constexpr WholeRange checkpoint_every{"--checkpoint-every", 0, kMaxCount};
inline constexpr WholeRange check_every{"--check-every", 0, kMaxCount};
inline constexpr WholeRange port{"--port", 0, 65535};
inline constexpr WholeRange stop_after{"--stop-after", 1, kMaxCount};
inline constexpr WholeRange threads{"--threads", 1, 4096};
// Settings microgpt.py fixes in its code; no flag sets them, but a checkpoint stores them.
inline constexpr RealRange beta{"beta1 and beta2", 0.0, 1.0, false, true, "a number from 0 up to (not including) 1"};
inline constexpr RealRange eps{"eps", 0.0, 1.0, true, false, "a number greater than 0, at most 1"};
inline constexpr RealRange init_std{"init_std", 0.0, 1e300, false, false, "a number from 0 to 1e300"};
// Sampling.
inline constexpr RealRange temperature{
    "--temperature", 0.0, 1e300, true, false, "a number greater than 0, at most 1e300"};
inline constexpr WholeRange num_samples{"--num-samples", 0, kMaxCount};
// `microgpt sample` also takes temperature 0 (the most likely token every time).
inline constexpr RealRange sample_temperature{"--temperature", 0.0, 1e300, false, false, "a number from 0 to 1e300"};
inline constexpr WholeRange top_k{"--top-k", 0, kMaxSize};
inline constexpr RealRange top_p{"--top-p", 0.0, 1.0, true, false, "a number in (0, 1]"};
inline constexpr WholeRange max_len{"--max-len", 0, kMaxSize};
// `microgpt compare`.
inline constexpr WholeRange seeds{"--seeds", 1, 1000};
// `microgpt embed`.
inline constexpr WholeRange top{"--top", 1, kMaxSize};
}  // namespace limits

// A usage error "FLAG: expected ..., got V" unless the range holds v.
void check(const WholeRange& range, int64_t v);
void check(const RealRange& range, double v);

// The names a setting takes: the engines, the data formats (TrainConfig::format), the
// initialisations (TrainConfig::init) and the inputs (TrainConfig::wte, wpe, combine).
struct NameChoice {
  std::string_view flag;  // "--engine"
  std::string_view what;  // "engine"
  std::span<const std::string_view> names;
  bool contains(std::string_view v) const;
  std::vector<std::string> list() const;  // for the command line's checks
};
namespace names {
inline constexpr std::string_view kEngines[] = {"fast", "reference", "gpu"};
inline constexpr std::string_view kFormats[] = {"lines", "text"};
inline constexpr std::string_view kInits[] = {"microgpt", "gpt2"};
inline constexpr std::string_view kPrecisions[] = {"fp32", "tf32"};
inline constexpr NameChoice engine{"--engine", "engine", kEngines};
inline constexpr NameChoice format{"--format", "format", kFormats};
inline constexpr NameChoice init{"--init", "initialisation", kInits};
inline constexpr NameChoice precision{"--precision", "precision", kPrecisions};
inline constexpr std::string_view kTokenInputs[] = {"learned", "frozen", "onehot", "scalar"};
inline constexpr std::string_view kPositionInputs[] = {"learned", "none", "sinusoidal", "frozen"};
inline constexpr std::string_view kCombines[] = {"add", "concat"};
inline constexpr NameChoice wte{"--wte", "token input", kTokenInputs};
inline constexpr NameChoice wpe{"--wpe", "position input", kPositionInputs};
inline constexpr NameChoice combine{"--combine", "combination", kCombines};
}  // namespace names

// A usage error "FLAG: unknown WHAT 'v' (accepted: a, b)" unless v is one of the names.
void check(const NameChoice& choice, std::string_view v);

// A whole configuration: every value within its range, n_embd divisible by n_head, a
// known format, and only what the engine ("fast", "gpu" or "reference") can do: the reference
// engine trains as microgpt.py does, one document (or window) per step, without dropout
// or an average. Throws a usage error that names the flag and says what is accepted.
void validate_configuration(std::string_view engine, const ModelConfig& model, const TrainConfig& train);

}  // namespace microgpt
