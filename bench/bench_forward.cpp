// fp32 forward throughput on the tiny-llama fixture (256-token windows): one block, the whole
// model (logits), the evaluation per window (forward + head + NLL), against the sgemm FLOP rate of
// the block's linear shapes.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "io/safetensors.h"
#include "model/model_config.h"
#include "nn/attention.h"
#include "nn/block_forward.h"
#include "nn/eval.h"
#include "nn/model_forward.h"
#include "util/blas.h"

namespace {

namespace fs = std::filesystem;
constexpr int64_t kT = 256;

fs::path fixture() {
  return fs::path(__FILE__).parent_path().parent_path() / "testdata" / "models" / "tiny-llama";
}

struct Fixture {
  gptq::ModelConfig config = gptq::ModelConfig::load(fixture());
  gptq::TensorStore store = gptq::TensorStore::open(fixture());
  gptq::ModelForward model{config, store};
  std::vector<int32_t> ids;
  Fixture() {
    std::mt19937 rng(1);
    std::uniform_int_distribution<int32_t> u(0, static_cast<int32_t>(model.vocab()) - 1);
    ids.resize(4 * kT);
    for (auto& e : ids) e = u(rng);
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}

// Multiply-adds of one block's linears per token, times 2.
double block_linear_flops_per_token(const gptq::BlockForward& b) {
  double f = 0;
  for (const auto& n : b.linears())
    f += 2.0 * static_cast<double>(b.linear(n).in_features() * b.linear(n).out_features());
  return f;
}

void BM_BlockForward(benchmark::State& state) {
  const gptq::BlockForward& b = fx().model.block(0);
  const int64_t d = fx().model.hidden();
  std::vector<float> x(kT * d);
  fx().model.embed(fx().ids.data(), kT, x.data());
  const std::vector<float> x0 = x;
  for (auto _ : state) {
    x = x0;
    b.forward(x.data(), kT);
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(kT), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["linear_GFLOP/s"] = benchmark::Counter(
      block_linear_flops_per_token(b) * kT * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_BlockForward)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same multiply-adds as one block's linears, as bare sgemm calls on the same shapes.
void BM_SgemmBlockShapes(benchmark::State& state) {
  const gptq::BlockForward& b = fx().model.block(0);
  std::vector<float> x(kT * 4096, 0.5f), y(kT * 4096);
  std::vector<float> w(4096 * 4096, 0.01f);
  for (auto _ : state) {
    for (const auto& n : b.linears()) {
      const auto& l = b.linear(n);
      gptq::blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kT, l.out_features(), l.in_features(), 1.0f,
                        x.data(), l.in_features(), w.data(), l.in_features(), 0.0f, y.data(), l.out_features());
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(block_linear_flops_per_token(b) * kT * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SgemmBlockShapes)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ModelLogits(benchmark::State& state) {
  std::vector<float> logits(kT * fx().model.vocab());
  for (auto _ : state) {
    fx().model.logits(fx().ids.data(), kT, logits.data());
    benchmark::DoNotOptimize(logits.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(kT), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ModelLogits)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EvalWindows(benchmark::State& state) {
  gptq::EvalOptions o;
  o.seqlen = kT;
  for (auto _ : state) benchmark::DoNotOptimize(gptq::evaluate_perplexity(fx().model, fx().ids, o));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(fx().ids.size()),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EvalWindows)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CompareWindows(benchmark::State& state) {
  gptq::EvalOptions o;
  o.seqlen = kT;
  for (auto _ : state)
    benchmark::DoNotOptimize(gptq::compare_models(fx().model, fx().model, fx().ids, o));
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(fx().ids.size()),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CompareWindows)->Unit(benchmark::kMillisecond)->UseRealTime();

// Per-row NLL of the head's logits alone (the log-softmax cost).
void BM_TokenNll(benchmark::State& state) {
  const int64_t v = fx().model.vocab();
  std::vector<float> logits((kT - 1) * v);
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (auto& e : logits) e = nd(rng);
  for (auto _ : state) {
    double s = 0;
    for (int64_t t = 0; t + 1 < kT; ++t) s += gptq::token_nll(logits.data() + t * v, v, 1);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_TokenNll)->Unit(benchmark::kMillisecond)->UseRealTime();

// Causal GQA attention alone (tiny-llama shape: 8 heads, 4 kv heads, head_dim 32).
void BM_Attention(benchmark::State& state) {
  const gptq::nn::AttentionShape shape{8, 4, 32, 0.17677669f};
  std::vector<float> q(kT * 8 * 32, 0.1f), k(kT * 4 * 32, 0.2f), v(kT * 4 * 32, 0.3f),
      out(kT * 8 * 32), scores;
  for (auto _ : state) {
    gptq::nn::causal_attention(shape, {q.data(), 8 * 32, 32}, {k.data(), 4 * 32, 32},
                               {v.data(), 4 * 32, 32}, kT, out.data(), scores);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Attention)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
