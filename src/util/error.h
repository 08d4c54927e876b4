// Error type of the whole library. Code throws gptq::Error with enough context (file, tensor,
// option, what was expected, what to do); the CLI catches it once and maps it to an exit code.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gptq {

// Process exit codes, documented in the README ("Exit codes").
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,     // a bug or an unexpected system failure
  kUsage = 2,        // bad command line or option value
  kBadInput = 3,     // damaged or unsupported model / checkpoint / tokenizer / data file
  kIo = 4,           // cannot read or write (missing file, full disk, read-only output)
  kNumerical = 5,    // numerical failure (NaN, Cholesky failure without escalation)
  kInterrupted = 6,  // stopped by a signal; resumable with --resume
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ExitCode code = ExitCode::kBadInput)
      : std::runtime_error(std::move(message)), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Convenience: throw gptq::Error with an fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
[[noreturn]] void fail_code(ExitCode code, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...), code);
}

}  // namespace gptq
