// `microgpt serve`: a local web server with a page to watch and use a model (web/), and
// the small JSON API the page is built on (README "Watch it in the browser").
//
// The server is its own executable, microgpt-serve, which `microgpt serve` starts in its
// place: it links the HTTP library (cpp-httplib, with OpenSSL and Brotli behind it),
// whose loading every other command would otherwise pay for at start.
//
//   api.h      the API as functions from JSON requests to JSON answers (no HTTP)
//   server.cpp the HTTP routes, the embedded page, the signals that stop it
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace microgpt {

struct ServeCommand {
  std::optional<std::string> model_path;  // a checkpoint to load at start
  std::optional<std::string> data_path;   // data to train on from the page (default: the embedded names)
  int64_t port = 8000;                    // 0: any free port
  std::string host = "127.0.0.1";
  std::string out_dir = ".";              // where the page saves checkpoints, and loads them from
  int64_t threads = 1;
};

// Serves until SIGINT or SIGTERM. Prints the address on `out` once it listens (with the
// port it got, when asked for port 0). Throws Error when the model cannot be loaded or
// the address cannot be bound.
void run_serve(const ServeCommand& command, std::ostream& out);

}  // namespace microgpt
