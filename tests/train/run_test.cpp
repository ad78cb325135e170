// A training run's stages and events (train/run.h): observers hear every stage in order,
// with the numbers the console and the log show; a gradient reducer sits between the
// halves of every step; stepping by hand is the same run as run().
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint_test_support.h"
#include "train/reporters.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::TempDir;

// Every event as one short line.
class Recorder final : public Observer {
 public:
  std::vector<std::string> events;
  std::vector<double> losses;
  void on_start(const RunStarted& e) override {
    events.push_back("start " + std::to_string(e.first_step) + ".." + std::to_string(e.last_step) + " of " +
                     std::to_string(e.steps) + " docs " + std::to_string(e.docs) + " held out " +
                     std::to_string(e.held_out_docs));
  }
  void on_step(const StepFinished& e) override {
    events.push_back("step " + std::to_string(e.step) + (e.last ? " last" : ""));
    losses.push_back(e.loss);
    EXPECT_GT(e.tokens, 0);
    EXPECT_GE(e.seconds, 0.0);
  }
  void on_validation(const Validated& e) override { events.push_back("val " + std::to_string(e.step)); }
  void on_checkpoint(const CheckpointWritten& e) override { events.push_back("checkpoint " + std::to_string(e.step)); }
  void on_sample(const SampleDrawn& e) override {
    events.push_back("sample " + std::to_string(e.index) + "/" + std::to_string(e.count));
  }
  void on_diverged(const RunDiverged& e) override { events.push_back("diverged " + std::to_string(e.step)); }
  void on_finish(const RunFinished& e) override {
    events.push_back(std::string("finish ") + std::to_string(e.step) + (e.stopped ? " stopped" : ""));
  }
};

TrainOptions small_run(const TempDir& dir) {
  TrainOptions o = testing::tiny_run("fast");
  o.train.steps = 6;
  o.train.val_frac = 0.25;
  o.train.eval_every = 2;
  o.train.num_samples = 3;
  o.train.batch_size = 3;
  o.checkpoint_every = 3;
  o.out_path = dir.file("m.safetensors");
  o.data_path = dir.file("names.txt");
  testing::write_file(*o.data_path, testing::first_names(20));
  return o;
}

TEST(TrainingRun, ObserversHearEveryStageInOrder) {
  TempDir dir;
  TrainingRun run(small_run(dir));
  Recorder r;
  run.add_observer(r);
  run.run();
  const std::vector<std::string> want = {
      "start 0..6 of 6 docs 20 held out 5", "step 1", "step 2", "val 2", "step 3", "checkpoint 3", "step 4", "val 4",
      "step 5", "step 6 last", "val 6", "checkpoint 6", "sample 1/3", "sample 2/3", "sample 3/3", "finish 6"};
  EXPECT_EQ(r.events, want);
}

TEST(TrainingRun, AStoppedRunEndsWithItsCheckpoint) {
  TempDir dir;
  TrainOptions o = small_run(dir);
  o.stop_after = 4;
  TrainingRun run(o);
  Recorder r;
  run.add_observer(r);
  run.run();
  const std::vector<std::string> want = {"start 0..4 of 6 docs 20 held out 5", "step 1", "step 2", "val 2", "step 3",
                                         "checkpoint 3", "step 4 last", "val 4", "checkpoint 4", "finish 4 stopped"};
  EXPECT_EQ(r.events, want);
  // ... and the resumed run starts where it stopped.
  TrainOptions resume;
  resume.resume_path = o.out_path;
  resume.data_path = o.data_path;
  resume.out_path = o.out_path;
  TrainingRun second(resume);
  Recorder r2;
  second.add_observer(r2);
  second.run();
  EXPECT_EQ(r2.events.front(), "start 4..6 of 6 docs 20 held out 5");
  EXPECT_EQ(r2.events[1], "step 5");
}

// The events carry what the console prints and the log holds: a run with the standard
// observers attached by hand prints and logs exactly what run_training does.
TEST(TrainingRun, StepByStepWithTheStandardObserversIsRunTraining) {
  TempDir dir;
  TrainOptions o = small_run(dir);
  o.log_path = dir.file("a.jsonl");
  std::ostringstream want;
  run_training(o, want);
  const std::string want_log = testing::read_file(dir.file("a.jsonl"));

  o.log_path.reset();
  TrainingRun run(o);
  std::ostringstream got;
  ConsoleReport console(got, false);
  JsonLog log(dir.file("b.jsonl"));
  Recorder r;
  run.add_observer(log);
  run.add_observer(console);
  run.add_observer(r);
  run.prepare();
  while (run.steps_left()) run.step();
  run.finish();
  EXPECT_EQ(got.str(), want.str());
  EXPECT_EQ(testing::read_file(dir.file("b.jsonl")), want_log);
  std::vector<double> logged;
  for (const auto& row : testing::read_jsonl(dir.file("b.jsonl"))) {
    if (row.contains("loss")) logged.push_back(row["loss"].get<double>());
  }
  EXPECT_EQ(r.losses, logged);
}

TEST(TrainingRun, DivergenceIsAnEventThenAnError) {
  TempDir dir;
  TrainOptions o = small_run(dir);
  o.engine.name = "reference";
  o.train.batch_size = 1;
  o.train.lr = 1e6;
  o.checkpoint_every = 1;
  TrainingRun run(o);
  Recorder r;
  run.add_observer(r);
  const Error e = testing::error_of([&] { run.run(); });
  ASSERT_GE(r.events.size(), 3u);
  EXPECT_EQ(r.events.back().rfind("diverged ", 0), 0u);
  EXPECT_NE(std::string(e.what()).find("training diverged at step"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("last good checkpoint"), std::string::npos);
}

// Usage errors come from the constructor, before anything is read or written.
TEST(TrainingRun, RefusesBadOptionsBeforeAnyWork) {
  TempDir dir;
  TrainOptions o = small_run(dir);
  o.data_path = dir.file("missing.txt");  // never read: the options fail first
  o.train.dropout = 0.96;
  const Error e = testing::error_of([&] { TrainingRun run(o); });
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--dropout"), std::string::npos) << e.what();
  EXPECT_FALSE(std::filesystem::exists(*o.out_path));
}

}  // namespace
}  // namespace microgpt
