#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <ostream>
#include <string_view>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"
#include "serve/api.h"
#include "serve/serve.h"
#include "serve/trainer.h"
#include "train/presets.h"

namespace microgpt {

// The page, compiled in from web/ (src/CMakeLists.txt): nothing is fetched from elsewhere.
std::string_view web_index_html();
std::string_view web_app_js();
std::string_view web_style_css();

namespace {

using nlohmann::json;

constexpr size_t kMaxRequestBytes = 1 << 20;
// The least time between two writes of the event stream (see /api/events): the page
// draws once a write, so this is also its pace, five and a half frames a second.
constexpr std::chrono::milliseconds kEventPause{180};
// The most an event stream's write holds (but one event larger than this), so that a
// reload of a long history (hundreds of MB of snapshots) is not one string and its copy.
constexpr size_t kWriteBytes = size_t{1} << 23;
// The server's threads, and how many of them event streams may hold at once.
constexpr size_t kServerThreads = 64;
constexpr int64_t kMaxEventStreams = 48;

std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested = true; }

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json; charset=utf-8");
}

// Runs an API call, answering its JSON or its error as {"error": "..."}.
template <class Fn>
void api(httplib::Response& res, Fn&& fn) {
  try {
    reply(res, 200, fn());
  } catch (const ApiError& e) {
    reply(res, e.status(), json{{"error", e.what()}});
  } catch (const json::exception& e) {
    reply(res, 400, json{{"error", std::string("the request is not valid JSON: ") + e.what()}});
  } catch (const std::exception& e) {
    reply(res, 500, json{{"error", one_line(e.what())}});
  }
}

json body_of(const httplib::Request& req) { return req.body.empty() ? json::object() : json::parse(req.body); }

}  // namespace

