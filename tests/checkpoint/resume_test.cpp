// Stopping and resuming a run (run_training with stop_after and resume_path): a run
// stopped halfway and resumed prints, logs and saves exactly what the uninterrupted run
// does, for both engines (the fast one with batches and threads); the checkpoint is
// written at every multiple of checkpoint_every; and the errors a resume can meet.
#include <gtest/gtest.h>

#include <functional>
#include <streambuf>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_test_support.h"
#include "core/error.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::read_file;
using testing::result_lines;
using testing::TempDir;

using testing::train;

// Runs `o` and returns the Error it throws (or fails the test).
Error train_error(const TrainOptions& o) {
  return testing::error_of([&] { train(o); });
}

TrainOptions small_run(const std::string& engine, const std::string& data) {
  TrainOptions o = testing::tiny_run(engine);
  o.data_path = data;
  o.train.steps = 40;
  o.train.num_samples = 5;
  o.train.val_frac = 0.1;
  o.train.eval_every = 10;
  return o;
}

struct ResumeCase {
  std::string engine;
  int64_t batch_size, threads;
  bool threads_given_on_resume;
  // the fast engine's training aids, and a new order per pass (54 training documents,
  // 160 taken by 40 steps of 4: the stop at step 20 falls inside the second pass)
  double dropout = 0.0, ema = 0.0, weight_decay = 0.0;
  bool reshuffle = false;
  // fixed inputs (model/inputs.h): a resumed run must keep them fixed
  std::string wte = "learned", wpe = "learned", combine = "add";
};

void PrintTo(const ResumeCase& c, std::ostream* os) {
  *os << c.engine << ", batch " << c.batch_size << ", threads " << c.threads
      << (c.threads_given_on_resume ? ", given again on resume" : ", inherited on resume") << ", dropout "
      << c.dropout << ", ema " << c.ema << ", weight decay " << c.weight_decay << (c.reshuffle ? ", reshuffled" : "") << ", wte " << c.wte << ", wpe "
      << c.wpe << ", " << c.combine;
}

class ExactResume : public ::testing::TestWithParam<ResumeCase> {};

TEST_P(ExactResume, StoppedAndResumedEqualsOneRun) {
  const ResumeCase p = GetParam();
  if (p.engine == "gpu" && !testing::gpu_unavailable().empty()) {
    GTEST_SKIP() << "skipped: no GPU here (" << testing::gpu_unavailable() << ")";
  }
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(60));
  TrainOptions o = small_run(p.engine, dir.file("names.txt"));
  o.train.batch_size = p.batch_size;
  o.engine.threads = p.threads;
  o.threads_given = true;
  o.train.dropout = p.dropout;
  o.train.ema = p.ema;
  o.train.weight_decay = p.weight_decay;
  o.train.reshuffle = p.reshuffle;
  o.train.wte = p.wte;
  o.train.wpe = p.wpe;
  o.train.combine = p.combine;

  TrainOptions whole = o;
  whole.out_path = dir.file("whole.safetensors");
  whole.log_path = dir.file("whole.jsonl");
  const std::string whole_out = train(whole);

  TrainOptions first = o;
  first.out_path = dir.file("split.safetensors");
  first.log_path = dir.file("split.jsonl");
  first.stop_after = 20;
  const std::string first_out = train(first);
  EXPECT_NE(first_out.find("stopped after step 20 of 40"), std::string::npos) << first_out;
  EXPECT_EQ(first_out.find("sample"), std::string::npos) << "a stopped run samples nothing";
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "step"), "20");

  TrainOptions second;  // only what a user gives with --resume
  second.data_path = o.data_path;
  second.resume_path = dir.file("split.safetensors");
  second.out_path = dir.file("split.safetensors");
  second.log_path = dir.file("split.jsonl");
  second.engine.threads = p.threads_given_on_resume ? p.threads : 1;
  second.threads_given = p.threads_given_on_resume;
  const std::string second_out = train(second);
  EXPECT_NE(second_out.find("resuming from '" + dir.file("split.safetensors") + "' after step 20"), std::string::npos)
      << second_out;

  std::vector<std::string> split = result_lines(first_out);
  const std::vector<std::string> rest = result_lines(second_out);
  split.insert(split.end(), rest.begin(), rest.end());
  const std::vector<std::string> want = result_lines(whole_out);
  EXPECT_EQ(split, want);
  EXPECT_EQ(want.size(), 40u + 4u + 5u);  // steps, val losses at 10 20 30 40, samples
  EXPECT_TRUE(read_file(dir.file("split.jsonl")) == read_file(dir.file("whole.jsonl"))) << "logs differ";
  EXPECT_TRUE(read_file(dir.file("split.safetensors")) == read_file(dir.file("whole.safetensors")))
      << "final checkpoints differ";
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "step"), "40");
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "threads"), std::to_string(p.threads));
  // the options were the checkpoint's, and the resumed half ran with them
  const CheckpointData c = load_checkpoint(dir.file("split.safetensors"));
  EXPECT_EQ(c.train.dropout, p.dropout);
  EXPECT_EQ(c.train.ema, p.ema);
  EXPECT_EQ(c.train.reshuffle, p.reshuffle);
  EXPECT_EQ(c.train.wte, p.wte);
  EXPECT_EQ(c.train.wpe, p.wpe);
  EXPECT_EQ(c.train.combine, p.combine);
  EXPECT_EQ(c.trained_params.empty(), p.ema == 0.0);
  EXPECT_EQ(c.train.weight_decay, p.weight_decay);
}

