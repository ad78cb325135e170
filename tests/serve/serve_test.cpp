// `microgpt serve` (src/serve): the JSON API answered as the command-line tool answers
// (the same names as `microgpt sample` for the same seed), its errors, and the server
// itself over HTTP: the page and its files, nothing fetched from elsewhere, Ctrl-C.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "model/config.h"
#include "serve/api.h"
#include "serve/trainer.h"
#include "test_support.h"
#include "train/smoothed_loss.h"

namespace microgpt {
namespace {

using nlohmann::json;
using testing::read_file;
using testing::run_shell;
using testing::TempDir;

std::string bin() { return testing::microgpt_binary(); }

// A small model of the embedded names, trained once for all the tests.
const std::string& model_path() {
  static TempDir dir;
  static const std::string path = [] {
    const std::string p = dir.file("m.st");
    // (the command built by appending: GCC 12 warns, wrongly, of overlapping copies
    // (-Wrestrict) in a chain of + that starts from a literal)
    std::string command = "'";
    command += bin();
    command += "' train --steps 60 --batch-size 4 --num-samples 0 --out '" + p + "' >/dev/null";
    EXPECT_EQ(run_shell(command), 0);
    return p;
  }();
  return path;
}

int status_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const ApiError& e) {
    return e.status();
  }
  return 200;
}

TEST(ServeApi, ModelDescribesTheCheckpoint) {
  ModelHost host(1);
  EXPECT_EQ(host.model(), json({{"loaded", false}}));
  host.load(model_path());
  const json m = host.model();
  EXPECT_EQ(m["loaded"], true);
  EXPECT_EQ(m["path"], model_path());
  EXPECT_EQ(m["engine"], "fast");
  EXPECT_EQ(m["format"], "lines");
  EXPECT_EQ(m["config"], json({{"n_layer", 1}, {"n_embd", 16}, {"n_head", 4}, {"block_size", 16}, {"vocab_size", 28}}));
  ASSERT_EQ(m["vocab"].size(), 27u);  // '-' and a to z, then BOS
  EXPECT_EQ(m["vocab"][0], "-");
  EXPECT_EQ(m["vocab"][26], "z");
  EXPECT_EQ(m["bos"], 27);
  EXPECT_EQ(m["step"], 60);
  EXPECT_EQ(m["steps"], 60);
  EXPECT_EQ(m["num_params"], 4224);
}

TEST(ServeApi, SampleDrawsWhatTheSampleCommandPrints) {
  ModelHost host(1);
  host.load(model_path());
  struct Case {
    json request;
    std::string flags;
  };
  const Case cases[] = {
      {{{"num_samples", 5}, {"seed", 7}, {"temperature", 0.5}, {"top_k", 0}, {"top_p", 1}, {"prefix", ""}},
       "--num-samples 5 --seed 7"},
      {{{"num_samples", 4}, {"seed", 1}, {"temperature", 0.9}, {"top_k", 5}, {"prefix", "ma"}},
       "--num-samples 4 --seed 1 --temperature 0.9 --top-k 5 --prefix ma"},
      {{{"num_samples", 3}, {"top_p", 0.8}}, "--num-samples 3 --top-p 0.8"},  // the generator training left
  };
  for (const Case& c : cases) {
    const testing::RunResult cli = testing::run_microgpt("sample --model '" + model_path() + "' " + c.flags);
    ASSERT_EQ(cli.exit_code, 0) << cli.err;
    std::string want;
    int i = 0;
    const json answer = host.sample(c.request);
    for (const auto& name : answer["samples"]) {
      char line[64];
      std::snprintf(line, sizeof line, "sample %2d: ", ++i);
      want += line + name.get<std::string>() + "\n";
    }
    EXPECT_EQ(want, cli.out) << c.flags;
  }
}

TEST(ServeApi, RequestsThatCannotBeAnsweredSaySo) {
  ModelHost host(1);
  EXPECT_EQ(status_of([&] { host.sample(json::object()); }), 404);  // no model yet
  host.load(model_path());
  EXPECT_EQ(status_of([&] { host.sample(json::array()); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"temprature", 0.5}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"seed", -1}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"num_samples", "5"}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"temperature", -1}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"prefix", "M"}}); }), 400);  // not in the vocabulary
  EXPECT_EQ(status_of([&] { host.inspect({{"text", "Emma"}}); }), 400);
  EXPECT_EQ(status_of([&] { host.inspect({{"text", "a very long name indeed"}}); }), 400);  // past block_size
  EXPECT_EQ(status_of([&] { host.inspect({{"text", "emma"}, {"top", 0}}); }), 400);
  // numbers that are not whole, or past what the field holds
  EXPECT_EQ(status_of([&] { host.sample({{"num_samples", 2.5}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"num_samples", 1e308}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample(json::parse(R"({"num_samples": 9223372036854775808})")); }), 400);
  // a request's work is bounded: at most kMaxRequestSamples samples, of at most
  // kMaxRequestSampleLength characters
  EXPECT_EQ(status_of([&] { host.sample({{"num_samples", kMaxRequestSamples + 1}}); }), 400);
  EXPECT_EQ(status_of([&] { host.sample({{"max_len", kMaxRequestSampleLength + 1}}); }), 400);
  EXPECT_EQ(host.sample({{"num_samples", 2}, {"max_len", kMaxRequestSampleLength}})["samples"].size(), 2u);
  {  // (a model whose training drew more: a request that asks for no number draws as many)
    TempDir dir;
    const testing::RunResult many = testing::run_microgpt(
        "train --steps 2 --num-samples 1001 --threads 1 --out '" + dir.file("many.st") + "'", dir.path());
    ASSERT_EQ(many.exit_code, 0) << many.err;
    ModelHost other(1);
    other.load(dir.file("many.st"));
    EXPECT_EQ(status_of([&] { other.sample(json::object()); }), 400);
    EXPECT_EQ(status_of([&] { other.check_sample(other.sample_command(json::object())); }), 400);
    EXPECT_EQ(other.sample({{"num_samples", 3}})["samples"].size(), 3u);
  }
  // what the model cannot do is found before anything is drawn (a stream's 400)
  EXPECT_EQ(status_of([&] { host.check_sample(host.sample_command({{"prefix", "Q"}})); }), 400);
  EXPECT_EQ(status_of([&] { host.check_sample(host.sample_command({{"prefix", "a"}, {"max_len", 1}})); }), 400);
  host.check_sample(host.sample_command({{"prefix", "a"}, {"num_samples", 3}}));
  try {
    host.sample({{"prefix", "Q!"}});
  } catch (const ApiError& e) {
    EXPECT_EQ(std::string(e.what()), "--prefix: 'Q', '!' are not in the model's vocabulary");
  }
  try {
    host.sample({{"prefix", std::string("\0a", 2)}});  // (a NUL would end the message early)
    ADD_FAILURE() << "no error";
  } catch (const ApiError& e) {
    EXPECT_EQ(std::string(e.what()), "--prefix: '\\x00' is not in the model's vocabulary");
  }
  EXPECT_EQ(std::string(ApiError(400, std::string("no preset '\0'", 13)).what()), "no preset '\\x00'");
}

