// What the program promises when things go wrong (README "When things go wrong"):
// awkward and huge inputs train or fail with one clear line, sizes that cannot fit are
// refused before any work, outputs that cannot be written are refused before training,
// numeric blow-ups stop the run and keep the last good checkpoint, and killing the
// process at any moment never leaves a missing, torn or unreadable checkpoint.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "test_support.h"

namespace microgpt {
namespace {

using testing::count_lines;
using testing::run_microgpt;
using testing::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Peak resident memory of finished child processes, in MB (ru_maxrss is the largest child).
double children_peak_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_CHILDREN, &ru);
  return testing::maxrss_bytes(ru.ru_maxrss) / (1024.0 * 1024.0);
}

// Training on awkward data works end to end (exit 0, the steps printed).
void expect_trains(const std::string& args) {
  const auto r = run_microgpt("train --steps 3 --num-samples 1 --out '' " + args);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  EXPECT_NE(r.out.find("step    3 /    3"), std::string::npos) << r.out;
}

TEST(RobustInput, MillionLines) {
  TempDir dir;
  std::string text;
  text.reserve(8'000'000);
  for (int i = 0; i < 1'000'000; i++) text += "name" + std::to_string(i % 977) + "\n";
  write_bytes(dir.file("million.txt"), text);
  const auto r = run_microgpt("train --steps 3 --num-samples 1 --out '' --data " + dir.file("million.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("num docs: 1000000"), std::string::npos) << r.out;
  // Proportional to the data: bytes, characters (4 bytes each), per-document offsets.
  const double file_mb = static_cast<double>(text.size()) / 1e6;
  EXPECT_LT(children_peak_mb(), 60 + 12 * file_mb) << "file " << file_mb << " MB";
}

TEST(RobustInput, TenMegabyteLine) {
  TempDir dir;
  std::string line(10'000'000, 'a');
  for (size_t i = 0; i < line.size(); i += 7) line[i] = static_cast<char>('b' + i % 20);
  write_bytes(dir.file("long.txt"), line + "\nbob\n");
  const auto r = run_microgpt("train --steps 5 --num-samples 1 --out '' --data " + dir.file("long.txt") +
                              " --engine reference");
  ASSERT_EQ(r.exit_code, 0) << r.err;  // the long document is cut to block_size predictions
  expect_trains("--data " + dir.file("long.txt"));
  EXPECT_LT(children_peak_mb(), 60 + 12 * 10);
}

TEST(RobustInput, NulBytesAreCharacters) {
  TempDir dir;
  write_bytes(dir.file("nul.txt"), std::string("a\0b\nc\0\0d\n", 9));
  const Dataset d = load_dataset(dir.file("nul.txt"));
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.doc(0), std::u32string(U"a") + char32_t{0} + U"b");
  expect_trains("--data " + dir.file("nul.txt"));
}

TEST(RobustInput, ByteOrderMarkIsKeptAsPythonKeepsIt) {
  TempDir dir;
  write_bytes(dir.file("bom.txt"), "\xEF\xBB\xBF" "anna\nbob\n");
  const Dataset d = load_dataset(dir.file("bom.txt"));
  EXPECT_EQ(d.doc(0), U"\uFEFFanna");  // open(..., encoding='utf-8') keeps it: not white space
  expect_trains("--data " + dir.file("bom.txt"));
}

TEST(RobustInput, MixedLineEndingsInALargeFile) {
  TempDir dir;
  std::string text;
  const char* ends[] = {"\n", "\r\n", "\r"};
  for (int i = 0; i < 30000; i++) text += "doc" + std::to_string(i) + ends[i % 3];
  write_bytes(dir.file("mixed.txt"), text);
  const Dataset d = load_dataset(dir.file("mixed.txt"));
  ASSERT_EQ(d.size(), 30000);
  EXPECT_EQ(d.doc(29999), U"doc29999");
  EXPECT_EQ(d.doc(12345), U"doc12345");
  expect_trains("--data " + dir.file("mixed.txt"));
}

TEST(RobustInput, InvalidUtf8DeepInALargeFile) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 500000; i++) text += "line\n";
  text += "caf\xE9\n";  // Latin-1 e-acute on line 500001
  for (int i = 0; i < 1000; i++) text += "more\n";
  write_bytes(dir.file("bad.txt"), text);
  const auto r = run_microgpt("train --steps 1 --out '' --data " + dir.file("bad.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("line 500001"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(dir.file("bad.txt")), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(RobustInput, VocabularyTooLargeToEmbed) {
  // 60,000 distinct characters: at n_embd 65536 the embedding tables alone need 31 GB.
  TempDir dir;
  std::u32string chars;
  for (char32_t c = 0x4E00; c < 0x4E00 + 20000; c++) chars.push_back(c);     // CJK
  for (char32_t c = 0x20000; c < 0x20000 + 40000; c++) chars.push_back(c);  // CJK extension B
  std::string text;
  for (size_t i = 0; i < chars.size(); i += 10) text += encode_utf8(chars.substr(i, 10)) + "\n";
  write_bytes(dir.file("wide.txt"), text);
  const auto r = run_microgpt("train --steps 1 --out '' --n-embd 65536 --n-head 1 --data " + dir.file("wide.txt"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("memory"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vocab 60001"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");  // refused before any work
  // The same vocabulary at a size that fits trains.
  expect_trains("--n-embd 8 --n-head 2 --data " + dir.file("wide.txt"));
}

TEST(RobustLimits, ImpossibleSizesAreRefusedWithTheMemoryNeeded) {
  for (const char* args : {"--n-embd 100000", "--n-embd 100000 --engine reference", "--n-layer 100000 --n-embd 512",
                           "--block-size 16000000 --batch-size 4000"}) {
    const auto r = run_microgpt(std::string("train --steps 1 --out '' ") + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("would need about"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("available"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << args;
  }
}

TEST(RobustOutputs, UnwritablePathsAreRefusedBeforeTraining) {
  TempDir dir;
  write_bytes(dir.file("file"), "x");
  const std::string missing = dir.file("no/such/folder");
  const std::string through_file = dir.file("file") + "/x";
  struct Case {
    std::string args, path;
  };
  const Case cases[] = {
      {"--out " + missing + "/m.safetensors", missing},
      {"--out " + through_file, through_file},
      {"--out " + dir.path(), dir.path()},  // a directory
      {"--log " + missing + "/log.jsonl", missing},
      {"--plot-loss " + missing + "/loss.svg", missing},
  };
  for (const Case& c : cases) {
    const auto r = run_microgpt("train --steps 50 " + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(c.path), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("step"), std::string::npos) << "training started: " << r.out;
  }
}

TEST(RobustNumerics, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  const std::string ck = dir.file("m.safetensors");
  // The reference engine: microgpt.py's own arithmetic overflows at step 2.
  auto r = run_microgpt("train --engine reference --lr 1e6 --checkpoint-every 1 --out " + ck);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("diverged at step 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at step 1, is kept"), std::string::npos) << r.err;
  const CheckpointData c = load_checkpoint(ck);
  EXPECT_EQ(c.step, 1);
  for (double p : c.params) ASSERT_TRUE(std::isfinite(p));
  // The fast engine: float overflow, and a loss that explodes while staying finite.
  for (const char* lr : {"1e30", "1e6"}) {
    r = run_microgpt(std::string("train --lr ") + lr + " --checkpoint-every 1 --out " + ck);
    EXPECT_EQ(r.exit_code, 1) << lr << "\n" << r.err;
    EXPECT_NE(r.err.find("diverged at step 2"), std::string::npos) << r.err;
    EXPECT_EQ(load_checkpoint(ck).step, 1);
  }
  // Without a checkpoint the message says so.
  r = run_microgpt("train --lr 1e30 --out " + dir.file("none.safetensors"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no checkpoint was written"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("none.safetensors")));
}

// Starts the binary with `args` (no shell) in `cwd`, output discarded; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const std::string& cwd) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(127);
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    std::vector<char*> argv;
    std::string bin = MICROGPT_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

TEST(RobustCrash, KilledAtRandomMomentsNeverLosesTheCheckpoint) {
  TempDir dir;
  const std::string ck = dir.file("m.safetensors");
  // A 10 MB checkpoint, rewritten every few tens of milliseconds: random kills land in
  // the middle of writes often.
  const std::vector<std::string> args = {"train", "--steps", "1000000", "--checkpoint-every", "5", "--batch-size", "2",
                                         "--n-embd", "128", "--n-layer", "4", "--threads", "1", "--out", ck,
                                         "--num-samples", "0"};
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(5, 400);
  int checked = 0;
  for (int round = 0; round < 25; round++) {
    const pid_t pid = spawn(args, dir.path());
    if (round == 0) {  // wait for the first checkpoint
      for (int i = 0; i < 1000 && !std::filesystem::exists(ck); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill_and_reap(pid);
    ASSERT_TRUE(std::filesystem::exists(ck)) << "round " << round;
    const CheckpointData c = load_checkpoint(ck);  // throws if torn or partial
    EXPECT_EQ(c.step % 5, 0) << "round " << round;
    checked++;
  }
  EXPECT_EQ(checked, 25);
}

TEST(RobustCrash, TwoRunsWritingTheSameFileNeverTearIt) {
  TempDir dir;
  const std::string ck = dir.file("shared.safetensors");
  auto args = [&](const char* seed) {
    return std::vector<std::string>{"train", "--steps", "1000000", "--checkpoint-every", "1", "--seed", seed,
                                    "--threads", "1", "--out", ck, "--num-samples", "0"};
  };
  const pid_t a = spawn(args("1"), dir.path());
  const pid_t b = spawn(args("2"), dir.path());
  for (int i = 0; i < 500 && !std::filesystem::exists(ck); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // While both rewrite it every step, every read finds one whole checkpoint or the other.
  int loads = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until) {
    const CheckpointData c = load_checkpoint(ck);
    EXPECT_TRUE(c.train.seed == 1 || c.train.seed == 2);
    loads++;
  }
  kill_and_reap(a);
  kill_and_reap(b);
  EXPECT_NO_THROW(load_checkpoint(ck));
  EXPECT_GT(loads, 10);
}

}  // namespace
}  // namespace microgpt
