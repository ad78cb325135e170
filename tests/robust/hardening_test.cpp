// What an adversarial user broke, one test per class of finding, each run through the
// program as a user runs it: crafted checkpoints (nested JSON, edited headers, weights
// that are not numbers, impossible vocabularies), outputs that are not regular files or
// are links, inputs that would block or never end, one file in two roles, the limits of
// the system (a file-size limit, a full disk), retry loops, messages that would split
// over lines, pictures without a size bound, and output checks made after the work.
// Every test here failed on the build before these fixes and passes now (the environment
// variable MICROGPT_TEST_BINARY runs them against another build: tests/test_support.h).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint_test_support.h"
#include "test_support.h"

namespace microgpt {
namespace {

using nlohmann::json;
using testing::count_lines;
using testing::RunResult;
using testing::run_microgpt;
using testing::TempDir;

// One line on stderr naming what it should, the exit code expected, no signal.
void expect_refused(const RunResult& r, int code, const std::vector<std::string>& fragments, const std::string& what) {
  EXPECT_EQ(r.exit_code, code) << what << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << what << "\n" << r.err;
  EXPECT_EQ(r.err.rfind("microgpt", 0), 0u) << what << "\n" << r.err;
  for (const std::string& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << what << ": " << f << "\n" << r.err;
}

// A small trained model in `dir` (model.safetensors), with the data it trained on.
void train_small(const TempDir& dir, const std::string& extra = "") {
  testing::write_file(dir.file("names.txt"), testing::first_names(300));
  const RunResult r = run_microgpt("train --data names.txt --steps 30 --n-embd 8 --n-head 2 --num-samples 0 " + extra,
                                   dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// The checkpoint `good` with its header changed by `edit` and its data by `edit_data`,
// checksums made right again (as a crafted file would have them) unless `keep_header_crc`.
std::string crafted(const std::string& good, const std::function<void(json&)>& edit,
                    const std::function<void(std::string&)>& edit_data = nullptr, bool keep_header_crc = false) {
  testing::Safetensors s = testing::parse_safetensors(good);
  json h = s.header;
  edit(h);
  if (edit_data) {
    edit_data(s.data);
    h["__metadata__"]["tensor_crc32"] = testing::hex8(testing::slow_crc32(s.data));
  }
  return testing::build_safetensors(h, s.data, keep_header_crc);
}

void set_config(json& h, const std::string& key, const std::string& raw_json) {
  std::string config = h["__metadata__"]["config"].get<std::string>();
  json c = json::parse(config);
  c.erase(key);
  config = c.dump();
  config.insert(config.size() - 1, ",\"" + key + "\":" + raw_json);
  h["__metadata__"]["config"] = config;
}

std::string nested(int depth) { return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']'); }

const std::vector<std::string> kModelCommands = {"sample --model m.safetensors", "eval --model m.safetensors",
                                                 "embed --model m.safetensors",
                                                 "train --resume m.safetensors --data names.txt"};

// 1. A deeply nested JSON value anywhere in the header crashed every command that reads
// a checkpoint (the JSON library recursed to show it in an error message).
TEST(HardeningCheckpoint, DeeplyNestedJsonIsRefusedNotACrash) {
  TempDir dir;
  train_small(dir);
  const std::string good = testing::read_file(dir.file("model.safetensors"));
  const std::string in_config = crafted(good, [](json& h) { set_config(h, "n_layer", nested(100000)); });
  const std::string in_header = [&] {
    testing::Safetensors s = testing::parse_safetensors(good);
    std::string text = s.header.dump();
    text.insert(text.size() - 1, ",\"x\":" + nested(100000));
    std::string out(8, '\0');
    const uint64_t n = text.size();
    for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return out + text + s.data;
  }();
  for (const auto& [name, bytes] : {std::pair{"config", in_config}, std::pair{"header", in_header}}) {
    testing::write_file(dir.file("m.safetensors"), bytes);
    for (const std::string& command : kModelCommands) {
      expect_refused(run_microgpt(command, dir.path()), 1, {"m.safetensors", "nested deeper"},
                     std::string(name) + ": " + command);
    }
  }
}

// 1. The tensor checksum did not cover the header: a plausible edit loaded silently.
TEST(HardeningCheckpoint, AnEditedHeaderIsCaughtByItsChecksum) {
  TempDir dir;
  train_small(dir);
  const std::string good = testing::read_file(dir.file("model.safetensors"));
  testing::write_file(dir.file("m.safetensors"),
                      crafted(good, [](json& h) { set_config(h, "temperature", "0.9"); }, nullptr, true));
  for (const std::string& command : kModelCommands) {
    expect_refused(run_microgpt(command, dir.path()), 1, {"m.safetensors", "header checksum"}, command);
  }
}

// 5. Weights that are not numbers loaded: eval printed "loss nan", sample empty names.
TEST(HardeningCheckpoint, NonFiniteWeightsAreRefusedNamingTheTensor) {
  TempDir dir;
  train_small(dir);
  const std::string good = testing::read_file(dir.file("model.safetensors"));
  const testing::Safetensors s = testing::parse_safetensors(good);
  struct Case {
    std::string tensor;
    float value;
  };
  for (const Case& c : {Case{"wte", NAN}, Case{"layer0.mlp_fc1", INFINITY}, Case{"optimizer.adam_m", -INFINITY},
                        Case{"optimizer.adam_v", -1.0f}}) {
    const int64_t at = s.header[c.tensor]["data_offsets"][0].get<int64_t>() + 4 * 3;
    testing::write_file(dir.file("m.safetensors"), crafted(good, [](json&) {}, [&](std::string& data) {
                          std::memcpy(data.data() + at, &c.value, 4);
                        }));
    for (const std::string& command : kModelCommands) {
      expect_refused(run_microgpt(command, dir.path()), 1, {"m.safetensors", "'" + c.tensor + "'", "index 3"},
                     c.tensor + ": " + command);
    }
  }
}

// 5. A vocabulary no data file could produce: a line break, duplicates, out of order.
TEST(HardeningCheckpoint, ImpossibleVocabulariesAreRefused) {
  TempDir dir;
  train_small(dir);
  const std::string good = testing::read_file(dir.file("model.safetensors"));
  auto with_vocab = [&](const std::function<void(json&)>& change) {
    return crafted(good, [&](json& h) {
      json v = json::parse(h["__metadata__"]["vocab"].get<std::string>());
      change(v);
      h["__metadata__"]["vocab"] = v.dump();
    });
  };
  const std::pair<const char*, std::string> cases[] = {
      {"line break", with_vocab([](json& v) { v[0] = "\n"; })},
      {"sorted and distinct", with_vocab([](json& v) { v[2] = v[1]; })},
      {"sorted and distinct", with_vocab([](json& v) { std::swap(v[0], v[5]); })},
  };
  for (const auto& [why, bytes] : cases) {
    testing::write_file(dir.file("m.safetensors"), bytes);
    for (const std::string& command : kModelCommands) {
      expect_refused(run_microgpt(command, dir.path()), 1, {"m.safetensors", why}, command);
    }
  }
}

// 2. Outputs that are not regular files were replaced by the atomic rename (as root,
// --out /dev/null replaced the system's /dev/null); a FIFO as the log blocked forever.
TEST(HardeningFiles, OutputsNeverReplaceWhatIsNotARegularFile) {
  TempDir dir;
  train_small(dir);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0644), 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = dir.file("sock");
  std::vector<std::string> targets = {"fifo"};
  if (sock_path.size() < sizeof addr.sun_path) {  // (a long temporary folder, as on macOS, leaves no room)
    std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
    ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    targets.push_back("sock");
  }
  for (const std::string& target : targets) {
    const std::string t = target;
    const std::string kind = t == "fifo" ? "FIFO" : "socket";
    const std::vector<std::string> commands = {
        "train --steps 2 --out " + t, "train --steps 2 --log " + t, "train --steps 2 --plot-loss " + t,
        "sample --model model.safetensors --log " + t, "embed --model model.safetensors --plot " + t,
        "embed --model model.safetensors --heatmap " + t};
    for (const std::string& command : commands) {
      const RunResult r = run_microgpt(command, dir.path(), 20);
      expect_refused(r, 1, {t, kind, "not a regular file"}, command);
      EXPECT_EQ(r.out, "") << command << ": refused before any work";
      struct stat st {};
      ASSERT_EQ(::lstat(dir.file(t).c_str(), &st), 0);
      EXPECT_TRUE(t == "fifo" ? S_ISFIFO(st.st_mode) : S_ISSOCK(st.st_mode)) << command << " replaced the " << kind;
    }
  }
  ::close(sock);
}

// 2. A symbolic link as an output was silently turned into a regular file; it is
// written through now: the link stays and its target gets the file.
TEST(HardeningFiles, OutputsAreWrittenThroughSymbolicLinks) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("real"));
  std::filesystem::create_symlink("real/model.safetensors", dir.file("link.safetensors"));
  std::filesystem::create_symlink("real/plot.svg", dir.file("plot.svg"));
  const RunResult r = run_microgpt("train --steps 3 --num-samples 0 --out link.safetensors --plot-loss plot.svg", dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::is_symlink(dir.file("link.safetensors")));
  EXPECT_TRUE(std::filesystem::is_symlink(dir.file("plot.svg")));
  EXPECT_TRUE(std::filesystem::is_regular_file(std::filesystem::symlink_status(dir.file("real/model.safetensors"))));
  EXPECT_TRUE(std::filesystem::is_regular_file(std::filesystem::symlink_status(dir.file("real/plot.svg"))));
  // and again, over the file the link now points at
  EXPECT_EQ(run_microgpt("sample --model link.safetensors --num-samples 2", dir.path()).exit_code, 0);
  EXPECT_EQ(run_microgpt("train --steps 2 --num-samples 0 --out link.safetensors", dir.path()).exit_code, 0);
  EXPECT_TRUE(std::filesystem::is_symlink(dir.file("link.safetensors")));
  EXPECT_EQ(std::filesystem::directory_iterator(dir.file("real")) == std::filesystem::directory_iterator(), false);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("real"))) files += e.is_regular_file();
  EXPECT_EQ(files, 2) << "no temporaries left beside the target";
}