TEST(ServeApi, SavesListsAndLoadsCheckpointsInItsFolder) {
  TempDir dir;
  ModelHost host(1);
  EXPECT_EQ(status_of([&] { host.save(dir.path(), {{"name", "a"}}); }), 404);  // nothing to save yet
  host.load(model_path());
  EXPECT_EQ(host.save(dir.path(), {{"name", "copy_1"}})["saved"], dir.file("copy_1.safetensors"));
  EXPECT_EQ(ModelHost::checkpoints(dir.path()), json({{"checkpoints", {"copy_1"}}}));
  EXPECT_TRUE(load_checkpoint(dir.file("copy_1.safetensors")).params == load_checkpoint(model_path()).params);
  ModelHost other(1);
  EXPECT_EQ(other.load_named(dir.path(), {{"name", "copy_1"}})["path"], dir.file("copy_1.safetensors"));
  EXPECT_EQ(status_of([&] { other.load_named(dir.path(), {{"name", "none"}}); }), 404);
  const std::string long_name(kMaxNameLength + 1, 'a');  // (past what a file name may be)
  for (const char* name : {"../m", "a/b", "", "x.y", long_name.c_str()}) {
    EXPECT_EQ(status_of([&] { other.load_named(dir.path(), {{"name", name}}); }), 400) << name;
    EXPECT_EQ(status_of([&] { host.save(dir.path(), {{"name", name}}); }), 400) << name;
  }
  // A symbolic link in the folder may lead anywhere: neither written through nor read.
  TempDir elsewhere;
  testing::write_file(elsewhere.file("mine.txt"), "not a model\n");
  std::filesystem::create_symlink(elsewhere.file("mine.txt"), dir.file("link.safetensors"));
  std::filesystem::create_symlink(model_path(), dir.file("model_link.safetensors"));
  EXPECT_EQ(status_of([&] { host.save(dir.path(), {{"name", "link"}}); }), 400);
  EXPECT_EQ(read_file(elsewhere.file("mine.txt")), "not a model\n");
  EXPECT_EQ(status_of([&] { other.load_named(dir.path(), {{"name", "model_link"}}); }), 400);
  // The list offers only what a load can take: not the links, a folder, a pipe, or a
  // name a load refuses.
  std::filesystem::create_directory(dir.file("folder.safetensors"));
  ASSERT_EQ(::mkfifo(dir.file("pipe.safetensors").c_str(), 0600), 0);
  std::filesystem::copy_file(model_path(), dir.file("a b.safetensors"));
  EXPECT_EQ(ModelHost::checkpoints(dir.path()), json({{"checkpoints", {"copy_1"}}}));
}

// Only plain files are read or written: a folder, or a pipe (which would hold the reader
// forever), under a name is refused (400), and so is a file that is not a checkpoint.
TEST(ServeApi, ReadsAndWritesOnlyPlainFilesAndSaysWhatIsNotACheckpoint) {
  TempDir dir;
  ModelHost host(1);
  host.load(model_path());
  std::filesystem::create_directory(dir.file("folder.safetensors"));
  ASSERT_EQ(::mkfifo(dir.file("pipe.safetensors").c_str(), 0600), 0);
  testing::write_file(dir.file("text.safetensors"), "not a model\n");
  for (const char* name : {"folder", "pipe"}) {
    EXPECT_EQ(status_of([&] { host.load_named(dir.path(), {{"name", name}}); }), 400) << name;
    EXPECT_EQ(status_of([&] { host.save(dir.path(), {{"name", name}}); }), 400) << name;
  }
  EXPECT_EQ(status_of([&] { host.load_named(dir.path(), {{"name", "text"}}); }), 400);
  EXPECT_EQ(host.model()["path"], model_path()) << "a failed load replaced the model";
}

