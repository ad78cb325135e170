// The `microgpt` executable: parses the command line (cli/command_line.h) and runs the
// command. Every error is one line on stderr, with exit code 2 for usage errors and 1
// for everything else; nothing ends in an abort or a stack trace. Compiled a second time
// with MICROGPT_WITH_SERVER as microgpt-serve, the one that runs `serve` (the other
// starts it in its place).
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "core/error.h"
#include "core/text.h"
#include "serve/serve.h"
#include "train/commands.h"
#include "train/process_group.h"
#include "train/run.h"

namespace {

// The processes of a run that mpirun started (none otherwise): an error then ends them all.
std::unique_ptr<microgpt::ProcessGroup> group;

#ifndef MICROGPT_WITH_SERVER
// `microgpt serve` is the executable microgpt-serve beside this one (src/serve/serve.h
// says why), started in this process's place with the same arguments.
[[noreturn]] void start_server(char** argv) {
  std::string self(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
  std::string server = "microgpt-serve";
  if (n > 0) {
    self.resize(static_cast<size_t>(n));
    server = self.substr(0, self.rfind('/') + 1) + server;
  }
  std::cout.flush();
  ::execv(server.c_str(), argv);
  throw microgpt::Error("this microgpt has no web server: '" + server + "' " +
                        (errno == ENOENT ? "is not there" : std::string("cannot start: ") + std::strerror(errno)) +
                        " (a build makes it when libcpp-httplib-dev is installed: make build installs it)");
}
#endif

int run(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  microgpt::CommandLine cl = microgpt::parse_command_line(args, std::cout, std::cerr);
  using Command = microgpt::CommandLine::Command;
  switch (cl.command) {
    case Command::none:
      return cl.exit_code;
    case Command::train: {
      microgpt::TrainOptions& o = cl.train;
      // A live status line on stderr when it is a terminal, plain lines every few seconds
      // otherwise. When stdout is the same terminal, its per-step lines would scroll the
      // status away, so only the last step's line is printed there (microgpt.py's
      // print(..., end='\r') also leaves one line on screen).
      const bool err_tty = ::isatty(STDERR_FILENO) == 1;
      o.interactive = err_tty && ::isatty(STDOUT_FILENO) == 1;
      o.progress = &std::cerr;
      o.progress_mode = err_tty ? microgpt::Progress::Mode::live : microgpt::Progress::Mode::periodic;
      // MPI starts only when mpirun started this process with others.
      if (microgpt::launched_process_count() > 1) {
        group = microgpt::join_launched_group();
        o.group = group.get();
      }
      microgpt::run_training(o, std::cout);
      group.reset();  // MPI ends with the run
      return 0;
    }
    case Command::sample:
      microgpt::run_sample(cl.sample, std::cout);
      return 0;
    case Command::eval:
      microgpt::run_eval(cl.eval, std::cout);
      return 0;
    case Command::embed:
      microgpt::run_embed(cl.embed, std::cout);
      return 0;
    case Command::compare:
      microgpt::run_compare(cl.compare, std::cout, &std::cerr);
      return 0;
    case Command::serve:
#ifdef MICROGPT_WITH_SERVER
      microgpt::run_serve(cl.serve, std::cout);
#else
      start_server(argv);
#endif
      return 0;
  }
  return 0;
}

// Everything printed on stdout must have got there: a full disk or a closed file is an
// error, not a silent exit 0.
void check_stdout() {
  if (std::cout) {
    errno = 0;  // what the flush sets; a stream that failed earlier keeps that failure's errno
    std::cout.flush();
  }
  if (!std::cout) {
    throw microgpt::Error(std::string("cannot write the standard output") + (errno ? std::string(": ") + std::strerror(errno) : ""));
  }
}

int fail(const std::string& message, int code) {
  std::cout.flush();
  if (group) {
    // One process's own failure, while the others may wait for it: the job ends.
    std::cerr << "microgpt: error: rank " << group->rank() << " of " << group->size() << ": "
              << microgpt::one_line(message) << "\n"
              << std::flush;
    group->abort(code);
  }
  std::cerr << "microgpt: error: " << microgpt::one_line(message) << "\n";
  return code;
}

// An error every process raised together: rank 0 says it once and all end normally.
int fail_together(const microgpt::GroupError& e) {
  std::cout.flush();
  if (group ? group->leader() : microgpt::launched_rank() == 0) {
    std::cerr << "microgpt: error: " << microgpt::one_line(e.what()) << "\n" << std::flush;
  }
  group.reset();
  return e.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported as an error
  // like any other, instead of killing the process in the middle of a checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    const int code = run(argc, argv);
    check_stdout();
    return code;
  } catch (const microgpt::GroupError& e) {
    return fail_together(e);
  } catch (const microgpt::Error& e) {
    return fail(e.what(), e.exit_code());
  } catch (const std::bad_alloc&) {
    return fail("out of memory", 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