// The options change the run, each as documented (so the equality above is not that of
// a plain run): dropout every training loss; the average none of them (training runs the
// weights) but the validation losses and samples (the model is the average); reshuffling
// nothing in the first pass (13 steps of 4 of the 54 documents), then the losses; weight
// decay every loss after the first (taken before any update).
TEST(ExactResumeOptions, DropoutEmaReshuffleAndWeightDecayChangeTheRun) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(60));
  TrainOptions o = small_run("fast", dir.file("names.txt"));
  o.train.batch_size = 4;
  // exact values from the log: training losses, then the other rows
  auto run = [&](const TrainOptions& v, std::vector<double>& losses, std::vector<std::string>& rest) {
    TrainOptions w = v;
    w.log_path = dir.file("log.jsonl");
    train(w);
    for (const auto& row : testing::read_jsonl(dir.file("log.jsonl"))) {
      if (row.contains("loss")) {
        losses.push_back(row["loss"].get<double>());
      } else {
        rest.push_back(row.dump());
      }
    }
  };
  std::vector<double> plain;
  std::vector<std::string> plain_rest;
  run(o, plain, plain_rest);
  ASSERT_EQ(plain.size(), 40u);
  ASSERT_EQ(plain_rest.size(), 4u + 5u);  // validation losses, samples
  for (int which = 0; which < 4; which++) {
    SCOPED_TRACE(which == 0 ? "dropout" : which == 1 ? "ema" : which == 2 ? "reshuffle" : "weight decay");
    TrainOptions v = o;
    if (which == 0) v.train.dropout = 0.1;
    if (which == 1) v.train.ema = 0.99;
    if (which == 2) v.train.reshuffle = true;
    if (which == 3) v.train.weight_decay = 0.5;
    std::vector<double> losses;
    std::vector<std::string> rest;
    run(v, losses, rest);
    ASSERT_EQ(losses.size(), plain.size());
    int differ = 0;
    for (size_t s = 0; s < plain.size(); s++) {
      if (which == 1 || (which == 2 && s < 13) || (which == 3 && s == 0)) {
        EXPECT_EQ(losses[s], plain[s]) << "step " << s + 1;
      }
      differ += losses[s] != plain[s];
    }
    if (which == 0) {
      EXPECT_EQ(differ, 40);
    } else if (which == 3) {
      EXPECT_EQ(differ, 39);
    } else if (which == 2) {
      EXPECT_GE(differ, 20);
    } else {
      ASSERT_EQ(rest.size(), plain_rest.size());
      int samples_differ = 0;
      for (size_t i = 0; i < rest.size(); i++) {
        if (rest[i].find("val_loss") != std::string::npos) {
          EXPECT_NE(rest[i], plain_rest[i]);
        } else {
          samples_differ += rest[i] != plain_rest[i];
        }
      }
      EXPECT_GT(samples_differ, 0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, ExactResume,
                         ::testing::Values(ResumeCase{"reference", 1, 1, false}, ResumeCase{"fast", 4, 2, true},
                                           ResumeCase{"fast", 4, 2, false},
                                           ResumeCase{"fast", 4, 2, false, 0.1, 0.99, 0.5, true},
                                           ResumeCase{"fast", 4, 2, false, 0.0, 0.0, 0.0, false, "frozen", "frozen", "concat"},
                                           ResumeCase{"gpu", 4, 1, false},
                                           ResumeCase{"gpu", 4, 1, false, 0.1, 0.99, 0.5, true},
                                           ResumeCase{"gpu", 4, 1, false, 0.0, 0.0, 0.0, false, "frozen", "frozen", "concat"}),
                         [](const ::testing::TestParamInfo<ResumeCase>& info) {
                           return info.param.engine + "_batch" + std::to_string(info.param.batch_size) + "_threads" +
                                  std::to_string(info.param.threads) +
                                  (info.param.threads_given_on_resume ? "_given" : "_inherited") +
                                  (info.param.dropout > 0 ? "_dropout" : "") + (info.param.ema > 0 ? "_ema" : "") +
                                  (info.param.weight_decay > 0 ? "_weight_decay" : "") +
                                  (info.param.reshuffle ? "_reshuffle" : "") +
                                  (info.param.wte != "learned" ? "_wte_" + info.param.wte : "") +
                                  (info.param.wpe != "learned" ? "_wpe_" + info.param.wpe : "") +
                                  (info.param.combine != "add" ? "_" + info.param.combine : "");
                         });

// An output stream that hands each complete line to a callback as it is written.
class LineSpy : public std::streambuf {
 public:
  explicit LineSpy(std::function<void(const std::string&)> on_line) : on_line_(std::move(on_line)) {}

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    if (c == '\n') {
      on_line_(line_);
      line_.clear();
    } else {
      line_.push_back(static_cast<char>(c));
    }
    return c;
  }

 private:
  std::function<void(const std::string&)> on_line_;
  std::string line_;
};

TEST(CheckpointEvery, WrittenAtEachMultipleThenAtTheStop) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(30));
  TrainOptions o = small_run("fast", dir.file("names.txt"));
  o.train.val_frac = 0;
  o.train.eval_every = 0;
  o.out_path = dir.file("m.safetensors");
  o.checkpoint_every = 10;
  o.stop_after = 25;
  // What the file on disk says when each line is printed: the step line of step s comes
  // before that step's checkpoint.
  std::vector<std::string> seen;
  LineSpy spy([&](const std::string& line) {
    if (line.rfind("step ", 0) != 0 && line.rfind("stopped", 0) != 0) return;
    seen.push_back(std::filesystem::exists(o.out_path.value()) ? testing::checkpoint_meta(o.out_path.value(), "step")
                                                               : "none");
  });
  std::ostream out(&spy);
  run_training(o, out);
  std::vector<std::string> want;
  for (int s = 1; s <= 25; s++) want.push_back(s <= 10 ? "none" : s <= 20 ? "10" : "20");
  want.push_back("25");  // "stopped after step 25 ..."
  EXPECT_EQ(seen, want);

  // Resumed to the end: the multiples after 25, then the final checkpoint.
  seen.clear();
  TrainOptions resume;
  resume.data_path = o.data_path;
  resume.resume_path = o.out_path;
  resume.out_path = o.out_path;
  resume.checkpoint_every = 10;
  LineSpy spy2([&](const std::string& line) {
    if (line.rfind("step ", 0) == 0) seen.push_back(testing::checkpoint_meta(o.out_path.value(), "step"));
  });
  std::ostream out2(&spy2);
  run_training(resume, out2);
  want.clear();
  for (int s = 26; s <= 40; s++) want.push_back(s <= 30 ? "25" : "30");
  EXPECT_EQ(seen, want);
  EXPECT_EQ(testing::checkpoint_meta(o.out_path.value(), "step"), "40");
}

