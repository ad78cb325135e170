// The checkpoint file: a training run's checkpoint holds exactly the engine's
// parameters, Adam's moments, the generator and the configuration (checked against a
// run replayed here step by step, and against the bytes of the file read without the
// loader); loading and saving again gives the same bytes; the header is valid
// safetensors; the CRC-32 is zlib's.
#include <chrono>

#include <gtest/gtest.h>

#include <functional>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_test_support.h"
#include "core/error.h"
#include "core/files.h"
#include "fast/fast_model.h"
#include "train/commands.h"
#include "train/run.h"

namespace microgpt {
namespace {

using nlohmann::json;
using testing::parse_safetensors;
using testing::read_file;
using testing::TempDir;

TEST(Crc32, KnownValues) {
  EXPECT_EQ(testing::slow_crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32(""), 0u);
  EXPECT_EQ(crc32("6789", crc32("12345")), 0xCBF43926u);  // continued over chunks
  std::string bytes;
  for (int i = 0; i < 1000; i++) bytes.push_back(static_cast<char>((i * 131) ^ (i >> 3)));
  EXPECT_EQ(crc32(bytes), testing::slow_crc32(bytes));
}

TrainOptions small_run(const std::string& engine, const std::string& out_path) {
  TrainOptions o = testing::tiny_run(engine);
  o.train.steps = 5;
  o.out_path = out_path;
  return o;
}

// The run of `o`, replayed step by step as the trainer is documented to run it.
struct Replay {
  testing::Shuffled corpus;
  ModelConfig config;
  std::unique_ptr<Engine> engine;
  PyRandom rng{0};
};
Replay replay(const TrainOptions& o) {
  PyRandom rng(o.train.seed);
  testing::Shuffled corpus = testing::shuffled(o.data_path, rng, o.train.val_frac);
  ModelConfig config = o.model;
  config.vocab_size = corpus.tokenizer.vocab_size();
  std::unique_ptr<Engine> engine = make_engine(o.engine, config, o.train);
  engine->init_params(rng);
  const int64_t B = o.train.batch_size, n_train = corpus.data.size() - corpus.n_val;
  for (int64_t step = 0; step < o.train.steps; step++) {
    std::vector<int64_t> which;
    for (int64_t i = 0; i < B; i++) which.push_back(corpus.order[static_cast<size_t>((step * B + i) % n_train)]);
    TokenizedDocs tokens;
    tokenize_documents(corpus.data, corpus.tokenizer, which, tokens);
    engine->train_step(step, o.train.steps, testing::batch_of(tokens, config.block_size));
  }
  return Replay{std::move(corpus), config, std::move(engine), rng};
}

void expect_same_rng(const PyRandom::State& a, const PyRandom::State& b) {
  EXPECT_TRUE(a.mt == b.mt);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.gauss_next.has_value(), b.gauss_next.has_value());
  if (a.gauss_next && b.gauss_next) {
    EXPECT_EQ(*a.gauss_next, *b.gauss_next);
  }
}

// Bit equality of doubles (EXPECT_EQ would let -0.0 equal 0.0).
void expect_bits_equal(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); i++) {
    uint64_t x, y;
    std::memcpy(&x, &a[i], 8);
    std::memcpy(&y, &b[i], 8);
    if (x != y) {
      ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
      return;
    }
  }
}

// read_params gives what save_state gives of the same parameters (the average, with
// --ema), for any range of them, and refuses a range beyond them.
TEST(Engine, ReadParamsGivesWhatSaveStateGives) {
  for (const char* engine : {"reference", "fast", "fast with an average"}) {
    TrainOptions o = small_run(engine == std::string("reference") ? "reference" : "fast", "");
    if (engine == std::string("fast with an average")) o.train.ema = 0.9;
    const Replay r = replay(o);
    CheckpointData c;
    r.engine->save_state(c);
    const auto n = static_cast<int64_t>(c.params.size());
    ASSERT_EQ(n, r.engine->num_params());
    if (o.train.ema > 0) {
      ASSERT_FALSE(c.trained_params == c.params) << "the average is not the weights trained";
    }
    const ParamLayout layout(r.config);
    for (const auto& [offset, count] : std::vector<std::pair<int64_t, int64_t>>{
             {0, n}, {layout.wte().offset, layout.wte().rows * layout.wte().cols}, {n / 3, n / 2}, {n, 0}, {5, 1}}) {
      const std::vector<double> want(c.params.begin() + offset, c.params.begin() + offset + count);
      expect_bits_equal(r.engine->read_params(offset, count), want, engine);
    }
    for (const auto& [offset, count] : std::vector<std::pair<int64_t, int64_t>>{{0, n + 1}, {n, 1}, {-1, 2}, {1, -1}}) {
      EXPECT_THROW(r.engine->read_params(offset, count), Error) << engine << " " << offset << " " << count;
    }
  }
}