// 2. Inputs that are not regular files: a FIFO without a writer blocked forever,
// /dev/zero read until memory ran out.
TEST(HardeningFiles, InputsMustBeRegularFiles) {
  TempDir dir;
  train_small(dir);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0644), 0);
  const std::pair<std::string, std::string> cases[] = {
      {"train --data fifo --steps 1", "FIFO"},
      {"train --data /dev/zero --steps 1", "character device"},
      {"sample --model fifo", "FIFO"},
      {"eval --model model.safetensors --data fifo", "FIFO"},
      {"sample --model /dev/zero", "character device"},
      {"train --resume fifo", "FIFO"},
  };
  for (const auto& [command, kind] : cases) {
    expect_refused(run_microgpt(command, dir.path(), 20), 1, {kind, "not a regular file"}, command);
  }
}

// 3. One file in two roles was destroyed with exit code 0.
TEST(HardeningFiles, OneFileInTwoRolesIsRefusedBeforeAnyWork) {
  TempDir dir;
  train_small(dir, "--stop-after 10");  // a run to resume
  std::filesystem::copy_file(dir.file("model.safetensors"), dir.file("a.safetensors"));
  std::filesystem::copy_file(dir.file("names.txt"), dir.file("d.txt"));
  std::filesystem::create_symlink("a.safetensors", dir.file("alias.safetensors"));
  const std::string model = testing::read_file(dir.file("a.safetensors"));
  const std::string data = testing::read_file(dir.file("d.txt"));
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"sample --model a.safetensors --log a.safetensors", {"--model", "--log"}},
      {"sample --model a.safetensors --log ./alias.safetensors", {"--model", "--log"}},  // not the same spelling
      {"sample --model a.safetensors --novel --data d.txt --log d.txt", {"--data", "--log"}},
      {"train --data d.txt --out d.txt --steps 2", {"--data", "--out"}},
      {"train --data d.txt --out b.safetensors --plot-loss b.safetensors --steps 2", {"--out", "--plot-loss"}},
      {"train --resume a.safetensors --data names.txt --log a.safetensors", {"--resume", "--log"}},
      {"embed --model a.safetensors --plot a.safetensors", {"--model", "--plot"}},
      {"embed --model a.safetensors --plot p.svg --heatmap p.svg", {"--plot", "--heatmap"}},
      {"eval --model a.safetensors --data a.safetensors", {"--model", "--data"}},
  };
  for (const auto& [command, flags] : cases) {
    std::vector<std::string> fragments = flags;
    fragments.push_back("same file");
    const RunResult r = run_microgpt(command, dir.path(), 60);
    expect_refused(r, 2, fragments, command);
    EXPECT_EQ(r.out, "") << command;
    EXPECT_TRUE(testing::read_file(dir.file("a.safetensors")) == model) << command << " changed the model";
    EXPECT_EQ(testing::read_file(dir.file("d.txt")), data) << command << " changed the data";
    EXPECT_FALSE(std::filesystem::exists(dir.file("b.safetensors")));
    EXPECT_FALSE(std::filesystem::exists(dir.file("p.svg")));
  }
  // A run goes on in its own checkpoint, as before.
  const RunResult resumed = run_microgpt("train --steps 40 --n-embd 8 --n-head 2 --data names.txt --out a.safetensors "
                                         "--stop-after 10 --num-samples 0",
                                         dir.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const RunResult again = run_microgpt("train --resume a.safetensors --data names.txt --out a.safetensors", dir.path());
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

// 4. A file-size limit killed a checkpoint write with SIGXFSZ (exit 153, a temporary left).
TEST(HardeningSystem, AFileSizeLimitIsAnErrorThatKeepsThePreviousCheckpoint) {
  TempDir dir;
  const RunResult first = run_microgpt("train --steps 2 --num-samples 0 --out m.safetensors", dir.path());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string previous = testing::read_file(dir.file("m.safetensors"));
  // 64 KiB: the small checkpoint fits, a 64-wide one (about 650 KB) does not.
  const std::string cmd = "cd '" + dir.path() + "' && ulimit -f 128 && '" + testing::microgpt_binary() +
                          "' train --steps 2 --n-embd 64 --num-samples 0 --out m.safetensors >out 2>err";
  const RunResult r{testing::run_shell(cmd), testing::read_file(dir.file("out")), testing::read_file(dir.file("err"))};
  expect_refused(r, 1, {"m.safetensors", "File too large"}, "ulimit -f");
  EXPECT_TRUE(testing::read_file(dir.file("m.safetensors")) == previous) << "the previous checkpoint changed";
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << "temporary left: " << e.path();
  }
}

