// gptq: GPTQ post-training quantization of Hugging Face checkpoints.
// Every gptq::Error is caught here, printed as one line and mapped to its exit code.
#include <fmt/core.h>

#include <cstdio>
#include <exception>

#include "cli/command.h"
#include "util/error.h"

int main(int argc, char** argv) {
  CLI::App app{"gptq.cpp " GPTQ_VERSION ": GPTQ quantization of Hugging Face checkpoints on the CPU"};
  app.set_version_flag("--version", "gptq.cpp " GPTQ_VERSION);
  app.require_subcommand(1);
  std::vector<gptq::cli::Command> commands{gptq::cli::add_inspect(app), gptq::cli::add_quantize(app),
                                          gptq::cli::add_eval(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : static_cast<int>(gptq::ExitCode::kUsage);
  }
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const gptq::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: out of memory; use a smaller --nsamples/--seqlen or a machine with more RAM\n");
    return static_cast<int>(gptq::ExitCode::kInternal);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: internal: {} (please report this)\n", e.what());
    return static_cast<int>(gptq::ExitCode::kInternal);
  }
  return 0;
}
