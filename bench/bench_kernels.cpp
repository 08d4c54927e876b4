// Google Benchmark of the QuantLinear kernels (harness shared with `gptq bench`:
// src/kernels/kernel_bench.h). Counters: bytes_per_second = weight bytes actually read per call
// (repacked codes + float group parameters; fp32: 4 B/weight), GFLOPs = 2 N K rows per second.
//   BM_MemoryBandwidth     streaming SIMD sum over 1 GiB (all threads): the DRAM roofline
//   BM_QuantGemv/N/K/bits/group/act/cold      batch 1, ours
//   BM_Sgemv/N/K/cold                         batch 1, OpenBLAS fp32 on the dequantized matrix
//   BM_QuantGemm/N/K/rows/path/cold           batch > 1, ours (path 0 fused, 1 dequant+sgemm,
//                                             2 int8 activations, llama.cpp-style)
//   BM_Sgemm/N/K/rows/cold                    batch > 1, OpenBLAS fp32
//   BM_HalfHeadGemv/N/K/bf16                  decode over a 16-bit LM head (kernels/half_gemv.h)
//                                             against OpenBLAS sgemv over its fp32 conversion,
//                                             alternating in one run: GB/s of each, speedup
// cold = 1 rotates over copies totalling 8 x LLC (>= 256 MiB), so the weights come from DRAM.
// Threads: --threads=T (default: all cores), for ours and OpenBLAS alike.
// Run: build/bench_kernels --benchmark_counters_tabular=true
//      build/bench_kernels --table [--quick]   (the `gptq bench` table instead)
#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/half_gemv.h"
#include "kernels/kernel_bench.h"
#include "kernels/quant_kernels.h"
#include "kernels/quant_linear.h"
#include "util/blas.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace {

using gptq::kernels::GemmPath;
using gptq::kernels::QuantLinear;
namespace kb = gptq::kernels::bench;

int g_threads = 0;

int64_t cold_target() {
  return std::max<int64_t>(8 * kb::llc_bytes(), int64_t{256} << 20);
}

// One set of matrices alive at a time (benchmarks of one shape run back to back).
struct QuantSet {
  std::string key;
  std::vector<QuantLinear> mats;
};
QuantSet& quant_set(const kb::LayerSpec& s, bool cold) {
  static QuantSet set;
  const std::string key =
      fmt::format("{}/{}/{}/{}/{}/{}", s.n, s.k, s.bits, s.group_size, s.act_order, cold);
  if (set.key != key) {
    set.mats.clear();
    set.mats.shrink_to_fit();
    set.mats.emplace_back(kb::random_packed(s, 1));
    const int copies =
        cold ? std::max<int>(2, static_cast<int>(cold_target() / set.mats[0].weight_bytes() + 1))
             : 1;
    set.mats.reserve(copies);
    for (int c = 1; c < copies; ++c) set.mats.emplace_back(set.mats[0]);
    set.key = key;
  }
  return set;
}

struct DenseSet {
  std::string key;
  std::vector<std::vector<float>> mats;
};
DenseSet& dense_set(int64_t n, int64_t k, bool cold) {
  static DenseSet set;
  const std::string key = fmt::format("{}/{}/{}", n, k, cold);
  if (set.key != key) {
    set.mats.clear();
    set.mats.push_back(gptq::dequantize_linear(kb::random_packed({n, k}, 1)));
    const double bytes = double(n) * double(k) * sizeof(float);
    const int copies = cold ? std::max<int>(2, static_cast<int>(cold_target() / bytes + 1)) : 1;
    for (int c = 1; c < copies; ++c) set.mats.push_back(set.mats[0]);
    set.key = key;
  }
  return set;
}

void set_counters(benchmark::State& state, double bytes, double flops) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes * double(state.iterations())));
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_MemoryBandwidth(benchmark::State& state) {
  const int threads = gptq::compute_threads();
  double gbs = 0;
  for (auto _ : state) gbs = kb::memory_bandwidth(int64_t{1} << 30, threads, 3);
  state.counters["GB/s"] = gbs;
}

void BM_QuantGemv(benchmark::State& state) {
  const kb::LayerSpec s{state.range(0), state.range(1), static_cast<int>(state.range(2)),
                        static_cast<int>(state.range(3)), state.range(4) != 0};
  QuantSet& set = quant_set(s, state.range(5) != 0);
  const std::vector<float> x = kb::random_activations(1, s.k, 3);
  std::vector<float> y(s.n);
  size_t i = 0;
  for (auto _ : state) {
    set.mats[i++ % set.mats.size()].forward(x.data(), 1, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, double(set.mats[0].weight_bytes()), 2.0 * double(s.n) * double(s.k));
}

void BM_QuantGemm(benchmark::State& state) {
  const kb::LayerSpec s{state.range(0), state.range(1)};
  const int64_t rows = state.range(2);
  const GemmPath path = state.range(3) == 0   ? GemmPath::kFused
                        : state.range(3) == 1 ? GemmPath::kDequantSgemm
                                              : GemmPath::kInt8;
  QuantSet& set = quant_set(s, state.range(4) != 0);
  const std::vector<float> x = kb::random_activations(rows, s.k, 3);
  std::vector<float> y(rows * s.n);
  size_t i = 0;
  for (auto _ : state) {
    set.mats[i++ % set.mats.size()].forward(x.data(), rows, y.data(), path);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, double(set.mats[0].weight_bytes()),
               2.0 * double(s.n) * double(s.k) * double(rows));
}

void BM_Sgemv(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  DenseSet& set = dense_set(n, k, state.range(2) != 0);
  const std::vector<float> x = kb::random_activations(1, k, 3);
  std::vector<float> y(n);
  size_t i = 0;
  for (auto _ : state) {
    gptq::blas::sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, set.mats[i++ % set.mats.size()].data(), k,
                      x.data(), 0.0f, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, double(n) * k * 4.0, 2.0 * double(n) * double(k));
}

void BM_Sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), k = static_cast<int>(state.range(1));
  const int rows = static_cast<int>(state.range(2));
  DenseSet& set = dense_set(n, k, state.range(3) != 0);
  const std::vector<float> x = kb::random_activations(rows, k, 3);
  std::vector<float> y(static_cast<size_t>(rows) * n);
  size_t i = 0;
  for (auto _ : state) {
    gptq::blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, k, 1.0f, x.data(), k,
                set.mats[i++ % set.mats.size()].data(), k, 0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, double(n) * k * 4.0, 2.0 * double(n) * double(k) * double(rows));
}

