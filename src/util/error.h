// Throwing the library's error type (include/gptq/error.h). Code throws gptq::Error with enough
// context (file, tensor, option, what was expected, what to do); the API boundary (src/api)
// turns every other exception into one, and its callers (the CLI, the Python module) catch it
// once.
#pragma once

#include <fmt/format.h>

#include <string>

#include "gptq/error.h"

namespace gptq {

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
