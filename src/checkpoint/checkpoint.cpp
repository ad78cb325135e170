#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "model/limits.h"

namespace microgpt {

namespace {

using nlohmann::json;

struct TensorSpec {
  std::string name;
  std::string dtype;  // F32, F64, U32
  std::vector<int64_t> shape;
  int64_t elem_size() const { return dtype == "F64" ? 8 : 4; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// The tensors a checkpoint of this configuration holds, in file order.
std::vector<TensorSpec> tensor_specs(const ModelConfig& model, bool f64, bool averaged) {
  const std::string dt = f64 ? "F64" : "F32";
  std::vector<TensorSpec> specs;
  const ParamLayout layout(model);
  for (const ParamTensor& t : layout.tensors()) specs.push_back({t.name, dt, {t.rows, t.cols}});
  specs.push_back({"optimizer.adam_m", dt, {layout.total()}});
  specs.push_back({"optimizer.adam_v", dt, {layout.total()}});
  if (averaged) specs.push_back({"optimizer.weights", dt, {layout.total()}});
  specs.push_back({"rng.mt", "U32", {PyRandom::kStateWords}});
  return specs;
}

std::string number(double x) { return python_float_repr(x); }

template <class T>
void append_as(std::string& out, const double* values, int64_t n) {
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(n) * sizeof(T));
  for (int64_t i = 0; i < n; i++) {
    const T v = static_cast<T>(values[i]);
    std::memcpy(out.data() + at + static_cast<size_t>(i) * sizeof(T), &v, sizeof(T));
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointData& c) {
  const ParamLayout layout(c.model);
  const int64_t P = layout.total();
  if (static_cast<int64_t>(c.params.size()) != P || static_cast<int64_t>(c.adam_m.size()) != P ||
      static_cast<int64_t>(c.adam_v.size()) != P ||
      static_cast<int64_t>(c.trained_params.size()) != (c.train.ema > 0.0 ? P : 0)) {
    throw Error("checkpoint '" + path + "': parameter count does not match the configuration");
  }
  // Tensor bytes first, so the header can carry their checksum.
  std::string data;
  const std::vector<TensorSpec> specs = tensor_specs(c.model, c.f64, c.train.ema > 0.0);
  json header = json::object();
  for (const TensorSpec& s : specs) {
    const auto begin = static_cast<int64_t>(data.size());
    if (s.name.starts_with("optimizer.")) {
      const double* v = s.name == "optimizer.adam_m"   ? c.adam_m.data()
                        : s.name == "optimizer.adam_v" ? c.adam_v.data()
                                                       : c.trained_params.data();
      c.f64 ? append_as<double>(data, v, P) : append_as<float>(data, v, P);
    } else if (s.name == "rng.mt") {
      const size_t at = data.size();
      data.resize(at + sizeof(uint32_t) * PyRandom::kStateWords);
      std::memcpy(data.data() + at, c.rng.mt.data(), sizeof(uint32_t) * PyRandom::kStateWords);
    } else {
      const ParamTensor& t = *layout.find(s.name);
      const double* v = c.params.data() + t.offset;
      c.f64 ? append_as<double>(data, v, t.numel()) : append_as<float>(data, v, t.numel());
    }
    header[s.name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {begin, static_cast<int64_t>(data.size())}}};
  }
  json config = {
      {"n_layer", c.model.n_layer},         {"n_embd", c.model.n_embd},         {"n_head", c.model.n_head},
      {"block_size", c.model.block_size},   {"vocab_size", c.model.vocab_size}, {"seed", c.train.seed},
      {"steps", c.train.steps},             {"lr", c.train.lr},                 {"beta1", c.train.beta1},
      {"beta2", c.train.beta2},             {"eps", c.train.eps},               {"init_std", c.train.init_std},
      {"temperature", c.train.temperature}, {"num_samples", c.train.num_samples}, {"batch_size", c.train.batch_size},
      {"val_frac", c.train.val_frac},       {"eval_every", c.train.eval_every}, {"dropout", c.train.dropout},
      {"ema", c.train.ema},                 {"reshuffle", c.train.reshuffle},
  };
  json vocab = json::array();
  for (char32_t ch : c.vocab) vocab.push_back(encode_utf8(std::u32string(1, ch)));
  json data_info = {{"source", c.data_source}, {"docs", c.data_docs}, {"crc32", c.data_crc}};
  json rng = {{"index", c.rng.index}, {"gauss_next", c.rng.gauss_next ? json(number(*c.rng.gauss_next)) : json(nullptr)}};
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", crc32(data));
  header["__metadata__"] = {
      {"format", kCheckpointFormat},
      {"format_version", std::to_string(kCheckpointVersion)},
      {"engine", c.engine},
      {"config", config.dump()},
      {"vocab", vocab.dump()},
      {"step", std::to_string(c.step)},
      {"steps", std::to_string(c.train.steps)},
      {"threads", std::to_string(c.threads)},
      {"data", data_info.dump()},
      {"rng", rng.dump()},
      {"tensor_crc32", crc},
  };
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data then starts 8-byte aligned
  char len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; i++) len[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  write_file_atomic(path, [&](const std::function<void(std::string_view)>& write) {
    write(std::string_view(len, 8));
    write(text);
    write(data);
  });
}

CheckpointData load_checkpoint(const std::string& path) {
  const std::string bytes = read_file(path, "checkpoint");
  auto bad = [&](const std::string& why) { return Error("checkpoint '" + path + "' is not usable: " + why); };
  if (bytes.size() < 8) throw bad("the file is too short to be a safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  if (n < 2 || n > bytes.size() - 8) {
    throw bad("its header length (" + std::to_string(n) + " bytes) does not fit in the file (" + std::to_string(bytes.size()) +
              " bytes): truncated, or not a safetensors file");
  }
  json header;
  try {
    header = json::parse(bytes.substr(8, n));
  } catch (const json::exception& e) {
    throw bad("its JSON header does not parse (" + std::string(e.what()) + ")");
  }
  if (!header.is_object() || !header.contains("__metadata__") || !header["__metadata__"].is_object()) {
    throw bad("no __metadata__ in the header: not a microgpt checkpoint");
  }
  const json& meta = header["__metadata__"];
  auto meta_string = [&](const char* key) -> std::string {
    if (!meta.contains(key) || !meta[key].is_string()) throw bad(std::string("metadata '") + key + "' is missing");
    return meta[key].get<std::string>();
  };
  if (meta_string("format") != kCheckpointFormat) throw bad("format is '" + meta_string("format") + "', not '" + kCheckpointFormat + "'");
  if (meta_string("format_version") != std::to_string(kCheckpointVersion)) {
    throw bad("format version " + meta_string("format_version") + " (this microgpt reads version " +
              std::to_string(kCheckpointVersion) + ")");
  }
  CheckpointData c;
  // Every number is checked for its type and range before it is converted: a file can
  // say anything (1e300 for a count, a negative learning rate).
  auto integer = [&](const json& obj, const char* key, const WholeRange& range) -> int64_t {
    const json& v = obj.at(key);
    // JSON parsers keep non-negative whole numbers as unsigned: compare in that type then.
    const bool fits = v.is_number_unsigned()
                          ? v.get<uint64_t>() <= static_cast<uint64_t>(range.max) &&
                                (range.min <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(range.min))
                          : v.is_number_integer() && range.contains(v.get<int64_t>());
    if (!fits) throw bad(std::string("'") + key + "' is " + v.dump() + ", expected " + range.expected());
    return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  };
  auto real = [&](const json& obj, const char* key, const RealRange& range) -> double {
    const json& v = obj.at(key);
    const double x = v.is_number() ? v.get<double>() : NAN;
    if (!range.contains(x)) throw bad(std::string("'") + key + "' is " + v.dump() + ", expected " + std::string(range.expected));
    return x;
  };
  auto whole_string = [&](const char* key, const WholeRange& range) -> int64_t {
    const std::string text = meta_string(key);
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || !range.contains(v)) {
      throw bad(std::string("metadata '") + key + "' is '" + text + "', expected " + range.expected());
    }
    return v;
  };
  try {
    c.engine = meta_string("engine");
    if (c.engine != "fast" && c.engine != "reference") throw bad("unknown engine '" + c.engine + "'");
    const json config = json::parse(meta_string("config"));
    c.model.n_layer = integer(config, "n_layer", limits::n_layer);
    c.model.n_embd = integer(config, "n_embd", limits::n_embd);
    c.model.n_head = integer(config, "n_head", limits::n_head);
    c.model.block_size = integer(config, "block_size", limits::block_size);
    c.model.vocab_size = integer(config, "vocab_size", limits::vocab_size);
    const json& seed = config.at("seed");
    if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0)) {
      throw bad("'seed' is " + seed.dump() + ", expected a whole number from 0 to 2^64-1");
    }
    c.train.seed = seed.get<uint64_t>();
    c.train.steps = integer(config, "steps", limits::steps);
    c.train.lr = real(config, "lr", limits::lr);
    c.train.beta1 = real(config, "beta1", limits::beta);
    c.train.beta2 = real(config, "beta2", limits::beta);
    c.train.eps = real(config, "eps", limits::eps);
    c.train.init_std = real(config, "init_std", limits::init_std);
    c.train.temperature = real(config, "temperature", limits::temperature);
    c.train.num_samples = integer(config, "num_samples", limits::num_samples);
    c.train.batch_size = integer(config, "batch_size", limits::batch_size);
    c.train.val_frac = real(config, "val_frac", limits::val_frac);
    c.train.eval_every = integer(config, "eval_every", limits::eval_every);
    // Absent from checkpoints written before these options existed.
    c.train.dropout = config.contains("dropout") ? real(config, "dropout", limits::dropout) : 0.0;
    c.train.ema = config.contains("ema") ? real(config, "ema", limits::ema) : 0.0;
    if (config.contains("reshuffle")) {
      if (!config.at("reshuffle").is_boolean()) throw bad("'reshuffle' is " + config.at("reshuffle").dump() + ", expected true or false");
      c.train.reshuffle = config.at("reshuffle").get<bool>();
    }
    for (const json& ch : json::parse(meta_string("vocab"))) {
      const auto cps = decode_utf8(ch.get<std::string>());
      if (!cps || cps->size() != 1) throw bad("a vocabulary entry is not one character");
      c.vocab.push_back((*cps)[0]);
    }
    c.step = whole_string("step", WholeRange{"step", 0, c.train.steps});
    c.threads = whole_string("threads", limits::threads);
    if (whole_string("steps", limits::steps) != c.train.steps) throw bad("steps in metadata and config disagree");
    const json data = json::parse(meta_string("data"));
    c.data_source = data.at("source").get<std::string>();
    c.data_docs = integer(data, "docs", WholeRange{"docs", 1, std::numeric_limits<int64_t>::max()});
    c.data_crc = static_cast<uint32_t>(integer(data, "crc32", WholeRange{"crc32", 0, 0xFFFFFFFF}));
    const json rng = json::parse(meta_string("rng"));
    c.rng.index = integer(rng, "index", WholeRange{"index", 0, PyRandom::kStateWords});
    if (!rng.at("gauss_next").is_null()) c.rng.gauss_next = std::stod(rng.at("gauss_next").get<std::string>());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw bad(std::string("its metadata is damaged (") + e.what() + ")");
  }
  // The whole configuration as a training run would check it: n_embd a multiple of
  // n_head, only what its engine can do (no dropout or average in the reference's).
  try {
    validate_configuration(c.engine, c.model, c.train);
  } catch (const Error& e) {
    throw bad(std::string("its configuration is impossible: ") + e.what());
  }
  if (static_cast<int64_t>(c.vocab.size()) + 1 != c.model.vocab_size) {
    throw bad("its vocabulary has " + std::to_string(c.vocab.size()) + " characters but vocab_size is " +
              std::to_string(c.model.vocab_size));
  }
  // Tensors: each one present with the expected dtype and shape, inside the data, which
  // they cover exactly; then the checksum. First the size the configuration implies
  // must be the size of the data, before anything that big is allocated.
  const std::string_view data = std::string_view(bytes).substr(8 + n);
  {
    const double P = ParamLayout::count(c.model);
    const bool f64 = header.contains("wte") && header["wte"].is_object() && header["wte"].value("dtype", "") == "F64";
    const double per_param = c.train.ema > 0.0 ? 4 : 3;  // weights, m, v (and the trained weights)
    const double expected = per_param * P * (f64 ? 8 : 4) + 4.0 * PyRandom::kStateWords;
    char need[32];
    std::snprintf(need, sizeof need, expected < 1e18 ? "%.0f" : "%.3g", expected);
    if (expected > static_cast<double>(data.size())) {
      throw bad(std::string("its tensors need ") + need + " bytes but the file holds " + std::to_string(data.size()) +
                ": they lie outside the file's data (truncated?)");
    }
    if (expected < static_cast<double>(data.size())) {
      throw bad("its data has " + std::to_string(data.size()) + " bytes but its tensors need " + need +
                ": bytes no tensor accounts for");
    }
  }
  const char* dtype_expected = nullptr;
  for (const char* dt : {"F32", "F64"}) {
    if (header.contains("wte") && header["wte"].is_object() && header["wte"].value("dtype", "") == dt) dtype_expected = dt;
  }
  if (!dtype_expected) throw bad("tensor 'wte' is missing or is neither F32 nor F64");
  c.f64 = std::string(dtype_expected) == "F64";
  const std::vector<TensorSpec> specs = tensor_specs(c.model, c.f64, c.train.ema > 0.0);
  std::vector<std::pair<int64_t, int64_t>> extents;  // where each tensor's bytes lie
  const ParamLayout layout(c.model);
  c.params.resize(static_cast<size_t>(layout.total()));
  c.adam_m.resize(static_cast<size_t>(layout.total()));
  c.adam_v.resize(static_cast<size_t>(layout.total()));
  if (c.train.ema > 0.0) c.trained_params.resize(static_cast<size_t>(layout.total()));
  for (const TensorSpec& s : specs) {
    if (!header.contains(s.name) || !header[s.name].is_object()) throw bad("tensor '" + s.name + "' is missing");
    const json& t = header[s.name];
    int64_t begin = 0, end = 0;
    try {
      if (t.at("dtype").get<std::string>() != s.dtype) {
        throw bad("tensor '" + s.name + "' has dtype " + t.at("dtype").get<std::string>() + ", expected " + s.dtype);
      }
      if (t.at("shape").get<std::vector<int64_t>>() != s.shape) {
        std::string want;
        for (int64_t d : s.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
        throw bad("tensor '" + s.name + "' has shape " + t.at("shape").dump() + ", expected [" + want + "]");
      }
      begin = t.at("data_offsets").at(0).get<int64_t>();
      end = t.at("data_offsets").at(1).get<int64_t>();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw bad("tensor '" + s.name + "' has a damaged entry (" + e.what() + ")");
    }
    if (begin < 0 || end < begin || end > static_cast<int64_t>(data.size()) || end - begin != s.numel() * s.elem_size()) {
      throw bad("tensor '" + s.name + "' lies outside the file's data (truncated?)");
    }
    extents.emplace_back(begin, end);
    const char* src = data.data() + begin;
    auto read_values = [&](double* dst, int64_t count) {
      for (int64_t i = 0; i < count; i++) {
        if (c.f64) {
          double v;
          std::memcpy(&v, src + i * 8, 8);
          dst[i] = v;
        } else {
          float v;
          std::memcpy(&v, src + i * 4, 4);
          dst[i] = v;
        }
      }
    };
    if (s.name == "optimizer.adam_m") {
      read_values(c.adam_m.data(), layout.total());
    } else if (s.name == "optimizer.adam_v") {
      read_values(c.adam_v.data(), layout.total());
    } else if (s.name == "optimizer.weights") {
      read_values(c.trained_params.data(), layout.total());
    } else if (s.name == "rng.mt") {
      std::memcpy(c.rng.mt.data(), src, sizeof(uint32_t) * PyRandom::kStateWords);
    } else {
      const ParamTensor& p = *layout.find(s.name);
      read_values(c.params.data() + p.offset, p.numel());
    }
  }
  // The tensors must tile the data exactly: no gap, no byte shared by two of them.
  std::sort(extents.begin(), extents.end());
  int64_t at = 0;
  for (const auto& [begin, end] : extents) {
    if (begin != at) throw bad(begin < at ? "two tensors share bytes" : "its data has bytes no tensor accounts for");
    at = end;
  }
  if (at != static_cast<int64_t>(data.size())) throw bad("its data has bytes no tensor accounts for");
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", crc32(data));
  if (meta_string("tensor_crc32") != crc) {
    throw bad("checksum mismatch (tensor bytes have CRC-32 " + std::string(crc) + ", the header says " +
              meta_string("tensor_crc32") + "): the file is damaged");
  }
  return c;
}

}  // namespace microgpt
