// The web API as plain functions: a JSON request in, a JSON answer out, no HTTP (the
// server in server.cpp routes to them; tests call them directly). Each answer is what the
// command-line tool gives for the same question: /api/sample the names of `microgpt
// sample`, with the same seed and controls.
//
// Errors: ApiError, with the HTTP status it means (400 for a request that asks for
// something impossible, 404 for no model, 500 for the rest) and one line of message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>

#include "core/text.h"
#include "inspect/embed.h"
#include "train/commands.h"

namespace microgpt {

class ApiError : public std::runtime_error {
 public:
  // (the message made one line: it may quote what the request sent, a NUL included)
  ApiError(int status, const std::string& message) : std::runtime_error(one_line(message)), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// A request's field `name` as a T, or none when it is missing or null; 400 when it is of
// the wrong type (a whole number for an integer, not 2.5 nor 1e308) or out of T's range.
template <class T>
std::optional<T> field(const nlohmann::json& request, const std::string& name) {
  if (!request.contains(name) || request[name].is_null()) return std::nullopt;
  const nlohmann::json& v = request[name];
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw ApiError(400, "'" + name + "' must be a string");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw ApiError(400, "'" + name + "' must be true or false");
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw ApiError(400, "'" + name + "' must be a whole number");
    if (std::is_unsigned_v<T> && !v.is_number_unsigned() && v.get<int64_t>() < 0) {
      throw ApiError(400, "'" + name + "' must not be negative");
    }
    if (std::is_signed_v<T> && v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}) {
      throw ApiError(400, "'" + name + "' is too large");
    }
  } else {
    if (!v.is_number()) throw ApiError(400, "'" + name + "' must be a number");
  }
  return v.get<T>();
}

// DIR/NAME + extension for a file the page names (a checkpoint, its snapshots): 400
// unless the name holds only letters, digits, '_' and '-' (nothing that leaves the
// folder), at most kMaxNameLength of them, and the file, if there, is a plain file: not
// a symbolic link (which could lead anywhere: the server reads and writes only inside
// its --out-dir), a folder, a pipe (which would hold its reader forever) or a device.
inline constexpr size_t kMaxNameLength = 200;
std::string file_in(const std::string& dir, const std::string& name, const std::string& extension);
// NAME.snapshots.jsonl beside the checkpoint NAME.safetensors: the run's history.
std::filesystem::path snapshots_beside(const std::string& checkpoint);

// A vocabulary as the API tells it, put into `into`: "vocab", each character (UTF-8) in
// token order; "labels", each as reports show it (inspect/embed.h's char_label: <space>,
// \n, U+XXXX for one that would not show); "classes", each one's "vowel", "consonant" or
// "other" (classify_char): what the page labels and colours its tokens by, so that its
// views agree with `microgpt embed`.
void put_vocabulary(nlohmann::json& into, const std::u32string& chars);

// What one request may ask of the server, at most: samples (of /api/sample and of a run)
// and characters a sample. A page asks for a few; more would hold the model (and a
// thread of the server) for minutes. `microgpt sample` draws any number.
inline constexpr int64_t kMaxRequestSamples = 1000;
inline constexpr int64_t kMaxRequestSampleLength = 10000;
// 400 for more than kMaxRequestSamples samples.
void check_request_samples(int64_t num_samples);

// The model the page works with, one at a time; every call locks it.
class ModelHost {
 public:
  explicit ModelHost(int64_t threads) : threads_(threads) {}
  // Loads a checkpoint, replacing the model (Error when it cannot be read).
  void load(const std::string& path);

  // GET /api/model: {"loaded": false} or {"loaded": true, "path", "engine", "format",
  // "config": {n_layer, n_embd, n_head, block_size, vocab_size}, "vocab", "labels",
  // "classes" (put_vocabulary; a model of names has BOS after them), "bos": id or null,
  // "step", "steps", "num_params", "data", "settings": every setting the checkpoint
  // records}.
  nlohmann::json model();
  // POST /api/sample: {"num_samples", "seed", "temperature", "top_k", "top_p", "prefix",
  // "max_len"} (each optional, as `microgpt sample`'s flags) -> {"samples": [...]}.
  nlohmann::json sample(const nlohmann::json& request);
  // POST /api/sample/stream: the same request; the samples as they are drawn, one JSON
  // object a line: {"sample": i, "chars": "..."} as a text model writes, then {"sample":
  // i, "text": "..."} for each whole sample. sample_command checks the request (400)
  // before anything is sent; sample_stream hands each line to `emit`.
  SampleCommand sample_command(const nlohmann::json& request) const;
  // The command checked against the model (404 with none, 400 for what it cannot do,
  // or for more samples than kMaxRequestSamples, the model's own count included).
  void check_sample(const SampleCommand& command);
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
  // digits, '_' and '-'. `taken(path)`: whether a run going on writes that checkpoint
  // when it ends (a save there is refused with 409: the run would write over it).
  nlohmann::json save(const std::string& dir, const nlohmann::json& request,
                      const std::function<bool(const std::string&)>& taken = {});
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
