// gptq: GPTQ post-training quantization of Hugging Face checkpoints.
// Every error is caught here, printed as one line and mapped to its exit code (the library's
// boundary, api::current_error, says which).
#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <string>

#include "api/boundary.h"
#include "cli/command.h"
#include "dist/communicator.h"
#include "gptq/gptq.h"
#ifdef GPTQ_HAVE_MPI
#include <memory>

#include "dist/mpi_communicator.h"
#endif

int main(int argc, char** argv) {
  // Past a file size limit (ulimit -f), writes fail with EFBIG (reported as an I/O error naming
  // the file) instead of the process being killed by SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
#ifdef GPTQ_HAVE_MPI
  // Started by mpirun: the processes share the calibration (README "Several machines (MPI)").
  std::unique_ptr<gptq::dist::MpiCommunicator> mpi;
  if (gptq::dist::launched_by_mpirun()) {
    try {
      mpi = std::make_unique<gptq::dist::MpiCommunicator>(&argc, &argv);
    } catch (...) {
      const gptq::Error e = gptq::api::current_error();
      fmt::print(stderr, "error: {}\n", e.what());
      return static_cast<int>(e.code());
    }
    gptq::dist::set_world(mpi.get());
  }
#endif
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
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (...) {
    const gptq::Error e = gptq::api::current_error();
    gptq::dist::Communicator& world = gptq::dist::world();
    if (world.size() > 1) {
      // One process failing ends the run: the others are stopped (MPI_Abort), and the first
      // process's OUT.partial/ stays resumable.
      fmt::print(stderr, "error (process {} of {}): {}\n", world.rank(), world.size(), e.what());
      std::fflush(stderr);
      world.abort(static_cast<int>(e.code()));
    }
    fmt::print(stderr, "error: {}\n", e.what());
    return static_cast<int>(e.code());
  }
  return 0;
}
