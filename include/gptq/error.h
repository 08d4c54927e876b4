// The errors of the gptq.cpp library: every public function throws gptq::Error, whose message
// says what went wrong and what to do (file, tensor, option, what was expected), and whose code
// is the class of failure: the `gptq` command's exit code (README "Exit codes").
#pragma once

#include <stdexcept>
#include <string>

namespace gptq {

enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,     // a bug or an unexpected system failure
  kUsage = 2,        // bad option value (or command line), or an output that exists
  kBadInput = 3,     // damaged or unsupported model / checkpoint / tokenizer / data file
  kIo = 4,           // cannot read or write (missing file, full disk, read-only output)
  kNumerical = 5,    // numerical failure (NaN, Cholesky failure without escalation)
  kInterrupted = 6,  // cancelled (a callback returned false, a signal); resumable
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ExitCode code = ExitCode::kBadInput)
      : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// "ok", "internal", "usage", "bad_input", "io", "numerical", "interrupted".
inline const char* exit_code_name(ExitCode code) {
  switch (code) {
    case ExitCode::kOk:
      return "ok";
    case ExitCode::kInternal:
      return "internal";
    case ExitCode::kUsage:
      return "usage";
    case ExitCode::kBadInput:
      return "bad_input";
    case ExitCode::kIo:
      return "io";
    case ExitCode::kNumerical:
      return "numerical";
    case ExitCode::kInterrupted:
      return "interrupted";
  }
  return "internal";
}

}  // namespace gptq
