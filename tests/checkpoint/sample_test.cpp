// `microgpt sample` (run_sample) and its controls: by default it draws exactly the
// names training printed; a seed draws others, repeatably; temperature 0, top-k 1 and a
// tiny top-p all take the most likely character; top-k and top-p keep only the tokens
// they should (pick_token, over many draws); a prefix starts every name; --max-len
// bounds it; --novel skips training names; --log records what was printed.
#include <gtest/gtest.h>

#include <set>

#include "checkpoint/checkpoint_test_support.h"
#include "core/error.h"
#include "train/commands.h"
#include "train/sampler.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::sample_names;
using testing::TempDir;

// Trains a small model on the embedded names into `path`; returns what training printed.
std::string train_model(const std::string& engine, const std::string& path, int64_t steps = 200,
                        int64_t num_samples = 8) {
  TrainOptions o = testing::tiny_run(engine);
  o.model.block_size = 16;  // names of up to 16 characters
  o.train.steps = steps;
  o.train.num_samples = num_samples;
  o.out_path = path;
  return testing::train(o);
}

std::string sample(SampleCommand c) {
  c.threads = 1;
  std::ostringstream out;
  run_sample(c, out);
  return out.str();
}

Error sample_error(const SampleCommand& c) {
  return testing::error_of([&] { sample(c); });
}

std::u32string u32(const std::string& s) { return decode_utf8(s).value(); }

class SampleBothEngines : public ::testing::TestWithParam<std::string> {};

TEST_P(SampleBothEngines, WithoutSeedPrintsWhatTrainingPrinted) {
  TempDir dir;
  const std::string trained = train_model(GetParam(), dir.file("m.safetensors"), 30);
  SampleCommand c;
  c.model_path = dir.file("m.safetensors");
  const std::string out = sample(c);
  ASSERT_EQ(sample_names(trained).size(), 8u);
  EXPECT_EQ(sample_names(out), sample_names(trained));
  EXPECT_EQ(testing::result_lines(out).size(), 8u);
  for (const std::string& l : testing::lines_of(out)) EXPECT_EQ(l.rfind("sample ", 0), 0u) << l;
  EXPECT_EQ(sample(c), out) << "the checkpoint's generator is not consumed";
  c.num_samples = 3;  // fewer: the first three
  const std::vector<std::string> all = sample_names(trained);
  EXPECT_EQ(sample_names(sample(c)), std::vector<std::string>(all.begin(), all.begin() + 3));
}

TEST_P(SampleBothEngines, SeedDrawsOtherNamesRepeatably) {
  TempDir dir;
  train_model(GetParam(), dir.file("m.safetensors"), 30);
  SampleCommand c;
  c.model_path = dir.file("m.safetensors");
  c.num_samples = 10;
  const std::string unseeded = sample(c);
  c.seed = 7;
  const std::string seven = sample(c);
  EXPECT_EQ(sample(c), seven);
  EXPECT_NE(seven, unseeded);
  c.seed = 8;
  EXPECT_NE(sample(c), seven);
  EXPECT_EQ(sample_names(seven).size(), 10u);
}

INSTANTIATE_TEST_SUITE_P(Engines, SampleBothEngines, ::testing::Values("reference", "fast"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

class SampleControls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    train_model("fast", dir_->file("m.safetensors"), 300, 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  SampleCommand command() const {
    SampleCommand c;
    c.model_path = dir_->file("m.safetensors");
    c.num_samples = 20;
    return c;
  }
  static TempDir* dir_;
};
TempDir* SampleControls::dir_ = nullptr;

TEST_F(SampleControls, GreedyIsOneNameWhateverTheSeed) {
  SampleCommand c = command();
  c.temperature = 0;
  const std::vector<std::string> names = sample_names(sample(c));
  ASSERT_EQ(names.size(), 20u);
  EXPECT_FALSE(names[0].empty());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), 1u);
  c.seed = 123;
  EXPECT_EQ(sample_names(sample(c)), names);
}

TEST_F(SampleControls, TopK1AndTinyTopPAreGreedy) {
  SampleCommand c = command();
  c.temperature = 0;
  const std::vector<std::string> greedy = sample_names(sample(c));
  c.temperature = 0.8;
  c.seed = 5;
  const std::vector<std::string> free = sample_names(sample(c));
  EXPECT_NE(free, greedy) << "at 0.8 the names should vary";
  c.top_k = 1;
  EXPECT_EQ(sample_names(sample(c)), greedy);
  c.top_k = 0;
  c.top_p = 1e-9;
  EXPECT_EQ(sample_names(sample(c)), greedy);
}

