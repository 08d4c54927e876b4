// A gptq subcommand: registers its options on a CLI11 subcommand and runs when selected.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace gptq::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_inspect(CLI::App& root);
Command add_quantize(CLI::App& root);
Command add_eval(CLI::App& root);
Command add_bench(CLI::App& root);
Command add_generate(CLI::App& root);
Command add_export_gguf(CLI::App& root);

}  // namespace gptq::cli
