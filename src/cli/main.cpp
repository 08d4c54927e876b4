// gptq: GPTQ post-training quantization of Hugging Face checkpoints.
// Every error is caught here, printed as one line and mapped to its exit code (the library's
// boundary, api::current_error, says which). Standard output is checked before success is
// reported, and a SIGINT/SIGTERM/SIGHUP that stopped a command is exit code 6.
#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <system_error>

#include "api/boundary.h"
#include "cli/command.h"
#include "cli/interrupt.h"
#include "cli/mapped_read_guard.h"
#include "cli/stdout_check.h"
#include "gptq/gptq.h"
#include "util/error.h"

namespace {

// The error of the exception being handled: a failed write to stdout is an I/O error, and an
// interruption names the signal.
gptq::Error classify() {
  try {
    try {
      throw;
    } catch (const std::system_error& e) {  // fmt::print's failed fwrite
      gptq::cli::check_stdout_after(e.code().value());
      throw;
    }
  } catch (...) {
    gptq::Error e = gptq::api::current_error();
    if (e.code() == gptq::ExitCode::kInterrupted && gptq::cli::interrupted())
      return gptq::Error(fmt::format("interrupted by {}: {}", gptq::cli::interrupt_name(), e.what()), e.code());
    return e;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f), writes fail with EFBIG (reported as an I/O error naming
  // the file) instead of the process being killed by SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  gptq::cli::catch_interrupts();
  gptq::cli::guard_mapped_reads();
  CLI::App app{std::string(gptq::version()) + ": GPTQ quantization of Hugging Face checkpoints on the CPU"};
  app.set_version_flag("--version", gptq::version());
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
    fmt::print(stderr, "error: {}; run '{}' for the options\n", gptq::api::one_line(e.what()), help);
    return static_cast<int>(gptq::ExitCode::kUsage);
  }
  try {
    int rc = 0;
    for (auto& c : commands)
      if (c.app->parsed()) {
        rc = c.run();
        break;
      }
    gptq::cli::check_stdout();
    if (gptq::cli::interrupted())  // arrived where nothing could stop: the output may be incomplete
      gptq::fail_code(gptq::ExitCode::kInterrupted, "stopped; its output may be incomplete");
    return rc;
  } catch (...) {
    const gptq::Error e = classify();
    fmt::print(stderr, "error: {}\n", e.what());
    return static_cast<int>(e.code());
  }
}