// The output head at decode (N = vocabulary, K = hidden): the 16-bit GEMV straight from F16 /
// BF16 storage, and OpenBLAS sgemv over the same matrix converted to fp32 (what ModelForward did
// before), timed call by call in alternation with the same threads. Both matrices (2 and 4 bytes
// a weight) are far larger than the last-level cache: weights come from DRAM. The manual time
// is the 16-bit GEMV's; counters: the GB/s of each and speedup = sgemv time / GEMV time.
void BM_HalfHeadGemv(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  const bool bf16 = state.range(2) != 0;
  std::vector<uint16_t> bits(static_cast<size_t>(n * k));
  uint32_t lcg = 12345;
  for (uint16_t& b : bits) {  // values in [-1, 1): exact-enough random weights, quickly
    lcg = lcg * 1664525u + 1013904223u;
    const float v = static_cast<float>(lcg >> 8) * 0x1p-23f - 1.0f;
    b = bf16 ? gptq::f32_to_bf16(v) : gptq::f32_to_f16(v);
  }
  std::vector<float> wf(bits.size());
  if (bf16)
    gptq::bf16_to_f32(bits.data(), wf.data(), bits.size());
  else
    gptq::f16_to_f32(bits.data(), wf.data(), bits.size());
  const std::vector<float> x = kb::random_activations(1, k, 3);
  std::vector<float> y(static_cast<size_t>(n)), y_blas(static_cast<size_t>(n));
  const auto type = bf16 ? gptq::kernels::HalfType::kBF16 : gptq::kernels::HalfType::kF16;
  using clock = std::chrono::steady_clock;
  double t_half = 0, t_blas = 0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    gptq::kernels::half_gemv(type, bits.data(), n, k, x.data(), y.data());
    const auto t1 = clock::now();
    gptq::blas::sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, wf.data(), k, x.data(), 0.0f,
                      y_blas.data());
    const auto t2 = clock::now();
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(y_blas.data());
    const double a = std::chrono::duration<double>(t1 - t0).count();
    t_half += a;
    t_blas += std::chrono::duration<double>(t2 - t1).count();
    state.SetIterationTime(a);
  }
  const double calls = double(state.iterations());
  state.counters["half_GB/s"] = double(n) * double(k) * 2.0 * calls / t_half * 1e-9;
  state.counters["sgemv_GB/s"] = double(n) * double(k) * 4.0 * calls / t_blas * 1e-9;
  state.counters["speedup"] = t_blas / t_half;
}

void register_all() {
  benchmark::RegisterBenchmark("BM_MemoryBandwidth", BM_MemoryBandwidth)
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {11008, 4096}, {4096, 11008}, {256, 256}, {768, 256}, {256, 768}};
  for (auto [n, k] : shapes) {
    for (int cold : {0, 1}) {
      benchmark::RegisterBenchmark("BM_QuantGemv", BM_QuantGemv)
          ->Args({n, k, 4, 128, 0, cold})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      for (int path : {0, 1, 2}) {
        benchmark::RegisterBenchmark("BM_QuantGemm", BM_QuantGemm)
            ->Args({n, k, 16, path, cold})
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
    for (int cold : {0, 1}) {
      benchmark::RegisterBenchmark("BM_Sgemv", BM_Sgemv)
          ->Args({n, k, cold})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark("BM_Sgemm", BM_Sgemm)
          ->Args({n, k, 16, cold})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
  // A Llama LM head (vocabulary 32000, hidden 4096) at decode, F16 and BF16.
  for (int bf16 : {0, 1}) {
    benchmark::RegisterBenchmark("BM_HalfHeadGemv", BM_HalfHeadGemv)
        ->Args({32000, 4096, bf16})
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  }
  // Other widths and layouts on the 11008 x 4096 layer.
  const std::vector<std::vector<int64_t>> variants = {{2, 128, 0}, {3, 128, 0}, {8, 128, 0},
                                                      {4, 128, 1}, {4, 32, 0},  {4, -1, 0}};
  for (const auto& v : variants) {
    for (int cold : {0, 1}) {
      benchmark::RegisterBenchmark("BM_QuantGemv", BM_QuantGemv)
          ->Args({11008, 4096, v[0], v[1], v[2], cold})
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool table = false, quick = false;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--table") == 0) {
      table = true;
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      g_threads = std::atoi(argv[i] + 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (table) {
    kb::BenchOptions o;
    o.quick = quick;
    o.threads = g_threads;
    kb::print_report(kb::run_benchmarks(o, stderr), stdout);
    return 0;
  }
  const int threads = gptq::set_compute_threads(g_threads);
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("simd_target", gptq::kernels::dispatch_target_name());
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