// A model saved under a name takes its snapshots (its history) with it; one without
// snapshots leaves no older model's history under that name.
TEST(ServeApi, SavingAModelTakesItsSnapshotsAlong) {
  TempDir dir, elsewhere;
  const std::string with = elsewhere.file("run.safetensors");
  std::filesystem::copy_file(model_path(), with);
  testing::write_file(elsewhere.file("run.snapshots.jsonl"), "{\"step\": 0}\n");
  ModelHost host(1);
  host.load(with);
  host.save(dir.path(), {{"name", "kept"}});
  EXPECT_EQ(read_file(dir.file("kept.snapshots.jsonl")), "{\"step\": 0}\n");
  testing::write_file(dir.file("plain.snapshots.jsonl"), "{\"step\": 5}\n");  // another model's history
  host.load(model_path());                                                    // (no snapshots beside it)
  host.save(dir.path(), {{"name", "plain"}});
  EXPECT_TRUE(std::filesystem::exists(dir.file("plain.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("plain.snapshots.jsonl")));
}

// The numbers of one `embed --show` line ("    wte[5]     =   0.109 ..."), or of the
// predictions line ("pos 1 after <BOS>e: l 0.149, a 0.112, ...") as (label, p) pairs.
std::vector<double> numbers_after(const std::string& line, char mark) {
  std::istringstream in(line.substr(line.find(mark) + 1));
  std::vector<double> v;
  double x;
  while (in >> x) v.push_back(x);
  return v;
}

TEST(ServeApi, InspectGivesTheNumbersEmbedShowPrints) {
  ModelHost host(1);
  host.load(model_path());
  const json answer = host.inspect({{"text", "emma"}, {"top", 5}});
  const testing::RunResult cli = testing::run_microgpt("embed --model '" + model_path() + "' --show emma");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::istringstream lines(cli.out.substr(cli.out.find("what the model receives")));
  std::string line;
  std::getline(lines, line);
  const json& positions = answer["positions"];
  ASSERT_EQ(positions.size(), 5u);  // <BOS> e m m a
  for (const json& p : positions) {
    std::getline(lines, line);
    EXPECT_EQ(line, "pos " + std::to_string(p["pos"].get<int>()) + "  " + p["token"].get<std::string>() + "  (token " +
                        std::to_string(p["id"].get<int>()) + ")");
    for (const char* name : {"wte", "wpe", "sum"}) {
      std::getline(lines, line);
      const std::vector<double> printed = numbers_after(line, '=');
      ASSERT_EQ(printed.size(), p[name].size()) << line;
      for (size_t i = 0; i < printed.size(); i++) EXPECT_NEAR(p[name][i].get<double>(), printed[i], 0.0005 + 1e-12) << line;
    }
  }
  std::getline(lines, line);  // "top 5 predictions ..."
  for (const json& p : positions) {
    std::getline(lines, line);
    std::string want = line.substr(0, line.find(':') + 1);
    for (const json& n : p["next"]) {
      char prob[32];
      std::snprintf(prob, sizeof prob, "%.3f", n["p"].get<double>());
      want += (want.back() == ':' ? " " : ", ") + n["token"].get<std::string>() + " " + prob;
    }
    EXPECT_EQ(want, line);
  }
}

// rmsnorm(x) = x (mean of x^2 + 1e-5)^-1/2, in double
std::vector<double> rmsnorm(std::vector<double> x) {
  double ms = 0.0;
  for (double v : x) ms += v * v;
  const double s = 1.0 / std::sqrt(ms / static_cast<double>(x.size()) + 1e-5);
  for (double& v : x) v *= s;
  return x;
}

// The first layer's attention, computed here from the checkpoint's weights in double
// (docs/algorithm.md §4): the weights the API gives for layer 0.
TEST(ServeApi, InspectGivesTheAttentionWeightsOfEveryHead) {
  ModelHost host(1);
  host.load(model_path());
  const json answer = host.inspect({{"text", "anna"}});
  const CheckpointData c = load_checkpoint(model_path());
  const ParamLayout layout(c.model);
  const int64_t C = c.model.n_embd, H = c.model.n_head, D = C / H;
  const std::vector<Token> tokens = {27, 1, 14, 14, 1};  // <BOS> a n n a
  auto row = [&](const ParamTensor& t, int64_t r) {
    return std::vector<double>(c.params.begin() + t.offset + r * t.cols, c.params.begin() + t.offset + (r + 1) * t.cols);
  };
  std::vector<std::vector<double>> q, k;
  const LayerParams l0 = layout.layer(0);
  for (size_t p = 0; p < tokens.size(); p++) {
    std::vector<double> x = row(layout.wte(), tokens[p]);
    const std::vector<double> pe = row(layout.wpe(), static_cast<int64_t>(p));
    for (int64_t i = 0; i < C; i++) x[i] += pe[i];
    const std::vector<double> a = rmsnorm(rmsnorm(x));
    std::vector<double> qp(C), kp(C);
    for (int64_t o = 0; o < C; o++) {
      const std::vector<double> wq = row(*l0.attn_wq, o), wk = row(*l0.attn_wk, o);
      for (int64_t i = 0; i < C; i++) {
        qp[o] += wq[i] * a[i];
        kp[o] += wk[i] * a[i];
      }
    }
    q.push_back(qp);
    k.push_back(kp);
  }
  const json& heads = answer["attention"][0];
  ASSERT_EQ(answer["attention"].size(), 1u);
  ASSERT_EQ(heads.size(), static_cast<size_t>(H));
  for (int64_t h = 0; h < H; h++) {
    for (size_t t = 0; t < tokens.size(); t++) {
      std::vector<double> z(t + 1);
      double zmax = -INFINITY, total = 0.0;
      for (size_t u = 0; u <= t; u++) {
        for (int64_t i = h * D; i < (h + 1) * D; i++) z[u] += q[t][i] * k[u][i];
        z[u] /= std::sqrt(static_cast<double>(D));
        zmax = std::max(zmax, z[u]);
      }
      for (double& v : z) total += (v = std::exp(v - zmax));
      const json& got = heads[h][t];
      ASSERT_EQ(got.size(), t + 1);
      for (size_t u = 0; u <= t; u++) EXPECT_NEAR(got[u].get<double>(), z[u] / total, 1e-5) << h << " " << t << " " << u;
    }
  }
}

// A server in the background for a test, on a free port, in `dir` (its --out-dir).
class ServerProcess {
 public:
  explicit ServerProcess(const TempDir& dir, const std::string& flags = "") : dir_(dir) {
    run_shell("cd '" + dir.path() + "' && ('" + bin() + "' serve --port 0 --out-dir . --threads 1 " + flags +
              " >out 2>err & echo $! > pid; wait $!; echo $? > code) >/dev/null 2>&1 &");
    // "microgpt serve: http://HOST:PORT/ (Ctrl-C stops it)"
    std::string out;
    for (int i = 0; i < 200 && out.find("/ (") == std::string::npos; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      out = read_file(dir.file("out"));
    }
    const size_t at = out.find("http://");
    const size_t colon = at == std::string::npos ? at : out.find(':', at + 7);
    if (colon != std::string::npos) port_ = std::stoi(out.substr(colon + 1));
  }
  ~ServerProcess() {
    const std::string pid = read_file(dir_.file("pid"));
    if (!pid.empty() && read_file(dir_.file("code")).empty()) ::kill(std::stoi(pid), SIGKILL);
  }
  int port() const { return port_; }
  int pid() const { return std::stoi(read_file(dir_.file("pid"))); }
  // "" while it runs, then its exit code and a line break
  std::string exit_code() const { return read_file(dir_.file("code")); }

 private:
  const TempDir& dir_;
  int port_ = 0;
};

// The tests of the server as a user runs it: each has a folder of its own (`dir`, the
// server's --out-dir), and `start(flags)` starts the server in it and a client for it.
class Serve : public ::testing::Test {
 protected:
  void start(const std::string& flags = "") {
    server.emplace(dir, flags);
    ASSERT_NE(server->port(), 0) << read_file(dir.file("out")) << read_file(dir.file("err"));
    client.emplace("127.0.0.1", server->port());
  }
  TempDir dir;
  std::optional<ServerProcess> server;  // (after `dir`, which it needs until it stops)
  std::optional<httplib::Client> client;
};

// The server, started as a user starts it, on a free port it prints.
TEST_F(Serve, AnswersOverHttpAndStopsOnCtrlC) {
  ASSERT_NO_FATAL_FAILURE(start("--model '" + model_path() + "'"));

  auto model = client->Get("/api/model");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->status, 200);
  EXPECT_EQ(model->get_header_value("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(json::parse(model->body)["num_params"], 4224);

  auto sample = client->Post("/api/sample", R"({"num_samples": 5, "seed": 7})", "application/json");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->status, 200);
  ModelHost host(1);
  host.load(model_path());
  EXPECT_EQ(json::parse(sample->body), host.sample({{"num_samples", 5}, {"seed", 7}}));

  auto bad = client->Post("/api/sample", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(json::parse(bad->body).contains("error"));
  auto missing = client->Get("/api/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"], "no such page: GET /api/nothing");

  // The page and its two files, which load nothing from anywhere else: no address but
  // the SVG namespace's name, which is never fetched.
  for (const char* path : {"/", "/app.js", "/style.css"}) {
    auto page = client->Get(path);
    ASSERT_TRUE(page) << path;
    EXPECT_EQ(page->status, 200) << path;
    EXPECT_FALSE(page->body.empty()) << path;
    std::string body = page->body;
    for (size_t at; (at = body.find("'http://www.w3.org/2000/svg'")) != std::string::npos;) body.erase(at, 28);
    EXPECT_EQ(body.find("http://"), std::string::npos) << path;
    EXPECT_EQ(body.find("https://"), std::string::npos) << path;
    for (const char* relative : {"=\"//", "='//", "url(//", "url('//", "url(\"//"}) {
      EXPECT_EQ(body.find(relative), std::string::npos) << path << ": an address relative to the protocol";
    }
  }
  EXPECT_NE(client->Get("/")->body.find("<script src=\"/app.js\">"), std::string::npos);

  // Ctrl-C: the server stops and exits 0.
  ASSERT_EQ(::kill(server->pid(), SIGINT), 0);
  std::string code;
  for (int i = 0; i < 100 && code.empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    code = server->exit_code();
  }
  EXPECT_EQ(code, "0\n") << read_file(dir.file("err"));
}

// POSTs `body` to /api/train: a success when the run started (a 200), else what came.
::testing::AssertionResult starts_run(httplib::Client& client, const std::string& body) {
  auto answer = client.Post("/api/train", body, "application/json");
  if (!answer) return ::testing::AssertionFailure() << "no answer to POST /api/train " << body;
  if (answer->status != 200) return ::testing::AssertionFailure() << answer->status << ": " << answer->body;
  return ::testing::AssertionSuccess();
}

// Little-endian float32s from base64 (the compact snapshots' form), decoded here on
// their own terms rather than by the server's encoder.
std::vector<float> float32s_of(const std::string& text) {
  const std::string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<uint8_t> bytes;
  uint32_t bits = 0;
  int held = 0;
  for (char ch : text) {
    if (ch == '=') break;
    bits = bits << 6 | static_cast<uint32_t>(digits.find(ch));
    held += 6;
    if (held >= 8) {
      held -= 8;
      bytes.push_back(static_cast<uint8_t>(bits >> held & 0xff));
    }
  }
  std::vector<float> out;
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    out.push_back(std::bit_cast<float>(static_cast<uint32_t>(bytes[i] | bytes[i + 1] << 8 | bytes[i + 2] << 16 |
                                                             static_cast<uint32_t>(bytes[i + 3]) << 24)));
  }
  return out;
}

// The events of /api/events (every run's, from the first) until the `count`-th of type
// `last` (or an error, or `seconds` pass), as (type, data).
std::vector<std::pair<std::string, json>> events_until(int port, const std::string& last, int count = 1,
                                                       int seconds = 60, const std::string& path = "/api/events") {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(seconds, 0);
  std::string buffer;
  std::vector<std::pair<std::string, json>> events;
  client.Get(path, [&](const char* data, size_t n) {
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      const std::string e = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      const size_t nl = e.find('\n');
      events.emplace_back(e.substr(7, nl - 7), json::parse(e.substr(nl + 7)));  // "event: T\ndata: J"
      if ((events.back().first == last && --count == 0) || events.back().first == "error") return false;
    }
    return true;
  });
  return events;
}

TEST_F(Serve, TrainsFromThePageAsTheCommandLineTrains) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(starts_run(*client, R"({"steps": 30, "batch_size": 4, "snapshot_every": 10, "name": "t"})"));
  // (until the run's model is the server's: its snapshots are written by then)
  const auto events = events_until(server->port(), "model");
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().first, "model") << events.back().second;

  // The same run from the command line: the page's defaults (a tenth held out, a
  // validation every 100 steps, 5 samples) given as flags.
  const testing::RunResult cli = testing::run_microgpt(
      "train --steps 30 --batch-size 4 --val-frac 0.1 --eval-every 100 --num-samples 5 --threads 1 --log '" +
          dir.file("cli.jsonl") + "' --out '" + dir.file("cli.st") + "'",
      dir.path());
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::vector<double> cli_losses, page_losses;
  std::vector<std::string> cli_samples, page_samples;
  for (const json& row : testing::read_jsonl(dir.file("cli.jsonl"))) {
    if (row.contains("loss")) cli_losses.push_back(row["loss"].get<double>());
    if (row.contains("text")) cli_samples.push_back(row["text"].get<std::string>());
  }
  std::vector<json> snapshots;
  SmoothedLoss smooth;  // (the run's, from the command line's losses)
  for (const auto& [type, data] : events) {
    if (type == "steps") {
      // (a short run's batches keep every step: its count, its tokens, the smoothed loss)
      ASSERT_EQ(data["count"].get<size_t>(), data["steps"].size());
      int64_t tokens = 0;
      for (const json& step : data["steps"]) {
        const double loss = step["loss"].get<double>();
        EXPECT_EQ(step["smooth"].get<double>(), smooth.add(cli_losses.at(page_losses.size())));
        page_losses.push_back(loss);
        tokens += step["tokens"].get<int64_t>();
      }
      EXPECT_EQ(data["tokens"].get<int64_t>(), tokens);
    }
    if (type == "sample") page_samples.push_back(data["text"].get<std::string>());
    if (type == "snapshot") snapshots.push_back(data);
  }
  EXPECT_EQ(page_losses, cli_losses);
  EXPECT_EQ(page_samples, cli_samples);
  const CheckpointData page = load_checkpoint(dir.file("t.safetensors"));
  const CheckpointData want = load_checkpoint(dir.file("cli.st"));
  EXPECT_TRUE(page.params == want.params);

  // Snapshots at steps 0, 10, 20 and 30, also written beside the checkpoint; the last
  // one's wte is the checkpoint's (float32 weights travel as their shortest decimals,
  // which read back as floats are the weights' bits).
  ASSERT_EQ(snapshots.size(), 4u);
  EXPECT_EQ(snapshots[0]["step"], 0);
  EXPECT_EQ(snapshots[3]["step"], 30);
  const ParamLayout layout(want.model);
  for (int64_t r = 0; r < layout.wte().rows; r++) {
    for (int64_t c = 0; c < layout.wte().cols; c++) {
      ASSERT_EQ(snapshots[3]["wte"][r][c].get<float>(), static_cast<float>(want.params[static_cast<size_t>(layout.wte().offset + r * layout.wte().cols + c)]));
    }
  }
  EXPECT_EQ(testing::read_jsonl(dir.file("t.snapshots.jsonl")).size(), 4u);

  // The trained model is the page's model now.
  const json model = json::parse(client->Get("/api/model")->body);
  EXPECT_EQ(model["step"], 30);
  EXPECT_EQ(model["path"], "./t.safetensors");
  EXPECT_EQ(model["settings"]["batch_size"], 4);

  // A server started later with that model tells its snapshots as a past run.
  TempDir later_dir;
  ServerProcess later(later_dir, "--model '" + dir.file("t.safetensors") + "'");
  ASSERT_NE(later.port(), 0) << read_file(later_dir.file("err"));
  std::vector<json> told;
  std::vector<std::string> types;
  for (const auto& [type, data] : events_until(later.port(), "finished")) {
    types.push_back(type);
    if (type == "snapshot") told.push_back(data);
  }
  EXPECT_EQ(types.front(), "start");
  EXPECT_EQ(types[1], "run");
  EXPECT_EQ(types.back(), "finished");
  EXPECT_EQ(told, snapshots);

  // The same snapshots in the page's compact form (?snapshots=float32), as the run told
  // them and as the later server tells them: the same floats, bit for bit.
  for (int port : {server->port(), later.port()}) {
    std::vector<json> compact;
    for (const auto& [type, data] : events_until(port, "finished", 1, 60, "/api/events?snapshots=float32")) {
      if (type == "snapshot") compact.push_back(data);
    }
    ASSERT_EQ(compact.size(), snapshots.size());
    for (size_t i = 0; i < compact.size(); i++) {
      EXPECT_EQ(compact[i]["step"], snapshots[i]["step"]);
      for (const char* matrix : {"wte", "wpe"}) {
        const json& rows = snapshots[i][matrix];
        const json& m = compact[i][matrix];
        ASSERT_EQ(m["rows"], rows.size());
        ASSERT_EQ(m["cols"], rows[0].size());
        const std::vector<float> values = float32s_of(m["float32"].get<std::string>());
        ASSERT_EQ(values.size(), rows.size() * rows[0].size());
        for (size_t r = 0; r < rows.size(); r++) {
          for (size_t c = 0; c < rows[r].size(); c++) {
            ASSERT_EQ(std::bit_cast<uint32_t>(values[r * rows[r].size() + c]),
                      std::bit_cast<uint32_t>(rows[r][c].get<float>()))
                << matrix << " " << r << " " << c;
          }
        }
      }
    }
  }
  auto unknown = client->Get("/api/events?snapshots=float64");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
  EXPECT_EQ(json::parse(unknown->body)["error"], "'snapshots' is 'decimal' or 'float32', not 'float64'");
}