// 4. Writing to a full stdout was ignored with exit code 0.
TEST(HardeningSystem, AFullStandardOutputIsAnError) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "skipped: no /dev/full on this system";
  TempDir dir;
  train_small(dir);
  for (const std::string command : {"train --steps 3 --out ''", "sample --model model.safetensors --num-samples 1000000",
                                    "eval --model model.safetensors --data names.txt", "embed --model model.safetensors"}) {
    const std::string cmd = "cd '" + dir.path() + "' && '" + testing::microgpt_binary() + "' " + command + " >/dev/full 2>err";
    const RunResult r{testing::run_shell(cmd, 60), "", testing::read_file(dir.file("err"))};
    expect_refused(r, 1, {"standard output", "No space left"}, command);
  }
}

// 6. --novel retried greedy sampling's one training name forever, printing nothing.
TEST(HardeningLoops, NovelSamplingEndsAndSaysHowManyItFound) {
  TempDir dir;
  train_small(dir);
  const RunResult greedy = run_microgpt("sample --model model.safetensors --temperature 0 --num-samples 1", dir.path());
  ASSERT_EQ(greedy.exit_code, 0) << greedy.err;
  const std::string name = testing::sample_names(greedy.out).at(0);
  testing::write_file(dir.file("known.txt"), name + "\n");  // the greedy name is a training name
  const RunResult r = run_microgpt("sample --model model.safetensors --novel --data known.txt --temperature 0 "
                                   "--num-samples 1099511627776",
                                   dir.path(), 60);
  expect_refused(r, 1, {"found 0 of 1099511627776", "greedy", name}, "greedy --novel");
  // At a temperature, the misses in a row are bounded: a model that only ever draws
  // training names gives up after them, saying how many it found.
  testing::write_file(dir.file("one.txt"), "ab\n");
  ASSERT_EQ(run_microgpt("train --data one.txt --steps 200 --n-embd 8 --n-head 2 --num-samples 0 --out one.safetensors",
                         dir.path())
                .exit_code,
            0);
  const RunResult stuck = run_microgpt("sample --model one.safetensors --novel --temperature 0.01 --num-samples 5",
                                       dir.path(), 120);
  expect_refused(stuck, 1, {"found 0 of 5", "10000 draws"}, "a model that knows one name");
}

