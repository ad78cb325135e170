#include "train/presets.h"

namespace microgpt {

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {
      {"microgpt", "microgpt.py's settings: 1 layer, 16 wide, 4 heads, one document per step, 1000 steps",
       1, 16, 4, 16, 1, 1000, 0.01, 0, 0.0, 0.0, false},
      {"makemore", "makemore-sized: 4 layers, 64 wide, 4 heads, 32 documents per step",
       4, 64, 4, 16, 32, 5000, 1e-3, 0, 0.0, 0.0, false},
      {"large", "6 layers, 192 wide, 6 heads, 64 documents per step (2.7M parameters)",
       6, 192, 6, 16, 64, 2000, 1e-3, 0, 0.0, 0.0, false},
      {"quality", "the best validation loss we found on names.txt within 150 s: 4 layers, 128 wide, 32 documents per step, weights averaged, documents reshuffled every pass (see README)",
       4, 128, 4, 16, 32, 11000, 1.5e-3, 1000, 0.0, 0.9998, true},
      {"text-small", "a continuous text (--format text), nanoGPT's CPU recipe: 4 layers, 128 wide, block 64, 12 windows per step, 2000 steps",
       4, 128, 4, 64, 12, 2000, 1e-3, 500, 0.0, 0.0, false, "text", "microgpt", 100},
      {"text", "a continuous text (--format text), the best validation loss we found on tinyshakespeare.txt within 10 minutes: 4 layers, 256 wide, block 128, 16 windows per step, 2000 steps (see README)",
       4, 256, 4, 128, 16, 2000, 2e-3, 250, 0.0, 0.0, false, "text", "gpt2", 100},
  };
  return all;
}

const Preset* find_preset(const std::string& name) {
  for (const Preset& p : presets()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

void apply_preset(const Preset& p, ModelConfig& model, TrainConfig& train,
                  const std::function<bool(const std::string& setting)>& given) {
  auto set = [&](const char* name, auto& field, const auto& value) {
    if (!given(name)) field = value;
  };
  set("n_layer", model.n_layer, p.n_layer);
  set("n_embd", model.n_embd, p.n_embd);
  set("n_head", model.n_head, p.n_head);
  set("block_size", model.block_size, p.block_size);
  set("batch_size", train.batch_size, p.batch_size);
  set("steps", train.steps, p.steps);
  set("lr", train.lr, p.lr);
  set("eval_every", train.eval_every, p.eval_every);
  set("dropout", train.dropout, p.dropout);
  set("ema", train.ema, p.ema);
  set("reshuffle", train.reshuffle, p.reshuffle);
  set("format", train.format, p.format);
  set("init", train.init, p.init);
  set("warmup", train.warmup, p.warmup);
}

}  // namespace microgpt