// The steps between snapshots: those asked for, unless a run would then keep more than
// kMaxSnapshots of them, or more than kSnapshotNumbers numbers; then the fewest more
// that keep within both.
TEST(ServeTrainer, ALongRunsSnapshotsAreSpacedToFit) {
  EXPECT_EQ(snapshot_interval(50, 1000, 2816), 50);  // the makemore preset's 1000 steps
  EXPECT_EQ(snapshot_interval(0, 1000000, 2816), 0);
  EXPECT_EQ(snapshot_interval(1, 1200, 704), 3);                      // 500 after the first at most
  EXPECT_EQ(snapshot_interval(50, 10000, 321 * 384), 74);             // 136 of 123,264 numbers
  EXPECT_EQ(snapshot_interval(7, 1000, kSnapshotNumbers + 1), 1000);  // the first and the last
  // After the first (step 0), a snapshot every `every` steps and one at the last step.
  auto kept = [](int64_t steps, int64_t every) { return 1 + steps / every + (steps % every != 0 ? 1 : 0); };
  for (int64_t requested : {1, 3, 50, 1000}) {
    for (int64_t steps : {1, 2, 499, 500, 501, 1000, 12345, 1000000}) {
      for (int64_t numbers : {1, 704, 2816, 123264, 4000000}) {
        const int64_t every = snapshot_interval(requested, steps, numbers);
        const int64_t most = std::min(kMaxSnapshots, std::max<int64_t>(1, kSnapshotNumbers / numbers));
        ASSERT_GE(every, requested);
        ASSERT_LE(kept(steps, every), most + 1) << requested << " " << steps << " " << numbers;
        if (every > requested) {  // and no fewer steps between them would do
          ASSERT_GT(kept(steps, every - 1), most + 1) << requested << " " << steps << " " << numbers;
        }
      }
    }
  }
}