TEST(ResumeErrors, DifferentDataFile) {
  TempDir dir;
  testing::write_file(dir.file("a.txt"), testing::first_names(30));
  testing::write_file(dir.file("b.txt"), testing::first_names(31));
  TrainOptions o = small_run("reference", dir.file("a.txt"));
  o.out_path = dir.file("m.safetensors");
  o.stop_after = 3;
  train(o);
  TrainOptions r;
  r.resume_path = o.out_path;
  r.out_path = o.out_path;
  r.data_path = dir.file("b.txt");
  const Error e = train_error(r);
  EXPECT_EQ(e.exit_code(), 1);
  EXPECT_NE(std::string(e.what()).find(dir.file("b.txt")), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(dir.file("m.safetensors")), std::string::npos) << e.what();
  // The same documents in another order are other data too (the shuffle differs).
  const std::vector<std::string> names = testing::lines_of(testing::first_names(30));
  std::string swapped = names[1] + "\n" + names[0] + "\n";
  for (size_t i = 2; i < names.size(); i++) swapped += names[i] + "\n";
  testing::write_file(dir.file("c.txt"), swapped);
  r.data_path = dir.file("c.txt");
  EXPECT_EQ(train_error(r).exit_code(), 1);
  EXPECT_EQ(testing::checkpoint_meta(dir.file("m.safetensors"), "step"), "3") << "the checkpoint is untouched";
}

