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

namespace {

// The deepest nesting a file may use: the header object, a tensor's entry, its shape
// (3); a metadata string's JSON is one object or array of plain values (1). Anything
// deeper is refused while it is parsed, so no later step (an error message showing the
// value, say) ever walks a structure nested a hundred thousand levels deep.
constexpr int kHeaderDepth = 3;
constexpr int kMetadataDepth = 1;

json parse_bounded(std::string_view text, int max_depth) {
  struct TooDeep {};
  try {
    return json::parse(text.begin(), text.end(), [max_depth](int depth, json::parse_event_t event, json&) {
      const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
      if (opens && depth >= max_depth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    throw std::runtime_error("it is nested deeper than " + std::to_string(max_depth) + " level" +
                             (max_depth == 1 ? "" : "s"));
  }
}

// A value as an error message shows it: compact, and cut short.
std::string shown(const json& v) {
  std::string text = v.dump();
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}
std::string shown(const std::string& s) { return s.size() <= 60 ? s : s.substr(0, 57) + "..."; }

// The header's checksum: the CRC-32 of the header as written, without this entry.
std::string header_checksum(json header) {
  header["__metadata__"].erase("header_crc32");
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", crc32(header.dump()));
  return crc;
}

// Reads one checkpoint, checking every field's type and range before it is used: the
// file can say anything.
class Loader {
 public:
  explicit Loader(const std::string& path) : path_(path) {}

  Error bad(const std::string& why) const { return Error("checkpoint '" + path_ + "' is not usable: " + why); }

  // A metadata entry: present, and a string.
  std::string meta(const json& m, const char* key) const {
    if (!m.contains(key)) throw bad(std::string("metadata '") + key + "' is missing");
    if (!m[key].is_string()) throw bad(std::string("metadata '") + key + "' is " + shown(m[key]) + ", not a string");
    return m[key].get<std::string>();
  }
  // A metadata entry holding JSON: an object (or, for `array`, an array) of plain values.
  json meta_json(const json& m, const char* key, bool array = false) const {
    const std::string text = meta(m, key);
    json v;
    try {
      v = parse_bounded(text, kMetadataDepth);
    } catch (const std::exception& e) {
      throw bad(std::string("metadata '") + key + "' is not JSON of a checkpoint (" + e.what() + ")");
    }
    if (array ? !v.is_array() : !v.is_object()) {
      throw bad(std::string("metadata '") + key + "' is " + shown(v) + ", not a JSON " + (array ? "array" : "object"));
    }
    return v;
  }
  const json& field(const json& obj, const char* key) const {
    if (!obj.contains(key)) throw bad(std::string("'") + key + "' is missing from its metadata");
    return obj[key];
  }
  int64_t integer(const json& obj, const char* key, const WholeRange& range) const {
    const json& v = field(obj, key);
    // JSON parsers keep non-negative whole numbers as unsigned: compare in that type then.
    const bool fits = v.is_number_unsigned()
                          ? v.get<uint64_t>() <= static_cast<uint64_t>(range.max) &&
                                (range.min <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(range.min))
                          : v.is_number_integer() && range.contains(v.get<int64_t>());
    if (!fits) throw bad(std::string("'") + key + "' is " + shown(v) + ", expected " + range.expected());
    return v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>()) : v.get<int64_t>();
  }
  double real(const json& obj, const char* key, const RealRange& range) const {
    const json& v = field(obj, key);
    const double x = v.is_number() ? v.get<double>() : NAN;
    if (!range.contains(x)) throw bad(std::string("'") + key + "' is " + shown(v) + ", expected " + std::string(range.expected));
    return x;
  }
  std::string string(const json& obj, const char* key) const {
    const json& v = field(obj, key);
    if (!v.is_string()) throw bad(std::string("'") + key + "' is " + shown(v) + ", not a string");
    return v.get<std::string>();
  }
  int64_t whole_string(const json& m, const char* key, const WholeRange& range) const {
    const std::string text = meta(m, key);
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || !range.contains(v)) {
      throw bad(std::string("metadata '") + key + "' is '" + shown(text) + "', expected " + range.expected());
    }
    return v;
  }

 private:
  std::string path_;
};

}  // namespace

namespace {

json settings_object(const ModelConfig& model, const TrainConfig& train) {
  return json{
      {"n_layer", model.n_layer},         {"n_embd", model.n_embd},         {"n_head", model.n_head},
      {"block_size", model.block_size},   {"vocab_size", model.vocab_size}, {"seed", train.seed},
      {"steps", train.steps},             {"lr", train.lr},                 {"beta1", train.beta1},
      {"beta2", train.beta2},             {"eps", train.eps},               {"init_std", train.init_std},
      {"temperature", train.temperature}, {"num_samples", train.num_samples}, {"batch_size", train.batch_size},
      {"val_frac", train.val_frac},       {"eval_every", train.eval_every}, {"dropout", train.dropout},
      {"ema", train.ema},                 {"reshuffle", train.reshuffle},   {"format", train.format},
      {"init", train.init},               {"warmup", train.warmup},         {"wte", train.wte},
      {"wpe", train.wpe},                 {"combine", train.combine},       {"weight_decay", train.weight_decay},
  };
}

}  // namespace

std::vector<std::pair<std::string, std::string>> recorded_settings(const ModelConfig& model, const TrainConfig& train) {
  std::vector<std::pair<std::string, std::string>> out;
  const json settings = settings_object(model, train);
  for (const auto& [name, value] : settings.items()) out.emplace_back(name, value.dump());
  return out;
}

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
  const json config = settings_object(c.model, c.train);
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
  header["__metadata__"]["header_crc32"] = header_checksum(header);
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
  const Loader in(path);
  auto bad = [&](const std::string& why) { return in.bad(why); };
  if (bytes.size() < 8) throw bad("the file is too short to be a safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  if (n < 2 || n > bytes.size() - 8) {
    throw bad("its header length (" + std::to_string(n) + " bytes) does not fit in the file (" + std::to_string(bytes.size()) +
              " bytes): truncated, or not a safetensors file");
  }
  json header;
  try {
    header = parse_bounded(std::string_view(bytes).substr(8, n), kHeaderDepth);
  } catch (const std::exception& e) {
    throw bad("its JSON header does not parse (" + std::string(e.what()) + ")");
  }
  if (!header.is_object() || !header.contains("__metadata__") || !header["__metadata__"].is_object()) {
    throw bad("no __metadata__ in the header: not a microgpt checkpoint");
  }
  const json& meta = header["__metadata__"];
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string()) throw bad("metadata '" + shown(key) + "' is " + shown(value) + ", not a string");
  }
  if (in.meta(meta, "format") != kCheckpointFormat) {
    throw bad("format is '" + shown(in.meta(meta, "format")) + "', not '" + kCheckpointFormat + "'");
  }
  if (in.meta(meta, "format_version") != std::to_string(kCheckpointVersion)) {
    throw bad("format version " + shown(in.meta(meta, "format_version")) + " (this microgpt reads version " +
              std::to_string(kCheckpointVersion) + ")");
  }

  // The configuration, each field's type and range from the one table of limits.
  CheckpointData c;
  c.engine = in.meta(meta, "engine");
  if (!names::engine.contains(c.engine)) throw bad("unknown engine '" + shown(c.engine) + "'");
  const json config = in.meta_json(meta, "config");
  c.model.n_layer = in.integer(config, "n_layer", limits::n_layer);
  c.model.n_embd = in.integer(config, "n_embd", limits::n_embd);
  c.model.n_head = in.integer(config, "n_head", limits::n_head);
  c.model.block_size = in.integer(config, "block_size", limits::block_size);
  c.model.vocab_size = in.integer(config, "vocab_size", limits::vocab_size);
  const json& seed = in.field(config, "seed");
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0)) {
    throw bad("'seed' is " + shown(seed) + ", expected a whole number from 0 to 2^64-1");
  }
  c.train.seed = seed.get<uint64_t>();
  c.train.steps = in.integer(config, "steps", limits::steps);
  c.train.lr = in.real(config, "lr", limits::lr);
  c.train.beta1 = in.real(config, "beta1", limits::beta);
  c.train.beta2 = in.real(config, "beta2", limits::beta);
  c.train.eps = in.real(config, "eps", limits::eps);
  c.train.init_std = in.real(config, "init_std", limits::init_std);
  c.train.temperature = in.real(config, "temperature", limits::temperature);
  c.train.num_samples = in.integer(config, "num_samples", limits::num_samples);
  c.train.batch_size = in.integer(config, "batch_size", limits::batch_size);
  c.train.val_frac = in.real(config, "val_frac", limits::val_frac);
  c.train.eval_every = in.integer(config, "eval_every", limits::eval_every);
  // Absent from checkpoints written before these options existed.
  c.train.dropout = config.contains("dropout") ? in.real(config, "dropout", limits::dropout) : 0.0;
  c.train.ema = config.contains("ema") ? in.real(config, "ema", limits::ema) : 0.0;
  c.train.weight_decay =  // absent before AdamW: 0
      config.contains("weight_decay") ? in.real(config, "weight_decay", limits::weight_decay) : 0.0;
  if (config.contains("reshuffle")) {
    if (!config["reshuffle"].is_boolean()) throw bad("'reshuffle' is " + shown(config["reshuffle"]) + ", expected true or false");
    c.train.reshuffle = config["reshuffle"].get<bool>();
  }
  if (config.contains("format")) c.train.format = in.string(config, "format");  // absent before texts: lines
  if (config.contains("init")) c.train.init = in.string(config, "init");  // absent before: microgpt
  if (config.contains("warmup")) c.train.warmup = in.integer(config, "warmup", limits::warmup);  // absent before: 0
  // absent before the input representations (model/inputs.h): learned, learned, add
  if (config.contains("wte")) c.train.wte = in.string(config, "wte");
  if (config.contains("wpe")) c.train.wpe = in.string(config, "wpe");
  if (config.contains("combine")) c.train.combine = in.string(config, "combine");
  // The whole configuration as a training run would check it: n_embd a multiple of
  // n_head, only what its engine can do (no dropout or average in the reference's).
  try {
    validate_configuration(c.engine, c.model, c.train);
  } catch (const Error& e) {
    throw bad(std::string("its configuration is impossible: ") + e.what());
  }

  // The vocabulary: characters a data file can make tokens of, sorted and distinct. A
  // document never holds a line break; a text holds \n but never \r (read as \n).
  const bool text = c.train.is_text();
  for (const json& ch : in.meta_json(meta, "vocab", true)) {
    const auto cps = ch.is_string() ? decode_utf8(ch.get<std::string>()) : std::nullopt;
    if (!cps || cps->size() != 1) throw bad("a vocabulary entry (" + shown(ch) + ") is not one character");
    const char32_t cp = (*cps)[0];
    if (cp == U'\r' || (cp == U'\n' && !text)) {
      throw bad(std::string("its vocabulary has a line break, which no ") + (text ? "text read with universal newlines" : "document") +
                " can hold");
    }
    if (!c.vocab.empty() && cp <= c.vocab.back()) throw bad("its vocabulary is not sorted and distinct, as a tokenizer makes it");
    c.vocab.push_back(cp);
  }
  // Documents have BOS besides their characters; a text has its characters alone.
  if (static_cast<int64_t>(c.vocab.size()) + (text ? 0 : 1) != c.model.vocab_size || c.vocab.empty()) {
    throw bad("its vocabulary has " + std::to_string(c.vocab.size()) + " characters but vocab_size is " +
              std::to_string(c.model.vocab_size) + (text ? " (a text model has no BOS)" : " (with BOS)"));
  }
  c.step = in.whole_string(meta, "step", WholeRange{"step", 0, c.train.steps});
  c.threads = in.whole_string(meta, "threads", limits::threads);
  if (in.whole_string(meta, "steps", limits::steps) != c.train.steps) throw bad("steps in metadata and config disagree");
  const json data_info = in.meta_json(meta, "data");
  c.data_source = in.string(data_info, "source");
  c.data_docs = in.integer(data_info, "docs", WholeRange{"docs", 1, std::numeric_limits<int64_t>::max()});
  c.data_crc = static_cast<uint32_t>(in.integer(data_info, "crc32", WholeRange{"crc32", 0, 0xFFFFFFFF}));
  const json rng = in.meta_json(meta, "rng");
  c.rng.index = in.integer(rng, "index", WholeRange{"index", 0, PyRandom::kStateWords});
  if (const json& g = in.field(rng, "gauss_next"); !g.is_null()) {
    const std::string text = g.is_string() ? g.get<std::string>() : "";
    double x = 0;
    const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size() || !std::isfinite(x)) {
      throw bad("'gauss_next' is " + shown(g) + ", expected null or a finite number as a string");
    }
    c.rng.gauss_next = x;
  }

  // Tensors: each one present with the expected dtype and shape, inside the data, which
  // they cover exactly; then the checksum. First the size the configuration implies
  // must be the size of the data, before anything that big is allocated.
  const std::string_view data = std::string_view(bytes).substr(8 + n);
  // wte's dtype decides the engine's float width ("" when it is missing or not a string).
  const std::string wte_dtype = [&]() -> std::string {
    if (!header.contains("wte") || !header["wte"].is_object() || !header["wte"].contains("dtype")) return "";
    const json& d = header["wte"]["dtype"];
    return d.is_string() ? d.get<std::string>() : "";
  }();
  const bool f64 = wte_dtype == "F64";
  {
    const double P = ParamLayout::count(c.model);
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
  if (wte_dtype != "F32" && wte_dtype != "F64") {
    throw bad("tensor 'wte' is missing or is neither F32 nor F64");
  }
  c.f64 = f64;
  const std::vector<TensorSpec> specs = tensor_specs(c.model, c.f64, c.train.ema > 0.0);
  for (const auto& entry : header.items()) {
    const std::string& key = entry.key();
    if (key == "__metadata__") continue;
    const bool known = std::any_of(specs.begin(), specs.end(), [&](const TensorSpec& s) { return s.name == key; });
    if (!known) throw bad("tensor '" + shown(key) + "' is not one of this model's");
  }
  std::vector<std::pair<int64_t, int64_t>> extents;  // where each tensor's bytes lie
  const ParamLayout layout(c.model);
  c.params.resize(static_cast<size_t>(layout.total()));
  c.adam_m.resize(static_cast<size_t>(layout.total()));
  c.adam_v.resize(static_cast<size_t>(layout.total()));
  if (c.train.ema > 0.0) c.trained_params.resize(static_cast<size_t>(layout.total()));
  for (const TensorSpec& s : specs) {
    if (!header.contains(s.name) || !header[s.name].is_object()) throw bad("tensor '" + s.name + "' is missing");
    const json& t = header[s.name];
    for (const auto& [key, value] : t.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        throw bad("tensor '" + s.name + "' has an unknown entry '" + shown(key) + "'");
      }
    }
    const json& dtype = in.field(t, "dtype");
    if (!dtype.is_string() || dtype.get<std::string>() != s.dtype) {
      throw bad("tensor '" + s.name + "' has dtype " + (dtype.is_string() ? shown(dtype.get<std::string>()) : shown(dtype)) +
                ", expected " + s.dtype);
    }
    const json& shape = in.field(t, "shape");
    bool shape_ok = shape.is_array() && shape.size() == s.shape.size();
    for (size_t k = 0; shape_ok && k < s.shape.size(); k++) {
      shape_ok = shape[k].is_number_integer() && shape[k].get<int64_t>() == s.shape[k];
    }
    if (!shape_ok) {
      std::string want;
      for (int64_t d : s.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      throw bad("tensor '" + s.name + "' has shape " + shown(shape) + ", expected [" + want + "]");
    }
    const json& offsets = in.field(t, "data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_integer() || !offsets[1].is_number_integer()) {
      throw bad("tensor '" + s.name + "' has data_offsets " + shown(offsets) + ", expected [begin, end]");
    }
    const int64_t begin = offsets[0].get<int64_t>(), end = offsets[1].get<int64_t>();
    if (begin < 0 || end < begin || end > static_cast<int64_t>(data.size()) || end - begin != s.numel() * s.elem_size()) {
      throw bad("tensor '" + s.name + "' lies outside the file's data (truncated?)");
    }
    extents.emplace_back(begin, end);
    const char* src = data.data() + begin;
    // Weights and moments must be numbers a model can use: finite, and v, a mean of
    // squares, not negative.
    auto read_values = [&](double* dst, int64_t count, bool non_negative) {
      for (int64_t i = 0; i < count; i++) {
        double v;
        if (c.f64) {
          std::memcpy(&v, src + i * 8, 8);
        } else {
          float f;
          std::memcpy(&f, src + i * 4, 4);
          v = f;
        }
        if (!std::isfinite(v) || (non_negative && v < 0)) {
          throw bad("tensor '" + s.name + "' holds " + (std::isfinite(v) ? "a negative value" : "a value that is not finite") +
                    " at index " + std::to_string(i));
        }
        dst[i] = v;
      }
    };
    if (s.name == "optimizer.adam_m") {
      read_values(c.adam_m.data(), layout.total(), false);
    } else if (s.name == "optimizer.adam_v") {
      read_values(c.adam_v.data(), layout.total(), true);
    } else if (s.name == "optimizer.weights") {
      read_values(c.trained_params.data(), layout.total(), false);
    } else if (s.name == "rng.mt") {
      std::memcpy(c.rng.mt.data(), src, sizeof(uint32_t) * PyRandom::kStateWords);
    } else {
      const ParamTensor& p = *layout.find(s.name);
      read_values(c.params.data() + p.offset, p.numel(), false);
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
  if (in.meta(meta, "tensor_crc32") != crc) {
    throw bad("checksum mismatch (tensor bytes have CRC-32 " + std::string(crc) + ", the header says " +
              shown(in.meta(meta, "tensor_crc32")) + "): the file is damaged");
  }
  // The header's own checksum, in files that have one (all since it was added): an edit
  // or a flipped bit that left every value plausible is still caught.
  if (meta.contains("header_crc32")) {
    const std::string want = header_checksum(header);
    if (in.meta(meta, "header_crc32") != want) {
      throw bad("header checksum mismatch (the header has CRC-32 " + want + ", it says " +
                shown(in.meta(meta, "header_crc32")) + "): the header was changed or damaged");
    }
  }
  return c;
}

}  // namespace microgpt
