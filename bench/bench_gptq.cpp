// Benchmarks of the GPTQ core, each against a same-run baseline of the unavoidable work:
//   BM_GptqSolve/N/K     solver for [N, K] = [4096, 4096] and [4096, 11008], group 128, vs
//                        potrf + potri + potrf + one N x K x K sgemm, all on the same cores
//                        (counter `ratio` = solve / baseline, target <= 1.5)
//   BM_InverseCholesky/K the solver's factor U (H^-1 = U^T U) of a K x K Hessian, K = 2048, 5504,
//                        11008, vs OpenBLAS threaded potrf + trtri, the same 2/3 K^3 flops
//                        (counter `ratio` = ours / baseline), and the reference's potrf + potri +
//                        potrf (`vs_reference_order`)
//   BM_HessianAccumulate/K/rows  16k tokens x K through HessianAccumulator::add (SYRK) in calls of
//                        `rows` rows, GFLOP/s vs sgemm of the same product on the same cores
//                        (counter `ratio` = sgemm time / accumulate time)
//   BM_PackLinear        pack_linear of a 4096 x 11008 layer (4-bit, group 128): throughput in
//                        bytes of the fp32 weight it encodes, vs memcpy of those bytes
// Run: build-quant/bench_gptq --benchmark_counters_tabular=true   (about 1 minute on 2 cores)
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <lapacke.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "quant/gptq.h"
#include "quant/pack.h"
#include "util/thread_pool.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Calibration-like inputs [tokens, k]: i.i.d. normals with per-column scales over two orders of
// magnitude plus a shared rank-16 component (correlated columns), cheap to generate.
std::vector<float> make_inputs(int64_t tokens, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  constexpr int kRank = 16;
  std::vector<float> basis(kRank * k), colscale(k);
  for (auto& v : basis) v = normal(rng);
  for (auto& s : colscale) s = std::exp(0.8f * normal(rng));
  std::vector<float> x(tokens * k);
  std::vector<float> coef(kRank);
  for (int64_t t = 0; t < tokens; ++t) {
    for (auto& c : coef) c = 0.5f * normal(rng);
    float* row = x.data() + t * k;
    for (int64_t j = 0; j < k; ++j) row[j] = normal(rng);
    for (int r = 0; r < kRank; ++r) {
      for (int64_t j = 0; j < k; ++j) row[j] += coef[r] * basis[r * k + j];
    }
    for (int64_t j = 0; j < k; ++j) row[j] *= colscale[j];
  }
  return x;
}

// Hessian of 8192 tokens for K columns, built once per K and shared.
const std::vector<float>& hessian_for(int64_t k) {
  static std::map<int64_t, std::vector<float>> cache;
  auto it = cache.find(k);
  if (it == cache.end()) {
    const int64_t tokens = 8192;
    const std::vector<float> x = make_inputs(tokens, k, 1);
    gptq::HessianAccumulator acc(k);
    acc.add(x.data(), tokens, tokens / 2048);
    it = cache.emplace(k, acc.finalize()).first;
  }
  return it->second;
}

// OpenBLAS with `threads` workers while alive (the library keeps it at 1: util/blas.h), so the
// baseline uses the same cores as the solver.
struct OpenBlasThreads {
  explicit OpenBlasThreads(int threads) { openblas_set_num_threads(threads); }
  ~OpenBlasThreads() { openblas_set_num_threads(1); }
  OpenBlasThreads(const OpenBlasThreads&) = delete;
  OpenBlasThreads& operator=(const OpenBlasThreads&) = delete;
};

