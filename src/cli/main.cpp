// gptq: GPTQ post-training quantization of Hugging Face checkpoints.
// Every gptq::Error is caught here, printed as one line and mapped to its exit code.
#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <exception>
#include <string>
#include <string_view>

#include "cli/command.h"
#include "util/error.h"

namespace {
// Error messages are printed as exactly one line: names taken from files (tensor names, JSON
// keys) may hold line breaks or control characters.
std::string one_line(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c == '\n') out += out.empty() || out.back() == ' ' ? "" : " ";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    else out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f), writes fail with EFBIG (reported as an I/O error naming
  // the file) instead of the process being killed by SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"gptq.cpp " GPTQ_VERSION ": GPTQ quantization of Hugging Face checkpoints on the CPU"};
  app.set_version_flag("--version", "gptq.cpp " GPTQ_VERSION);
  app.require_subcommand(1);
  std::vector<gptq::cli::Command> commands{gptq::cli::add_inspect(app), gptq::cli::add_quantize(app),
                                          gptq::cli::add_eval(app),
                                          gptq::cli::add_generate(app), gptq::cli::add_bench(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string help = "gptq --help";
    for (const CLI::App* sub : app.get_subcommands()) help = "gptq " + sub->get_name() + " --help";
    fmt::print(stderr, "error: {}; run '{}' for the options\n", one_line(e.what()), help);
    return static_cast<int>(gptq::ExitCode::kUsage);
  }
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const gptq::Error& e) {
    fmt::print(stderr, "error: {}\n", one_line(e.what()));
    return static_cast<int>(e.code());
  } catch (const std::filesystem::filesystem_error& e) {
    fmt::print(stderr, "error: {}; check the path, its permissions and the free disk space\n", one_line(e.what()));
    return static_cast<int>(gptq::ExitCode::kIo);
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: out of memory; use a smaller --nsamples/--seqlen or a machine with more RAM\n");
    return static_cast<int>(gptq::ExitCode::kInternal);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: internal: {} (please report this)\n", one_line(e.what()));
    return static_cast<int>(gptq::ExitCode::kInternal);
  }
  return 0;
}