// Values of a tensor read straight from the file's bytes.
std::vector<double> tensor_values(const testing::Safetensors& s, const std::string& name) {
  const json& t = s.header.at(name);
  const auto begin = t.at("data_offsets")[0].get<size_t>(), end = t.at("data_offsets")[1].get<size_t>();
  std::vector<double> out;
  const bool f64 = t.at("dtype") == "F64";
  for (size_t at = begin; at < end; at += f64 ? 8 : 4) {
    if (f64) {
      double v;
      std::memcpy(&v, s.data.data() + at, 8);
      out.push_back(v);
    } else {
      float v;
      std::memcpy(&v, s.data.data() + at, 4);
      out.push_back(v);
    }
  }
  return out;
}

class CheckpointRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckpointRoundTrip, HoldsTheEngineStateAndIsValidSafetensors) {
  const std::string engine = GetParam();
  const bool f64 = engine == "reference";
  TempDir dir;
  const TrainOptions o = small_run(engine, dir.file("a.safetensors"));
  std::ostringstream out;
  run_training(o, out);
  const Replay r = replay(o);
  CheckpointData want;
  r.engine->save_state(want);
  const ParamLayout layout(r.config);
  const int64_t P = layout.total();

  // The header, read without the loader.
  const std::string bytes = read_file(dir.file("a.safetensors"));
  const testing::Safetensors s = parse_safetensors(bytes);
  ASSERT_TRUE(s.header.is_object());
  EXPECT_EQ(s.header_len % 8, 0u) << "the data must start 8-byte aligned";
  EXPECT_EQ(s.header_text.find_last_not_of(' ') + 1, s.header_text.find_last_of('}') + 1) << "padding is spaces";
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> expected;  // name -> dtype, shape
  for (const ParamTensor& t : layout.tensors()) expected[t.name] = {f64 ? "F64" : "F32", {t.rows, t.cols}};
  expected["optimizer.adam_m"] = {f64 ? "F64" : "F32", {P}};
  expected["optimizer.adam_v"] = {f64 ? "F64" : "F32", {P}};
  expected["rng.mt"] = {"U32", {624}};
  std::vector<std::pair<int64_t, int64_t>> spans;
  size_t tensors = 0;
  for (const auto& [name, t] : s.header.items()) {
    if (name == "__metadata__") continue;
    tensors++;
    ASSERT_TRUE(expected.count(name)) << "unexpected tensor " << name;
    EXPECT_EQ(t.at("dtype"), expected[name].first) << name;
    EXPECT_EQ(t.at("shape").get<std::vector<int64_t>>(), expected[name].second) << name;
    ASSERT_EQ(t.at("data_offsets").size(), 2u);
    const int64_t b = t.at("data_offsets")[0], e = t.at("data_offsets")[1];
    int64_t numel = 1;
    for (int64_t d : expected[name].second) numel *= d;
    EXPECT_EQ(e - b, numel * (expected[name].first == "F64" ? 8 : 4)) << name;
    spans.emplace_back(b, e);
  }
  EXPECT_EQ(tensors, expected.size());
  std::sort(spans.begin(), spans.end());
  int64_t at = 0;
  for (const auto& [b, e] : spans) {
    EXPECT_EQ(b, at) << "tensors must be contiguous";
    at = e;
  }
  EXPECT_EQ(at, static_cast<int64_t>(s.data.size())) << "tensors must cover the data";

