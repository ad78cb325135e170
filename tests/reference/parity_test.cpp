// The reference engine against the reference program: every loss as an exact double,
// every sample as text, and the log byte for byte. The golden files in tests/data are
// outputs of microgpt.py itself (embedded_default, names_default, names_l2_e32_h8) and of
// tests/tools/spec_microgpt.py, which reproduces those exactly (tests/tools/README.md).
// The runs on names.txt need that file from the shared data folder.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/python_random.h"
#include "data/dataset.h"
#include "reference/reference_model.h"
#include "test_support.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::read_file;
using testing::read_jsonl;
using testing::TempDir;

std::string run_reference(TrainOptions options, const std::string& log_path) {
  options.engine.name = "reference";
  options.log_path = log_path;
  std::ostringstream out;
  run_training(options, out);
  return out.str();
}

void expect_same_run(const std::string& got_path, const std::string& want_path) {
  const auto got = read_jsonl(got_path);
  const auto want = read_jsonl(want_path);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i].contains("loss")) {
      ASSERT_EQ(got[i]["step"], want[i]["step"]) << "line " << i + 1;
      // exact: the same double, not a close one
      ASSERT_EQ(got[i]["loss"].get<double>(), want[i]["loss"].get<double>()) << "step " << want[i]["step"];
    } else {
      ASSERT_EQ(got[i]["sample"], want[i]["sample"]) << "line " << i + 1;
      ASSERT_EQ(got[i]["text"].get<std::string>(), want[i]["text"].get<std::string>()) << "sample " << want[i]["sample"];
    }
  }
  EXPECT_EQ(read_file(got_path), read_file(want_path)) << "the log differs in formatting";
}

TEST(ReferenceParity, EmbeddedNamesDefaults) {
  TempDir dir;
  run_reference(TrainOptions{}, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), testing::test_data("embedded_default.jsonl"));
}

TEST(ReferenceParity, NamesTxtDefaults) {
  const std::string data = testing::shared_dir() + "/data/names.txt";
  const std::string oracle = testing::test_data("names_default.jsonl");
  REQUIRE_SHARED_FILE(data);
  TempDir dir;
  TrainOptions o;
  o.data_path = data;
  run_reference(o, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), oracle);
}

TEST(ReferenceParity, NamesTxtTwoLayersEightHeads) {
  const std::string data = testing::shared_dir() + "/data/names.txt";
  const std::string oracle = testing::test_data("names_l2_e32_h8.jsonl");
  REQUIRE_SHARED_FILE(data);
  TempDir dir;
  TrainOptions o;
  o.data_path = data;
  o.train.seed = 1;
  o.model.n_layer = 2;
  o.model.n_embd = 32;
  o.model.n_head = 8;
  o.model.block_size = 12;
  o.train.steps = 60;
  o.train.lr = 0.005;
  o.train.temperature = 0.7;
  o.train.num_samples = 10;
  run_reference(o, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), oracle);
}

// Non-ASCII text with CRLF, lone CR, Python white space, emoji and CJK (vocab 101).
TEST(ReferenceParity, UnicodeNamesSmallModel) {
  TempDir dir;
  TrainOptions o;
  o.data_path = testing::test_data("unicode_names.txt");
  o.train.seed = 7;
  o.model.n_embd = 8;
  o.model.n_head = 2;
  o.model.block_size = 8;
  o.train.steps = 40;
  o.train.lr = 0.02;
  o.train.temperature = 0.9;
  o.train.num_samples = 8;
  run_reference(o, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), testing::test_data("unicode_e8_h2.jsonl"));
}

// Three layers, one head, block size 4 (most names cut short), a seed above 2^32.
TEST(ReferenceParity, UnicodeNamesDeepNarrowTruncated) {
  TempDir dir;
  TrainOptions o;
  o.data_path = testing::test_data("unicode_names.txt");
  o.train.seed = 4294967301ULL;
  o.model.n_layer = 3;
  o.model.n_embd = 4;
  o.model.n_head = 1;
  o.model.block_size = 4;
  o.train.steps = 25;
  o.train.lr = 0.05;
  o.train.temperature = 1.3;
  o.train.num_samples = 6;
  run_reference(o, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), testing::test_data("unicode_l3_h1_b4.jsonl"));
}

// The embedded list with the largest seed, two layers, three heads, low temperature.
TEST(ReferenceParity, EmbeddedNamesLargestSeed) {
  TempDir dir;
  TrainOptions o;
  o.train.seed = 18446744073709551615ULL;
  o.model.n_layer = 2;
  o.model.n_embd = 12;
  o.model.n_head = 3;
  o.model.block_size = 6;
  o.train.steps = 30;
  o.train.lr = 0.03;
  o.train.temperature = 0.25;
  o.train.num_samples = 5;
  run_reference(o, dir.file("log.jsonl"));
  expect_same_run(dir.file("log.jsonl"), testing::test_data("cc0_l2_e12_h3.jsonl"));
}

TEST(ReferenceOutput, ReadsLikeTheReference) {
  TrainOptions o;
  o.engine.name = "reference";
  o.train.steps = 3;
  o.train.num_samples = 2;
  std::ostringstream out;
  run_training(o, out);
  std::istringstream lines(out.str());
  std::vector<std::string> l;
  for (std::string s; std::getline(lines, s);) l.push_back(s);
  ASSERT_EQ(l.size(), 9U) << out.str();
  EXPECT_EQ(l[0], "num docs: 8422");
  EXPECT_EQ(l[1], "vocab size: 28");
  EXPECT_EQ(l[2], "num params: 4224");
  EXPECT_EQ(l[3], "step    1 /    3 | loss 3.4613");
  EXPECT_EQ(l[6], "--- inference (new, hallucinated names) ---");
  EXPECT_EQ(l[7].rfind("sample  1: ", 0), 0U) << l[7];
  EXPECT_EQ(l[8].rfind("sample  2: ", 0), 0U) << l[8];
}

// The model's gradient against central differences of its own loss, on a tiny model.
TEST(ReferenceGradients, LossGradientMatchesFiniteDifferences) {
  ModelConfig c;
  c.vocab_size = 5;
  c.n_embd = 4;
  c.n_head = 2;
  c.n_layer = 2;
  c.block_size = 3;  // the document below is cut to 3 predictions
  TrainConfig tc;
  tc.init_std = 0.5;  // larger weights: gradients well above rounding noise
  ReferenceModel model(c, tc);
  PyRandom rng(3);
  model.init_params(rng);
  const std::vector<Token> doc = {4, 0, 2, 2, 1, 4};
  model.forward_backward(doc);
  std::vector<double> analytic;
  for (int64_t i = 0; i < model.num_params(); i++) analytic.push_back(model.grad(i));
  int64_t checked = 0;
  for (int64_t i = 0; i < model.num_params(); i++) {
    const double p = model.param(i);
    const double h = 1e-5;
    model.set_param(i, p + h);
    const double up = model.forward_backward(doc);
    model.set_param(i, p - h);
    const double down = model.forward_backward(doc);
    model.set_param(i, p);
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[static_cast<size_t>(i)], numeric, 1e-7 + 1e-5 * std::abs(numeric)) << "param " << i;
    checked += analytic[static_cast<size_t>(i)] != 0.0;
  }
  EXPECT_GT(checked, model.num_params() / 2);  // most parameters take part
}

}  // namespace
}  // namespace microgpt