TEST_F(SampleControls, PrefixStartsEveryName) {
  SampleCommand c = command();
  c.prefix = "ma";
  c.seed = 3;
  c.temperature = 1.0;
  const std::vector<std::string> names = sample_names(sample(c));
  ASSERT_EQ(names.size(), 20u);
  bool longer = false;
  for (const std::string& n : names) {
    EXPECT_EQ(n.rfind("ma", 0), 0u) << n;
    longer |= n.size() > 2;
  }
  EXPECT_TRUE(longer);
  // The longest prefix that leaves room (block size 16) works; one as long as the block does not.
  c.prefix = std::string(15, 'a');
  c.num_samples = 2;
  for (const std::string& n : sample_names(sample(c))) EXPECT_EQ(n.rfind(c.prefix, 0), 0u) << n;
  c.prefix = std::string(16, 'a');
  const Error e = sample_error(c);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--prefix"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("block size"), std::string::npos) << e.what();
}

// The prefix is fed to the model: greedy decoding from any start of the greedy name
// completes it to the same name, and another start gives another continuation.
TEST_F(SampleControls, PrefixConditionsTheModel) {
  SampleCommand c = command();
  c.temperature = 0;
  c.num_samples = 1;
  const std::string greedy = sample_names(sample(c)).at(0);
  ASSERT_GE(greedy.size(), 3u) << greedy;
  for (size_t k = 1; k < greedy.size(); k++) {
    c.prefix = greedy.substr(0, k);
    EXPECT_EQ(sample_names(sample(c)).at(0), greedy) << c.prefix;
  }
  std::set<std::string> endings;
  for (const char* start : {"zu", "xo", "qe"}) {
    c.prefix = start;
    endings.insert(sample_names(sample(c)).at(0).substr(2));
  }
  EXPECT_GT(endings.size(), 1u);
}

TEST_F(SampleControls, PrefixOutsideTheVocabulary) {
  SampleCommand c = command();
  c.prefix = "aQb";
  const Error e = sample_error(c);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("'Q'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("--prefix"), std::string::npos) << e.what();
}

TEST_F(SampleControls, MaxLenBoundsTheLength) {
  SampleCommand c = command();
  c.temperature = 1.5;  // long, wandering names
  c.seed = 11;
  c.num_samples = 40;
  size_t longest = 0;
  for (const std::string& n : sample_names(sample(c))) longest = std::max(longest, u32(n).size());
  EXPECT_GT(longest, 3u) << "without --max-len some names are longer than 3";
  c.max_len = 3;
  longest = 0;
  for (const std::string& n : sample_names(sample(c))) {
    EXPECT_LE(u32(n).size(), 3u) << n;
    longest = std::max(longest, u32(n).size());
  }
  EXPECT_EQ(longest, 3u);
  c.prefix = "ab";
  c.max_len = 2;  // no room after the prefix
  EXPECT_EQ(sample_error(c).exit_code(), 2);
}

TEST_F(SampleControls, NovelSkipsTrainingNamesAndCountsRight) {
  std::set<std::u32string> known;
  const Dataset d = embedded_dataset();
  for (int64_t i = 0; i < d.size(); i++) known.emplace(d.doc(i));
  SampleCommand c = command();
  c.temperature = 0.3;  // common names, many of them in the data
  c.seed = 1;
  c.num_samples = 30;
  int in_data = 0;
  for (const std::string& n : sample_names(sample(c))) in_data += known.count(u32(n)) > 0;
  EXPECT_GT(in_data, 0) << "without --novel some names come from the training data";
  c.novel = true;
  const std::vector<std::string> names = sample_names(sample(c));
  EXPECT_EQ(names.size(), 30u);
  for (const std::string& n : names) EXPECT_EQ(known.count(u32(n)), 0u) << n;
  const std::string out = sample(c);
  for (int i = 1; i <= 30; i++) {
    char head[32];
    std::snprintf(head, sizeof head, "sample %2d: ", i);
    EXPECT_NE(out.find(head), std::string::npos) << head;  // numbered 1..30 without gaps
  }
}

TEST(SampleNovel, NeedsTheTrainingFile) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), "anna\nbob\ncarla\ndave\n");
  TrainOptions o;
  o.data_path = dir.file("names.txt");
  o.engine.threads = 1;
  o.model.n_embd = 8;
  o.model.n_head = 2;
  o.train.steps = 200;
  o.train.num_samples = 0;
  o.out_path = dir.file("m.safetensors");
  std::ostringstream out;
  run_training(o, out);
  SampleCommand c;
  c.model_path = dir.file("m.safetensors");
  c.novel = true;
  c.num_samples = 5;
  c.temperature = 1.0;
  for (const std::string& n : sample_names(sample(c))) {
    EXPECT_TRUE(n != "anna" && n != "bob" && n != "carla" && n != "dave") << n;
  }
  std::filesystem::rename(dir.file("names.txt"), dir.file("moved.txt"));
  const Error e = sample_error(c);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find(dir.file("names.txt")), std::string::npos) << e.what();
  c.data_path = dir.file("moved.txt");
  EXPECT_EQ(sample_names(sample(c)).size(), 5u);
}