void run_serve(const ServeCommand& cmd, std::ostream& out) {
  std::error_code ec;
  if (!std::filesystem::is_directory(cmd.out_dir, ec)) {
    throw usage_error("--out-dir '" + cmd.out_dir +
                      "': " + (std::filesystem::exists(cmd.out_dir, ec) ? "not a folder" : "no such folder"));
  }
  // The data is read as each run starts (its format is the run's); whether it can be read
  // at all is told now, not at the first run.
  if (cmd.data_path) ::close(open_input(*cmd.data_path, "data file", 0).fd);
  ModelHost host(cmd.threads);
  if (cmd.model_path) host.load(*cmd.model_path);

  httplib::Server server;
  // Each page that watches holds a thread of the server for its event stream: enough of
  // them, and a limit on the streams (kMaxEventStreams), so that pages never take every
  // thread and leave none to answer (the library's default is 8 threads).
  server.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  std::atomic<int64_t> streams{0};
  // Requests are small JSON objects: anything over 1 MB is refused (413).
  server.set_payload_max_length(kMaxRequestBytes);
  auto page = [](std::string_view content, const char* type) {
    return [content, type](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(content), type);
    };
  };
  server.Get("/", page(web_index_html(), "text/html; charset=utf-8"));
  server.Get("/app.js", page(web_app_js(), "text/javascript; charset=utf-8"));
  server.Get("/style.css", page(web_style_css(), "text/css; charset=utf-8"));
  server.Get("/api/presets", [&](const httplib::Request&, httplib::Response& res) {
    api(res, [&] {
      json all = json::array();
      for (const Preset& p : presets()) all.push_back({{"name", p.name}, {"description", p.description}});
      return json{{"presets", all}};
    });
  });
  server.Get("/api/data", [&](const httplib::Request&, httplib::Response& res) {
    api(res, [&] { return json{{"file", cmd.data_path ? json(*cmd.data_path) : json(nullptr)}}; });
  });
  server.Get("/api/model", [&](const httplib::Request&, httplib::Response& res) { api(res, [&] { return host.model(); }); });
  server.Post("/api/sample", [&](const httplib::Request& req, httplib::Response& res) {
    api(res, [&] { return host.sample(body_of(req)); });
  });
  server.Post("/api/sample/stream", [&](const httplib::Request& req, httplib::Response& res) {
    SampleCommand command;
    try {
      command = host.sample_command(body_of(req));
      host.check_sample(command);  // (refused before the answer's 200 goes out)
    } catch (...) {
      return api(res, [&]() -> json { throw; });  // the request's own error, as JSON
    }
    res.set_chunked_content_provider("application/x-ndjson", [&host, command](size_t, httplib::DataSink& sink) {
      auto emit = [&](const json& line) {
        const std::string text = line.dump() + "\n";
        if (!sink.write(text.data(), text.size())) throw std::runtime_error("the page went away");
      };
      try {
        host.sample_stream(command, emit);
      } catch (const ApiError& e) {
        const std::string text = json{{"error", e.what()}}.dump() + "\n";
        sink.write(text.data(), text.size());
      } catch (const std::exception&) {
        return false;  // the connection is gone
      }
      sink.done();
      return true;
    });
  });
  server.Post("/api/inspect", [&](const httplib::Request& req, httplib::Response& res) {
    api(res, [&] { return host.inspect(body_of(req)); });
  });
  server.Get("/api/checkpoints", [&](const httplib::Request&, httplib::Response& res) {
    api(res, [&] { return ModelHost::checkpoints(cmd.out_dir); });
  });
  Trainer trainer(cmd, host);
  server.Post("/api/save", [&](const httplib::Request& req, httplib::Response& res) {
    api(res, [&] {
      return host.save(cmd.out_dir, body_of(req), [&](const std::string& path) { return trainer.writing(path); });
    });
  });
  if (cmd.model_path) trainer.tell_history(*cmd.model_path);
  server.Post("/api/load", [&](const httplib::Request& req, httplib::Response& res) {
    api(res, [&] {
      json answer = host.load_named(cmd.out_dir, body_of(req));
      trainer.tell_history(answer["path"].get<std::string>());
      return answer;
    });
  });
  auto post = [&](const char* path, auto call) {
    server.Post(path, [&, call](const httplib::Request& req, httplib::Response& res) {
      api(res, [&] { return call(body_of(req)); });
    });
  };
  post("/api/train", [&](const json& r) { return trainer.start(r); });
  post("/api/train/stop", [&](const json&) { return trainer.stop(); });
  post("/api/train/pause", [&](const json&) { return trainer.pause(); });
  post("/api/train/resume", [&](const json&) { return trainer.resume(); });
  server.Get("/api/train", [&](const httplib::Request&, httplib::Response& res) { api(res, [&] { return trainer.state(); }); });
  // Server-Sent Events: every event of every run from the first, then new ones as they
  // come, until the page goes or the server stops. What comes within kEventPause of the
  // last write waits and goes out with what follows, in one write: each write wakes the
  // browser, which costs it about 3 ms of CPU whatever the size (measured in headless
  // chromium), and a run sends a batch of steps and a snapshot many times a second.
  // With ?snapshots=float32, snapshots come in their compact form (compact_snapshot).
  server.Get("/api/events", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string form = req.has_param("snapshots") ? req.get_param_value("snapshots") : "decimal";
    if (form != "decimal" && form != "float32") {
      reply(res, 400, json{{"error", "'snapshots' is 'decimal' or 'float32', not '" + one_line(form) + "'"}});
      return;
    }
    const bool compact = form == "float32";
    if (streams.fetch_add(1) >= kMaxEventStreams) {
      streams.fetch_sub(1);
      reply(res, 503,
            json{{"error",
                  "too many pages are watching (" + std::to_string(kMaxEventStreams) + " event streams): close some"}});
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    auto next = std::make_shared<size_t>(0);
    auto written = std::make_shared<std::chrono::steady_clock::time_point>();
    res.set_chunked_content_provider(
        "text/event-stream",
        [&trainer, next, written, compact](size_t, httplib::DataSink& sink) {
          EventLog::Events events = trainer.events().after(*next, std::chrono::milliseconds(500), compact);
          if (events.count > 0 && std::chrono::steady_clock::now() < *written + kEventPause) {
            std::this_thread::sleep_until(*written + kEventPause);
            events = trainer.events().after(*next, std::chrono::milliseconds(0), compact);  // with what came meanwhile
          }
          if (trainer.events().closed()) {
            sink.done();
            return true;
          }
          if (events.count > 0) {
            // (one write, one HTTP chunk; but a page that reloads a long history is sent
            // it in writes of about kWriteBytes, rather than in one copy of it all)
            std::string out;
            for (size_t i = 0; i < events.texts.size(); i++) {
              out += events.texts[i];
              if (out.size() < kWriteBytes && i + 1 < events.texts.size()) continue;
              if (!sink.write(out.data(), out.size())) return false;
              out.clear();
            }
            *next += events.count;
            *written = std::chrono::steady_clock::now();
          }
          return sink.is_writable();
        },
        [&streams](bool) { streams.fetch_sub(1); });  // (when the stream ends, however)
  });
  // A POST with no body and no Content-Length (curl -X POST .../api/train/stop) has an
  // empty body, as HTTP/1.1 says; the library would wait for one until its read timed
  // out (5 s) and then answer 400. Told so before it reads.
  // A body sent in chunks (Transfer-Encoding: chunked) is refused before it is read: the
  // library holds only a body with a Content-Length to set_payload_max_length, and would
  // read a chunked one of any size into memory.
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.has_header("Transfer-Encoding")) {
      reply(res, 411,
            json{{"error", "send the request with a Content-Length (of at most " + std::to_string(kMaxRequestBytes) +
                               " bytes), not in chunks"}});
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method == "POST" && !req.has_header("Content-Length")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");  // (the library's own request)
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      // (the HTTP library holds a form-encoded body, curl -d's, to 8192 bytes)
      const bool form = req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded");
      reply(res, 413,
            json{{"error", form ? "a form-encoded request is at most 8192 bytes: send it as JSON (curl: -H "
                                  "'Content-Type: application/json')"
                                : "the request is larger than " + std::to_string(kMaxRequestBytes) + " bytes"}});
    } else {
      reply(res, res.status, json{{"error", "no such page: " + req.method + " " + req.path}});
    }
  });

  int port = static_cast<int>(cmd.port);
  if (port == 0) {
    port = server.bind_to_any_port(cmd.host);
  } else if (!server.bind_to_port(cmd.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error("cannot listen on " + cmd.host + ":" + std::to_string(cmd.port) +
                " (is another server there? choose another --port)");
  }
  out << "microgpt serve: http://" << cmd.host << ":" << port << "/ (Ctrl-C stops it)" << std::endl;
  if (cmd.host != "127.0.0.1" && cmd.host != "localhost" && cmd.host != "::1") {
    std::cerr << "microgpt serve: warning: listening on " << cmd.host << ": anyone who can reach port " << port
              << " can train, read and write models in '" << cmd.out_dir << "'" << std::endl;
  }

  // Ctrl-C or SIGTERM: the listening loop is stopped from a thread, not from the handler.
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  std::thread watcher([&] {
    while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    trainer.events().close();  // ends the event streams, so that the server can stop
    server.stop();
  });
  const bool listened = server.listen_after_bind();
  const bool asked = stop_requested.exchange(true);  // (ends the watcher either way)
  watcher.join();
  if (!listened && !asked) throw Error("the server stopped listening");
}

}  // namespace microgpt
