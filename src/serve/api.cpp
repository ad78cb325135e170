#include "serve/api.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/files.h"
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
  EmbeddingView view = embedding_view_from_params(m.checkpoint.model, m.checkpoint.vocab, m.checkpoint.params);
  std::lock_guard lock(mutex_);
  model_.emplace(std::move(m));
  view_.emplace(std::move(view));
  path_ = path;
}

const LoadedModel& ModelHost::loaded() const {
  if (!model_) throw ApiError(404, "no model is loaded");
  return *model_;
}

void put_vocabulary(json& into, const std::u32string& chars) {
  json vocab = json::array(), labels = json::array(), classes = json::array();
  for (char32_t ch : chars) {
    vocab.push_back(encode_utf8(std::u32string(1, ch)));
    labels.push_back(char_label(ch));
    classes.push_back(letter_class_name(classify_char(ch)));
  }
  into["vocab"] = std::move(vocab);
  into["labels"] = std::move(labels);
  into["classes"] = std::move(classes);
}

json ModelHost::model() {
  std::lock_guard lock(mutex_);
  if (!model_) return json{{"loaded", false}};
  const CheckpointData& c = model_->checkpoint;
  const bool text = c.train.is_text();
  json settings = json::object();  // as the checkpoint records them
  for (const auto& [name, value] : recorded_settings(c.model, c.train)) settings[name] = json::parse(value);
  json answer{
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
      {"bos", text ? json(nullptr) : json(static_cast<int64_t>(c.vocab.size()))},
      {"step", c.step},
      {"steps", c.train.steps},
      {"num_params", model_->engine->num_params()},
      {"data", c.data_source},
      {"settings", settings},
  };
  put_vocabulary(answer, c.vocab);
  return answer;
}

SampleCommand ModelHost::sample_command(const json& request) const {
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
  if (cmd.max_len > kMaxRequestSampleLength) {
    throw ApiError(
        400, "'max_len' is at most " + std::to_string(kMaxRequestSampleLength) + " here (microgpt sample writes more)");
  }
  return cmd;
}

void check_request_samples(int64_t num_samples) {
  if (num_samples > kMaxRequestSamples) {
    throw ApiError(
        400, "'num_samples' is at most " + std::to_string(kMaxRequestSamples) + " here (microgpt sample draws more)");
  }
}

namespace {

// What check_sample checks, with the model's lock held: the samples the command would
// draw (its num_samples, or as many as the model's training drew) and what the model
// can do.
void check_sample_with(const SampleCommand& cmd, const LoadedModel& m) {
  check_request_samples(cmd.num_samples.value_or(m.checkpoint.train.num_samples));
  answering([&] { return sample_options(cmd, m); });
}

}  // namespace

void ModelHost::check_sample(const SampleCommand& cmd) {
  std::lock_guard lock(mutex_);
  check_sample_with(cmd, loaded());
}

void ModelHost::sample_stream(const SampleCommand& cmd, const std::function<void(const json&)>& emit) {
  std::lock_guard lock(mutex_);
  const LoadedModel& m = loaded();
  check_sample_with(cmd, m);  // (the model may have changed since a stream's check)
  int64_t current = 0;
  SampleSink sink;
  sink.begin = [&](int64_t i, int64_t) { current = i; };
  sink.write = [&](const std::u32string& chars) {
    if (!chars.empty()) emit({{"sample", current}, {"chars", encode_utf8(chars)}});
  };
  sink.end = [&](int64_t i, const std::u32string& text) { emit({{"sample", i}, {"text", encode_utf8(text)}}); };
  answering([&] {
    draw_samples(cmd, m, sink);
    return 0;
  });
}

json ModelHost::sample(const json& request) {
  json samples = json::array();
  sample_stream(sample_command(request), [&](const json& line) {
    if (line.contains("text")) samples.push_back(line["text"]);
  });
  return json{{"samples", samples}};
}

namespace {

bool allowed_name(const std::string& name) {
  return !name.empty() && name.size() <= kMaxNameLength &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
             std::string::npos;
}

}  // namespace

std::string file_in(const std::string& dir, const std::string& name, const std::string& extension) {
  if (!allowed_name(name)) {
    throw ApiError(400, "'name' may hold only letters, digits, '_' and '-', at most " + std::to_string(kMaxNameLength) +
                            " of them");
  }
  const std::string path = (std::filesystem::path(dir) / (name + extension)).string();
  std::error_code ec;
  const std::filesystem::file_type type = std::filesystem::symlink_status(path, ec).type();
  if (type == std::filesystem::file_type::symlink) {
    throw ApiError(
        400, "'" + name + extension + "' is a symbolic link: the server reads and writes only the files of its folder");
  }
  // (a folder, a pipe that would hold the reader forever, a device)
  if (type != std::filesystem::file_type::not_found && type != std::filesystem::file_type::regular) {
    throw ApiError(400, "'" + name + extension + "' is not a plain file: the server reads and writes only those");
  }
  return path;
}

