// `microgpt serve` (src/serve): the JSON API answered as the command-line tool answers
// (the same names as `microgpt sample` for the same seed), its errors, and the server
// itself over HTTP: the page and its files, nothing fetched from elsewhere, Ctrl-C.
#include <httplib.h>

#include <csignal>
#include <string>

#include "serve/api.h"
#include "test_support.h"

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
    EXPECT_EQ(run_shell("'" + bin() + "' train --steps 60 --batch-size 4 --num-samples 0 --out '" + p + "' >/dev/null"), 0);
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
  try {
    host.sample({{"prefix", "Q!"}});
  } catch (const ApiError& e) {
    EXPECT_EQ(std::string(e.what()), "--prefix: 'Q', '!' are not in the model's vocabulary");
  }
}

// The server, started as a user starts it, on a free port it prints.
TEST(Serve, AnswersOverHttpAndStopsOnCtrlC) {
  TempDir dir;
  const std::string script = "cd '" + dir.path() + "' && ('" + bin() + "' serve --model '" + model_path() +
                             "' --port 0 >out 2>err & echo $! > pid; wait $!; echo $? > code) >/dev/null 2>&1 &";
  ASSERT_EQ(run_shell(script), 0);
  // Whatever happens below, the server does not outlive the test.
  struct Stop {
    const TempDir& dir;
    ~Stop() {
      const std::string pid = read_file(dir.file("pid"));
      if (!pid.empty() && read_file(dir.file("code")).empty()) ::kill(std::stoi(pid), SIGKILL);  // still running
    }
  } stop{dir};
  // "microgpt serve: http://127.0.0.1:PORT/ ..."
  const std::string where = "http://127.0.0.1:";
  std::string out;
  for (int i = 0; i < 200 && out.find("/ (") == std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    out = read_file(dir.file("out"));
  }
  const size_t at = out.find(where);
  ASSERT_NE(at, std::string::npos) << out << read_file(dir.file("err"));
  httplib::Client client("127.0.0.1", std::stoi(out.substr(at + where.size())));

  auto model = client.Get("/api/model");
  ASSERT_TRUE(model);
  EXPECT_EQ(model->status, 200);
  EXPECT_EQ(model->get_header_value("Content-Type"), "application/json; charset=utf-8");
  EXPECT_EQ(json::parse(model->body)["num_params"], 4224);

  auto sample = client.Post("/api/sample", R"({"num_samples": 5, "seed": 7})", "application/json");
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->status, 200);
  ModelHost host(1);
  host.load(model_path());
  EXPECT_EQ(json::parse(sample->body), host.sample({{"num_samples", 5}, {"seed", 7}}));

  auto bad = client.Post("/api/sample", "{not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(json::parse(bad->body).contains("error"));
  auto missing = client.Get("/api/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"], "no such page: GET /api/nothing");

  // The page and its two files, which load nothing from anywhere else.
  for (const char* path : {"/", "/app.js", "/style.css"}) {
    auto page = client.Get(path);
    ASSERT_TRUE(page) << path;
    EXPECT_EQ(page->status, 200) << path;
    EXPECT_FALSE(page->body.empty()) << path;
    EXPECT_EQ(page->body.find("http://"), std::string::npos) << path;
    EXPECT_EQ(page->body.find("https://"), std::string::npos) << path;
  }
  EXPECT_NE(client.Get("/")->body.find("<script src=\"/app.js\">"), std::string::npos);

  // Ctrl-C: the server stops and exits 0.
  const int pid = std::stoi(read_file(dir.file("pid")));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  std::string code;
  for (int i = 0; i < 100 && code.empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    code = read_file(dir.file("code"));
  }
  EXPECT_EQ(code, "0\n") << read_file(dir.file("err"));
}

TEST(Serve, ABadModelOrPortIsOneLine) {
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
