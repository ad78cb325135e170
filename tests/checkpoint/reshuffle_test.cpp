// --reshuffle: the documents a run trains on (EpochOrder). The first pass over the
// training documents is microgpt.py's order, k mod n; pass e >= 1 follows
// random.shuffle(range(n)) with a generator seeded by seed ^ (e * 0x9E3779B97F4A7C15), a
// function of (seed, e) alone. Checked on EpochOrder itself and on reference-engine runs,
// whose losses are replayed here with that order.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_test_support.h"
#include "core/python_random.h"
#include "train/engine.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::TempDir;

// The documented order of pass e >= 1, computed here from the generator.
std::vector<int64_t> documented_pass(int64_t n, uint64_t seed, int64_t e) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  PyRandom rng(seed ^ (static_cast<uint64_t>(e) * 0x9E3779B97F4A7C15ULL));
  rng.shuffle(perm);
  return perm;
}

std::vector<int64_t> pass_of(EpochOrder& order, int64_t n, int64_t e) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; i++) out.push_back(order.at(e * n + i));
  return out;
}

TEST(EpochOrder, FirstPassInOrderThenANewPermutationPerPass) {
  const int64_t n = 9;
  const uint64_t seed = 42;
  EpochOrder order(n, seed, true);
  std::vector<int64_t> identity(static_cast<size_t>(n));
  std::iota(identity.begin(), identity.end(), int64_t{0});
  EXPECT_EQ(pass_of(order, n, 0), identity);
  std::set<std::vector<int64_t>> passes;
  for (int64_t e = 1; e <= 6; e++) {
    const std::vector<int64_t> p = pass_of(order, n, e);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity) << "pass " << e << " is a permutation of 0..n-1";
    EXPECT_EQ(p, documented_pass(n, seed, e)) << "pass " << e;
    EXPECT_NE(p, identity) << "pass " << e;
    passes.insert(p);
  }
  EXPECT_EQ(passes.size(), 6u) << "every pass its own order";
}

// A function of (seed, k): another object, asked in another order (as a resumed run
// asks from the middle of a pass), gives the same documents; another seed other ones.
TEST(EpochOrder, DependsOnlyOnTheSeedAndTheIndex) {
  const int64_t n = 9, K = 7 * n;
  EpochOrder a(n, 42, true);
  std::vector<int64_t> forward;
  for (int64_t k = 0; k < K; k++) forward.push_back(a.at(k));
  EpochOrder b(n, 42, true);
  std::vector<int64_t> backward(static_cast<size_t>(K));
  for (int64_t k = K; k-- > 0;) backward[static_cast<size_t>(k)] = b.at(k);
  EXPECT_EQ(backward, forward);
  EpochOrder c(n, 42, true);
  for (const int64_t k : {40, 3, 50, 41, 12, 62, 40}) EXPECT_EQ(c.at(k), forward[static_cast<size_t>(k)]) << k;

  EpochOrder other(n, 43, true);
  std::vector<int64_t> other_seed;
  for (int64_t k = 0; k < K; k++) other_seed.push_back(other.at(k));
  EXPECT_TRUE(std::equal(other_seed.begin(), other_seed.begin() + n, forward.begin())) << "the first pass is k";
  EXPECT_NE(other_seed, forward);
}

TEST(EpochOrder, WithoutReshuffleEveryPassIsInOrder) {
  for (const int64_t n : {1, 2, 9}) {
    EpochOrder order(n, 42, false);
    for (int64_t k = 0; k < 8 * n; k++) ASSERT_EQ(order.at(k), k % n) << "n " << n << ", k " << k;
  }
  EpochOrder one(1, 42, true);
  for (int64_t k = 0; k < 5; k++) EXPECT_EQ(one.at(k), 0);
}

// ---- Runs ----------------------------------------------------------------------------------

TrainOptions reference_run(const std::string& data, int64_t steps, bool reshuffle, const TempDir& dir,
                           const std::string& name) {
  TrainOptions o;
  o.data_path = data;
  o.engine.name = "reference";
  o.engine.threads = 1;
  o.model.n_embd = 8;
  o.model.n_head = 2;
  o.model.block_size = 8;
  o.train.steps = steps;
  o.train.num_samples = 3;
  o.train.reshuffle = reshuffle;
  o.log_path = dir.file(name + ".jsonl");
  return o;
}

