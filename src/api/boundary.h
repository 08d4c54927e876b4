// The library boundary: every public function runs its body through guarded(), so that whatever
// goes wrong leaves it as one gptq::Error with a one-line message and the exit-code class the
// CLI reports (filesystem errors -> kIo, out of memory, anything else -> kInternal).
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include "gptq/error.h"

namespace gptq::api {

// The message on one line: line breaks become spaces, other control characters \xNN (names read
// from files may hold them).
std::string one_line(std::string_view s);

// The exception being handled (call inside a catch block) as a gptq::Error.
Error current_error();

template <class F>
auto guarded(F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (...) {
    throw current_error();
  }
}

}  // namespace gptq::api
