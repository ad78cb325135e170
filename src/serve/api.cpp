#include "serve/api.h"

#include <set>

#include "core/error.h"
#include "core/text.h"
#include "model/config.h"

namespace microgpt {

namespace {

using nlohmann::json;

// A request's fields: an object with only the known ones, each of its type.
void check_fields(const json& request, const std::set<std::string>& known) {
  if (!request.is_object()) throw ApiError(400, "the request must be a JSON object");
  for (const auto& [name, value] : request.items()) {
    if (!known.contains(name)) throw ApiError(400, "unknown field '" + name + "'");
  }
}

template <class T>
std::optional<T> field(const json& request, const std::string& name) {
  if (!request.contains(name) || request[name].is_null()) return std::nullopt;
  const json& v = request[name];
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) throw ApiError(400, "'" + name + "' must be a string");
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw ApiError(400, "'" + name + "' must be a whole number");
    if (std::is_unsigned_v<T> && !v.is_number_unsigned() && v.get<int64_t>() < 0) {
      throw ApiError(400, "'" + name + "' must not be negative");
    }
  } else {
    if (!v.is_number()) throw ApiError(400, "'" + name + "' must be a number");
  }
  return v.get<T>();
}

// The model's errors as the API's: what the request asked for is the caller's (400).
template <class Fn>
auto answering(Fn&& fn) {
  try {
    return fn();
  } catch (const Error& e) {
    throw ApiError(e.kind() == Error::Kind::usage ? 400 : 500, one_line(e.what()));
  }
}

}  // namespace

void ModelHost::load(const std::string& path) {
  LoadedModel m = load_model(path, threads_);
  std::lock_guard lock(mutex_);
  model_.emplace(std::move(m));
  path_ = path;
}

const LoadedModel& ModelHost::loaded() const {
  if (!model_) throw ApiError(404, "no model is loaded");
  return *model_;
}

json ModelHost::model() {
  std::lock_guard lock(mutex_);
  if (!model_) return json{{"loaded", false}};
  const CheckpointData& c = model_->checkpoint;
  json vocab = json::array();
  for (char32_t ch : c.vocab) vocab.push_back(encode_utf8(std::u32string(1, ch)));
  const bool text = c.train.is_text();
  return json{
      {"loaded", true},
      {"path", path_},
      {"engine", c.engine},
      {"format", c.train.format},
      {"config",
       {{"n_layer", c.model.n_layer},
        {"n_embd", c.model.n_embd},
        {"n_head", c.model.n_head},
        {"block_size", c.model.block_size},
        {"vocab_size", c.model.vocab_size}}},
      {"vocab", vocab},
      {"bos", text ? json(nullptr) : json(static_cast<int64_t>(c.vocab.size()))},
      {"step", c.step},
      {"steps", c.train.steps},
      {"num_params", model_->engine->num_params()},
      {"data", c.data_source},
  };
}

json ModelHost::sample(const json& request) {
  check_fields(request, {"num_samples", "seed", "temperature", "top_k", "top_p", "prefix", "max_len"});
  SampleCommand cmd;
  cmd.model_path = path_;
  cmd.num_samples = field<int64_t>(request, "num_samples");
  cmd.seed = field<uint64_t>(request, "seed");
  cmd.temperature = field<double>(request, "temperature");
  cmd.top_k = field<int64_t>(request, "top_k").value_or(0);
  cmd.top_p = field<double>(request, "top_p").value_or(1.0);
  cmd.prefix = field<std::string>(request, "prefix").value_or("");
  cmd.max_len = field<int64_t>(request, "max_len").value_or(0);
  std::lock_guard lock(mutex_);
  const LoadedModel& m = loaded();
  json samples = json::array();
  SampleSink sink;
  sink.end = [&](int64_t, const std::u32string& text) { samples.push_back(encode_utf8(text)); };
  answering([&] {
    draw_samples(cmd, m, sink);
    return 0;
  });
  return json{{"samples", samples}};
}

}  // namespace microgpt