// The losses a run logged, one per step (exact: the log writes Python's repr).
std::vector<double> logged_losses(const std::string& log) {
  std::vector<double> out;
  for (const auto& row : testing::read_jsonl(log)) {
    if (row.contains("loss")) out.push_back(row["loss"].get<double>());
  }
  return out;
}

using testing::train;

// The losses of `o` replayed here: document k of the training share is k mod n in the
// first pass and documented_pass(e)[k mod n] in pass e.
std::vector<double> replayed_losses(const TrainOptions& o) {
  PyRandom rng(o.train.seed);
  const testing::Shuffled corpus = testing::shuffled(o.data_path, rng, o.train.val_frac);
  ModelConfig config = o.model;
  config.vocab_size = corpus.tokenizer.vocab_size();
  std::unique_ptr<Engine> engine = make_engine(o.engine, config, o.train);
  engine->init_params(rng);
  const int64_t n = corpus.data.size() - corpus.n_val;
  std::vector<double> losses;
  for (int64_t step = 0; step < o.train.steps; step++) {
    const int64_t e = step / n, i = step % n;
    const int64_t k = e == 0 || !o.train.reshuffle ? i : documented_pass(n, o.train.seed, e)[static_cast<size_t>(i)];
    const std::vector<int64_t> which = {corpus.order[static_cast<size_t>(k)]};
    TokenizedDocs tokens;
    tokenize_documents(corpus.data, corpus.tokenizer, which, tokens, config.block_size + 1);
    losses.push_back(engine->train_step(step, o.train.steps, testing::batch_of(tokens, config.block_size)));
  }
  return losses;
}

// Fewer steps than documents: one pass, the order (and so every loss and sample) of a
// run without --reshuffle.
TEST(Reshuffle, WithinTheFirstPassNothingChanges) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(12));
  const std::string plain = train(reference_run(dir.file("names.txt"), 12, false, dir, "plain"));
  const std::string shuffled = train(reference_run(dir.file("names.txt"), 12, true, dir, "shuffled"));
  EXPECT_EQ(testing::result_lines(shuffled), testing::result_lines(plain));
  EXPECT_EQ(logged_losses(dir.file("shuffled.jsonl")), logged_losses(dir.file("plain.jsonl")));
  EXPECT_EQ(logged_losses(dir.file("plain.jsonl")).size(), 12u);
}

// Three passes over 12 documents: the first pass as without --reshuffle, then the
// documented orders, each loss exactly the replay's (the reference engine is exact).
TEST(Reshuffle, LaterPassesFollowTheDocumentedOrder) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(12));
  const TrainOptions shuffled_run = reference_run(dir.file("names.txt"), 36, true, dir, "shuffled");
  train(reference_run(dir.file("names.txt"), 36, false, dir, "plain"));
  train(shuffled_run);
  const std::vector<double> plain = logged_losses(dir.file("plain.jsonl"));
  const std::vector<double> shuffled = logged_losses(dir.file("shuffled.jsonl"));
  ASSERT_EQ(plain.size(), 36u);
  ASSERT_EQ(shuffled.size(), 36u);
  EXPECT_TRUE(std::equal(plain.begin(), plain.begin() + 12, shuffled.begin())) << "the first pass";
  // From the first document the second pass moves, the runs part: the weights then differ.
  const std::vector<int64_t> pass1 = documented_pass(12, shuffled_run.train.seed, 1);
  size_t first_moved = 0;
  while (pass1[first_moved] == static_cast<int64_t>(first_moved)) first_moved++;
  for (size_t s = 12; s < 36; s++) {
    if (s < 12 + first_moved) {
      EXPECT_EQ(shuffled[s], plain[s]) << "step " << s + 1;
    } else {
      EXPECT_NE(shuffled[s], plain[s]) << "step " << s + 1;
    }
  }
  EXPECT_EQ(shuffled, replayed_losses(shuffled_run));
  TrainOptions plain_run = shuffled_run;
  plain_run.train.reshuffle = false;
  EXPECT_EQ(plain, replayed_losses(plain_run));
}

}  // namespace
}  // namespace microgpt
