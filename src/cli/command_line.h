// The `microgpt` command line: commands train (the default), sample, eval, embed, serve and compare,
// parsed with CLI11 into the options of the drivers in src/train. Parsing has no side
// effects beyond writing help, version or error text to the given streams, so tests
// and the fuzzer can run it on any arguments.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "serve/serve.h"
#include "train/compare.h"
#include "train/commands.h"
#include "train/run.h"

namespace microgpt {

struct CommandLine {
  enum class Command { none, train, sample, eval, embed, serve, compare };
  Command command = Command::none;  // none: nothing to run; exit with exit_code
  int exit_code = 0;                // 0 after --help or --version, 2 after a usage error
  TrainOptions train;
  SampleCommand sample;
  EvalCommand eval;
  EmbedCommand embed;
  ServeCommand serve;
  CompareCommand compare;
};

// args: the arguments after the program name. Usage errors are written to `err` as one
// line; --help and --version to `out`.
CommandLine parse_command_line(std::vector<std::string> args, std::ostream& out, std::ostream& err);

}  // namespace microgpt