// The same characters cut into other lines (same number of lines) are other data: the
// check covers the documents' boundaries, not only their characters.
TEST(ResumeErrors, DataWithTheSameCharactersCutDifferently) {
  TempDir dir;
  testing::write_file(dir.file("a.txt"), "emma\nolivia\nava\nisabella\nsophia\n");
  testing::write_file(dir.file("b.txt"), "emmao\nlivia\nava\nisabella\nsophia\n");
  TrainOptions o = small_run("reference", dir.file("a.txt"));
  o.train.val_frac = 0;
  o.train.eval_every = 0;
  o.out_path = dir.file("m.safetensors");
  o.stop_after = 3;
  train(o);
  TrainOptions r;
  r.resume_path = o.out_path;
  r.out_path = dir.file("n.safetensors");
  r.data_path = dir.file("b.txt");
  const Error e = train_error(r);
  EXPECT_EQ(e.exit_code(), 1);
  EXPECT_NE(std::string(e.what()).find(dir.file("b.txt")), std::string::npos) << e.what();
}

TEST(ResumeErrors, TrainedOnAFileButNoDataGiven) {
  TempDir dir;
  testing::write_file(dir.file("a.txt"), testing::first_names(30));
  TrainOptions o = small_run("fast", dir.file("a.txt"));
  o.out_path = dir.file("m.safetensors");
  o.stop_after = 3;
  train(o);
  TrainOptions r;
  r.resume_path = o.out_path;
  r.out_path = o.out_path;
  const Error e = train_error(r);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find(dir.file("a.txt")), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("--data"), std::string::npos) << e.what();
}

TEST(ResumeErrors, FinishedCheckpoint) {
  TempDir dir;
  TrainOptions o = small_run("fast", dir.file("unused"));
  o.data_path.reset();
  o.train.steps = 3;
  o.train.num_samples = 0;
  o.train.val_frac = 0;
  o.out_path = dir.file("m.safetensors");
  train(o);
  TrainOptions r;
  r.resume_path = o.out_path;
  r.out_path = o.out_path;
  const Error e = train_error(r);
  EXPECT_NE(e.exit_code(), 0);
  EXPECT_NE(std::string(e.what()).find(dir.file("m.safetensors")), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("finished"), std::string::npos) << e.what();
}

TEST(ResumeErrors, StopAfterOutOfRange) {
  TempDir dir;
  TrainOptions o = small_run("fast", dir.file("unused"));
  o.data_path.reset();
  o.train.steps = 10;
  o.train.val_frac = 0;
  o.out_path = dir.file("m.safetensors");
  o.stop_after = 11;  // beyond --steps
  Error e = train_error(o);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--stop-after"), std::string::npos) << e.what();
  EXPECT_FALSE(std::filesystem::exists(dir.file("m.safetensors"))) << "refused before any work";

  o.stop_after = 4;
  train(o);
  TrainOptions r;
  r.resume_path = o.out_path;
  r.out_path = o.out_path;
  r.stop_after = 4;  // not after the step the checkpoint reached
  e = train_error(r);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--stop-after"), std::string::npos) << e.what();

  TrainOptions no_out = o;  // stopping needs a checkpoint to resume from
  no_out.out_path.reset();
  EXPECT_EQ(train_error(no_out).exit_code(), 2);
}

}  // namespace
}  // namespace microgpt
