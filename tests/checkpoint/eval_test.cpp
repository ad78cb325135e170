// `microgpt eval` (run_eval): the loss it reports for a document is the loss training
// reports for that document with the same parameters (exactly, for both engines), the
// perplexity is exp(loss), and without --data it evaluates the documents training held
// out, giving training's final validation loss. Its errors: no held-out documents, and
// characters the model does not know.
#include <gtest/gtest.h>

#include <cmath>

#include "checkpoint/checkpoint_test_support.h"
#include "core/error.h"
#include "reference/reference_model.h"
#include "train/commands.h"
#include "train/run.h"

namespace microgpt {
namespace {

using testing::TempDir;

using testing::train;

std::string eval(const std::string& model, const std::optional<std::string>& data) {
  EvalCommand c;
  c.model_path = model;
  c.data_path = data;
  c.threads = 1;
  std::ostringstream out;
  run_eval(c, out);
  return out.str();
}

Error eval_error(const std::string& model, const std::optional<std::string>& data) {
  return testing::error_of([&] { eval(model, data); });
}

TrainOptions small_run(const std::string& engine) { return testing::tiny_run(engine); }

// "loss per token 2.3456 | perplexity 10.443 | 1 documents, 5 tokens" as eval prints it.
std::string eval_line(double loss, int64_t docs, int64_t tokens) {
  char line[256];
  std::snprintf(line, sizeof line, "loss per token %.4f | perplexity %.3f | %lld documents, %lld tokens", loss,
                std::exp(loss), static_cast<long long>(docs), static_cast<long long>(tokens));
  return line;
}

TEST(ReferenceLoss, EqualsTheTrainingLossOfTheSameParameters) {
  ModelConfig m;
  m.vocab_size = 6;
  m.n_embd = 8;
  m.n_head = 2;
  m.block_size = 5;
  TrainConfig t;
  t.init_std = 0.3;
  ReferenceModel model(m, t);
  PyRandom rng(3);
  model.init_params(rng);
  const std::vector<std::vector<Token>> docs = {{5, 0, 1, 5}, {5, 2, 5}, {5, 1, 2, 3, 4, 0, 1, 2, 5}};
  for (int round = 0; round < 2; round++) {
    for (const auto& d : docs) {
      const double eval_loss = model.loss(d);
      EXPECT_EQ(model.forward_backward(d), eval_loss);
      model.adam_step(round, 4);  // other parameters for the next document
    }
  }
}

class EvalBothEngines : public ::testing::TestWithParam<std::string> {};

// A one-document file: run stopped after step 1, then step 2 trains on the same
// document with the parameters the checkpoint holds, so its logged loss (an exact
// double) is what eval must compute.
TEST_P(EvalBothEngines, OneDocumentEqualsItsTrainingLoss) {
  TempDir dir;
  testing::write_file(dir.file("one.txt"), "isabella\n");
  TrainOptions o = small_run(GetParam());
  o.data_path = dir.file("one.txt");
  o.train.steps = 2;
  o.stop_after = 1;
  o.out_path = dir.file("m.safetensors");
  train(o);
  TrainOptions r;
  r.data_path = o.data_path;
  r.resume_path = o.out_path;
  r.out_path = dir.file("end.safetensors");
  r.log_path = dir.file("log.jsonl");
  train(r);
  const auto rows = testing::read_jsonl(dir.file("log.jsonl"));
  ASSERT_GE(rows.size(), 1u);
  ASSERT_EQ(rows[0]["step"], 2);
  const double step2 = rows[0]["loss"].get<double>();

  LoadedModel m = load_model(dir.file("m.safetensors"), 1);
  const std::vector<Token> doc = m.tokenizer.encode_document(U"isabella");
  const std::vector<DocRef> docs = {DocRef(doc)};
  const LossSum loss = m.engine->evaluate(docs);
  EXPECT_EQ(loss.tokens, 8);  // block size 8 cuts the 9 predictions
  EXPECT_EQ(loss.mean(), step2);

  const std::string out = eval(dir.file("m.safetensors"), dir.file("one.txt"));
  EXPECT_EQ(out, "evaluating '" + dir.file("one.txt") + "'\n" + eval_line(step2, 1, 8) + "\n");
  // The model after step 2 is another model.
  EXPECT_NE(eval(dir.file("end.safetensors"), dir.file("one.txt")), out);
}

// Training's final "val loss" line is what eval prints for the held-out documents.
TEST_P(EvalBothEngines, WithoutDataEvaluatesTheHeldOutDocuments) {
  TempDir dir;
  testing::write_file(dir.file("names.txt"), testing::first_names(80));
  TrainOptions o = small_run(GetParam());
  o.data_path = dir.file("names.txt");
  o.train.steps = 30;
  o.train.val_frac = 0.1;
  o.out_path = dir.file("m.safetensors");
  o.log_path = dir.file("log.jsonl");
  const std::string trained = train(o);
  ASSERT_NE(trained.find("validation: 8 docs held out"), std::string::npos) << trained;
  const auto rows = testing::read_jsonl(dir.file("log.jsonl"));
  ASSERT_TRUE(rows.back().contains("val_loss"));
  const double val = rows.back()["val_loss"].get<double>();

  const std::string out = eval(dir.file("m.safetensors"), std::nullopt);
  EXPECT_EQ(testing::lines_of(out).at(0), "evaluating the 8 held-out documents of '" + dir.file("names.txt") + "'");
  char want[64];
  std::snprintf(want, sizeof want, "loss per token %.4f | perplexity %.3f | 8 documents, ", val, std::exp(val));
  EXPECT_EQ(testing::lines_of(out).at(1).rfind(want, 0), 0u) << out << "want " << want;
  // ... which is not the loss over the whole file.
  EXPECT_EQ(eval(dir.file("m.safetensors"), dir.file("names.txt")).find(want), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Engines, EvalBothEngines, ::testing::Values("reference", "fast"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(EvalErrors, NoHeldOutDocuments) {
  TempDir dir;
  TrainOptions o = small_run("fast");
  o.train.steps = 2;
  o.out_path = dir.file("m.safetensors");
  train(o);
  const Error e = eval_error(dir.file("m.safetensors"), std::nullopt);
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--val-frac"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find(dir.file("m.safetensors")), std::string::npos) << e.what();
}

TEST(EvalErrors, CharactersOutsideTheVocabulary) {
  TempDir dir;
  TrainOptions o = small_run("fast");
  o.train.steps = 2;
  o.out_path = dir.file("m.safetensors");
  train(o);
  testing::write_file(dir.file("odd.txt"), "anna\nzoë\nJo\nëmma\n");
  const Error e = eval_error(dir.file("m.safetensors"), dir.file("odd.txt"));
  EXPECT_EQ(e.exit_code(), 1);
  const std::string what = e.what();
  EXPECT_NE(what.find(dir.file("odd.txt")), std::string::npos) << what;
  EXPECT_NE(what.find("'ë'"), std::string::npos) << what;
  EXPECT_NE(what.find("'J'"), std::string::npos) << what;
  EXPECT_EQ(testing::count_substr(what, "'ë'"), 1u) << "each named once: " << what;
  EXPECT_EQ(eval_error(dir.file("m.safetensors"), dir.file("missing.txt")).exit_code(), 1);
}

}  // namespace
}  // namespace microgpt
