// gptq bench: QuantLinear kernel throughput on real layer shapes against same-run baselines
// (memory bandwidth, OpenBLAS fp32 sgemv/sgemm, dequantize-then-sgemm), warm and cold.
// The harness lives in kernels/kernel_bench.{h,cpp} (shared with bench/bench_kernels.cpp).
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "io/json_reader.h"
#include "cli/command.h"
#include "kernels/kernel_bench.h"
#include "util/error.h"

namespace gptq::cli {

namespace {

// "NxK" -> LayerSpec (4-bit g128).
kernels::bench::LayerSpec parse_shape(const std::string& s) {
  const auto x = s.find('x');
  kernels::bench::LayerSpec spec;
  try {
    if (x == std::string::npos) throw std::invalid_argument(s);
    size_t used = 0;
    spec.n = std::stoll(s.substr(0, x), &used);
    if (used != x) throw std::invalid_argument(s);
    spec.k = std::stoll(s.substr(x + 1), &used);
    if (used != s.size() - x - 1) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    fail_code(ExitCode::kUsage, "--shape '{}': expected OUTxIN, e.g. 11008x4096", s);
  }
  if (spec.n <= 0 || spec.k <= 0 || spec.k % 32 != 0) {
    fail_code(ExitCode::kUsage, "--shape '{}': sizes must be positive, IN a multiple of 32", s);
  }
  return spec;
}

}  // namespace

Command add_bench(CLI::App& root) {
  struct Opts {
    bool quick = false;
    bool json = false;
    int threads = 0;
    double min_time = 0.3;
    std::vector<std::string> shapes;
    std::vector<int64_t> batches;
    int64_t cold_mib = 0;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand(
      "bench", "Benchmark the quantized linear kernels against memory bandwidth and OpenBLAS fp32");
  app->add_flag("--quick", opts->quick, "CI scale: small shapes and short timings (~15 s)");
  app->add_flag("--json", opts->json, "Print the results as JSON instead of a table");
  app->add_option("--threads", opts->threads,
                  "Threads for our kernels and OpenBLAS alike (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app->add_option("--min-time", opts->min_time, "Seconds per measurement")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 60.0));
  app->add_option("--shape", opts->shapes,
                  "Layer shape OUTxIN (repeatable; default: 4096x4096 11008x4096 4096x11008 "
                  "256x256 768x256 256x768)");
  app->add_option("--batch", opts->batches, "Activation rows (repeatable; default: 1 16)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  app->add_option("--cold-mib", opts->cold_mib,
                  "Working set of the cold runs in MiB (0: max(8 x LLC, 256 MiB))")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  return {app, [opts] {
            kernels::bench::BenchOptions bo;
            bo.quick = opts->quick;
            bo.threads = opts->threads;
            bo.min_time = opts->min_time;
            bo.batches = opts->batches;
            bo.cold_bytes = opts->cold_mib << 20;
            for (const auto& s : opts->shapes) bo.shapes.push_back(parse_shape(s));
            if (!bo.shapes.empty()) {
              // Variants (2/3/8-bit, act-order, other group sizes) on the first given shape.
              const auto& s0 = bo.shapes.front();
              bo.variants = {{s0.n, s0.k, 2, 128},       {s0.n, s0.k, 3, 128}, {s0.n, s0.k, 8, 128},
                             {s0.n, s0.k, 4, 128, true}, {s0.n, s0.k, 4, 32},  {s0.n, s0.k, 4, -1}};
            }
            const auto report = kernels::bench::run_benchmarks(bo, stderr);
            if (opts->json) {
              fmt::print("{}\n", json_output(kernels::bench::report_json(report), 2));
            } else {
              kernels::bench::print_report(report, stdout);
            }
            return 0;
          }};
}

}  // namespace gptq::cli
