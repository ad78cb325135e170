// The command line as a user meets it: the built binary, its exit codes and messages.
// Usage errors exit 2, runtime errors 1; every error is one line on stderr.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

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
                           "--threads", "--val-frac", "--eval-every"}) {
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

}  // namespace
}  // namespace microgpt