  const json& meta = s.header.at("__metadata__");
  for (const auto& [key, value] : meta.items()) EXPECT_TRUE(value.is_string()) << key;
  EXPECT_EQ(meta.at("format"), "microgpt");
  EXPECT_EQ(meta.at("format_version"), "1");
  EXPECT_EQ(meta.at("engine"), engine);
  EXPECT_EQ(meta.at("step"), "5");
  EXPECT_EQ(meta.at("steps"), "5");
  EXPECT_EQ(meta.at("threads"), "1");
  EXPECT_EQ(meta.at("tensor_crc32"), testing::hex8(testing::slow_crc32(s.data)));
  const json config = json::parse(meta.at("config").get<std::string>());
  EXPECT_EQ(config.at("n_embd"), 8);
  EXPECT_EQ(config.at("n_head"), 2);
  EXPECT_EQ(config.at("n_layer"), 1);
  EXPECT_EQ(config.at("block_size"), 8);
  EXPECT_EQ(config.at("vocab_size"), 28);
  EXPECT_EQ(config.at("steps"), 5);
  EXPECT_EQ(config.at("seed"), 42);
  EXPECT_EQ(config.at("lr").get<double>(), 0.01);
  const json vocab = json::parse(meta.at("vocab").get<std::string>());
  ASSERT_EQ(vocab.size(), 27u);
  EXPECT_EQ(vocab[0], "-");
  EXPECT_EQ(vocab[1], "a");
  EXPECT_EQ(vocab[26], "z");
  const json data = json::parse(meta.at("data").get<std::string>());
  EXPECT_EQ(data.at("source"), "<embedded names>");
  EXPECT_EQ(data.at("docs"), 8422);
  EXPECT_EQ(data.at("crc32").get<uint32_t>(), dataset_crc(embedded_dataset()));

  // The tensors in the file are the replayed engine's, bit for bit.
  for (const ParamTensor& t : layout.tensors()) {
    expect_bits_equal(tensor_values(s, t.name),
                      std::vector<double>(want.params.begin() + t.offset, want.params.begin() + t.offset + t.numel()),
                      t.name.c_str());
  }
  expect_bits_equal(tensor_values(s, "optimizer.adam_m"), want.adam_m, "adam_m in the file");
  expect_bits_equal(tensor_values(s, "optimizer.adam_v"), want.adam_v, "adam_v in the file");
  const PyRandom::State rng = r.rng.state();
  const auto mt_at = s.header.at("rng.mt").at("data_offsets")[0].get<size_t>();
  EXPECT_EQ(std::memcmp(s.data.data() + mt_at, rng.mt.data(), 624 * 4), 0) << "rng.mt";

  // The loader gives back the same state and configuration.
  const CheckpointData c = load_checkpoint(dir.file("a.safetensors"));
  EXPECT_EQ(c.engine, engine);
  EXPECT_EQ(c.f64, f64);
  EXPECT_EQ(c.step, 5);
  EXPECT_EQ(c.threads, 1);
  expect_bits_equal(c.params, want.params, "params");
  expect_bits_equal(c.adam_m, want.adam_m, "adam_m");
  expect_bits_equal(c.adam_v, want.adam_v, "adam_v");
  expect_same_rng(c.rng, rng);
  EXPECT_EQ(c.model.n_embd, 8);
  EXPECT_EQ(c.model.n_head, 2);
  EXPECT_EQ(c.model.n_layer, 1);
  EXPECT_EQ(c.model.block_size, 8);
  EXPECT_EQ(c.model.vocab_size, 28);
  EXPECT_EQ(c.train.seed, o.train.seed);
  EXPECT_EQ(c.train.steps, o.train.steps);
  EXPECT_EQ(c.train.lr, o.train.lr);
  EXPECT_EQ(c.train.beta1, o.train.beta1);
  EXPECT_EQ(c.train.beta2, o.train.beta2);
  EXPECT_EQ(c.train.eps, o.train.eps);
  EXPECT_EQ(c.train.init_std, o.train.init_std);
  EXPECT_EQ(c.train.temperature, o.train.temperature);
  EXPECT_EQ(c.train.num_samples, o.train.num_samples);
  EXPECT_EQ(c.train.batch_size, o.train.batch_size);
  EXPECT_TRUE(c.vocab == r.corpus.tokenizer.chars());
  EXPECT_EQ(c.data_source, kEmbeddedSource);
  EXPECT_EQ(c.data_docs, 8422);