TEST_F(SampleControls, LogHoldsThePrintedNames) {
  TempDir dir;
  SampleCommand c = command();
  c.seed = 4;
  c.num_samples = 6;
  c.log_path = dir.file("s.jsonl");
  const std::vector<std::string> names = sample_names(sample(c));
  const auto rows = testing::read_jsonl(dir.file("s.jsonl"));
  ASSERT_EQ(rows.size(), 6u);
  for (size_t i = 0; i < rows.size(); i++) {
    EXPECT_EQ(rows[i].size(), 2u);
    EXPECT_EQ(rows[i]["sample"], i + 1);
    EXPECT_EQ(rows[i]["text"], names[i]);
  }
}

// ---- pick_token with a fixed distribution ------------------------------------------

const std::vector<double> kWeights = {0.05, 0.30, 0.10, 0.25, 0.20, 0.10};  // by size: 1, 3, 4, then 2 and 5 tie

std::map<int64_t, int> draw_many(const SampleOptions& o, int n = 3000) {
  PyRandom rng(99);
  std::map<int64_t, int> counts;
  for (int i = 0; i < n; i++) counts[pick_token(kWeights, rng, o)]++;
  return counts;
}

TEST(PickToken, TopKDrawsOnlyAmongTheKMostLikely) {
  SampleOptions o;
  o.top_k = 3;
  const auto counts = draw_many(o);
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& [token, n] : counts) EXPECT_TRUE(token == 1 || token == 3 || token == 4) << token;
  // in proportion to their weights (0.30 : 0.25 : 0.20 of 0.75)
  EXPECT_NEAR(counts.at(1) / 3000.0, 0.4, 0.04);
  EXPECT_NEAR(counts.at(4) / 3000.0, 0.2667, 0.04);
  o.top_k = 1;
  EXPECT_EQ(draw_many(o, 200), (std::map<int64_t, int>{{1, 200}}));
  o.top_k = 4;  // a tie at the edge: the lower token id is kept
  const auto four = draw_many(o);
  EXPECT_EQ(four.size(), 4u);
  EXPECT_EQ(four.count(5), 0u);
  EXPECT_GT(four.count(2), 0u);
}

TEST(PickToken, TopPKeepsTheSmallestLikelySet) {
  SampleOptions o;
  o.top_p = 0.5;  // 0.30 + 0.25 reach half of the total
  auto counts = draw_many(o);
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[3], 0);
  o.top_p = 0.25;  // the first token alone reaches it
  counts = draw_many(o, 200);
  EXPECT_EQ(counts, (std::map<int64_t, int>{{1, 200}}));
  o.top_p = 1.0;
  EXPECT_EQ(draw_many(o).size(), 6u);
}

// A running sum that reaches p * total exactly stops there: the set is the smallest
// whose probability is at least p (sums of powers of two, so no rounding).
TEST(PickToken, TopPStopsWhereTheSumEqualsP) {
  const std::vector<double> w = {0.125, 0.5, 0.25, 0.125};
  SampleOptions o;
  PyRandom rng(4);
  o.top_p = 0.5;
  for (int i = 0; i < 300; i++) ASSERT_EQ(pick_token(w, rng, o), 1);
  o.top_p = 0.75;
  std::map<int64_t, int> counts;
  for (int i = 0; i < 600; i++) counts[pick_token(w, rng, o)]++;
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
}

TEST(PickToken, NoControlsIsPythonsChoices) {
  SampleOptions o;
  PyRandom a(3), b(3);
  for (int i = 0; i < 500; i++) ASSERT_EQ(pick_token(kWeights, a, o), b.choices(kWeights));
}

TEST(PickToken, TemperatureZeroTakesTheFirstLargest) {
  SampleOptions o;
  o.temperature = 0;
  PyRandom rng(1);
  const auto before = rng.state();
  EXPECT_EQ(pick_token({-1.0, 2.5, 0.3, 2.5}, rng, o), 1);
  EXPECT_EQ(pick_token({-3.0, -2.0, -2.5}, rng, o), 1);
  EXPECT_TRUE(rng.state().mt == before.mt && rng.state().index == before.index) << "greedy draws nothing";
}

}  // namespace
}  // namespace microgpt
