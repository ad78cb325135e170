// One table of limits (model/limits.h) for the three places that check a configuration:
// the command line, a training run's options and the checkpoint loader. For each bound
// of each training value, the value just outside is refused by all three with the same
// words, and the value on the bound is taken by all three.
#include <gtest/gtest.h>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_test_support.h"
#include "cli/command_line.h"
#include "model/limits.h"
#include "train/run.h"

namespace microgpt {
namespace {

using nlohmann::json;
using testing::TempDir;

struct Case {
  std::string key;    // in a checkpoint's config
  std::string flag;
  std::string outside, inside;  // as typed
  std::string expected;         // the table's description
  std::function<void(TrainOptions&, double)> set;
};

std::vector<Case> cases() {
  auto model = [](int64_t ModelConfig::*f) {
    return [f](TrainOptions& o, double v) { o.model.*f = static_cast<int64_t>(v); };
  };
  auto whole = [](int64_t TrainConfig::*f) {
    return [f](TrainOptions& o, double v) { o.train.*f = static_cast<int64_t>(v); };
  };
  auto real = [](double TrainConfig::*f) { return [f](TrainOptions& o, double v) { o.train.*f = v; }; };
  const auto w = [](const WholeRange& r) { return r.expected(); };
  const auto d = [](const RealRange& r) { return std::string(r.expected); };
  return {
      {"n_layer", "--n-layer", "0", "1", w(limits::n_layer), model(&ModelConfig::n_layer)},
      {"n_embd", "--n-embd", "16777217", "16", w(limits::n_embd), model(&ModelConfig::n_embd)},
      {"block_size", "--block-size", "0", "1", w(limits::block_size), model(&ModelConfig::block_size)},
      {"batch_size", "--batch-size", "0", "1", w(limits::batch_size), whole(&TrainConfig::batch_size)},
      {"steps", "--steps", "1099511627777", "1099511627776", w(limits::steps), whole(&TrainConfig::steps)},
      {"num_samples", "--num-samples", "-1", "0", w(limits::num_samples), whole(&TrainConfig::num_samples)},
      {"eval_every", "--eval-every", "-1", "0", w(limits::eval_every), whole(&TrainConfig::eval_every)},
      {"lr", "--lr", "0", "1e-300", d(limits::lr), real(&TrainConfig::lr)},
      {"temperature", "--temperature", "0", "0.001", d(limits::temperature), real(&TrainConfig::temperature)},
      {"val_frac", "--val-frac", "0.995", "0.99", d(limits::val_frac), real(&TrainConfig::val_frac)},
      {"dropout", "--dropout", "0.96", "0.95", d(limits::dropout), real(&TrainConfig::dropout)},
      {"ema", "--ema", "0.999995", "0.99999", d(limits::ema), real(&TrainConfig::ema)},
      {"weight_decay", "--weight-decay", "10.5", "10", d(limits::weight_decay), real(&TrainConfig::weight_decay)},
  };
}

TEST(Limits, TheCommandLineTakesItsBoundsFromTheTable) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.flag);
    std::ostringstream out, err;
    const CommandLine bad = parse_command_line({"train", c.flag, c.outside}, out, err);
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_NE(err.str().find(c.flag + ": expected " + c.expected + ", got '" + c.outside + "'"), std::string::npos)
        << err.str();
    std::ostringstream out2, err2;
    const CommandLine good = parse_command_line({"train", c.flag, c.inside}, out2, err2);
    EXPECT_EQ(good.command, CommandLine::Command::train) << err2.str();
  }
}

TEST(Limits, ATrainingRunChecksItsOptionsWithTheTable) {
  TempDir dir;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.flag);
    TrainOptions o = testing::tiny_run("fast");
    o.model.n_head = 1;  // divides every width
    o.out_path = dir.file("m.safetensors");
    c.set(o, std::stod(c.outside));
    const Error e = testing::error_of([&] { TrainingRun run(o); });
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find(c.flag + ": expected " + c.expected + ", got "), std::string::npos) << e.what();
    c.set(o, std::stod(c.inside));
    EXPECT_NO_THROW(TrainingRun run(o));
  }
}

TEST(Limits, TheCheckpointLoaderChecksWhatAFileSaysWithTheTable) {
  TempDir dir;
  TrainOptions o = testing::tiny_run("fast");
  o.train.steps = 2;
  o.out_path = dir.file("good.safetensors");
  std::ostringstream out;
  run_training(o, out);
  const testing::Safetensors s = testing::parse_safetensors(testing::read_file(*o.out_path));
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.key);
    auto with = [&](const std::string& typed) {
      json h = s.header;
      json config = json::parse(h["__metadata__"]["config"].get<std::string>());
      config[c.key] = json::parse(typed);
      h["__metadata__"]["config"] = config.dump();
      const std::string path = dir.file("edited.safetensors");
      testing::write_file(path, testing::build_safetensors(h, s.data));
      return path;
    };
    const Error e = testing::error_of([&] { load_checkpoint(with(c.outside)); });
    EXPECT_EQ(e.exit_code(), 1);
    EXPECT_NE(std::string(e.what()).find("'" + c.key + "' is "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected " + c.expected), std::string::npos) << e.what();
    // The bound itself passes the table. (Other shapes than the file's fail later, on the
    // tensors; an average needs its tensor; the metadata's "steps" must agree.)
    if (c.key == "dropout" || c.key == "val_frac" || c.key == "lr" || c.key == "temperature" ||
        c.key == "num_samples" || c.key == "eval_every" || c.key == "batch_size") {
      const std::string path = with(c.inside);
      try {
        load_checkpoint(path);
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace microgpt