// 7. A newline in a value the message echoes split the error over two lines.
TEST(HardeningMessages, EchoedValuesStayOnOneLine) {
  TempDir dir;
  train_small(dir);
  const std::pair<std::string, std::string> cases[] = {
      {"sample --model model.safetensors --prefix \"$(printf 'a\\nb')\"", "'\\n'"},
      {"embed --model model.safetensors --neighbors \"$(printf 'a,\\nQ')\"", "\\n"},
      {"train --data \"$(printf 'no\\nsuch.txt')\"", "no\\nsuch.txt"},
      {"sample --model \"$(printf 'm\\r.safetensors')\"", "m\\r.safetensors"},
      {"train --steps \"$(printf '1\\n2')\"", "1\\n2"},
  };
  for (const auto& [command, shown] : cases) {
    const RunResult r = run_microgpt(command, dir.path());
    EXPECT_NE(r.exit_code, 0) << command;
    EXPECT_EQ(count_lines(r.err), 1) << command << "\n" << r.err;
    EXPECT_NE(r.err.find(shown), std::string::npos) << command << "\n" << r.err;
  }
}

// 8. --heatmap of a 3,000-character vocabulary wrote a 564 MB picture (and ran out of
// memory on 22,761): pictures have a bounded size now.
TEST(HardeningOutputs, PicturesHaveABoundedSize) {
  TempDir dir;
  std::string text;
  for (char32_t c = 0x4E00; c < 0x4E00 + 3000; c++) {
    text += encode_utf8(std::u32string(1, c));
    if (c % 10 == 9) text += "\n";
  }
  testing::write_file(dir.file("han.txt"), text + "\n");
  ASSERT_EQ(run_microgpt("train --data han.txt --steps 1 --n-embd 2 --n-head 1 --block-size 4 --num-samples 0 --out big.safetensors",
                         dir.path())
                .exit_code,
            0);
  const RunResult r = run_microgpt("embed --model big.safetensors --heatmap h.svg --neighbors 一", dir.path(), 60);
  expect_refused(r, 2, {"--heatmap", "at most 300 tokens", "3001"}, "heatmap");
  EXPECT_FALSE(std::filesystem::exists(dir.file("h.svg")));
  // The PCA plot draws 3001 tokens; a long context's positions are thinned to 1000.
  ASSERT_EQ(run_microgpt("train --steps 1 --n-embd 4 --n-head 1 --block-size 5000 --num-samples 0 --out long.safetensors",
                         dir.path())
                .exit_code,
            0);
  for (const char* model : {"big.safetensors", "long.safetensors"}) {
    const RunResult p = run_microgpt(std::string("embed --model ") + model + " --plot p.svg --top 1", dir.path(), 60);
    EXPECT_EQ(p.exit_code, 0) << p.err;
    EXPECT_LT(std::filesystem::file_size(dir.file("p.svg")), 2'000'000u) << model;
  }
}

// 9. --plot-loss '' passed the checks made before training and failed after it.
TEST(HardeningOutputs, EveryOutputIsCheckedBeforeStepOne) {
  TempDir dir;
  train_small(dir);
  const std::vector<std::string> commands = {
      "train --steps 50 --plot-loss ''", "train --steps 50 --log ''", "train --steps 50 --checkpoint-every 10 --out ''",
      "sample --model model.safetensors --log ''", "embed --model model.safetensors --plot ''",
      "embed --model model.safetensors --export ''",
      "train --steps 50 --out " + std::string(250, 'x')};  // the temporary's name would be too long
  for (const std::string& command : commands) {
    const RunResult r = run_microgpt(command, dir.path());
    EXPECT_NE(r.exit_code, 0) << command;
    EXPECT_EQ(count_lines(r.err), 1) << command << "\n" << r.err;
    EXPECT_EQ(r.out, "") << command << ": output before the refusal";
  }
}

}  // namespace
}  // namespace microgpt
