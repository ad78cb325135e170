// Helpers shared by the tests: where the optional shared data (names.txt; the CMake cache
// variable MICROGPT_SHARED_DIR, ../shared by default) and the test data live, skipping
// (or failing, under CI) when the shared data is absent, running the built binary,
// reading JSON-lines logs.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fast/kernels.h"

namespace microgpt::testing {

// Why the gpu engine cannot run here ("" when it can: a CUDA build on a machine with a
// GPU). Its tests skip, printing this.
inline std::string gpu_unavailable() {
  try {
    gpu_kernels();
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

inline std::string shared_dir() { return MICROGPT_SHARED_DIR; }
inline std::string test_data(const std::string& name) { return std::string(MICROGPT_TEST_DATA) + "/" + name; }

// Use as: REQUIRE_SHARED_FILE(path); skips with a reason when the shared data is absent,
// but fails when CI is set, where it must be there.
#define REQUIRE_SHARED_FILE(path)                                                         \
  do {                                                                                    \
    if (!std::filesystem::exists(path)) {                                                 \
      if (std::getenv("CI")) FAIL() << "CI is set but " << (path) << " is missing";      \
      GTEST_SKIP() << "skipped: " << (path) << " not found (no shared data; see MICROGPT_SHARED_DIR in the README)"; \
    }                                                                                     \
  } while (0)

// A fresh temporary directory, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "microgpt-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The binary the command-line tests run: this build's, or the one the environment
// variable MICROGPT_TEST_BINARY names (to show that a test fails on an older build).
inline std::string microgpt_binary() {
  const char* other = std::getenv("MICROGPT_TEST_BINARY");
  return other && *other ? other : MICROGPT_BINARY;
}

// Runs `command` with /bin/sh and returns its exit code as a shell reports it (128 + the
// signal for one killed by a signal). With `seconds` > 0 it is killed, with everything it
// started, after that long, and the code is 124: for tests of what used to hang.
inline int run_shell(const std::string& command, int seconds = 0) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, seconds > 0 ? WNOHANG : 0);
    if (done == pid) break;
    if (done < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return 124;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs the microgpt binary with `args` (already shell-quoted where needed), in a fresh
// temporary folder (so the default checkpoint, model.safetensors, lands there), or in
// `cwd` when given; killed after `seconds` when that is above 0 (exit code 124).
inline RunResult run_microgpt(const std::string& args, const std::string& cwd = "", int seconds = 0) {
  TempDir dir;
  const std::string cmd = "cd '" + (cwd.empty() ? dir.path() : cwd) + "' && exec '" + microgpt_binary() + "' " + args +
                          " >'" + dir.file("out") + "' 2>'" + dir.file("err") + "'";
  RunResult r;
  r.exit_code = run_shell(cmd, seconds);
  r.out = read_file(dir.file("out"));
  r.err = read_file(dir.file("err"));
  return r;
}

// ru_maxrss in bytes: Linux counts it in kilobytes, macOS in bytes.
inline double maxrss_bytes(long ru_maxrss) {
#if defined(__APPLE__)
  return static_cast<double>(ru_maxrss);
#else
  return static_cast<double>(ru_maxrss) * 1024.0;
#endif
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// How many times `what` occurs in `s` (not overlapping).
inline size_t count_occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) n++;
  return n;
}

}  // namespace microgpt::testing