  // Saving what was loaded gives the same bytes.
  save_checkpoint(dir.file("b.safetensors"), c);
  EXPECT_TRUE(read_file(dir.file("b.safetensors")) == bytes) << "save(load(f)) differs from f";

  // An engine loaded from the file holds the same state and computes the same loss.
  LoadedModel m = load_model(dir.file("a.safetensors"), 1);
  CheckpointData held;
  m.engine->save_state(held);
  expect_bits_equal(held.params, want.params, "loaded engine's params");
  expect_bits_equal(held.adam_m, want.adam_m, "loaded engine's adam_m");
  expect_bits_equal(held.adam_v, want.adam_v, "loaded engine's adam_v");
  TokenizedDocs tokens;
  const std::vector<DocRef> docs = r.corpus.documents(0, 20, tokens, r.config.block_size).docs;
  EXPECT_EQ(m.engine->evaluate(docs).sum, r.engine->evaluate(docs).sum);
}

INSTANTIATE_TEST_SUITE_P(Engines, CheckpointRoundTrip, ::testing::Values("reference", "fast"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// Every field survives save and load, including a cached gauss value, a non-ASCII
// vocabulary and doubles that are not floats.
TEST(Checkpoint, EveryFieldOfSyntheticData) {
  for (const bool f64 : {true, false}) {
    CheckpointData c;
    c.engine = f64 ? "reference" : "fast";
    c.model.n_layer = 2;
    c.model.n_embd = 6;
    c.model.n_head = 3;
    c.model.block_size = 5;
    c.vocab = U" az\u00e9\u4e2d\U0001F600";  // sorted, as a tokenizer makes it
    c.model.vocab_size = static_cast<int64_t>(c.vocab.size()) + 1;
    c.train.seed = 18446744073709551615ull;
    c.train.steps = 77;
    c.train.lr = 0.1 + 0.2;
    c.train.beta1 = 0.8;
    c.train.beta2 = 0.999;
    c.train.eps = 1e-10;
    c.train.init_std = 0.05;
    c.train.temperature = 0.7;
    c.train.num_samples = 3;
    c.train.batch_size = f64 ? 1 : 5;  // the reference engine takes one document per step
    c.train.dropout = f64 ? 0.0 : 0.1 + 0.2;  // the fast engine's aids: the model is then an average
    c.train.ema = f64 ? 0.0 : 0.999;
    c.train.reshuffle = true;
    c.train.val_frac = 0.15;
    c.train.eval_every = 9;
    c.step = 33;
    c.threads = 3;
    c.data_source = "dir/names ü.txt";
    c.data_docs = 12345;
    c.data_crc = 0xDEADBEEF;
    c.f64 = f64;
    const int64_t P = ParamLayout(c.model).total();
    PyRandom rng(5);
    for (int64_t i = 0; i < P; i++) {
      const double x = rng.gauss(0, 1);
      c.params.push_back(f64 ? x : static_cast<float>(x));
      c.adam_m.push_back(f64 ? x * 1e-3 : static_cast<float>(x * 1e-3));
      c.adam_v.push_back(f64 ? x * x : static_cast<float>(x * x));
      if (!f64) c.trained_params.push_back(static_cast<float>(x * 0.5 - 0.125));
    }
    c.params[0] = -0.0;
    rng.gauss(0, 1);  // leaves a cached value
    c.rng = rng.state();
    ASSERT_TRUE(c.rng.gauss_next.has_value());

    TempDir dir;
    save_checkpoint(dir.file("c.safetensors"), c);
    const CheckpointData d = load_checkpoint(dir.file("c.safetensors"));
    EXPECT_EQ(d.engine, c.engine);
    EXPECT_EQ(d.model.n_layer, 2);
    EXPECT_EQ(d.model.n_embd, 6);
    EXPECT_EQ(d.model.n_head, 3);
    EXPECT_EQ(d.model.block_size, 5);
    EXPECT_EQ(d.model.vocab_size, c.model.vocab_size);
    EXPECT_TRUE(d.vocab == c.vocab);
    EXPECT_EQ(d.train.seed, c.train.seed);
    EXPECT_EQ(d.train.steps, 77);
    EXPECT_EQ(d.train.lr, c.train.lr);
    EXPECT_EQ(d.train.beta1, 0.8);
    EXPECT_EQ(d.train.beta2, 0.999);
    EXPECT_EQ(d.train.eps, 1e-10);
    EXPECT_EQ(d.train.init_std, 0.05);
    EXPECT_EQ(d.train.temperature, 0.7);
    EXPECT_EQ(d.train.num_samples, 3);
    EXPECT_EQ(d.train.batch_size, c.train.batch_size);
    EXPECT_EQ(d.train.dropout, c.train.dropout);
    EXPECT_EQ(d.train.ema, c.train.ema);
    EXPECT_TRUE(d.train.reshuffle);
    EXPECT_EQ(d.train.val_frac, 0.15);
    EXPECT_EQ(d.train.eval_every, 9);
    EXPECT_EQ(d.step, 33);
    EXPECT_EQ(d.threads, 3);
    EXPECT_EQ(d.data_source, c.data_source);
    EXPECT_EQ(d.data_docs, 12345);
    EXPECT_EQ(d.data_crc, 0xDEADBEEFu);
    EXPECT_EQ(d.f64, f64);
    expect_bits_equal(d.params, c.params, "params");
    expect_bits_equal(d.adam_m, c.adam_m, "adam_m");
    expect_bits_equal(d.adam_v, c.adam_v, "adam_v");
    expect_bits_equal(d.trained_params, c.trained_params, "trained_params");
    expect_same_rng(d.rng, c.rng);
    save_checkpoint(dir.file("d.safetensors"), d);
    EXPECT_TRUE(read_file(dir.file("c.safetensors")) == read_file(dir.file("d.safetensors")));
    // The generator continues where it stood.
    PyRandom a(0), b(0);
    a.set_state(c.rng);
    b.set_state(d.rng);
    EXPECT_EQ(a.gauss(0, 1), b.gauss(0, 1));
    EXPECT_EQ(a.random(), b.random());
  }
}

// The loader's refusals, as the library reports them (tests/cli covers every kind of
// damage through the command line).
TEST(Checkpoint, LoadRefusesDamageNamingTheFile) {
  TempDir dir;
  const TrainOptions o = small_run("reference", dir.file("good.safetensors"));
  std::ostringstream out;
  run_training(o, out);
  const std::string good = read_file(dir.file("good.safetensors"));
  const testing::Safetensors s = parse_safetensors(good);
  auto expect_refused = [&](const std::string& name, const std::string& bytes, const std::string& why) {
    const std::string path = dir.file(name);
    testing::write_file(path, bytes);
    try {
      load_checkpoint(path);
      ADD_FAILURE() << name << " loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 1) << name;
      EXPECT_NE(std::string(e.what()).find("'" + path + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  std::string flipped = good;
  flipped[good.size() - 5000] ^= 0x04;
  expect_refused("flipped", flipped, "checksum");
  json h = s.header;
  h["lm_head"]["shape"] = {8, 28};
  expect_refused("shape", testing::build_safetensors(h, s.data), "shape");
  h = s.header;
  h["optimizer.adam_m"]["dtype"] = "F32";
  expect_refused("dtype", testing::build_safetensors(h, s.data), "dtype");
  h = s.header;
  h["__metadata__"]["format"] = "pytorch";
  expect_refused("format", testing::build_safetensors(h, s.data), "'pytorch'");
  expect_refused("cut", good.substr(0, good.size() / 2), "outside");
  try {
    load_checkpoint(dir.file("missing"));
    ADD_FAILURE() << "a missing file loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("missing")), std::string::npos) << e.what();
  }
}

// Found by fuzzing (fuzz/corpus/checkpoint/regress-*): numbers that do not fit their
// field, and sizes that would have the loader allocate petabytes before looking at the
// data. Each must be refused at once, naming the field or the size.
TEST(Checkpoint, FuzzFindingsAreRefusedWithoutAllocating) {
  const std::string corpus = std::string(MICROGPT_SOURCE_DIR) + "/fuzz/corpus/checkpoint/";
  const std::pair<const char*, const char*> seeds[] = {
      {"regress-config-number-out-of-range", "'n_layer' is 1e+300"},
      {"regress-huge-n-embd", "they lie outside the file's data"},
      {"regress-huge-n-layer", "they lie outside the file's data"},
      {"regress-deep-nesting-config", "nested deeper than 1 level"},
      {"regress-deep-nesting-header", "nested deeper than 3 levels"},
  };
  for (const auto& [name, why] : seeds) {
    const auto start = std::chrono::steady_clock::now();
    try {
      load_checkpoint(corpus + name);
      ADD_FAILURE() << name << " loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << name;
  }
}

// Found by the format-aware fuzzer: a field of the wrong type anywhere is this
// program's Error naming the file, never the JSON library's own exception.
TEST(Checkpoint, FieldsOfTheWrongTypeAreRefusedAsErrors) {
  TempDir dir;
  std::ostringstream out;
  run_training(small_run("fast", dir.file("good.safetensors")), out);
  const testing::Safetensors s = parse_safetensors(read_file(dir.file("good.safetensors")));
  auto in_meta = [](const char* key, const char* field, json value) {
    return [=](json& h) {
      json inner = json::parse(h["__metadata__"][key].get<std::string>());
      inner[field] = value;
      h["__metadata__"][key] = inner.dump();
    };
  };
  const std::pair<const char*, std::function<void(json&)>> edits[] = {
      {"dtype array", [](json& h) { h["wte"]["dtype"] = json::array({"F32"}); }},
      {"dtype number", [](json& h) { h["lm_head"]["dtype"] = 32; }},
      {"shape string", [](json& h) { h["wpe"]["shape"] = "8,8"; }},
      {"offsets object", [](json& h) { h["wpe"]["data_offsets"] = json::object({{"a", 1}}); }},
      {"extra entry", [](json& h) { h["wpe"]["extra"] = 1; }},
      {"metadata number", [](json& h) { h["__metadata__"]["engine"] = 7; }},
      {"unknown tensor", [](json& h) { h["layer9.attn_wq"] = h["wpe"]; }},
      {"data source number", in_meta("data", "source", 3)},
      {"gauss_next number", in_meta("rng", "gauss_next", 0.5)},
      {"gauss_next nan", in_meta("rng", "gauss_next", "nan")},
      {"reshuffle string", in_meta("config", "reshuffle", "no")},
      {"config array", [](json& h) { h["__metadata__"]["config"] = "[1, 2]"; }},
      {"vocab entry number", [](json& h) { h["__metadata__"]["vocab"] = "[1, 2, 3]"; }},
  };
  for (const auto& [what, edit] : edits) {
    json h = s.header;
    edit(h);
    const std::string path = dir.file("typed.safetensors");
    testing::write_file(path, testing::build_safetensors(h, s.data));
    try {
      load_checkpoint(path);
      ADD_FAILURE() << what << ": loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << what << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": escaped as " << e.what();
    }
  }
}

// Values of the right type but outside what training can use are refused too, so a
// damaged file never resumes with a negative learning rate or a beta of 2.
TEST(Checkpoint, OutOfRangeSettingsAreRefused) {
  TempDir dir;
  std::ostringstream out;
  run_training(small_run("reference", dir.file("good.safetensors")), out);
  const testing::Safetensors s = parse_safetensors(read_file(dir.file("good.safetensors")));
  const std::pair<const char*, json> bad[] = {
      {"lr", -1.0},          {"lr", 0.0},           {"beta2", 2.0},       {"beta1", 1.0},
      {"eps", -1e-8},        {"temperature", 0.0},  {"num_samples", -1},  {"num_samples", 9223372036854775807LL},
      {"steps", 1e300},      {"batch_size", 0},     {"seed", -1},         {"vocab_size", 1},
      {"val_frac", 1.5},     {"eval_every", -3},    {"n_layer", 2.5},     {"n_head", "4"},
      {"dropout", 1.0},      {"dropout", -0.1},     {"ema", 1.0},         {"ema", -0.5},
      {"reshuffle", "yes"},  {"reshuffle", 1},      {"dropout", "0.1"},   {"dropout", 0.96},
      {"ema", 0.999999},     {"dropout", 0.1},  // the last: a reference checkpoint cannot have used dropout
  };
  for (const auto& [key, value] : bad) {
    json h = s.header;
    json config = json::parse(h["__metadata__"]["config"].get<std::string>());
    config[key] = value;
    h["__metadata__"]["config"] = config.dump();
    const std::string path = dir.file(std::string("bad-") + key);
    testing::write_file(path, testing::build_safetensors(h, s.data));
    try {
      load_checkpoint(path);
      ADD_FAILURE() << key << " = " << value.dump() << " loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

// With --ema the model is the running average: the parameters' tensors hold it and
// optimizer.weights holds the weights Adam trains, both the engine's bit for bit (a run
// replayed here on a FastModel), and both survive load and save and load_model.
TEST(CheckpointEma, HoldsTheAverageAsTheModelAndTheTrainedWeights) {
  TempDir dir;
  TrainOptions o = small_run("fast", dir.file("a.safetensors"));
  o.train.steps = 6;
  o.train.batch_size = 2;
  o.train.ema = 0.9;
  o.train.dropout = 0.1;
  o.train.reshuffle = true;  // 12 of the 8422 documents: the first pass, in order
  std::ostringstream out;
  run_training(o, out);

  PyRandom rng(o.train.seed);
  const testing::Shuffled corpus = testing::shuffled(o.data_path, rng, o.train.val_frac);
  ModelConfig config = o.model;
  config.vocab_size = corpus.tokenizer.vocab_size();
  const int64_t B = o.train.batch_size;
  FastModel model(config, o.train, 1, B);
  model.init_params(rng);
  for (int64_t step = 0; step < o.train.steps; step++) {
    std::vector<int64_t> which;
    for (int64_t i = 0; i < B; i++) which.push_back(corpus.order[static_cast<size_t>(step * B + i)]);
    TokenizedDocs tokens;
    tokenize_documents(corpus.data, corpus.tokenizer, which, tokens, config.block_size + 1);
    model.train_step(step, o.train.steps, testing::batch_of(tokens, config.block_size).docs);
  }
  auto as_double = [](std::span<const float> v) { return std::vector<double>(v.begin(), v.end()); };
  const std::vector<double> average = as_double(model.model_params()), weights = as_double(model.params());
  ASSERT_NE(average, weights) << "vacuous: the average is the weights";
  const ParamLayout layout(config);

  const std::string bytes = read_file(dir.file("a.safetensors"));
  const testing::Safetensors s = parse_safetensors(bytes);
  ASSERT_TRUE(s.header.contains("optimizer.weights"));
  EXPECT_EQ(s.header["optimizer.weights"].at("dtype"), "F32");
  EXPECT_EQ(s.header["optimizer.weights"].at("shape").get<std::vector<int64_t>>(), std::vector<int64_t>{layout.total()});
  for (const ParamTensor& t : layout.tensors()) {
    expect_bits_equal(tensor_values(s, t.name),
                      std::vector<double>(average.begin() + t.offset, average.begin() + t.offset + t.numel()),
                      t.name.c_str());
  }
  expect_bits_equal(tensor_values(s, "optimizer.weights"), weights, "optimizer.weights");
  expect_bits_equal(tensor_values(s, "optimizer.adam_m"), as_double(model.adam_m()), "optimizer.adam_m");
  const json cfg = json::parse(s.header.at("__metadata__").at("config").get<std::string>());
  EXPECT_EQ(cfg.at("dropout").get<double>(), 0.1);
  EXPECT_EQ(cfg.at("ema").get<double>(), 0.9);
  EXPECT_EQ(cfg.at("reshuffle"), true);

  const CheckpointData c = load_checkpoint(dir.file("a.safetensors"));
  EXPECT_EQ(c.train.dropout, 0.1);
  EXPECT_EQ(c.train.ema, 0.9);
  EXPECT_TRUE(c.train.reshuffle);
  expect_bits_equal(c.params, average, "loaded params");
  expect_bits_equal(c.trained_params, weights, "loaded trained_params");
  save_checkpoint(dir.file("b.safetensors"), c);
  EXPECT_TRUE(read_file(dir.file("b.safetensors")) == bytes) << "save(load(f)) differs from f";

  // An engine loaded from the file holds both and evaluates the average.
  LoadedModel m = load_model(dir.file("a.safetensors"), 1);
  CheckpointData held;
  m.engine->save_state(held);
  expect_bits_equal(held.params, average, "loaded engine's average");
  expect_bits_equal(held.trained_params, weights, "loaded engine's weights");
  TokenizedDocs tokens;
  const std::vector<DocRef> docs = corpus.documents(100, 120, tokens, config.block_size).docs;
  EXPECT_EQ(m.engine->evaluate(docs).sum, model.evaluate(docs).sum);

  // Without the trained weights the file cannot resume: refused.
  json h = s.header;
  h.erase("optimizer.weights");
  testing::write_file(dir.file("no-weights.safetensors"), testing::build_safetensors(h, s.data));
  try {
    load_checkpoint(dir.file("no-weights.safetensors"));
    ADD_FAILURE() << "loaded without optimizer.weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("no-weights.safetensors")), std::string::npos) << e.what();
  }
}

// Checkpoints written before --dropout, --ema and --reshuffle have none of their keys in
// the config: they load with the options off, save as the files written now, and
// resume as those do.
TEST(CheckpointCompat, ConfigWithoutTheNewKeysLoadsWithThemOff) {
  TempDir dir;
  TrainOptions o = small_run("fast", dir.file("new.safetensors"));
  o.train.steps = 6;
  o.stop_after = 3;
  std::ostringstream out;
  run_training(o, out);
  const std::string bytes = read_file(dir.file("new.safetensors"));
  const testing::Safetensors s = parse_safetensors(bytes);
  json h = s.header;
  json config = json::parse(h["__metadata__"]["config"].get<std::string>());
  for (const char* key : {"dropout", "ema", "reshuffle"}) {
    ASSERT_TRUE(config.contains(key)) << key << " is written";
    config.erase(key);
  }
  h["__metadata__"]["config"] = config.dump();
  // The header is rewritten, shorter: build_safetensors sets the 8-byte length and pads
  // it with spaces to a multiple of 8; the checksum covers the tensor bytes only.
  const std::string old_bytes = testing::build_safetensors(h, s.data);
  testing::write_file(dir.file("old.safetensors"), old_bytes);
  const testing::Safetensors old = parse_safetensors(old_bytes);
  ASSERT_EQ((8 + old.header_len) % 8, 0u);
  ASSERT_LT(old.header_len, s.header_len);
  ASSERT_EQ(old.data, s.data);

  const CheckpointData c = load_checkpoint(dir.file("old.safetensors"));
  EXPECT_EQ(c.train.dropout, 0.0);
  EXPECT_EQ(c.train.ema, 0.0);
  EXPECT_FALSE(c.train.reshuffle);
  EXPECT_TRUE(c.trained_params.empty());
  expect_bits_equal(c.params, load_checkpoint(dir.file("new.safetensors")).params, "params");
  save_checkpoint(dir.file("again.safetensors"), c);
  EXPECT_TRUE(read_file(dir.file("again.safetensors")) == bytes) << "saved again, it is the file written now";

  auto resume = [&](const std::string& name) {
    TrainOptions r;
    r.resume_path = dir.file(name + ".safetensors");
    r.out_path = dir.file(name + "-done.safetensors");
    std::ostringstream o2;
    run_training(r, o2);
    return testing::result_lines(o2.str());
  };
  EXPECT_EQ(resume("old"), resume("new"));
  EXPECT_TRUE(read_file(dir.file("old-done.safetensors")) == read_file(dir.file("new-done.safetensors")));
}

TEST(Checkpoint, NothingLeftBesideTheFile) {
  // Written through a temporary name and renamed: only the checkpoint remains.
  TempDir dir;
  TrainOptions o = small_run("fast", dir.file("m.safetensors"));
  o.train.steps = 4;
  o.checkpoint_every = 1;
  std::ostringstream out;
  run_training(o, out);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"m.safetensors"});
}

}  // namespace
}  // namespace microgpt