TEST(ServeTrainer, ALongRunsBatchesOfStepsKeepTheirLowestHighestAndLast) {
  std::vector<StepEntry> batch;
  for (double loss : {2.5, 2.0, 3.0, 2.25}) {
    batch.push_back({static_cast<int64_t>(batch.size()) + 1, loss, loss, 10, 0.001});
  }
  auto steps = [](const std::vector<StepEntry>& kept) {
    std::vector<int64_t> out;
    for (const StepEntry& s : kept) out.push_back(s.step);
    return out;
  };
  using Steps = std::vector<int64_t>;
  EXPECT_EQ(steps(kept_steps(batch, 0)), (Steps{1, 2, 3, 4}));
  EXPECT_EQ(steps(kept_steps(batch, kEveryStep - 4)), (Steps{1, 2, 3, 4}));  // the run's first kEveryStep steps
  EXPECT_EQ(steps(kept_steps(batch, kEveryStep - 3)), (Steps{2, 3, 4}));     // lowest, highest, last
  // the last is the lowest
  batch[3].loss = 1.0;
  EXPECT_EQ(steps(kept_steps(batch, kEveryStep)), (Steps{3, 4}));
  batch[2].loss = std::nan("");  // a loss that is not finite is neither
  EXPECT_EQ(steps(kept_steps(batch, kEveryStep)), (Steps{1, 4}));
  for (StepEntry& s : batch) s.loss = std::nan("");
  EXPECT_EQ(steps(kept_steps(batch, kEveryStep)), (Steps{4}));
  EXPECT_TRUE(kept_steps({}, kEveryStep).empty());
}

// A run longer than kEveryStep steps: its events keep every step up to there, then of
// each batch the steps with the lowest and the highest loss and the last, with the
// smoothed loss over every step (checked against the same run's losses from the
// command line, step by step).
TEST_F(Serve, ALongRunsStepsAreKeptAsTheLossChartNeedsThem) {
  ASSERT_NO_FATAL_FAILURE(start());
  const int64_t n = kEveryStep + 6000;
  ASSERT_TRUE(starts_run(
      *client, R"({"steps": )" + std::to_string(n) +
                   R"(, "batch_size": 1, "val_frac": 0, "num_samples": 0, "snapshot_every": 100000, "name": "long"})"));
  const auto events = events_until(server->port(), "finished");
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().first, "finished") << events.back().second;
  const testing::RunResult cli = testing::run_microgpt(
      "train --steps " + std::to_string(n) + " --batch-size 1 --val-frac 0 --num-samples 0 --threads 1 --log '" +
          dir.file("cli.jsonl") + "' --out '" + dir.file("cli.st") + "'",
      dir.path());
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::vector<double> losses{0.0}, smooth{0.0};  // (by step, from 1)
  SmoothedLoss smoothed;
  for (const json& row : testing::read_jsonl(dir.file("cli.jsonl"))) {
    if (!row.contains("loss")) continue;
    losses.push_back(row["loss"].get<double>());
    smooth.push_back(smoothed.add(losses.back()));
  }
  ASSERT_EQ(static_cast<int64_t>(losses.size()), n + 1);
  int64_t told = 0, entries = 0;
  for (const auto& [type, data] : events) {
    if (type != "steps") continue;
    const auto count = data["count"].get<int64_t>();
    const int64_t first = told + 1, last = told + count;
    told = last;
    std::vector<int64_t> want;  // the steps this batch keeps
    if (last <= kEveryStep) {
      for (int64_t s = first; s <= last; s++) want.push_back(s);
    } else {
      int64_t lo = first, hi = first;
      for (int64_t s = first; s <= last; s++) {
        if (losses[static_cast<size_t>(s)] < losses[static_cast<size_t>(lo)]) lo = s;
        if (losses[static_cast<size_t>(s)] > losses[static_cast<size_t>(hi)]) hi = s;
      }
      for (int64_t s : {lo, hi, last}) want.push_back(s);
      std::sort(want.begin(), want.end());
      want.erase(std::unique(want.begin(), want.end()), want.end());
    }
    std::vector<int64_t> got;
    for (const json& step : data["steps"]) {
      const auto s = step["step"].get<int64_t>();
      got.push_back(s);
      ASSERT_GE(s, first);
      ASSERT_LE(s, last);
      EXPECT_EQ(step["loss"].get<double>(), losses[static_cast<size_t>(s)]) << s;
      EXPECT_EQ(step["smooth"].get<double>(), smooth[static_cast<size_t>(s)]) << s;
    }
    EXPECT_EQ(got, want) << "the batch of steps " << first << " to " << last;
    entries += static_cast<int64_t>(got.size());
  }
  EXPECT_EQ(told, n);
  EXPECT_LT(entries, n);  // (the last 6000 steps are not all kept)
}

TEST_F(Serve, ALongRunFromThePageKeepsFiveHundredSnapshots) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(starts_run(*client, R"({"steps": 1200, "batch_size": 1, "snapshot_every": 1, "name": "many"})"));
  std::vector<int64_t> steps;
  int64_t every = 0;
  for (const auto& [type, data] : events_until(server->port(), "model")) {
    if (type == "run") every = data["snapshot_every"].get<int64_t>();
    if (type == "snapshot") steps.push_back(data["step"].get<int64_t>());
  }
  EXPECT_EQ(every, 3);  // not every step: 1200 of them would be more than 500
  ASSERT_EQ(steps.size(), 401u);
  for (size_t i = 0; i < steps.size(); i++) ASSERT_EQ(steps[i], static_cast<int64_t>(3 * i));
  EXPECT_EQ(testing::read_jsonl(dir.file("many.snapshots.jsonl")).size(), 401u);
}

// A socket connected to the server on `port` at 127.0.0.1 (-1 if it cannot connect), its
// reads timing out after `timeout_s`: for requests that an HTTP client would not send, or
// whose bytes a test reads as they come.
int connected_socket(int port, int timeout_s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// /api/events read off a plain socket until `until` is in it (httplib's client hands
// over what each read brings, not the server's chunks): the text, and when each HTTP
// chunk (each write of the server) began to come, in seconds from the request.
struct ChunkedStream {
  std::string text;
  std::vector<double> chunk_at;
  std::vector<size_t> chunk_size;
};
ChunkedStream read_chunks(int port, const std::string& until) {
  ChunkedStream out;
  const auto asked = std::chrono::steady_clock::now();
  const std::string request = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const int fd = connected_socket(port, 60);
  if (fd < 0) return out;
  if (::send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return out;
  }
  std::string buffer;
  size_t at = std::string::npos;  // where the chunks begin, once the headers are read
  char data[65536];
  while (out.text.find(until) == std::string::npos) {
    const ssize_t n = ::recv(fd, data, sizeof data, 0);
    if (n <= 0) break;
    const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
    buffer.append(data, static_cast<size_t>(n));
    if (at == std::string::npos) {
      const size_t headers = buffer.find("\r\n\r\n");
      if (headers == std::string::npos) continue;
      at = headers + 4;
    }
    // every whole chunk: its size in hexadecimal, a line break, the data, a line break
    for (size_t line; (line = buffer.find("\r\n", at)) != std::string::npos;) {
      const size_t size = std::stoul(buffer.substr(at, line - at), nullptr, 16);
      if (buffer.size() < line + 2 + size + 2) break;
      out.chunk_at.push_back(now);
      out.chunk_size.push_back(size);
      out.text += buffer.substr(line + 2, size);
      at = line + 2 + size + 2;
    }
  }
  ::close(fd);
  return out;
}

// The event stream is written 180 ms apart at the least, whatever a run sends (here a
// snapshot every few steps, and steps all the time): what comes meanwhile goes out with
// the next write, one HTTP chunk, and the page draws once a write. Each write is read
// after it was made, and the first after the request, so the k-th chunk read comes
// 180 ms for each one before it after the request, however late the reads.
TEST_F(Serve, TheEventStreamIsWrittenAtMostEvery180Milliseconds) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(starts_run(*client, R"({"steps": 1200, "batch_size": 4, "snapshot_every": 1, "name": "paced"})"));
  const ChunkedStream stream = read_chunks(server->port(), "event: finished\n");
  ASSERT_NE(stream.text.find("event: finished\n"), std::string::npos) << stream.text.substr(0, 200);
  size_t events = 0;
  for (size_t at = 0; (at = stream.text.find("event: ", at)) != std::string::npos; at++) events++;
  ASSERT_GE(stream.chunk_at.size(), 2u);
  EXPECT_GT(events, 2 * stream.chunk_at.size());  // written together, not one by one
  for (size_t k = 1; k < stream.chunk_at.size(); k++) {
    ASSERT_GE(stream.chunk_at[k], 0.18 * static_cast<double>(k))
        << "chunk " << k << " of " << stream.chunk_at.size() << ", " << stream.text.size() << " bytes in all";
  }
}

