// The commands that use a trained model: `sample` (names from a checkpoint, with
// sampling controls), `eval` (loss per token and perplexity over a file or the
// checkpoint's held-out documents) and `embed` (the learned embeddings made visible).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "checkpoint/checkpoint.h"
#include "data/dataset.h"
#include "train/engine.h"
#include "train/sampler.h"

namespace microgpt {

// A checkpoint loaded into the engine that wrote it.
struct LoadedModel {
  CheckpointData checkpoint;
  Tokenizer tokenizer;
  std::unique_ptr<Engine> engine;
};
LoadedModel load_model(const std::string& path, int64_t threads);

struct SampleCommand {
  std::string model_path;
  std::optional<int64_t> num_samples;  // default: the checkpoint's
  std::optional<double> temperature;   // default: the checkpoint's; 0: the most likely token
  int64_t top_k = 0;
  double top_p = 1.0;
  std::string prefix;             // UTF-8
  std::optional<uint64_t> seed;   // default: continue the generator saved with the model
  int64_t max_len = 0;            // 0: block_size
  bool novel = false;             // only names not in the training data
  std::optional<std::string> data_path;  // the training data, for --novel
  std::optional<std::string> log_path;
  int64_t threads = 1;
};
void run_sample(const SampleCommand& command, std::ostream& out);

// What draw_samples hands on: for a text model, begin(i, count) as sample i starts and
// write(characters) as they come; for every sample, end(i, text) with the whole of it.
struct SampleSink {
  std::function<void(int64_t index, int64_t count)> begin;
  std::function<void(const std::u32string& chars)> write;
  std::function<void(int64_t index, const std::u32string& text)> end;
};
// The samples `command` asks for (its model_path only names the model in messages),
// from a model already loaded: what `microgpt sample` prints, and the web API returns.
void draw_samples(const SampleCommand& command, const LoadedModel& model, const SampleSink& sink);
// The options draw_samples draws with, once it has checked `command` against the model
// (Error of kind usage when it asks for something the model cannot do): for a caller
// that must refuse such a request before it answers anything.
SampleOptions sample_options(const SampleCommand& command, const LoadedModel& model);

struct EvalCommand {
  std::string model_path;
  std::optional<std::string> data_path;  // none: the checkpoint's held-out documents
  int64_t threads = 1;
};
void run_eval(const EvalCommand& command, std::ostream& out);

struct EmbedCommand {
  std::string model_path;
  std::optional<std::string> neighbors;  // comma-separated characters; empty: all tokens
  int64_t top = 5;
  std::optional<std::string> plot_path, heatmap_path, export_prefix, show_text;
};
void run_embed(const EmbedCommand& command, std::ostream& out);

}  // namespace microgpt
