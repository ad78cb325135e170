// libFuzzer target: parsing the command line. The input is the arguments after the
// program name, one per line ('\n' separates them, so an argument never holds one).
// parse_command_line runs nothing and reports every problem on its `err` stream, so
// any exception that escapes it is a bug, and so is an outcome that breaks its
// contract (a failed check traps, so libFuzzer keeps the input): a command to run
// comes with exit code 0 and no error text; nothing to run comes with exit code 0
// (help, version) or 2 (a usage error, with its message on `err`).
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command_line.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace microgpt;
  std::vector<std::string> args;
  const std::string text(reinterpret_cast<const char*>(data), size);
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    args.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  std::ostringstream out, err;
  const CommandLine cl = parse_command_line(args, out, err);
  if (cl.command == CommandLine::Command::none) {
    check(cl.exit_code == 0 || cl.exit_code == 2);
    if (cl.exit_code == 2) check(!err.str().empty() && err.str().back() == '\n');
  } else {
    check(cl.exit_code == 0 && err.str().empty());
  }
  return 0;
}