// A page that opens after a long history (here 13 MB of snapshots) is sent all of it,
// in order, in writes of about 8 MB at most (server.cpp's kWriteBytes, which one event
// may pass): not as one string of it all, which the HTTP library would copy again.
TEST_F(Serve, ALongHistoryIsSentWholeInPieces) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(starts_run(*client, R"({"steps": 200, "n_embd": 64, "block_size": 64, "batch_size": 1,
                                      "snapshot_every": 1, "name": "long"})"));
  events_until(server->port(), "model");  // the run is over: its events are history
  const ChunkedStream stream = read_chunks(server->port(), "event: model\n");
  ASSERT_NE(stream.text.find("event: model\n"), std::string::npos) << stream.text.size();
  constexpr size_t kWriteBytes = size_t{1} << 23;
  EXPECT_GT(stream.text.size(), kWriteBytes + (size_t{1} << 20));
  ASSERT_GE(stream.chunk_size.size(), 2u);
  size_t largest = 0;  // event
  std::vector<int64_t> snapshot_steps;
  for (size_t at = 0, end; (end = stream.text.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string event = stream.text.substr(at, end - at);
    largest = std::max(largest, event.size() + 2);
    ASSERT_EQ(event.rfind("event: ", 0), 0u) << event.substr(0, 100);
    const size_t data = event.find("\ndata: ");
    ASSERT_NE(data, std::string::npos) << event.substr(0, 100);
    const json d = json::parse(event.substr(data + 7));  // every event whole
    if (event.rfind("event: snapshot\n", 0) == 0) snapshot_steps.push_back(d["step"].get<int64_t>());
  }
  for (const size_t size : stream.chunk_size) EXPECT_LT(size, kWriteBytes + largest);
  ASSERT_EQ(snapshot_steps.size(), 201u);
  for (size_t i = 0; i < snapshot_steps.size(); i++) ASSERT_EQ(snapshot_steps[i], static_cast<int64_t>(i));
}

// The preset microgpt on the reference engine, nothing held out: microgpt.py's run (the
// command line's defaults, which tests/reference checks against the Python), to the bit.
TEST_F(Serve, ThePagesReferenceRunIsMicrogptPys) {
  ASSERT_NO_FATAL_FAILURE(start());
  const json request = {{"preset", "microgpt"}, {"engine", "reference"}, {"val_frac", 0},
                        {"steps", 25},          {"num_samples", 20},       {"name", "ref"}};
  ASSERT_TRUE(starts_run(*client, request.dump()));
  std::vector<double> losses;
  std::vector<std::string> samples;
  for (const auto& [type, d] : events_until(server->port(), "finished")) {
    if (type == "steps") {
      for (const json& step : d["steps"]) losses.push_back(step["loss"].get<double>());
    }
    if (type == "sample") samples.push_back(d["text"].get<std::string>());
  }
  const testing::RunResult cli = testing::run_microgpt(
      "train --engine reference --steps 25 --log '" + dir.file("cli.jsonl") + "' --out '" + dir.file("cli.st") + "'", dir.path());
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::vector<double> want_losses;
  std::vector<std::string> want_samples;
  for (const json& row : testing::read_jsonl(dir.file("cli.jsonl"))) {
    if (row.contains("loss")) want_losses.push_back(row["loss"].get<double>());
    if (row.contains("text")) want_samples.push_back(row["text"].get<std::string>());
  }
  EXPECT_EQ(losses, want_losses);
  EXPECT_EQ(samples, want_samples);
  EXPECT_TRUE(load_checkpoint(dir.file("ref.safetensors")).params == load_checkpoint(dir.file("cli.st")).params);
}