namespace {

// The checkpoint a request names ({"name": NAME}): DIR/NAME.safetensors (file_in).
std::string checkpoint_in(const std::string& dir, const json& request) {
  check_fields(request, {"name"});
  return file_in(dir, field<std::string>(request, "name").value_or(""), ".safetensors");
}

}  // namespace

json ModelHost::save(const std::string& dir, const json& request,
                     const std::function<bool(const std::string&)>& taken) {
  const std::string path = checkpoint_in(dir, request);
  const std::string name = std::filesystem::path(path).stem().string();
  if (taken && taken(path)) {
    throw ApiError(409, "the run going on saves its model as '" + name +
                            "' when it ends: stop it first, or save under another name");
  }
  // The model's snapshots go with it: copied from beside the model it came from, or, if
  // it has none, an older NAME.snapshots.jsonl removed (a load would replay another
  // model's history).
  const std::string snapshots = file_in(dir, name, ".snapshots.jsonl");
  std::lock_guard lock(mutex_);
  const LoadedModel& m = loaded();
  const std::filesystem::path from = snapshots_beside(path_);
  answering([&] {
    save_checkpoint(path, m.checkpoint);
    std::error_code ec;
    if (std::filesystem::equivalent(from, snapshots, ec)) return 0;
    if (std::filesystem::symlink_status(from, ec).type() == std::filesystem::file_type::regular) {
      copy_file_atomic(from.string(), snapshots, "snapshots");
    } else {
      std::filesystem::remove(snapshots, ec);
    }
    return 0;
  });
  return json{{"saved", path}};
}

std::filesystem::path snapshots_beside(const std::string& checkpoint) {
  const std::filesystem::path p(checkpoint);
  return p.parent_path() / (p.stem().string() + ".snapshots.jsonl");
}

json ModelHost::checkpoints(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  // only what /api/load could take: a plain file (not a link, a folder or a pipe) under
  // an allowed name
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().stem().string();
    std::error_code type_ec;
    if (entry.path().extension() == ".safetensors" && allowed_name(name) &&
        entry.symlink_status(type_ec).type() == std::filesystem::file_type::regular) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return json{{"checkpoints", names}};
}

json ModelHost::load_named(const std::string& dir, const json& request) {
  const std::string path = checkpoint_in(dir, request);
  if (!std::filesystem::exists(path)) throw ApiError(404, "no checkpoint '" + path + "'");
  try {
    load(path);
  } catch (const Error& e) {  // the file the request names is not a checkpoint we can read
    throw ApiError(400, one_line(e.what()));
  }
  return model();
}

json ModelHost::inspect(const json& request) {
  check_fields(request, {"text", "top"});
  const std::string text = field<std::string>(request, "text").value_or("");
  const int64_t top = field<int64_t>(request, "top").value_or(10);
  if (top < 1) throw ApiError(400, "'top' must be at least 1");
  std::lock_guard lock(mutex_);
  const LoadedModel& m = loaded();
  const EmbeddingView& view = *view_;
  Engine& engine = *m.engine;
  return answering([&] {
    const NextTokenProbs predict = [&engine](const std::vector<Token>& tokens) {
      std::vector<std::vector<double>> rows;
      engine.start_sequence();
      for (Token t : tokens) rows.push_back(engine.next(t, 1.0));
      return rows;
    };
    const ShownInput in = read_input(view, text, predict);
    json positions = json::array();
    for (size_t p = 0; p < in.tokens.size(); p++) {
      const Token t = in.tokens[p];
      const auto te = view.token_row(t);
      const auto pe = view.position_row(static_cast<int64_t>(p));
      std::vector<double> sum(te.size());
      for (size_t i = 0; i < sum.size(); i++) sum[i] = te[i] + pe[i];
      json next = json::array();
      for (Token n : most_likely(in.probs[p], top)) {
        next.push_back({{"token", token_label(view, n)}, {"id", n}, {"p", in.probs[p][static_cast<size_t>(n)]}});
      }
      positions.push_back({{"pos", p},
                           {"token", token_label(view, t)},
                           {"id", t},
                           {"wte", std::vector<double>(te.begin(), te.end())},
                           {"wpe", std::vector<double>(pe.begin(), pe.end())},
                           {"sum", sum},
                           {"next", next}});
    }
    json attention = nullptr;
    if (m.checkpoint.engine != "reference") {
      const std::vector<double> w = engine.attention_weights(in.tokens);
      const auto T = static_cast<int64_t>(in.tokens.size());
      const int64_t L = m.checkpoint.model.n_layer, H = m.checkpoint.model.n_head;
      attention = json::array();
      for (int64_t l = 0; l < L; l++) {
        json heads = json::array();
        for (int64_t h = 0; h < H; h++) {
          json rows = json::array();
          for (int64_t q = 0; q < T; q++) {
            const double* row = w.data() + ((l * H + h) * T + q) * T;
            rows.push_back(std::vector<double>(row, row + q + 1));  // keys 0..q: the rest are 0
          }
          heads.push_back(rows);
        }
        attention.push_back(heads);
      }
    }
    return json{{"positions", positions}, {"attention", attention}};
  });
}

}  // namespace microgpt
