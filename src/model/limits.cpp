#include "model/limits.h"

#include <cmath>

#include "core/error.h"
#include "core/text.h"

namespace microgpt {

std::string WholeRange::expected() const {
  return "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
}

bool RealRange::contains(double v) const {
  if (!std::isfinite(v)) return false;
  const bool above_min = min_open ? v > min : v >= min;
  const bool below_max = max_open ? v < max : v <= max;
  return above_min && below_max;
}

bool NameChoice::contains(std::string_view v) const {
  for (std::string_view n : names) {
    if (n == v) return true;
  }
  return false;
}

std::vector<std::string> NameChoice::list() const { return std::vector<std::string>(names.begin(), names.end()); }

void check(const NameChoice& choice, std::string_view v) {
  if (choice.contains(v)) return;
  std::string accepted;
  for (std::string_view n : choice.names) accepted += (accepted.empty() ? "" : ", ") + std::string(n);
  throw usage_error(std::string(choice.flag) + ": unknown " + std::string(choice.what) + " '" + std::string(v) +
                    "' (accepted: " + accepted + ")");
}

void check(const WholeRange& range, int64_t v) {
  if (!range.contains(v)) {
    throw usage_error(std::string(range.flag) + ": expected " + range.expected() + ", got " + std::to_string(v));
  }
}

void check(const RealRange& range, double v) {
  if (!range.contains(v)) {
    throw usage_error(std::string(range.flag) + ": expected " + std::string(range.expected) + ", got " +
                      python_float_repr(v));
  }
}

void validate_configuration(std::string_view engine, const ModelConfig& model, const TrainConfig& train) {
  check(limits::n_layer, model.n_layer);
  check(limits::n_embd, model.n_embd);
  check(limits::n_head, model.n_head);
  check(limits::block_size, model.block_size);
  if (model.n_embd % model.n_head != 0) {
    throw usage_error("--n-embd " + std::to_string(model.n_embd) + " is not divisible by --n-head " +
                      std::to_string(model.n_head) + " (each head gets n_embd / n_head dimensions)");
  }
  if (model.vocab_size != 0) check(limits::vocab_size, model.vocab_size);  // 0: not known yet (no data read)
  check(names::init, train.init);
  check(names::format, train.format);
  check(names::engine, engine);
  check(names::wte, train.wte);
  check(names::wpe, train.wpe);
  check(names::combine, train.combine);
  if (train.combine == "concat" && model.n_embd < 2) {
    throw usage_error("--combine concat gives the token and the position half of --n-embd each; --n-embd must be at least 2");
  }
  const int64_t token_width = train.combine == "concat" ? model.n_embd / 2 : model.n_embd;
  if (train.wte == "onehot" && model.vocab_size != 0 && token_width < model.vocab_size) {
    throw usage_error("--wte onehot gives each of the " + std::to_string(model.vocab_size) +
                      " tokens its own channel, but the token vectors are " + std::to_string(token_width) +
                      " wide; use --n-embd " + std::to_string(train.combine == "concat" ? 2 * model.vocab_size : model.vocab_size) +
                      " or more");
  }
  check(limits::batch_size, train.batch_size);
  check(limits::steps, train.steps);
  check(limits::lr, train.lr);
  check(limits::beta, train.beta1);
  check(limits::beta, train.beta2);
  check(limits::eps, train.eps);
  check(limits::init_std, train.init_std);
  check(limits::temperature, train.temperature);
  check(limits::num_samples, train.num_samples);
  check(limits::val_frac, train.val_frac);
  check(limits::eval_every, train.eval_every);
  check(limits::warmup, train.warmup);
  check(limits::dropout, train.dropout);
  check(limits::ema, train.ema);
  check(limits::weight_decay, train.weight_decay);
  // Weight decay shrinks every weight, the fixed inputs' too: only their zeros (--wpe
  // none, the other half under --combine concat) stay as they are.
  if (train.weight_decay > 0.0) {
    const bool fixed_wte = train.wte != "learned", fixed_wpe = train.wpe != "learned" && train.wpe != "none";
    if (fixed_wte || fixed_wpe) {
      throw usage_error("--weight-decay would shrink the fixed " + std::string(fixed_wte ? "--wte " + train.wte : "--wpe " + train.wpe) +
                        " vectors; use it with learned inputs (or --wpe none)");
    }
  }
  // lr * weight decay above 1 would flip the weights' signs every step
  if (train.lr * train.weight_decay > 1.0) {
    throw usage_error("--lr times --weight-decay is above 1 (" + std::to_string(train.lr * train.weight_decay) +
                      "): each step would shrink the weights past zero");
  }
  if (engine == "reference") {
    if (train.batch_size != 1) {
      throw usage_error("--engine reference trains on one document per step, as microgpt.py does; use --batch-size 1 or --engine fast");
    }
    if (train.dropout > 0.0 || train.ema > 0.0 || train.weight_decay > 0.0) {
      throw usage_error("--dropout, --ema and --weight-decay are options of the fast engine; the reference engine trains exactly as microgpt.py does");
    }
    if (train.wte != "learned" || train.wpe != "learned" || train.combine != "add") {
      throw usage_error("--wte, --wpe and --combine are options of the fast engine; the reference engine trains exactly as microgpt.py does");
    }
  }
}

}  // namespace microgpt