TEST_F(Serve, TrainsOnTheFileItWasGivenOrTheEmbeddedNames) {
  testing::write_file(dir.file("few.txt"), "anna\nbob\ncarl\ndora\nemma\nfred\n");
  ASSERT_NO_FATAL_FAILURE(start("--data '" + dir.file("few.txt") + "'"));
  EXPECT_EQ(json::parse(client->Get("/api/data")->body)["file"], dir.file("few.txt"));
  int runs = 0;
  for (const char* data : {"file", "embedded"}) {
    const json request = {{"steps", 3}, {"data", data}, {"name", data}};
    ASSERT_TRUE(starts_run(*client, request.dump()));
    json start;  // this run's: the last start before its end
    for (const auto& [type, d] : events_until(server->port(), "finished", ++runs)) {
      if (type == "start") start = d;
    }
    EXPECT_EQ(start["data"], std::string(data) == "file" ? dir.file("few.txt") : "<embedded names>") << data;
    EXPECT_EQ(start["docs"], std::string(data) == "file" ? 6 : 8422) << data;
    while (json::parse(client->Get("/api/train")->body)["state"] != "idle") {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

// The page labels and colours tokens as the server tells it, and the server tells them as
// `microgpt embed` shows them: a text's space, tab and newline by name, capitals and
// accented letters in their classes (the page used to draw a space as nothing).
TEST_F(Serve, TellsEachTokensLabelAndClassAsEmbedShowsThem) {
  std::string text;
  for (int i = 0; i < 20; i++) text += "\u00c9l va, Ana!\tthe quick brown fox\n";
  testing::write_file(dir.file("book.txt"), text);
  ASSERT_NO_FATAL_FAILURE(start("--data '" + dir.file("book.txt") + "'"));
  ASSERT_TRUE(starts_run(*client, R"({"data": "file", "format": "text", "steps": 2, "block_size": 8, "name": "t"})"));
  json told;
  for (const auto& [type, d] : events_until(server->port(), "finished")) {
    if (type == "run") told = d;
  }
  ASSERT_TRUE(told.contains("labels")) << told;
  // The projector's labels file of `microgpt embed` (token_label, one a line).
  const testing::RunResult embed =
      testing::run_microgpt("embed --model '" + dir.file("t.safetensors") + "' --export '" + dir.file("p") + "'");
  ASSERT_EQ(embed.exit_code, 0) << embed.err;
  std::vector<std::string> labels;
  std::istringstream lines(read_file(dir.file("p_labels.tsv")));
  for (std::string line; std::getline(lines, line);) labels.push_back(line);
  EXPECT_EQ(told["labels"], json(labels));
  for (const char* shown : {"<space>", "\\t", "\\n", "\u00c9", "A"}) {
    EXPECT_NE(std::find(labels.begin(), labels.end(), shown), labels.end()) << shown;
  }
  // as many vowels and consonants as `microgpt embed` counts: 'a', 'e', 'i', 'o', 'u',
  // 'A' and '\u00c9'; b c f h k l n q r t v w x
  const auto count = [&](const char* c) { return std::count(told["classes"].begin(), told["classes"].end(), c); };
  EXPECT_EQ(count("vowel"), 7);
  EXPECT_EQ(count("consonant"), 13);
  EXPECT_NE(embed.out.find("within vowels"), std::string::npos) << embed.out;
  EXPECT_NE(embed.out.find("(" + std::to_string(count("vowel")) + " tokens)"), std::string::npos) << embed.out;
  EXPECT_NE(embed.out.find("(" + std::to_string(count("consonant")) + " tokens)"), std::string::npos) << embed.out;
  // The model the run wrote is the page's model now, with the same vocabulary.
  const json model = json::parse(client->Get("/api/model")->body);
  for (const char* key : {"vocab", "labels", "classes"}) EXPECT_EQ(model[key], told[key]) << key;
}

TEST_F(Serve, ARunFromThePageStopsWhenAskedAndOneRunsAtATime) {
  ASSERT_NO_FATAL_FAILURE(start());
  // inputs the model cannot have (model/inputs.h)
  std::filesystem::create_symlink(dir.file("err"), dir.file("linked.safetensors"));
  std::filesystem::create_directory(dir.file("folder.safetensors"));
  for (const char* inputs :
       {R"({"wte": "bogus"})", R"({"wpe": 3})", R"({"combine": "concat", "engine": "reference"})",
        // numbers that are not whole or too large, an empty preset, too many samples
        R"({"steps": 2.5})", R"({"steps": 1e308})", R"({"n_layer": 9223372036854775808})",
        R"({"snapshot_every": 1e308})", R"({"preset": ""})", R"({"num_samples": 1001})",
        // a checkpoint that is a link to a file outside the folder, or a folder
        R"({"name": "linked"})", R"({"name": "folder"})",
        // runs that cannot start: found as the run is prepared, before the answer
        R"({"format": "text", "steps": 5})", R"({"wte": "onehot", "steps": 5})", R"({"n_embd": 100000, "steps": 5})"}) {
    auto refused = client->Post("/api/train", inputs, "application/json");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << inputs << ": " << refused->body;
  }
  ASSERT_TRUE(starts_run(*client, R"({"steps": 1000000, "name": "long", "snapshot_every": 0})"));
  auto again = client->Post("/api/train", R"({"steps": 10})", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409);
  // (the run would write its model over one saved under its name)
  auto save = client->Post("/api/save", R"({"name": "long"})", "application/json");
  ASSERT_TRUE(save);
  EXPECT_EQ(save->status, 409) << save->body;
  auto bad = client->Post("/api/train", R"({"name": "../escape"})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto no_file = client->Post("/api/train", R"({"data": "file"})", "application/json");  // no --data given
  ASSERT_TRUE(no_file);
  EXPECT_EQ(no_file->status, 400);
  EXPECT_EQ(json::parse(client->Get("/api/data")->body)["file"], nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Paused, it takes no step; resumed, it goes on.
  EXPECT_EQ(json::parse(client->Post("/api/train/pause", "{}", "application/json")->body)["state"], "paused");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // (a step under way ends)
  auto steps_so_far = [&] { return json::parse(client->Get("/api/train")->body)["step"].get<int64_t>(); };
  const int64_t paused_at = steps_so_far();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(steps_so_far(), paused_at);
  EXPECT_EQ(json::parse(client->Post("/api/train/resume", "{}", "application/json")->body)["state"], "running");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(steps_so_far(), paused_at);
  EXPECT_EQ(json::parse(client->Post("/api/train/stop", "{}", "application/json")->body)["state"], "stopping");
  const auto events = events_until(server->port(), "finished");
  ASSERT_FALSE(events.empty());
  ASSERT_EQ(events.back().first, "finished");
  EXPECT_EQ(events.back().second["stopped"], true);
  const CheckpointData c = load_checkpoint(dir.file("long.safetensors"));
  EXPECT_EQ(c.step, events.back().second["step"].get<int64_t>());
  EXPECT_GT(c.step, 0);
  EXPECT_LT(c.step, 1000000);
}

// The lines of an application/x-ndjson answer.
std::vector<json> json_lines(const std::string& body) {
  std::vector<json> lines;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST_F(Serve, SamplesStreamAsTheyAreDrawn) {
  // A text model (windows of 16 characters of a pangram): its samples come character by
  // character, and whole they are what microgpt sample writes.
  std::string text;
  for (int i = 0; i < 40; i++) text += "the quick brown fox jumps over the lazy dog\n";
  testing::write_file(dir.file("text.txt"), text);
  const std::string text_model = dir.file("text.st");
  ASSERT_EQ(run_shell("'" + bin() + "' train --data '" + dir.file("text.txt") +
                      "' --format text --steps 5 --block-size 16 --num-samples 0 --out '" + text_model + "' >/dev/null"),
            0);
  ASSERT_NO_FATAL_FAILURE(start("--model '" + text_model + "'"));
  auto answer =
      client->Post("/api/sample/stream", R"({"num_samples": 2, "seed": 3, "max_len": 40})", "application/json");
  ASSERT_TRUE(answer);
  ASSERT_EQ(answer->status, 200) << answer->body;
  EXPECT_EQ(answer->get_header_value("Content-Type"), "application/x-ndjson");
  std::string streamed[3], whole[3];
  int pieces = 0;
  for (const json& line : json_lines(answer->body)) {
    const int i = line["sample"].get<int>();
    ASSERT_TRUE(i == 1 || i == 2) << line;
    if (line.contains("chars")) {
      streamed[i] += line["chars"].get<std::string>();
      pieces++;
    } else {
      whole[i] = line["text"].get<std::string>();
    }
  }
  EXPECT_GE(pieces, 2 * 39);  // a piece per character drawn
  const testing::RunResult cli =
      testing::run_microgpt("sample --model '" + text_model + "' --num-samples 2 --seed 3 --max-len 40");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ("--- sample 1 of 2 ---\n" + whole[1] + "\n--- sample 2 of 2 ---\n" + whole[2] + "\n", cli.out);
  EXPECT_EQ(streamed[1], whole[1]);
  EXPECT_EQ(streamed[2], whole[2]);
  // A bad request is refused before anything streams; one the model cannot read says so
  // in the stream.
  auto bad = client->Post("/api/sample/stream", R"({"seed": "x"})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  // and so is one the model cannot take (a prefix it cannot read, one longer than
  // max_len, too many samples)
  auto unreadable = client->Post("/api/sample/stream", R"({"prefix": "\u00e9\u00e9"})", "application/json");
  ASSERT_TRUE(unreadable);
  EXPECT_EQ(unreadable->status, 400);
  EXPECT_EQ(json::parse(unreadable->body)["error"], "--prefix: '\u00e9' is not in the model's vocabulary");
  for (const char* request : {R"({"prefix": "the", "max_len": 2})", R"({"num_samples": 100000000})"}) {
    auto refused = client->Post("/api/sample/stream", request, "application/json");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << request << ": " << refused->body;
  }
}

// Pages that close mid-stream do not disturb the server or the run; Ctrl-C during a run
// stops it cleanly, with its checkpoint, and the server exits 0.
TEST_F(Serve, ClosedPagesAndCtrlCDuringARunAreHandledCleanly) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(starts_run(*client, R"({"steps": 1000000, "name": "long", "snapshot_every": 1000})"));
  for (int i = 0; i < 5; i++) {
    const auto first = events_until(server->port(), "start");  // then hangs up, mid-stream
    ASSERT_FALSE(first.empty());
  }
  auto model = client->Get("/api/train");
  ASSERT_TRUE(model);
  EXPECT_EQ(json::parse(model->body)["state"], "running");
  int64_t step = 0;
  for (int i = 0; i < 100 && step == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    step = json::parse(client->Get("/api/train")->body)["step"].get<int64_t>();
  }
  ASSERT_GT(step, 0);
  ASSERT_EQ(::kill(server->pid(), SIGINT), 0);
  std::string code;
  for (int i = 0; i < 200 && code.empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    code = server->exit_code();
  }
  EXPECT_EQ(code, "0\n") << read_file(dir.file("err"));
  const CheckpointData c = load_checkpoint(dir.file("long.safetensors"));
  EXPECT_GE(c.step, step);
  EXPECT_LT(c.step, 1000000);
}

// Requests over 1 MB are refused; a server listening beyond this machine says who can
// reach it.
TEST_F(Serve, RefusesLargeRequestsAndWarnsWhenListeningWide) {
  ASSERT_NO_FATAL_FAILURE(start("--host 0.0.0.0"));
  EXPECT_NE(read_file(dir.file("err")).find("microgpt serve: warning: listening on 0.0.0.0: anyone who can reach port"),
            std::string::npos)
      << read_file(dir.file("err"));
  auto big = client->Post("/api/sample", std::string(2 << 20, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"], "the request is larger than 1048576 bytes");
  // curl -d sends a form-encoded body, which the HTTP library holds to 8192 bytes: the
  // error says so, and what to send instead
  const std::string text = json{{"text", std::string(9000, 'a')}}.dump();
  auto form = client->Post("/api/inspect", text, "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 413);
  EXPECT_NE(json::parse(form->body)["error"].get<std::string>().find("Content-Type: application/json"),
            std::string::npos)
      << form->body;
  auto as_json = client->Post("/api/inspect", text, "application/json");
  ASSERT_TRUE(as_json);
  EXPECT_EQ(as_json->status, 404) << as_json->body;  // (read: there is no model to inspect with)
}

// A body sent in chunks has no length to hold to the limit before it is read: refused
// (411) before it is read, and the server answers the next request as ever.
TEST_F(Serve, RefusesABodySentInChunks) {
  std::signal(SIGPIPE, SIG_IGN);  // (the client may write on after the server closed)
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string big(3 << 20, 'a');
  auto chunked = client->Post(
      "/api/inspect",
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset < big.size()) {
          sink.write(big.data() + offset, std::min<size_t>(1 << 16, big.size() - offset));
        } else {
          sink.done();
        }
        return true;
      },
      "application/json");
  if (chunked) {  // (the server may close the connection before the client finished sending)
    EXPECT_EQ(chunked->status, 411);
    EXPECT_NE(json::parse(chunked->body)["error"].get<std::string>().find("Content-Length"), std::string::npos);
  }
  httplib::Client fresh("127.0.0.1", server->port());
  auto model = fresh.Get("/api/model");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->status, 200);
}

// A snapshots file beside a model that is not a plain file (a pipe would hold the server
// forever, a link could lead out of its folder) is not read: the load is answered, the
// event stream says why there is no history, and the server still stops on Ctrl-C.
TEST_F(Serve, ReadsAHistoryOnlyFromAPlainFile) {
  std::filesystem::copy_file(model_path(), dir.file("piped.safetensors"));
  ASSERT_EQ(::mkfifo(dir.file("piped.snapshots.jsonl").c_str(), 0600), 0);
  std::filesystem::copy_file(model_path(), dir.file("linked.safetensors"));
  std::filesystem::create_symlink("/etc/hostname", dir.file("linked.snapshots.jsonl"));
  ASSERT_NO_FATAL_FAILURE(start("--model piped.safetensors"));
  client->set_read_timeout(10, 0);
  auto load = client->Post("/api/load", R"({"name": "linked"})", "application/json");
  ASSERT_TRUE(load);
  EXPECT_EQ(load->status, 200) << load->body;
  std::string events;
  httplib::Client watcher("127.0.0.1", server->port());
  watcher.Get("/api/events", [&](const char* data, size_t n) {
    events.append(data, n);
    return testing::count_occurrences(events, "is not a plain file") < 2;
  });
  EXPECT_EQ(testing::count_occurrences(events, "is not a plain file"), 2u) << events;
  EXPECT_EQ(events.find("snapshot\n"), std::string::npos) << "a history was read";
  ASSERT_EQ(::kill(server->pid(), SIGTERM), 0);
  std::string code;
  for (int i = 0; i < 100 && code.empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    code = server->exit_code();
  }
  EXPECT_EQ(code, "0\n");
}

// The folder must be there, and a folder; the data a plain file that can be read.
TEST(ServeStart, RefusesAnOutDirThatIsNoFolderAndDataThatCannotBeRead) {
  TempDir dir;
  testing::write_file(dir.file("file"), "x");
  for (const std::string& out_dir : {dir.file("none"), dir.file("file")}) {
    const auto r = testing::run_microgpt("serve --port 0 --out-dir '" + out_dir + "'");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("--out-dir"), std::string::npos) << r.err;
  }
  ASSERT_EQ(::mkfifo(dir.file("pipe").c_str(), 0600), 0);
  for (const std::string& data : {dir.file("none.txt"), dir.file("pipe"), dir.path()}) {
    const auto r = testing::run_microgpt("serve --port 0 --out-dir '" + dir.path() + "' --data '" + data + "'", "", 10);
    EXPECT_EQ(r.exit_code, 1) << data << ": " << r.out << r.err;
    EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("cannot read data file"), std::string::npos) << r.err;
  }
}

// A POST with no body and no Content-Length (what `curl -X POST URL` sends) has an empty
// body: it is answered at once, not after the library's read timed out (5 s) with a 400.
TEST_F(Serve, APostWithoutABodyIsAnsweredAtOnce) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string request = "POST /api/train/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  const int fd = connected_socket(server->port(), 2);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string answer;
  char data[4096];
  for (ssize_t n; (n = ::recv(fd, data, sizeof data, 0)) > 0;) answer.append(data, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find(R"({"state":"idle","step":0})"), std::string::npos) << answer;
}

// An event stream holds one of the server's threads while the page is open: pages never
// take them all (at most 48 streams; the 49th is refused with 503), and the API answers
// whatever the pages hold.
TEST_F(Serve, PagesWatchingNeverTakeEveryThread) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto open_stream = [&] {
    const std::string request = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    const int fd = connected_socket(server->port(), 10);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    return fd;
  };
  auto status_line = [](int fd) {
    std::string got;
    char c;
    while (got.find("\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) got += c;
    return got;
  };
  std::vector<int> streams;
  for (int i = 0; i < 48; i++) {
    streams.push_back(open_stream());
    ASSERT_EQ(status_line(streams.back()), "HTTP/1.1 200 OK\r\n") << i;
  }
  auto answer = client->Get("/api/train");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200);
  const int refused = open_stream();
  EXPECT_EQ(status_line(refused), "HTTP/1.1 503 Service Unavailable\r\n");
  ::close(refused);
  for (const int fd : streams) ::close(fd);
  // a stream ends once its page has gone (within half a second), and frees its place
  bool reopened = false;
  for (int tries = 0; tries < 50 && !reopened; tries++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int fd = open_stream();
    reopened = status_line(fd) == "HTTP/1.1 200 OK\r\n";
    ::close(fd);
  }
  EXPECT_TRUE(reopened);
}

TEST_F(Serve, ABadModelOrPortIsOneLine) {
  testing::RunResult r = testing::run_microgpt("serve --model nowhere.st --port 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("nowhere.st"), std::string::npos) << r.err;
  r = testing::run_microgpt("serve --port 70000");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(testing::count_lines(r.err), 1) << r.err;
}

}  // namespace
}  // namespace microgpt
