// The one error type of microgpt. Library code throws it with what failed, where
// (file, flag, line) and what was expected; only main() turns it into a message and
// an exit code. Nothing in the library calls exit() or abort() on user input.
#pragma once

#include <stdexcept>
#include <string>

namespace microgpt {

class Error : public std::runtime_error {
 public:
  enum class Kind {
    usage,    // the command line asked for something impossible: exit code 2
    runtime,  // a file, the data or the machine failed us: exit code 1
  };
  explicit Error(const std::string& what, Kind kind = Kind::runtime)
      : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }
  int exit_code() const { return kind_ == Kind::usage ? 2 : 1; }

 private:
  Kind kind_;
};

// A usage error: a bad flag value or an impossible combination of flags.
inline Error usage_error(const std::string& what) { return Error(what, Error::Kind::usage); }

}  // namespace microgpt