// The solver for an [N, K] layer (group 128) against its floor, both on all cores: LAPACK's
// potrf + potri + potrf of the damped K x K Hessian (OpenBLAS threaded) and one N x K x K sgemm
// (the lazy updates' total work). Args: N, K.
void BM_GptqSolve(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  const std::vector<float>& h = hessian_for(k);
  std::vector<float> w(n * k);
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (auto& v : w) v = normal(rng);
  gptq::QuantConfig cfg;
  cfg.bits = 4;
  cfg.group_size = 128;
  cfg.damp_percent = 0.01;

  double solve = 0, factor = 0, gemm = 0;
  std::vector<float> a(k * k), c(n * k);
  for (auto _ : state) {
    double mean = 0;
    for (int64_t i = 0; i < k; ++i) mean += h[i * k + i];
    const float damp = static_cast<float>(0.01 * mean / k);
    std::memcpy(a.data(), h.data(), a.size() * sizeof(float));
    for (int64_t i = 0; i < k; ++i) a[i * k + i] += damp;
    double f = 0, g = 0;
    {
      const OpenBlasThreads threads(gptq::compute_threads());
      auto t0 = Clock::now();
      const lapack_int nk = static_cast<lapack_int>(k);
      lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
      info |= LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
      info |= LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
      if (info != 0) state.SkipWithError("baseline factorization failed");
      f = seconds_since(t0);
      t0 = Clock::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n),
                  static_cast<blasint>(k), static_cast<blasint>(k), 1.0f, w.data(),
                  static_cast<blasint>(k), a.data(), static_cast<blasint>(k), 0.0f, c.data(),
                  static_cast<blasint>(k));
      g = seconds_since(t0);
      benchmark::DoNotOptimize(c.data());
    }

    auto t0 = Clock::now();
    gptq::GptqResult r = gptq::gptq_quantize(w.data(), n, k, h.data(), 4, cfg, "bench");
    const double s = seconds_since(t0);
    benchmark::DoNotOptimize(r.codes.data());
    state.SetIterationTime(s);
    solve += s;
    factor += f;
    gemm += g;
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["threads"] = gptq::compute_threads();
  state.counters["solve_s"] = solve / it;
  state.counters["potrf_potri_potrf_s"] = factor / it;
  state.counters["sgemm_NKK_s"] = gemm / it;
  state.counters["ratio"] = solve / (factor + gemm);
}
BENCHMARK(BM_GptqSolve)
    ->Args({4096, 4096})
    ->Args({4096, 11008})
    ->Iterations(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// The factor U of the damped Hessian (quant/cholesky.cpp) against OpenBLAS on all cores doing the
// same flops (potrf + trtri) and the reference's order (potrf + potri + potrf). Arg: K.
void BM_InverseCholesky(benchmark::State& state) {
  const int64_t k = state.range(0);
  const std::vector<float>& h = hessian_for(k);
  std::vector<float> damped = h;
  double mean = 0;
  for (int64_t i = 0; i < k; ++i) mean += h[i * k + i];
  for (int64_t i = 0; i < k; ++i) damped[i * k + i] += static_cast<float>(0.01 * mean / k);
  std::vector<float> a(k * k);
  double ours = 0, same_flops = 0, reference = 0;
  const lapack_int nk = static_cast<lapack_int>(k);
  for (auto _ : state) {
    a = damped;
    auto t0 = Clock::now();
    if (gptq::inverse_cholesky_upper(a.data(), k) != 0) state.SkipWithError("factor failed");
    const double s = seconds_since(t0);
    state.SetIterationTime(s);
    ours += s;
    const OpenBlasThreads threads(gptq::compute_threads());
    a = damped;
    t0 = Clock::now();
    lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
    info |= LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'L', 'N', nk, a.data(), nk);
    same_flops += seconds_since(t0);
    a = damped;
    t0 = Clock::now();
    info |= LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
    info |= LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
    info |= LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', nk, a.data(), nk);
    reference += seconds_since(t0);
    if (info != 0) state.SkipWithError("baseline factorization failed");
  }
  const double it = static_cast<double>(state.iterations());
  state.counters["ours_s"] = ours / it;
  state.counters["gflops"] = (2.0 / 3.0) * double(k) * k * k / (ours / it) / 1e9;
  state.counters["potrf_trtri_s"] = same_flops / it;
  state.counters["ratio"] = ours / same_flops;
  state.counters["vs_reference_order"] = ours / reference;
}
BENCHMARK(BM_InverseCholesky)
    ->Arg(2048)
    ->Arg(5504)
    ->Arg(11008)
    ->Iterations(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Args: K, rows per add() call (the pipeline's calibration batch).
void BM_HessianAccumulate(benchmark::State& state) {
  const int64_t k = state.range(0), tokens = 16384, chunk = state.range(1);
  const std::vector<float> x = make_inputs(tokens, k, 3);
  std::vector<float> c(k * k);
  double t_acc = 0, t_gemm = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    gptq::HessianAccumulator acc(k);
    for (int64_t t = 0; t < tokens; t += chunk)
      acc.add(x.data() + t * k, chunk, std::max<int64_t>(1, chunk / 512));
    std::vector<float> h = acc.finalize();
    const double a = seconds_since(t0);
    benchmark::DoNotOptimize(h.data());
    const OpenBlasThreads threads(gptq::compute_threads());
    t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(k),
                static_cast<blasint>(k), static_cast<blasint>(tokens), 1.0f, x.data(),
                static_cast<blasint>(k), x.data(), static_cast<blasint>(k), 0.0f, c.data(),
                static_cast<blasint>(k));
    const double g = seconds_since(t0);
    benchmark::DoNotOptimize(c.data());
    state.SetIterationTime(a);
    t_acc += a;
    t_gemm += g;
  }
  // The product X^T X is 2*T*K*K flops as a GEMM; SYRK computes half of it but the Hessian is the
  // same matrix, so both rates below count 2*T*K*K ("effective" GFLOP/s, higher is better).
  const double flops = 2.0 * tokens * k * k * static_cast<double>(state.iterations());
  state.counters["accumulate_GFLOPs"] = flops / t_acc * 1e-9;
  state.counters["sgemm_GFLOPs"] = flops / t_gemm * 1e-9;
  state.counters["ratio"] = t_gemm / t_acc;
}
BENCHMARK(BM_HessianAccumulate)
    ->Args({4096, 4096})
    ->Args({2048, 2048})
    ->Args({5504, 2048})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_PackLinear(benchmark::State& state) {
  const int64_t k = 4096, n = 11008, gs = 128, groups = k / gs;
  std::mt19937 rng(4);
  std::vector<uint8_t> codes(n * k);
  for (auto& v : codes) v = static_cast<uint8_t>(rng() & 15u);
  std::vector<float> scales(groups * n, 0.01f), zeros(groups * n, 8.0f);
  std::vector<int32_t> g_idx(k);
  for (int64_t i = 0; i < k; ++i) g_idx[i] = static_cast<int32_t>(i / gs);
  std::vector<float> src(n * k, 1.0f), dst(n * k);
  double t_pack = 0, t_copy = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    gptq::PackedLinear p =
        gptq::pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n, k, groups, 4,
                          static_cast<int>(gs), gptq::CheckpointFormat::kGptq);
    const double a = seconds_since(t0);
    benchmark::DoNotOptimize(p.qweight.data());
    t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), dst.size() * sizeof(float));
    const double b = seconds_since(t0);
    benchmark::DoNotOptimize(dst.data());
    state.SetIterationTime(a);
    t_pack += a;
    t_copy += b;
  }
  const double bytes = 4.0 * n * k * static_cast<double>(state.iterations());
  state.counters["pack_GBps_fp32"] = bytes / t_pack * 1e-9;
  state.counters["memcpy_GBps"] = bytes / t_copy * 1e-9;
  state.counters["ratio"] = t_copy / t_pack;
}
BENCHMARK(BM_PackLinear)->Iterations(3)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
