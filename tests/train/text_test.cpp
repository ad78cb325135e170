// Training on a continuous text (--format text): the file read as one stream, windows
// at offsets that depend on (seed, step) alone, an exact held-out loss over windows that
// predict every held-out character but the first once, resume bit for bit, checkpoints
// that remember the format, samples that slide their window past the block size, and
// clear errors for texts too short to train on.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_test_support.h"
#include "cli/command_line.h"
#include "core/text.h"
#include "data/text.h"
#include "fast/fast_model.h"
#include "train/data_source.h"
#include "train/run.h"
#include "train/sampler.h"

namespace microgpt {
namespace {

using testing::TempDir;

// A text of `n` characters: words and line breaks from a small generator.
std::string some_text(int64_t n, uint64_t seed = 1) {
  const char* words[] = {"the", "king", "of", "rome", "and", "her", "sword", "is", "mine", "to", "keep", "ROMEO:", "JULIET:"};
  std::string out;
  uint64_t x = seed;
  while (static_cast<int64_t>(out.size()) < n) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    out += words[(x >> 33) % 13];
    out += (x >> 20) % 7 == 0 ? "\n" : " ";
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

TrainConfig text_config(int64_t batch, double val_frac) {
  TrainConfig t;
  t.format = "text";
  t.batch_size = batch;
  t.val_frac = val_frac;
  t.seed = 7;
  return t;
}

TEST(TextFile, ReadAsOneStreamWithUniversalNewlines) {
  const Text t = parse_text("ab\r\ncd\re\n\n  f ", "x.txt");
  EXPECT_EQ(t.chars, U"ab\ncd\ne\n\n  f ");
  EXPECT_EQ(testing::error_of([] { parse_text("", "empty.txt"); }).what(), std::string("data file 'empty.txt' is empty"));
  const Error bad = testing::error_of([] { parse_text("ok\nb\xFFz", "bad.txt"); });
  EXPECT_NE(std::string(bad.what()).find("line 2, byte 5"), std::string::npos) << bad.what();
}

TEST(TextSource, VocabularyIsTheCharactersWithoutBos) {
  const Text t = parse_text("hello\nworld\n", "x.txt");
  TextSource s(t, text_config(2, 0.0), 4);
  EXPECT_FALSE(s.tokenizer().has_bos());
  EXPECT_EQ(s.tokenizer().chars(), U"\ndehlorw");
  EXPECT_EQ(s.tokenizer().vocab_size(), 8);
}

// Offsets are a function of (seed, step): the same for the same pair, others for others,
// always leaving room for a whole window in the training share; a batch is the text at
// those offsets.
TEST(TextSource, WindowsAtOffsetsOfTheSeedAndStepAlone) {
  const std::string raw = some_text(5000);
  const Text t = parse_text(raw, "x.txt");
  const int64_t T = 16, B = 6;
  TextSource a(t, text_config(B, 0.1), T), b(t, text_config(B, 0.1), T);
  std::set<std::vector<int64_t>> seen;
  for (int64_t step : {0, 1, 2, 999, 5}) {
    const std::vector<int64_t> o = a.offsets(step);
    EXPECT_EQ(o, b.offsets(step));
    EXPECT_TRUE(seen.insert(o).second) << "step " << step << " repeats another step's offsets";
    ASSERT_EQ(o.size(), static_cast<size_t>(B));
    for (int64_t off : o) {
      EXPECT_GE(off, 0);
      EXPECT_LE(off + T + 1, a.train_size()) << "a window reaches into the held-out share";
    }
    const Batch& batch = a.batch(step);
    ASSERT_EQ(batch.docs.size(), static_cast<size_t>(B));
    EXPECT_EQ(batch.tokens, B * T);
    for (int64_t i = 0; i < B; i++) {
      std::u32string got;
      for (Token id : batch.docs[static_cast<size_t>(i)]) got.push_back(a.tokenizer().chars()[static_cast<size_t>(id)]);
      EXPECT_EQ(got, t.chars.substr(static_cast<size_t>(o[static_cast<size_t>(i)]), static_cast<size_t>(T + 1)));
    }
  }
  TrainConfig other = text_config(B, 0.1);
  other.seed = 8;
  EXPECT_NE(TextSource(t, other, T).offsets(0), a.offsets(0));
}

// The held-out loss is exact: the held-out characters in windows block_size apart, each
// character but the first predicted once, in order.
TEST(TextSource, HeldOutWindowsPredictEveryCharacterButTheFirstOnce) {
  const Text t = parse_text(some_text(1000), "x.txt");
  for (int64_t T : {1, 7, 16, 99}) {
    TextSource s(t, text_config(1, 0.13), T);
    const Batch& v = s.validation();
    const int64_t n_val = s.validation_size();
    EXPECT_EQ(n_val, 130);
    EXPECT_EQ(v.tokens, n_val - 1);
    std::u32string predicted;
    int64_t rows = 0;
    for (const DocRef& d : v.docs) {
      ASSERT_GE(d.size(), 2u);
      ASSERT_LE(d.size(), static_cast<size_t>(T + 1));
      for (size_t k = 1; k < d.size(); k++) predicted.push_back(s.tokenizer().chars()[static_cast<size_t>(d[k])]);
      rows += static_cast<int64_t>(d.size()) - 1;
    }
    EXPECT_EQ(rows, v.tokens);
    EXPECT_EQ(predicted, t.chars.substr(static_cast<size_t>(1000 - n_val + 1))) << "T = " << T;
  }
}

// Token storage follows the vocabulary: a text of more than 65,536 distinct characters
// still trains (and keeps every id).
TEST(TextSource, VocabulariesBeyondSixteenBitsWork) {
  std::u32string chars;
  for (char32_t c = 0x4E00; c < 0x4E00 + 20000; c++) chars.push_back(c);       // CJK
  for (char32_t c = 0x20000; c < 0x20000 + 50000; c++) chars.push_back(c);     // CJK extension B and on
  const std::string raw = encode_utf8(chars + chars.substr(0, 100));
  TempDir dir;
  testing::write_file(dir.file("wide.txt"), raw);
  const Text t = load_text(dir.file("wide.txt"));
  TextSource s(t, text_config(2, 0.0), 8);
  ASSERT_EQ(s.tokenizer().vocab_size(), 70000);
  const Batch& b = s.batch(3);
  for (const DocRef& d : b.docs) {
    for (size_t k = 0; k + 1 < d.size(); k++) {
      const char32_t here = s.tokenizer().chars()[static_cast<size_t>(d[k])];
      const char32_t next = s.tokenizer().chars()[static_cast<size_t>(d[k + 1])];
      EXPECT_EQ(t.chars.find(std::u32string{here, next}) != std::u32string::npos, true);
    }
  }
  TrainOptions o = testing::tiny_run("fast");
  o.train.format = "text";
  o.model.n_embd = 2;
  o.model.n_head = 1;
  o.train.steps = 2;
  o.data_path = dir.file("wide.txt");
  std::ostringstream out;
  run_training(o, out);
  EXPECT_NE(out.str().find("vocab size: 70000"), std::string::npos) << out.str();
}

TEST(TextSource, TooShortTextsSayWhatTheyNeed) {
  const Text t = parse_text("abcdefghij", "short.txt");  // 10 characters
  const Error e = testing::error_of([&] { TextSource s(t, text_config(1, 0.0), 10); });
  EXPECT_NE(std::string(e.what()).find("'short.txt' has 10 characters to train on"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("needs at least 11"), std::string::npos) << e.what();
  EXPECT_NO_THROW(TextSource(t, text_config(1, 0.0), 9));
  const Error held = testing::error_of([&] { TextSource s(t, text_config(1, 0.05), 4); });
  EXPECT_NE(std::string(held.what()).find("--val-frac 0"), std::string::npos) << held.what();
}

// A text batch's loss is the mean over its windows' predictions: the same as the
// windows evaluated one at a time.
TEST(TextBatch, LossIsTheWindowsOneAtATime) {
  const Text t = parse_text(some_text(3000), "x.txt");
  TextSource s(t, text_config(5, 0.0), 12);
  ModelConfig m;
  m.vocab_size = s.tokenizer().vocab_size();
  m.n_embd = 16;
  m.n_head = 2;
  m.block_size = 12;
  for (int64_t threads : {1, 2}) {
    FastModel model(m, TrainConfig{}, threads, 5);
    PyRandom rng(3);
    model.init_params(rng);
    const Batch& b = s.batch(4);
    const LossSum whole = model.evaluate(b.docs);
    double sum = 0;
    int64_t tokens = 0;
    for (const DocRef& d : b.docs) {
      const LossSum one = model.evaluate(std::span<const DocRef>(&d, 1));
      sum += one.sum;
      tokens += one.tokens;
    }
    EXPECT_EQ(whole.tokens, 60);
    EXPECT_EQ(tokens, 60);
    EXPECT_NEAR(whole.sum, sum, 1e-4 * std::abs(sum)) << threads << " threads";
  }
}

TrainOptions text_run(const TempDir& dir, const std::string& engine) {
  TrainOptions o = testing::tiny_run(engine);
  testing::write_file(dir.file("book.txt"), some_text(4000, 5));
  o.data_path = dir.file("book.txt");
  o.train.format = "text";
  o.train.steps = 20;
  o.train.batch_size = engine == "reference" ? 1 : 4;
  o.train.val_frac = 0.1;
  o.train.eval_every = 5;
  o.train.num_samples = 1;
  o.out_path = dir.file("book.safetensors");
  return o;
}

// --resume continues a text run bit for bit: the same losses, the same samples and the
// same final checkpoint as one unbroken run.
TEST(TextRun, ResumeIsExact) {
  for (const std::string engine : {"fast", "reference"}) {
    SCOPED_TRACE(engine);
    TempDir dir;
    TrainOptions whole = text_run(dir, engine);
    whole.log_path = dir.file("whole.jsonl");
    whole.out_path = dir.file("whole.safetensors");
    std::ostringstream out;
    run_training(whole, out);
    TrainOptions first = text_run(dir, engine);
    first.log_path = dir.file("split.jsonl");
    first.stop_after = 8;
    run_training(first, out);
    TrainOptions second;
    second.resume_path = first.out_path;
    second.data_path = first.data_path;
    second.out_path = first.out_path;
    second.log_path = first.log_path;
    run_training(second, out);
    EXPECT_EQ(testing::read_file(dir.file("whole.jsonl")), testing::read_file(dir.file("split.jsonl")));
    EXPECT_TRUE(testing::read_file(dir.file("whole.safetensors")) == testing::read_file(dir.file("book.safetensors")));
  }
}

// The checkpoint remembers the format: a vocabulary without BOS (a line break in it),
// and sample/eval read it as a text model.
TEST(TextRun, CheckpointsRememberTheFormat) {
  TempDir dir;
  TrainOptions o = text_run(dir, "fast");
  o.log_path = dir.file("log.jsonl");
  std::ostringstream out;
  run_training(o, out);
  const CheckpointData c = load_checkpoint(*o.out_path);
  EXPECT_TRUE(c.train.is_text());
  EXPECT_EQ(c.model.vocab_size, static_cast<int64_t>(c.vocab.size()));
  EXPECT_NE(c.vocab.find(U'\n'), std::u32string::npos);
  // eval without --data repeats the final validation loss
  std::ostringstream eval_out;
  EvalCommand e;
  e.model_path = *o.out_path;
  e.threads = 1;
  run_eval(e, eval_out);
  double final_val = 0;
  for (const auto& row : testing::read_jsonl(dir.file("log.jsonl"))) {
    if (row.contains("val_loss")) final_val = row["val_loss"].get<double>();
  }
  char want[32];
  std::snprintf(want, sizeof want, "loss per token %.4f", final_val);
  EXPECT_NE(eval_out.str().find(want), std::string::npos) << eval_out.str();
  EXPECT_NE(eval_out.str().find("held-out characters"), std::string::npos) << eval_out.str();
  // sample without --seed writes the text train printed
  SampleCommand sc;
  sc.model_path = *o.out_path;
  sc.threads = 1;
  std::ostringstream sample_out;
  run_sample(sc, sample_out);
  std::string trained_sample;
  for (const auto& row : testing::read_jsonl(dir.file("log.jsonl"))) {
    if (row.contains("text")) trained_sample = row["text"].get<std::string>();
  }
  ASSERT_EQ(decode_utf8(trained_sample)->size(), static_cast<size_t>(kTextSampleLength));
  EXPECT_EQ(sample_out.str(), trained_sample + "\n");
  // a names model with a line break in its vocabulary is refused
  testing::Safetensors s = testing::parse_safetensors(testing::read_file(*o.out_path));
  nlohmann::json cfg = nlohmann::json::parse(s.header["__metadata__"]["config"].get<std::string>());
  cfg["format"] = "lines";
  cfg["vocab_size"] = c.model.vocab_size + 1;
  s.header["__metadata__"]["config"] = cfg.dump();
  testing::write_file(dir.file("lines.safetensors"), testing::build_safetensors(s.header, s.data));
  const Error refused = testing::error_of([&] { load_checkpoint(dir.file("lines.safetensors")); });
  EXPECT_NE(std::string(refused.what()).find("line break"), std::string::npos) << refused.what();
}

// Past the block size the window slides: each character is drawn from the model run over
// the last block_size characters, which next_window computes whole.
TEST(TextSample, TheWindowSlidesPastTheBlockSize) {
  ModelConfig m;
  m.vocab_size = 9;
  m.n_embd = 8;
  m.n_head = 2;
  m.block_size = 6;
  FastModel model(m, TrainConfig{}, 1, 1);
  PyRandom init(11);
  model.init_params(init);
  const std::vector<Token> context = {3, 1, 4};
  PyRandom rng(5), replay(5);
  const std::vector<Token> got = sample_text(model, rng, at_temperature(0.8), context, m.block_size, 20);
  ASSERT_EQ(got.size(), 20u);
  std::vector<Token> all = context;
  for (size_t k = 0; k < got.size(); k++) {
    const std::vector<Token> window(all.end() - std::min<ptrdiff_t>(static_cast<ptrdiff_t>(all.size()), m.block_size), all.end());
    std::vector<Token> doc = window;
    doc.push_back(0);  // logits() predicts every position but the last
    const std::vector<float> l = model.logits(DocRef(doc)).back();
    double mx = l[0], sum = 0;
    for (float x : l) mx = std::max<double>(mx, x);
    std::vector<double> w;
    for (float x : l) sum += w.emplace_back(std::exp((x - mx) / 0.8));
    for (double& x : w) x /= sum;
    const auto want = static_cast<Token>(replay.choices(w));
    ASSERT_EQ(got[k], want) << "character " << k;
    all.push_back(want);
  }
}

TEST(TextCli, DefaultsAndRefusals) {
  std::ostringstream o1, e1;
  const CommandLine text = parse_command_line({"train", "--format", "text", "--data", "x.txt"}, o1, e1);
  ASSERT_EQ(text.command, CommandLine::Command::train) << e1.str();
  EXPECT_EQ(text.train.train.val_frac, 0.1);
  EXPECT_EQ(text.train.train.num_samples, 1);
  std::ostringstream o2, e2;
  const CommandLine explicit_ = parse_command_line({"train", "--format", "text", "--val-frac", "0", "--num-samples", "3"}, o2, e2);
  EXPECT_EQ(explicit_.train.train.val_frac, 0.0);
  EXPECT_EQ(explicit_.train.train.num_samples, 3);
  std::ostringstream o3, e3;
  EXPECT_EQ(parse_command_line({"train", "--format", "prose"}, o3, e3).exit_code, 2);
  EXPECT_NE(e3.str().find("--format"), std::string::npos);
  std::ostringstream o4, e4;
  EXPECT_EQ(parse_command_line({"train", "--resume", "m.safetensors", "--format", "text"}, o4, e4).exit_code, 2);
  // the embedded names are a list, not a text
  TrainOptions o;
  o.train.format = "text";
  const Error e = testing::error_of([&] {
    std::ostringstream out;
    run_training(o, out);
  });
  EXPECT_EQ(e.exit_code(), 2);
  EXPECT_NE(std::string(e.what()).find("--data"), std::string::npos) << e.what();
}

}  // namespace
}  // namespace microgpt
