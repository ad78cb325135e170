// The command line as a user meets it: the built binary, its exit codes and messages.
// Usage errors exit 2, runtime errors 1; every error is one line on stderr.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <sstream>

#include "checkpoint/checkpoint_test_support.h"
#include "cli/command_line.h"
#include "train/presets.h"
#include "model/config.h"
#include "test_support.h"

namespace microgpt {
namespace {

using testing::count_lines;
using testing::run_microgpt;
using testing::TempDir;

void expect_usage_error(const std::string& args, const std::string& fragment) {
  const auto r = run_microgpt(args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << args << "\n" << r.err;
  EXPECT_EQ(r.out, "") << args;
}

TEST(Cli, HelpListsEveryTrainFlag) {
  const auto r = run_microgpt("train --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--data", "--engine", "--seed", "--n-layer", "--n-embd", "--n-head", "--block-size",
                           "--steps", "--lr", "--temperature", "--num-samples", "--log", "--preset", "--batch-size",
                           "--threads", "--val-frac", "--eval-every", "--dropout", "--ema", "--weight-decay",
                           "--reshuffle"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
  const auto top = run_microgpt("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("train"), std::string::npos);
}

TEST(Cli, Version) {
  const auto r = run_microgpt("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("microgpt"), std::string::npos);
}

TEST(Cli, PlainMicrogptIsTrain) {
  const auto a = run_microgpt("--engine reference --steps 2 --num-samples 2");
  const auto b = run_microgpt("train --engine reference --steps 2 --num-samples 2");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out.find("num docs: 8422\nvocab size: 28\nnum params: 4224\nstep    1 /    2 | loss 3.4613\n"),
            std::string::npos)
      << a.out;
  EXPECT_NE(a.out.find("sample  2: "), std::string::npos);
}

TEST(Cli, UsageErrorsSayWhatIsAccepted) {
  expect_usage_error("train --bogus 3", "--bogus");
  expect_usage_error("train --steps 12abc", "expected a whole number");
  expect_usage_error("train --steps 0", "expected a whole number from 1");
  expect_usage_error("train --n-embd 0", "--n-embd");
  expect_usage_error("train --n-layer -1", "--n-layer");
  expect_usage_error("train --n-head 0", "--n-head");
  expect_usage_error("train --block-size 0", "--block-size");
  expect_usage_error("train --seed -1", "--seed");
  expect_usage_error("train --num-samples x", "--num-samples");
  expect_usage_error("train --n-embd 10 --n-head 3", "divisible");
  expect_usage_error("train --temperature 0", "greater than 0");
  expect_usage_error("train --temperature -0.5", "--temperature");
  expect_usage_error("train --lr 0", "--lr");
  expect_usage_error("train --lr nan", "--lr");
  expect_usage_error("train --lr 1e999", "--lr");
  expect_usage_error("train --engine turbo", "--engine");
  expect_usage_error("train extra", "extra");
  expect_usage_error("frobnicate", "frobnicate");
}

TEST(Cli, RuntimeErrorsNameTheFile) {
  TempDir dir;
  struct Case {
    std::string args, fragment;
  };
  testing::write_file(dir.file("latin1.txt"), "ann\nbj\xF6rk\n");
  testing::write_file(dir.file("blank.txt"), "\n  \n");
  const Case cases[] = {
      {"--data " + dir.file("missing.txt"), dir.file("missing.txt")},
      {"--data " + dir.path(), "directory"},
      {"--data " + dir.file("latin1.txt"), "line 2"},
      {"--data " + dir.file("blank.txt"), "no documents"},
      {"--steps 1 --log " + dir.file("no/such/dir/log.jsonl"), "log.jsonl"},
  };
  for (const Case& c : cases) {
    const auto r = run_microgpt("train " + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << "\n" << r.err;
  }
}

TEST(Cli, LogWritesJsonLines) {
  TempDir dir;
  const auto r = run_microgpt("--engine reference --steps 3 --num-samples 2 --log " + dir.file("log.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = testing::read_jsonl(dir.file("log.jsonl"));
  ASSERT_EQ(rows.size(), 5U);
  EXPECT_EQ(rows[0]["step"], 1);
  EXPECT_EQ(rows[0]["loss"].get<double>(), 3.461323030236502);  // = embedded_default.jsonl step 1
  EXPECT_EQ(rows[3]["sample"], 1);
  EXPECT_TRUE(rows[4]["text"].is_string());
}

// The fast engine's flags.

TEST(Cli, BatchSizeTrains) {
  const auto r = run_microgpt("train --batch-size 4 --steps 3 --num-samples 0 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("step    3 /    3 | loss "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("inference"), std::string::npos);
}

TEST(Cli, ReferenceEngineTrainsOneDocumentPerStep) {
  // refused before any work or output, like every usage error
  expect_usage_error("train --engine reference --batch-size 2 --steps 2 --num-samples 0", "--batch-size");
}

TEST(Cli, FastEngineUsageErrors) {
  expect_usage_error("train --val-frac 1", "--val-frac");
  expect_usage_error("train --val-frac -0.1", "--val-frac");
  expect_usage_error("train --val-frac x", "--val-frac");
  expect_usage_error("train --threads 0", "--threads");
  expect_usage_error("train --batch-size 0", "--batch-size");
  expect_usage_error("train --batch-size 2x", "--batch-size");
  expect_usage_error("train --eval-every -1", "--eval-every");
  expect_usage_error("train --preset nope", "--preset");
}

TEST(Cli, ValidationLossEveryNSteps) {
  TempDir dir;
  const auto r = run_microgpt("train --val-frac 0.1 --steps 20 --eval-every 10 --num-samples 0 --threads 1 --log " +
                              dir.file("log.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 842 of the 8422 embedded names held out
  EXPECT_NE(r.out.find("validation: 842 docs held out, training on 7580\n"), std::string::npos) << r.out;
  std::vector<std::string> val_lines;
  std::istringstream lines(r.out);
  for (std::string l; std::getline(lines, l);) {
    if (l.find("val loss") != std::string::npos) val_lines.push_back(l);
  }
  ASSERT_EQ(val_lines.size(), 2U) << r.out;
  EXPECT_EQ(val_lines[0].rfind("step   10 /   20 | val loss ", 0), 0U) << val_lines[0];
  EXPECT_EQ(val_lines[1].rfind("step   20 /   20 | val loss ", 0), 0U) << val_lines[1];
  // the val loss line follows step 10's loss line
  EXPECT_NE(r.out.find("step   10 /   20 | loss "), std::string::npos);
  EXPECT_LT(r.out.find("step   10 /   20 | loss "), r.out.find(val_lines[0]));

  std::vector<nlohmann::json> val_rows;
  int loss_rows = 0;
  for (const auto& row : testing::read_jsonl(dir.file("log.jsonl"))) {
    if (row.contains("val_loss")) val_rows.push_back(row);
    loss_rows += row.contains("loss");
  }
  EXPECT_EQ(loss_rows, 20);
  ASSERT_EQ(val_rows.size(), 2U);
  EXPECT_EQ(val_rows[0]["step"], 10);
  EXPECT_EQ(val_rows[1]["step"], 20);
  for (size_t i = 0; i < 2; i++) {
    const double v = val_rows[i]["val_loss"].get<double>();
    EXPECT_GT(v, 0.0);
    EXPECT_LT(v, 4.0);  // below log(28) = 3.33 plus a margin: a mean per token, not a sum
    char printed[32];
    std::snprintf(printed, sizeof printed, "val loss %.4f", v);
    EXPECT_NE(val_lines[i].find(printed), std::string::npos) << val_lines[i] << " vs " << v;
  }
}

TEST(Cli, PresetGivesWidthExplicitFlagsWin) {
  const auto r = run_microgpt("train --preset makemore --steps 2 --n-layer 1 --num-samples 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ModelConfig m;  // makemore's width with the explicit --n-layer 1; the embedded names have 28 tokens
  m.vocab_size = 28;
  m.n_layer = 1;
  m.n_embd = 64;
  m.n_head = 4;
  m.block_size = 16;
  const std::string want = "num params: " + std::to_string(ParamLayout(m).total()) + "\n";
  EXPECT_NE(r.out.find(want), std::string::npos) << r.out;
  // --steps 2 beat the preset's 5000
  EXPECT_NE(r.out.find("step    2 /    2 | loss "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("step    3"), std::string::npos) << r.out;
}

// ---- The training aids: --dropout, --ema (fast engine), --reshuffle ----------------------

CommandLine parse(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  CommandLine c = parse_command_line(args, out, err);
  EXPECT_EQ(err.str(), "");
  EXPECT_EQ(c.command, CommandLine::Command::train);
  return c;
}

TEST(CliTrainingAids, RangesAreUsageErrors) {
  expect_usage_error("train --dropout 1", "--dropout");
  expect_usage_error("train --dropout -0.1", "--dropout");
  expect_usage_error("train --dropout 0.96", "--dropout");
  expect_usage_error("train --dropout x", "--dropout");
  expect_usage_error("train --ema 1", "--ema");
  expect_usage_error("train --ema -0.5", "--ema");
  expect_usage_error("train --ema nan", "--ema");
  // the largest accepted values parse
  const CommandLine c = parse({"train", "--dropout", "0.95", "--ema", "0.99999"});
  EXPECT_EQ(c.train.train.dropout, 0.95);
  EXPECT_EQ(c.train.train.ema, 0.99999);
}

TEST(CliTrainingAids, ReferenceEngineRefusesDropoutEmaAndWeightDecay) {
  // refused before any work or output, naming the option
  expect_usage_error("train --engine reference --dropout 0.1 --steps 2 --num-samples 0", "--dropout");
  expect_usage_error("train --engine reference --ema 0.9 --steps 2 --num-samples 0", "--ema");
  expect_usage_error("train --engine reference --weight-decay 0.1 --steps 2 --num-samples 0", "--weight-decay");
  // zero is microgpt.py's training, which the reference engine does; so is --reshuffle's order
  EXPECT_EQ(run_microgpt("train --engine reference --dropout 0 --ema 0 --reshuffle --steps 2 --num-samples 0 --out ''")
                .exit_code,
            0);
}

// Weight decay shrinks every weight, so it would move the fixed inputs' vectors (their
// zeros stay zeros: --wpe none is fine), and lr * W above 1 would flip the weights.
TEST(CliTrainingAids, WeightDecayRefusesWhatItWouldBreak) {
  expect_usage_error("train --weight-decay 0.1 --wte frozen --steps 2 --num-samples 0", "fixed --wte frozen");
  expect_usage_error("train --weight-decay 0.1 --wpe sinusoidal --steps 2 --num-samples 0", "--wpe sinusoidal");
  expect_usage_error("train --weight-decay 0.1 --wpe frozen --steps 2 --num-samples 0", "--wpe frozen");
  expect_usage_error("train --weight-decay 10 --lr 0.2 --steps 2 --num-samples 0", "--weight-decay");
  EXPECT_EQ(run_microgpt("train --weight-decay 0.1 --wpe none --combine concat --steps 2 --num-samples 0 --out ''")
                .exit_code,
            0);
}

TEST(CliTrainingAids, DefaultsAreOff) {
  const CommandLine c = parse({"train"});
  EXPECT_EQ(c.train.train.dropout, 0.0);
  EXPECT_EQ(c.train.train.ema, 0.0);
  EXPECT_EQ(c.train.train.weight_decay, 0.0);
  EXPECT_FALSE(c.train.train.reshuffle);
  EXPECT_TRUE(parse({"train", "--reshuffle"}).train.train.reshuffle);
}

// Every preset fills in every field it has, the training aids included; flags given
// explicitly win over them.
TEST(CliTrainingAids, PresetsSetThemExplicitFlagsWin) {
  for (const Preset& p : presets()) {
    SCOPED_TRACE(p.name);
    const CommandLine c = parse({"train", "--preset", p.name});
    EXPECT_EQ(c.train.model.n_layer, p.n_layer);
    EXPECT_EQ(c.train.model.n_embd, p.n_embd);
    EXPECT_EQ(c.train.model.n_head, p.n_head);
    EXPECT_EQ(c.train.model.block_size, p.block_size);
    EXPECT_EQ(c.train.train.batch_size, p.batch_size);
    EXPECT_EQ(c.train.train.steps, p.steps);
    EXPECT_EQ(c.train.train.lr, p.lr);
    EXPECT_EQ(c.train.train.eval_every, p.eval_every);
    EXPECT_EQ(c.train.train.dropout, p.dropout);
    EXPECT_EQ(c.train.train.ema, p.ema);
    EXPECT_EQ(c.train.train.reshuffle, p.reshuffle);
    EXPECT_EQ(c.train.train.format, p.format);
    EXPECT_EQ(c.train.train.init, p.init);
    EXPECT_EQ(c.train.train.warmup, p.warmup);
    // a text preset holds out a tenth and draws one long sample, as --format text does
    EXPECT_EQ(c.train.train.val_frac, p.format == "text" ? 0.1 : 0.0);
    // explicit values win, whatever the preset's
    const CommandLine e = parse({"train", "--preset", p.name, "--dropout", "0.3", "--ema", "0.5"});
    EXPECT_EQ(e.train.train.dropout, 0.3);
    EXPECT_EQ(e.train.train.ema, 0.5);
    const CommandLine z = parse({"train", "--preset", p.name, "--dropout", "0", "--ema", "0"});
    EXPECT_EQ(z.train.train.dropout, 0.0);
    EXPECT_EQ(z.train.train.ema, 0.0);
    EXPECT_EQ(z.train.train.reshuffle, p.reshuffle) << "the other aids stay the preset's";
  }
  // quality, as the README's table has it: the average and reshuffling on
  const Preset& q = *find_preset("quality");
  EXPECT_EQ(q.ema, 0.9998);
  EXPECT_TRUE(q.reshuffle);
  EXPECT_EQ(q.batch_size, 32);
  EXPECT_EQ(q.steps, 11000);
  EXPECT_EQ(q.lr, 1.5e-3);
  for (const char* name : {"microgpt", "makemore", "large"}) {
    const Preset& p = *find_preset(name);
    EXPECT_EQ(p.dropout, 0.0) << name;
    EXPECT_EQ(p.ema, 0.0) << name;
    EXPECT_FALSE(p.reshuffle) << name;
    EXPECT_EQ(p.format, "lines") << name;
    EXPECT_EQ(p.init, "microgpt") << name;  // microgpt.py's 0.08 stays the names presets' start
  }
  // the text presets, as the README's table has them
  const Preset& t = *find_preset("text");
  EXPECT_EQ(t.format, "text");
  EXPECT_EQ(t.init, "gpt2");
  EXPECT_EQ(t.n_embd, 256);
  EXPECT_EQ(t.block_size, 128);
  EXPECT_EQ(t.lr, 2e-3);
  EXPECT_EQ(find_preset("text-small")->format, "text");
  EXPECT_EQ(parse({"train", "--preset", "text", "--format", "lines"}).train.train.format, "lines");
  EXPECT_EQ(parse({"train", "--preset", "text", "--init", "microgpt"}).train.train.init, "microgpt");

  // and the binary trains with them: the checkpoint's configuration says so
  TempDir dir;
  const auto r = run_microgpt("train --preset quality --n-layer 1 --n-embd 8 --n-head 2 --batch-size 2 --steps 2 "
                              "--num-samples 0 --threads 1 --dropout 0.3",
                              dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json config =
      nlohmann::json::parse(testing::checkpoint_meta(dir.file("model.safetensors"), "config"));
  EXPECT_EQ(config.at("dropout").get<double>(), 0.3);
  EXPECT_EQ(config.at("ema").get<double>(), 0.9998);
  EXPECT_EQ(config.at("reshuffle"), true);
  EXPECT_EQ(config.at("lr").get<double>(), 1.5e-3);
}

// ---- Checkpoints, resume, sample, eval, embed and progress through the command line ----

// A small model's flags, shared by the runs below.
const std::string kSmall = " --n-embd 8 --n-head 2 --block-size 8";

void expect_one_line_error(const testing::RunResult& r, int code, const std::vector<std::string>& fragments,
                           const std::string& what) {
  EXPECT_EQ(r.exit_code, code) << what << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << what << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("microgpt", 0), 0u) << what << "\n" << r.err;
  for (const std::string& f : fragments) {
    EXPECT_NE(r.err.find(f), std::string::npos) << what << ": " << f << "\n" << r.err;
  }
  EXPECT_EQ(r.out, "") << what;
}

// Runs in `dir` and fails the test unless it succeeds.
testing::RunResult run_ok(const std::string& args, const TempDir& dir) {
  auto r = run_microgpt(args, dir.path());
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  return r;
}

TEST(CliCheckpoint, DefaultIsModelSafetensorsInTheCurrentFolder) {
  TempDir dir;
  run_ok("train --steps 2 --num-samples 0 --threads 1" + kSmall, dir);
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.safetensors")));
  EXPECT_EQ(testing::checkpoint_meta(dir.file("model.safetensors"), "step"), "2");
  const auto s = run_ok("sample --model model.safetensors --num-samples 2", dir);
  EXPECT_EQ(count_lines(s.out), 2);
  TempDir none;
  run_ok("train --steps 2 --num-samples 0 --threads 1 --out ''" + kSmall, none);
  EXPECT_TRUE(std::filesystem::is_empty(none.path()));
}

struct CliResumeCase {
  std::string name, flags, resume_flags;
};

void PrintTo(const CliResumeCase& c, std::ostream* os) { *os << c.name; }

class CliResume : public ::testing::TestWithParam<CliResumeCase> {};

TEST_P(CliResume, StoppedAndResumedEqualsOneRun) {
  const CliResumeCase& p = GetParam();
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(60));
  const std::string common =
      "train --data names.txt --steps 40 --val-frac 0.1 --eval-every 10 --num-samples 5" + kSmall + " " + p.flags;
  const auto whole = run_ok(common + " --out whole.safetensors --log whole.jsonl", dir);
  const auto first = run_ok(common + " --stop-after 20 --out split.safetensors --log split.jsonl", dir);
  EXPECT_NE(first.out.find("stopped after step 20 of 40; continue with: microgpt train --resume split.safetensors "
                           "--data names.txt\n"),
            std::string::npos)
      << first.out;
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "step"), "20");
  const auto second = run_ok(
      "train --resume split.safetensors --data names.txt --out split.safetensors --log split.jsonl" + p.resume_flags,
      dir);
  std::vector<std::string> split = testing::result_lines(first.out);
  const std::vector<std::string> rest = testing::result_lines(second.out);
  split.insert(split.end(), rest.begin(), rest.end());
  EXPECT_EQ(split, testing::result_lines(whole.out));
  EXPECT_EQ(split.size(), 40u + 4u + 5u);
  EXPECT_TRUE(testing::read_file(dir.file("split.jsonl")) == testing::read_file(dir.file("whole.jsonl")));
  EXPECT_TRUE(testing::read_file(dir.file("split.safetensors")) == testing::read_file(dir.file("whole.safetensors")));
  EXPECT_EQ(testing::checkpoint_meta(dir.file("split.safetensors"), "step"), "40");
}

INSTANTIATE_TEST_SUITE_P(Engines, CliResume,
                         ::testing::Values(CliResumeCase{"reference", "--engine reference", ""},
                                           CliResumeCase{"fast_threads_given", "--batch-size 4 --threads 2",
                                                         " --threads 2"},
                                           CliResumeCase{"fast_threads_inherited", "--batch-size 4 --threads 2", ""}),
                         [](const ::testing::TestParamInfo<CliResumeCase>& info) { return info.param.name; });

TEST(CliResumeFlags, CheckpointEveryAndStopAfter) {
  TempDir dir;
  run_ok("train --steps 40 --checkpoint-every 10 --stop-after 25 --num-samples 0 --threads 1" + kSmall, dir);
  EXPECT_EQ(testing::checkpoint_meta(dir.file("model.safetensors"), "step"), "25");
  EXPECT_EQ(testing::checkpoint_meta(dir.file("model.safetensors"), "steps"), "40");
  const auto r = run_ok("train --resume model.safetensors --checkpoint-every 10", dir);
  EXPECT_NE(r.out.find("resuming from 'model.safetensors' after step 25\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step   26 /   40 | loss "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("step   25 /   40"), std::string::npos) << r.out;
  EXPECT_EQ(testing::checkpoint_meta(dir.file("model.safetensors"), "step"), "40");
}

TEST(CliResumeFlags, Errors) {
  TempDir dir;
  testing::write_file(dir.file("a.txt"), testing::first_names(30));
  testing::write_file(dir.file("b.txt"), testing::first_names(31));
  run_ok("train --data a.txt --steps 10 --stop-after 3 --out a.safetensors --threads 1" + kSmall, dir);
  run_ok("train --steps 3 --num-samples 0 --out done.safetensors --threads 1" + kSmall, dir);
  auto in_dir = [&](const std::string& args) { return run_microgpt(args, dir.path()); };

  // Every flag of the model or its training is the checkpoint's.
  for (const char* flag : {"--preset microgpt", "--seed 42", "--n-layer 1", "--n-embd 8", "--n-head 2",
                           "--block-size 8", "--batch-size 1", "--steps 10", "--lr 0.01", "--val-frac 0.1",
                           "--eval-every 5", "--temperature 0.5", "--num-samples 3", "--dropout 0.1", "--dropout 0",
                           "--ema 0.9", "--reshuffle"}) {
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    expect_one_line_error(in_dir("train --resume a.safetensors --data a.txt " + std::string(flag)), 2,
                          {name, "--resume"}, flag);
  }
  // The engine too, but for the other float32 one (fast and gpu continue each other's runs).
  expect_one_line_error(in_dir("train --resume a.safetensors --data a.txt --engine reference"), 2,
                        {"a.safetensors", "fast engine", "--engine reference"}, "the reference engine");
  expect_one_line_error(in_dir("train --resume a.safetensors --data b.txt"), 1, {"b.txt", "a.safetensors"},
                        "other data");
  expect_one_line_error(in_dir("train --resume a.safetensors"), 2, {"a.txt", "--data"}, "no --data");
  expect_one_line_error(in_dir("train --resume done.safetensors"), 2, {"done.safetensors", "finished"}, "finished");
  expect_one_line_error(in_dir("train --steps 10 --stop-after 11"), 2, {"--stop-after", "11"}, "beyond --steps");
  expect_one_line_error(in_dir("train --resume a.safetensors --data a.txt --stop-after 3"), 2, {"--stop-after"},
                        "not after the checkpoint's step");
  expect_one_line_error(in_dir("train --steps 10 --stop-after 5 --out ''"), 2, {"--out"}, "stop without a checkpoint");
  EXPECT_EQ(testing::checkpoint_meta(dir.file("a.safetensors"), "step"), "3") << "errors leave the checkpoint alone";
}

class CliSample : public ::testing::TestWithParam<std::string> {};

TEST_P(CliSample, PrintsWhatTrainPrinted) {
  TempDir dir;
  const auto t = run_ok("train --engine " + GetParam() + " --steps 30 --num-samples 6 --threads 1" + kSmall, dir);
  const auto s = run_ok("sample --model model.safetensors", dir);
  EXPECT_EQ(testing::sample_names(s.out), testing::sample_names(t.out));
  EXPECT_EQ(testing::sample_names(s.out).size(), 6u);
  EXPECT_EQ(s.err, "");
  const auto seeded = run_ok("sample --model model.safetensors --seed 9", dir);
  EXPECT_NE(seeded.out, s.out);
  EXPECT_EQ(run_ok("sample --model model.safetensors --seed 9", dir).out, seeded.out);
  const auto greedy = run_ok("sample --model model.safetensors --temperature 0", dir);
  const std::vector<std::string> names = testing::sample_names(greedy.out);
  ASSERT_EQ(names.size(), 6u);
  EXPECT_EQ(std::count(names.begin(), names.end(), names[0]), 6);
  EXPECT_EQ(testing::sample_names(run_ok("sample --model model.safetensors --top-k 1 --seed 3", dir).out), names);
}

INSTANTIATE_TEST_SUITE_P(Engines, CliSample, ::testing::Values("reference", "fast"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// A model trained with the aids: sample and eval run the average, as train did.
TEST(CliTrainingAids, SampleAndEvalRunWhatTrainRan) {
  TempDir dir;
  const auto t = run_ok("train --dropout 0.2 --ema 0.9 --reshuffle --batch-size 2 --steps 30 --val-frac 0.1 "
                        "--num-samples 6 --threads 1" + kSmall,
                        dir);
  const auto s = run_ok("sample --model model.safetensors", dir);
  EXPECT_EQ(testing::sample_names(s.out), testing::sample_names(t.out));
  EXPECT_EQ(testing::sample_names(s.out).size(), 6u);
  const std::vector<std::string> lines = testing::result_lines(t.out);
  std::string val;
  for (const std::string& l : lines) {
    if (l.find("val loss ") != std::string::npos) val = l.substr(l.find("val loss ") + 9);
  }
  ASSERT_FALSE(val.empty()) << t.out;
  const auto e = run_ok("eval --model model.safetensors --threads 2", dir);
  EXPECT_EQ(testing::lines_of(e.out).at(1).rfind("loss per token " + val + " | perplexity ", 0), 0u) << e.out;
}

TEST(CliSampleErrors, OneLineAndExitCode) {
  TempDir dir;
  run_ok("train --steps 2 --num-samples 0 --threads 1" + kSmall, dir);
  auto in_dir = [&](const std::string& args) { return run_microgpt(args, dir.path()); };
  expect_one_line_error(in_dir("sample --model model.safetensors --prefix aQb"), 2, {"'Q'", "--prefix"},
                        "unknown character");
  expect_one_line_error(in_dir("sample --model model.safetensors --prefix abcdefgh"), 2, {"--prefix", "block size"},
                        "prefix fills the block");
  EXPECT_EQ(run_microgpt("sample --model model.safetensors --prefix abcdefg --num-samples 1", dir.path()).exit_code, 0);
  expect_one_line_error(in_dir("sample --model model.safetensors --temperature -1"), 2, {"--temperature"},
                        "temperature");
  expect_one_line_error(in_dir("sample --model model.safetensors --top-p 0"), 2, {"--top-p"}, "top-p 0");
  expect_one_line_error(in_dir("sample --model model.safetensors --top-p 1.5"), 2, {"--top-p"}, "top-p 1.5");
  expect_one_line_error(in_dir("sample --model model.safetensors --top-k -1"), 2, {"--top-k"}, "top-k");
  expect_one_line_error(in_dir("sample --model model.safetensors --max-len x"), 2, {"--max-len"}, "max-len");
  expect_one_line_error(in_dir("sample"), 2, {"--model"}, "no model");
  expect_one_line_error(in_dir("sample --model model.safetensors --log no/such/dir/s.jsonl"), 1,
                        {"no/such/dir/s.jsonl"}, "unwritable log");
}

TEST(CliEval, HeldOutDocumentsAndErrors) {
  TempDir dir;
  const auto t = run_ok("train --steps 20 --val-frac 0.1 --num-samples 0 --threads 1" + kSmall, dir);
  const std::vector<std::string> lines = testing::result_lines(t.out);
  ASSERT_FALSE(lines.empty());
  const std::string last = lines.back();  // "step   20 /   20 | val loss 3.1311"
  ASSERT_NE(last.find("val loss "), std::string::npos) << last;
  const std::string val = last.substr(last.find("val loss ") + 9);
  const auto e = run_ok("eval --model model.safetensors --threads 1", dir);
  EXPECT_EQ(testing::lines_of(e.out).at(0), "evaluating the 842 held-out documents of '<embedded names>'");
  EXPECT_EQ(testing::lines_of(e.out).at(1).rfind("loss per token " + val + " | perplexity ", 0), 0u) << e.out;
  // perplexity = exp(loss), to the printed digits
  double loss = 0, perplexity = 0;
  ASSERT_EQ(
      std::sscanf(testing::lines_of(e.out).at(1).c_str(), "loss per token %lf | perplexity %lf", &loss, &perplexity),
      2);
  EXPECT_NEAR(perplexity, std::exp(loss), std::exp(loss) * 6e-5 + 6e-4);

  testing::write_file(dir.file("odd.txt"), "anna\nZoe\n");
  expect_one_line_error(run_microgpt("eval --model model.safetensors --data odd.txt", dir.path()), 1,
                        {"odd.txt", "'Z'"}, "unknown character");
  run_ok("train --steps 2 --num-samples 0 --out plain.safetensors --threads 1" + kSmall, dir);
  expect_one_line_error(run_microgpt("eval --model plain.safetensors", dir.path()), 2,
                        {"plain.safetensors", "--val-frac"}, "no held-out documents");
  testing::write_file(dir.file("good.txt"), "anna\nbob\n");
  const auto g = run_ok("eval --model plain.safetensors --data good.txt", dir);
  EXPECT_NE(g.out.find("| 2 documents, 9 tokens\n"), std::string::npos) << g.out;  // 5 + 4 predictions
}

TEST(CliEmbed, ReportsAndFiles) {
  TempDir dir;
  run_ok("train --steps 20 --num-samples 0 --threads 1" + kSmall, dir);
  const auto summary = run_ok("embed --model model.safetensors", dir);
  EXPECT_EQ(testing::lines_of(summary.out).at(0),
            "model 'model.safetensors': 28 tokens, embeddings 8 wide, trained 20 of 20 steps");
  EXPECT_EQ(testing::lines_of(summary.out).at(1).rfind("cosine similarity: within vowels ", 0), 0u) << summary.out;
  EXPECT_EQ(count_lines(summary.out), 3 + 28);  // a line per token

  const auto nb = run_ok("embed --model model.safetensors --neighbors a,e --top 3", dir);
  const std::vector<std::string> lines = testing::lines_of(nb.out);
  ASSERT_EQ(lines.size(), 5u) << nb.out;
  EXPECT_EQ(lines[2], "nearest tokens by cosine similarity:");
  for (int i = 0; i < 2; i++) {
    const std::string& l = lines[static_cast<size_t>(3 + i)];
    EXPECT_EQ(l.rfind(i == 0 ? "a: " : "e: ", 0), 0u) << l;
    EXPECT_EQ(std::count(l.begin(), l.end(), ','), 2) << l;  // three neighbours
  }

  const auto files = run_ok("embed --model model.safetensors --plot p.svg --heatmap h.svg --export proj", dir);
  for (const char* svg : {"p.svg", "h.svg"}) {
    const std::string bytes = testing::read_file(dir.file(svg));
    const testing::XmlCheck xml = testing::check_xml(bytes);
    EXPECT_EQ(xml.error, "") << svg;
    EXPECT_EQ(xml.elements.count("svg"), 1u) << svg;
    EXPECT_NE(bytes.find("&lt;BOS&gt;"), std::string::npos) << svg;
    for (const char* label : {"<BOS>", "-", "a", "e", "q", "z"}) {
      EXPECT_NE(std::find(xml.texts.begin(), xml.texts.end(), label), xml.texts.end()) << svg << " " << label;
    }
    for (char c = 'a'; c <= 'z'; c++) {
      EXPECT_NE(std::find(xml.texts.begin(), xml.texts.end(), std::string(1, c)), xml.texts.end()) << svg << " " << c;
    }
    EXPECT_NE(files.out.find(std::string("wrote ") + svg), std::string::npos) << files.out;
  }
  const std::vector<std::string> labels = testing::lines_of(testing::read_file(dir.file("proj_labels.tsv")));
  const std::vector<std::string> vectors = testing::lines_of(testing::read_file(dir.file("proj_vectors.tsv")));
  ASSERT_EQ(labels.size(), 28u);
  ASSERT_EQ(vectors.size(), 28u);
  EXPECT_EQ(labels.front(), "-");
  EXPECT_EQ(labels.back(), "<BOS>");
  for (const std::string& v : vectors) EXPECT_EQ(std::count(v.begin(), v.end(), '\t'), 7) << v;

  const auto show = run_ok("embed --model model.safetensors --show ann", dir);
  for (const char* want : {"pos 0  <BOS>  (token 27)", "pos 1  a  (token 1)", "pos 2  n  (token 14)",
                           "pos 3  n  (token 14)", "top 5 predictions", "pos 0 after <BOS>: ", "pos 1 after <BOS>a: ",
                           "pos 2 after <BOS>an: ", "pos 3 after <BOS>ann: "}) {
    EXPECT_NE(show.out.find(want), std::string::npos) << want << "\n" << show.out;
  }
  EXPECT_EQ(show.out.find("pos 4"), std::string::npos);
  for (const std::string& l : testing::lines_of(show.out)) {
    if (l.find(" after <BOS>") != std::string::npos) {
      EXPECT_EQ(std::count(l.begin(), l.end(), ','), 4) << l;
    }
  }

  // Outputs that cannot be written are errors naming the path; nothing is written.
  std::filesystem::create_directory(dir.file("adir"));
  for (const std::string& args : {std::string("--plot no/such/p.svg"), std::string("--heatmap no/such/h.svg"),
                                  std::string("--export no/such/proj"), std::string("--plot adir")}) {
    const std::string path = args.substr(args.find(' ') + 1);
    expect_one_line_error(run_microgpt("embed --model model.safetensors " + args, dir.path()), 1, {path}, args);
  }
  const auto q = run_microgpt("embed --model model.safetensors --neighbors a,Q", dir.path());
  EXPECT_EQ(q.exit_code, 2) << q.err;
  EXPECT_EQ(count_lines(q.err), 1) << q.err;
  EXPECT_NE(q.err.find("'Q'"), std::string::npos) << q.err;
}

// A usage error in --neighbors or --show (a character outside the vocabulary, a --show
// text longer than the context) is refused before any output, like every other one.
TEST(CliEmbed, UsageErrorsComeBeforeAnyOutput) {
  TempDir dir;
  run_ok("train --steps 2 --num-samples 0 --threads 1" + kSmall, dir);
  for (const char* args : {"--neighbors a,Q", "--show aQ", "--show abcdefghij"}) {
    expect_one_line_error(run_microgpt("embed --model model.safetensors " + std::string(args), dir.path()), 2, {},
                          args);
  }
}

TEST(CliProgress, PlotLossAndPlainLinesWhenNotATerminal) {
  TempDir dir;
  const auto r = run_ok(
      "train --steps 30 --val-frac 0.1 --eval-every 10 --num-samples 2 --threads 1 --plot-loss loss.svg" + kSmall, dir);
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_EQ(r.err, "");
  size_t at = 0;
  for (int s = 1; s <= 30; s++) {
    char want[64];
    std::snprintf(want, sizeof want, "\nstep %4d /   30 | loss ", s);
    const size_t p = r.out.find(want);
    ASSERT_NE(p, std::string::npos) << want;
    EXPECT_GT(p, at) << "in order: " << want;
    EXPECT_EQ(testing::count_substr(r.out, want), 1u) << want;
    at = p;
  }
  const std::string svg = testing::read_file(dir.file("loss.svg"));
  const testing::XmlCheck xml = testing::check_xml(svg);
  EXPECT_EQ(xml.error, "");
  EXPECT_EQ(xml.elements.count("svg"), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  expect_one_line_error(run_microgpt("train --steps 2 --plot-loss no/such/loss.svg", dir.path()), 1,
                        {"no/such/loss.svg"}, "unwritable plot");
}

// On a terminal (a pseudo-terminal from util-linux's `script`): a live status line
// instead of a line per step, then the last step's line, as microgpt.py's end='\r' shows.
TEST(CliProgress, TerminalShowsALiveLineAndTheLastStep) {
#if !defined(__linux__)
  GTEST_SKIP() << "skipped: the terminal comes from util-linux's script(1)";
#endif
  if (!std::filesystem::exists("/usr/bin/script")) GTEST_SKIP() << "no /usr/bin/script to provide a terminal";
  TempDir dir;
  const std::string cmd = "cd '" + dir.path() + "' && /usr/bin/script -qec \"'" + std::string(MICROGPT_BINARY) +
                          "' train --steps 30 --num-samples 1 --threads 1 --out ''" + kSmall + "\" /dev/null >'" +
                          dir.file("tty") + "' 2>&1 </dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string tty = testing::read_file(dir.file("tty"));
  EXPECT_NE(tty.find("\r\x1b[Kstep 30 / 30 | loss "), std::string::npos) << tty;
  EXPECT_EQ(testing::count_substr(tty, "step   30 /   30 | loss "), 1u) << tty;
  EXPECT_EQ(tty.find("step    1 /   30 | loss "), std::string::npos) << tty;
  EXPECT_NE(tty.find("sample  1: "), std::string::npos) << tty;
}

// ---- Damaged checkpoints ------------------------------------------------------------------

struct Damage {
  std::string name;
  std::string why;       // what the message must say besides the file's name
  std::string bytes;     // the file's content
  bool missing = false;  // no file at all
};

std::string with_header(const testing::Safetensors& s, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json h = s.header;
  edit(h);
  return testing::build_safetensors(h, s.data);
}

std::string with_length(const std::string& bytes, uint64_t n) {
  std::string out = bytes;
  for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out;
}

std::vector<Damage> damaged_files(const std::string& good) {
  const testing::Safetensors s = testing::parse_safetensors(good);
  const size_t n = s.header_len;
  std::vector<Damage> d;
  d.push_back({"empty", "too short", ""});
  d.push_back({"cut-in-length", "too short", good.substr(0, 5)});
  d.push_back({"cut-in-header", "header length", good.substr(0, 8 + n / 2)});
  d.push_back({"cut-after-header", "outside", good.substr(0, 8 + n)});
  d.push_back({"cut-in-data", "outside", good.substr(0, 8 + n + s.data.size() / 2)});
  d.push_back({"one-byte-short", "outside", good.substr(0, good.size() - 1)});
  d.push_back({"one-byte-long", "no tensor accounts for", good + "x"});
  std::string random;
  uint32_t x = 12345;
  for (int i = 0; i < 5000; i++) {
    x = x * 1103515245u + 12345u;
    random.push_back(static_cast<char>(x >> 24));
  }
  d.push_back({"random-bytes", "header length", random});
  d.push_back({"text-file", "header length", "anna\nbob\ncarla\nthis is a names list, not a checkpoint\n"});
  d.push_back({"length-beyond-file", "header length", with_length(good, good.size())});
  d.push_back({"length-zero", "header length", with_length(good, 0)});
  std::string bad_json = good;
  bad_json[8 + s.header_text.find_last_of('}')] = ',';
  d.push_back({"bad-json", "JSON", bad_json});
  d.push_back({"header-not-object", "__metadata__", testing::build_safetensors(nlohmann::json::array({1, 2}), s.data)});
  d.push_back({"no-metadata", "__metadata__", with_header(s, [](nlohmann::json& h) { h.erase("__metadata__"); })});
  d.push_back(
      {"format-gguf", "'gguf'", with_header(s, [](nlohmann::json& h) { h["__metadata__"]["format"] = "gguf"; })});
  d.push_back({"format-version-2", "version 2",
               with_header(s, [](nlohmann::json& h) { h["__metadata__"]["format_version"] = "2"; })});
  d.push_back({"config-not-json", "metadata",
               with_header(s, [](nlohmann::json& h) { h["__metadata__"]["config"] = "{n_layer"; })});
  d.push_back({"config-missing-key", "n_embd", with_header(s, [](nlohmann::json& h) {
                 nlohmann::json c = nlohmann::json::parse(h["__metadata__"]["config"].get<std::string>());
                 c.erase("n_embd");
                 h["__metadata__"]["config"] = c.dump();
               })});
  d.push_back({"vocab-too-short", "vocabulary", with_header(s, [](nlohmann::json& h) {
                 nlohmann::json v = nlohmann::json::parse(h["__metadata__"]["vocab"].get<std::string>());
                 v.erase(v.size() - 1);
                 h["__metadata__"]["vocab"] = v.dump();
               })});
  d.push_back({"metadata-number", "'step'", with_header(s, [](nlohmann::json& h) { h["__metadata__"]["step"] = 3; })});
  d.push_back({"wrong-shape", "layer0.attn_wq' has shape", with_header(s, [](nlohmann::json& h) {
                 h["layer0.attn_wq"]["shape"] = {4, 16};
               })});
  d.push_back(
      {"missing-tensor", "'lm_head' is missing", with_header(s, [](nlohmann::json& h) { h.erase("lm_head"); })});
  d.push_back({"missing-moments", "'optimizer.adam_v' is missing",
               with_header(s, [](nlohmann::json& h) { h.erase("optimizer.adam_v"); })});
  d.push_back(
      {"wrong-dtype", "'wpe' has dtype F16", with_header(s, [](nlohmann::json& h) { h["wpe"]["dtype"] = "F16"; })});
  d.push_back({"wrong-dtype-rng", "'rng.mt' has dtype I32",
               with_header(s, [](nlohmann::json& h) { h["rng.mt"]["dtype"] = "I32"; })});
  d.push_back({"offsets-beyond-data", "'wte' lies outside", with_header(s, [&](nlohmann::json& h) {
                 h["wte"]["data_offsets"][1] = h["wte"]["data_offsets"][1].get<int64_t>() + 4;
               })});
  std::string flipped = good;
  flipped[8 + n + s.data.size() / 3] ^= 0x10;
  d.push_back({"flipped-data-byte", "checksum", flipped});
  std::string flipped_rng = good;
  flipped_rng[good.size() - 100] ^= 0x01;  // inside rng.mt, the last tensor
  d.push_back({"flipped-rng-byte", "checksum", flipped_rng});
  d.push_back({"missing-file", "No such file", "", true});
  return d;
}

TEST(CliDamagedCheckpoint, EveryCommandRefusesWithOneLineNamingTheFile) {
  TempDir dir;
  run_ok("train --steps 10 --stop-after 5 --out good.safetensors --threads 1" + kSmall, dir);
  const std::string good = testing::read_file(dir.file("good.safetensors"));
  // The good file works with every command.
  EXPECT_EQ(run_microgpt("sample --model good.safetensors --num-samples 1", dir.path()).exit_code, 0);
  EXPECT_EQ(run_microgpt("eval --model good.safetensors --data good.txt", dir.path()).exit_code, 1);  // no such data
  for (const Damage& d : damaged_files(good)) {
    const std::string path = dir.file("damaged-" + d.name + ".safetensors");
    if (!d.missing) testing::write_file(path, d.bytes);
    for (const std::string& command : {"sample --model " + path, "eval --model " + path, "train --resume " + path}) {
      const auto r = run_microgpt(command, dir.path());
      expect_one_line_error(r, 1, {path, d.why}, d.name + ": " + command);
    }
  }
}

// A file in which one tensor's offsets point at another's bytes (and a tensor-sized hole
// is left elsewhere) would load with the wrong weights: the checksum cannot see it, since
// the data bytes are unchanged, so the loader requires the tensors to tile the data.
TEST(CliDamagedCheckpoint, OverlappingTensorsAreRefused) {
  TempDir dir;
  run_ok("train --steps 10 --stop-after 5 --out good.safetensors --threads 1" + kSmall, dir);
  const testing::Safetensors s = testing::parse_safetensors(testing::read_file(dir.file("good.safetensors")));
  // attn_wk (8 x 8) made to read attn_wq's bytes, leaving its own unread
  testing::write_file(dir.file("overlap.safetensors"), with_header(s, [](nlohmann::json& h) {
                        h["layer0.attn_wk"]["data_offsets"] = h["layer0.attn_wq"]["data_offsets"];
                      }));
  for (const std::string command : {"sample --model overlap.safetensors", "train --resume overlap.safetensors"}) {
    expect_one_line_error(run_microgpt(command, dir.path()), 1, {"overlap.safetensors"}, command);
  }
}

// MICROGPT_KERNELS names the kernels to use; a name that is none of them says which
// names exist (one line, exit 1), and a real one trains.
TEST(Cli, KernelsVariableSaysWhichNamesExist) {
  ::setenv("MICROGPT_KERNELS", "bogus", 1);
  const auto r = testing::run_microgpt("--steps 1 --num-samples 0 --out ''");
  ::setenv("MICROGPT_KERNELS", "generic", 1);
  const auto ok = testing::run_microgpt("--steps 1 --num-samples 0 --out ''");
  ::unsetenv("MICROGPT_KERNELS");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("MICROGPT_KERNELS=bogus: unknown kernels (accepted: avx512, avx2, generic)"), std::string::npos)
      << r.err;
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

}  // namespace
}  // namespace microgpt
