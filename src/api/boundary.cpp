#include "api/boundary.h"

#include <fmt/core.h>

#include <filesystem>
#include <new>

namespace gptq::api {

std::string one_line(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\n')
      out += out.empty() || out.back() == ' ' ? "" : " ";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

Error current_error() {
  try {
    throw;
  } catch (const Error& e) {
    return Error(one_line(e.what()), e.code());
  } catch (const std::filesystem::filesystem_error& e) {
    return Error(one_line(e.what()) + "; check the path, its permissions and the free disk space",
                 ExitCode::kIo);
  } catch (const std::bad_alloc&) {
    return Error("out of memory; use a smaller --nsamples/--seqlen or a machine with more RAM",
                 ExitCode::kInternal);
  } catch (const std::exception& e) {
    return Error("internal: " + one_line(e.what()) + " (please report this)", ExitCode::kInternal);
  } catch (...) {
    return Error("internal: unknown exception (please report this)", ExitCode::kInternal);
  }
}

}  // namespace gptq::api
