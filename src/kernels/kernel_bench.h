// Benchmark harness of the QuantLinear kernels, shared by `gptq bench` (src/cli/cmd_bench.cpp)
// and bench/bench_kernels.cpp. Every figure is taken in the same run as its baselines:
//   * the machine's memory read bandwidth (a SIMD sum streaming over a buffer much larger than
//     the last-level cache, all benchmark threads; best of a probe at the start and the end),
//   * OpenBLAS fp32 sgemv / sgemm on the dequantized matrix of the same shape,
//   * QuantLinear GEMV (batch 1), fused GEMM and dequantize-then-sgemm (batch > 1),
// each "warm" (one matrix called repeatedly: it may stay in the caches) and "cold" (rotating over
// copies whose total is several times the last-level cache, so the weights come from DRAM).
// Throughput is counted on the bytes the kernels actually read for the weights (the repacked
// codes + per-group float parameters; fp32 matrices: 4 bytes per weight).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "quant/pack.h"

namespace gptq::kernels::bench {

struct LayerSpec {
  int64_t n = 4096, k = 4096;  // out_features x in_features
  int bits = 4;
  int group_size = 128;
  bool act_order = false;
};

// A random asymmetric GPTQ layer (v1 format, fp16 scales, act-order g_idx if asked).
PackedLinear random_packed(const LayerSpec& spec, uint32_t seed);
std::vector<float> random_activations(int64_t rows, int64_t k, uint32_t seed);

// Last-level cache size in bytes (sysfs / sysconf; 32 MiB if unknown).
int64_t llc_bytes();

// Streaming read bandwidth in GB/s (1e9 bytes/s): `threads` threads sum the parts of a `bytes`
// buffer with SIMD, as one or as four concurrent streams per thread; best of `reps` passes of
// each after a first touch.
double memory_bandwidth(int64_t bytes, int threads, int reps);

struct Timing {
  double median_s = 0, best_s = 0;
  int64_t calls = 0;
};
// Calls fn(i) for i = 0, 1, ... (after `warmup` untimed calls) until min_time seconds and at
// least min_calls calls have been timed; each call is timed on its own.
Timing time_calls(const std::function<void(int64_t)>& fn, double min_time, int64_t min_calls,
                  int warmup);

struct BenchOptions {
  bool quick = false;               // CI scale: small shapes, short timings
  int threads = 0;                  // 0 = hardware concurrency (ours and OpenBLAS alike)
  double min_time = 0.3;            // seconds per measurement
  int64_t cold_bytes = 0;           // working set of the cold runs; 0 = max(8 x LLC, 256 MiB)
  int64_t membw_bytes = 0;          // bandwidth probe buffer; 0 = 1 GiB (quick: 256 MiB)
  std::vector<LayerSpec> shapes;    // empty = default list (4-bit g128)
  std::vector<LayerSpec> variants;  // empty = default list (2/3/8-bit, act-order, g32, g-1)
  std::vector<int64_t> batches;     // empty = {1, 16}
};

struct BenchResult {
  std::string kernel;  // "q4 g128 gemv", "fp32 sgemv", ...
  std::string family;  // "quant", "dequant+sgemm", "blas"
  int64_t n = 0, k = 0, rows = 0;
  int bits = 32;
  int group_size = 0;
  bool act_order = false;
  double weight_bytes = 0;      // read per call
  double checkpoint_bytes = 0;  // the GPTQ tensors it was built from (quantized kernels)
  double flops = 0;             // 2 N K rows
  Timing warm, cold;
  int cold_copies = 0;
};

struct BenchReport {
  std::string target;
  int threads = 0;
  int64_t llc_bytes = 0;
  double membw_gbs = 0;
  int64_t membw_bytes = 0;
  double seconds = 0;
  std::string load_start, load_end;  // 1-minute load averages (/proc/loadavg)
  std::vector<BenchResult> results;
};

BenchReport run_benchmarks(const BenchOptions& options, std::FILE* progress);
// Compact table with speed-ups against the same-run baselines and the acceptance checks.
void print_report(const BenchReport& report, std::FILE* out);
nlohmann::json report_json(const BenchReport& report);

}  // namespace gptq::kernels::bench
