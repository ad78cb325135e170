// The web API as plain functions: a JSON request in, a JSON answer out, no HTTP (the
// server in server.cpp routes to them; tests call them directly). Each answer is what the
// command-line tool gives for the same question: /api/sample the names of `microgpt
// sample`, with the same seed and controls.
//
// Errors: ApiError, with the HTTP status it means (400 for a request that asks for
// something impossible, 404 for no model, 500 for the rest) and one line of message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "inspect/embed.h"
#include "train/commands.h"

namespace microgpt {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// The model the page works with, one at a time; every call locks it.
class ModelHost {
 public:
  explicit ModelHost(int64_t threads) : threads_(threads) {}
  // Loads a checkpoint, replacing the model (Error when it cannot be read).
  void load(const std::string& path);

  // GET /api/model: {"loaded": false} or {"loaded": true, "path", "engine", "format",
  // "config": {n_layer, n_embd, n_head, block_size, vocab_size}, "vocab": [...] (token
  // order; a model of names has BOS after them), "bos": id or null, "step", "steps",
  // "num_params", "data", "settings": every setting the checkpoint records}.
  nlohmann::json model();
  // POST /api/sample: {"num_samples", "seed", "temperature", "top_k", "top_p", "prefix",
  // "max_len"} (each optional, as `microgpt sample`'s flags) -> {"samples": [...]}.
  nlohmann::json sample(const nlohmann::json& request);
  // POST /api/sample/stream: the same request; the samples as they are drawn, one JSON
  // object a line: {"sample": i, "chars": "..."} as a text model writes, then {"sample":
  // i, "text": "..."} for each whole sample. sample_command checks the request (400)
  // before anything is sent; sample_stream hands each line to `emit`.
  SampleCommand sample_command(const nlohmann::json& request) const;
  void sample_stream(const SampleCommand& command, const std::function<void(const nlohmann::json&)>& emit);
  // POST /api/inspect: {"text": "emma", "top": 10} -> {"positions": [{"pos", "token",
  // "id", "wte", "wpe", "sum", "next": [{"token", "id", "p"}, ...]}, ...], "attention":
  // [layer][head][query] rows of the weights on keys 0..query, or null (the reference
  // engine)}: for [BOS] + text, what
  // the model receives at each position and its `top` most likely next tokens, the
  // numbers `microgpt embed --show` prints (there rounded to 3 decimals).
  nlohmann::json inspect(const nlohmann::json& request);
  // POST /api/save {"name"}: the model as a checkpoint DIR/NAME.safetensors (dir: the
  // server's --out-dir). GET /api/checkpoints: {"checkpoints": [names in dir]}. POST
  // /api/load {"name"}: that checkpoint becomes the model. Names hold only letters,
  // digits, '_' and '-'.
  nlohmann::json save(const std::string& dir, const nlohmann::json& request);
  static nlohmann::json checkpoints(const std::string& dir);
  nlohmann::json load_named(const std::string& dir, const nlohmann::json& request);

 private:
  const LoadedModel& loaded() const;

  std::mutex mutex_;
  int64_t threads_;
  std::string path_;
  std::optional<LoadedModel> model_;
  std::optional<EmbeddingView> view_;  // the model's wte and wpe
};

}  // namespace microgpt
