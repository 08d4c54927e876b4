// End-to-end quantize benchmark: a random Llama-shaped checkpoint (default hidden 2048, 8 blocks,
// F16) quantized at 4-bit g128 with 32 x 512 calibration tokens. Reports wall time, peak RSS and
// the achieved GFLOP/s next to OpenBLAS sgemm GFLOP/s measured in the same run.
//   bench_quantize [--hidden 2048] [--blocks 8] [--nsamples 32] [--seqlen 512] [--keep DIR]
//                  [--intermediate N] [--vocab 4096] [--batch-rows 2048] [--malloc-default 1]
//                  [--write-only 1]  (only write DIR/model, DIR/calib.json)
//                  [--huge-pages 0]  (the programs' operator new without huge-page advice)
//                  [--block-reuse 0] (operator delete without the reuse of freed large blocks)
//                  [--probe-calls 2] (0: no sgemm probes during the run)
//                  [--sgemm-only SECONDS] (no quantize: the reference sgemm back to back, scored
//                  as a quantize is; the ceiling of both ratios on this machine)
// The sgemm baseline is [seqlen, hidden] x [hidden, intermediate], the forward's typical GEMM,
// measured two ways in the same run:
// - best of 5 calls before the run and 5 after it (the higher of the two);
// - interleaved: `--probe-calls` calls at every block boundary (the progress callback) and after
//   every layer's solution (the layer callback), their rates averaged with each probe weighted by
//   the quantize time since the one before. On the development VM the same call measured between
//   84 and 261 GFLOP/s within one run, so the rate the run itself could get is the one sampled
//   during it. The probes' time is taken out of the quantize's wall time.
#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "io/safetensors_writer.h"
#include "pipeline/quantize.h"
#include "util/blas.h"
#include "util/blas_kernels.h"
#include "util/fp16.h"
#include "util/huge_pages.h"
#include "util/progress.h"
#include "util/stage_clock.h"
#include "util/thread_pool.h"

namespace fs = std::filesystem;
using namespace gptq;

namespace {

void write_random_llama(const fs::path& dir, int64_t hidden, int64_t blocks, int64_t inter,
                        int64_t vocab) {
  const int64_t heads = hidden / 128;
  std::ofstream(dir / "config.json") << nlohmann::json{
      {"model_type", "llama"},           {"architectures", {"LlamaForCausalLM"}},
      {"hidden_size", hidden},           {"intermediate_size", inter},
      {"num_attention_heads", heads},    {"num_key_value_heads", heads},
      {"num_hidden_layers", blocks},     {"vocab_size", vocab},
      {"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-5},
      {"torch_dtype", "float16"}}.dump(2);
  std::vector<TensorSpec> specs{{"model.embed_tokens.weight", DType::F16, {vocab, hidden}},
                                {"model.norm.weight", DType::F16, {hidden}},
                                {"lm_head.weight", DType::F16, {vocab, hidden}}};
  for (int64_t b = 0; b < blocks; ++b) {
    const std::string p = fmt::format("model.layers.{}.", b);
    for (const char* n : {"input_layernorm", "post_attention_layernorm"})
      specs.push_back({p + n + ".weight", DType::F16, {hidden}});
    for (const char* n :
         {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
      specs.push_back({p + n + ".weight", DType::F16, {hidden, hidden}});
    for (const char* n : {"mlp.gate_proj", "mlp.up_proj"})
      specs.push_back({p + n + ".weight", DType::F16, {inter, hidden}});
    specs.push_back({p + "mlp.down_proj.weight", DType::F16, {hidden, inter}});
  }
  SafetensorsWriter w(dir, specs, {});
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const auto& s : specs) {
    const auto n = static_cast<size_t>(s.nbytes() / 2);
    std::vector<float> v(n);
    const bool norm = s.shape.size() == 1;
    const float scale = norm ? 0.f : 1.f / std::sqrt(static_cast<float>(s.shape.back()));
    for (size_t i = 0; i < n; ++i) v[i] = norm ? 1.f : scale * nd(rng);
    std::vector<uint16_t> h(n);
    f32_to_f16(v.data(), h.data(), n);
    w.write(s.name, h.data(), n * 2);
  }
  w.finish();
}

// The reference product C [m, n] = A [m, k] B^T with its operands; call() times one sgemm.
struct ReferenceGemm {
  int64_t m, n, k;
  std::vector<float> a, b, c;
  ReferenceGemm(int64_t m_, int64_t n_, int64_t k_)
      : m(m_),
        n(n_),
        k(k_),
        a(static_cast<size_t>(m * k), 0.5f),
        b(static_cast<size_t>(n * k), 0.25f),
        c(static_cast<size_t>(m * n)) {}
  double flop() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * k; }
  double call() {  // seconds
    const Stopwatch sw;
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.f, a.data(), k, b.data(), k,
                0.f, c.data(), n);
    return sw.seconds();
  }
};

// Calls of the reference sgemm during the run, each probe's rate and the quantize time it stands
// for (since the previous probe). The operands (60 MB at the default shape) exist only while a
// probe runs, so the quantize's peak RSS stays its own; they are filled before the clock starts.
struct SgemmProbes {
  int64_t m = 0, n = 0, k = 0, calls = 0;
  std::vector<double> rates, weights;
  double seconds = 0;  // in probes, operand setup included
  Stopwatch since_last;

  void run() {
    if (calls <= 0) return;
    const StageClock::Stage stage("probe");  // in the stages' list, not in the stage it interrupts
    const double weight = since_last.seconds();
    const Stopwatch total;
    ReferenceGemm g(m, n, k);
    double busy = 0;
    for (int64_t i = 0; i < calls; ++i) busy += g.call();
    rates.push_back(g.flop() * static_cast<double>(calls) / busy / 1e9);
    weights.push_back(weight);
    seconds += total.seconds();
    since_last = Stopwatch();
  }

  // The time-weighted mean rate: what the run could have had throughout.
  double mean() const {
    double s = 0, w = 0;
    for (size_t i = 0; i < rates.size(); ++i) {
      s += rates[i] * weights[i];
      w += weights[i];
    }
    return w > 0 ? s / w : 0;
  }
};

// The best rate of 5 calls.
double sgemm_gflops(int64_t m, int64_t n, int64_t k) {
  ReferenceGemm g(m, n, k);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) best = std::max(best, g.flop() / g.call() / 1e9);
  return best;
}

// The reference sgemm alone, call after call for `seconds`, with the probes every 2 s: a "run"
// that is nothing but the reference GEMM, scored against both references as a quantize is. Its
// ratio to the best of 5 is the most any run can reach on this machine at the moment.
void sgemm_only(int64_t m, int64_t n, int64_t k, double seconds, int64_t probe_calls) {
  const double before = sgemm_gflops(m, n, k);
  ReferenceGemm g(m, n, k);
  SgemmProbes probes{m, n, k, probe_calls};
  double busy = 0;
  int64_t calls = 0;
  Stopwatch since_probe;
  while (busy < seconds) {
    busy += g.call();
    ++calls;
    if (since_probe.seconds() >= 2.0) {
      probes.run();
      since_probe = Stopwatch();
    }
  }
  const double after = sgemm_gflops(m, n, k), best = std::max(before, after);
  const double rate = g.flop() * static_cast<double>(calls) / busy / 1e9;
  fmt::print("sgemm only: {} x {} x {}, {} calls back to back in {:.1f} s, {} threads\n", m, n, k,
             calls, busy, compute_threads());
  fmt::print("  sustained          {:.1f} GFLOP/s\n", rate);
  fmt::print("  best of 5          {:.1f} GFLOP/s (before {:.1f}, after {:.1f})\n", best, before,
             after);
  fmt::print("  ratio              {:.2f} (sustained / best of 5)\n", rate / best);
  if (!probes.rates.empty())
    fmt::print("  ratio interleaved  {:.2f} ({} probes, time-weighted mean {:.1f} GFLOP/s)\n",
               rate / probes.mean(), probes.rates.size(), probes.mean());
}

}  // namespace

int main(int argc, char** argv) {
  int64_t hidden = 2048, blocks = 8, nsamples = 32, seqlen = 512, inter = 0, vocab = 4096,
          batch_rows = -1;
  std::string keep;
  bool write_only = false;  // only write the checkpoint and calib.json into --keep
                            // (scripts/bench_larger_than_memory.sh)
  bool malloc_default = false;  // glibc's dynamic mmap threshold (the RSS its heap keeps: README)
  bool huge_pages = true;       // operator new's huge-page advice (src/process/large_page_new.cpp)
  bool block_reuse = true;      // the reuse of freed large blocks (the same file)
  int64_t probe_calls = 2;
  double sgemm_only_seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--hidden")
      hidden = std::stoll(argv[i + 1]);
    else if (a == "--blocks")
      blocks = std::stoll(argv[i + 1]);
    else if (a == "--nsamples")
      nsamples = std::stoll(argv[i + 1]);
    else if (a == "--seqlen")
      seqlen = std::stoll(argv[i + 1]);
    else if (a == "--keep")
      keep = argv[i + 1];
    else if (a == "--intermediate")
      inter = std::stoll(argv[i + 1]);
    else if (a == "--vocab")
      vocab = std::stoll(argv[i + 1]);
    else if (a == "--batch-rows")
      batch_rows = std::stoll(argv[i + 1]);
    else if (a == "--malloc-default")
      malloc_default = std::string(argv[i + 1]) == "1";
    else if (a == "--huge-pages")
      huge_pages = std::string(argv[i + 1]) != "0";
    else if (a == "--block-reuse")
      block_reuse = std::string(argv[i + 1]) != "0";
    else if (a == "--sgemm-only")
      sgemm_only_seconds = std::stod(argv[i + 1]);
    else if (a == "--probe-calls")
      probe_calls = std::stoll(argv[i + 1]);
    else if (a == "--write-only")
      write_only = std::string(argv[i + 1]) == "1";
  }
  if (inter <= 0) inter = (hidden * 8 / 3 + 127) / 128 * 128;
  if (sgemm_only_seconds > 0) {
    sgemm_only(seqlen, inter, hidden, sgemm_only_seconds, probe_calls);
    return 0;
  }
  const fs::path root = keep.empty()
                            ? fs::temp_directory_path() / fmt::format("gptq-bench-{}", ::getpid())
                            : fs::path(keep);
  fs::remove_all(root);
  fs::create_directories(root / "model");
  fmt::print("writing a random Llama: hidden {}, intermediate {}, {} blocks, F16 ...\n", hidden,
             inter, blocks);
  write_random_llama(root / "model", hidden, blocks, inter, vocab);
  nlohmann::json calib = nlohmann::json::array();
  std::mt19937 rng(2);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  for (int64_t s = 0; s < nsamples; ++s) {
    std::vector<int32_t> ids(static_cast<size_t>(seqlen));
    for (auto& t : ids) t = tok(rng);
    calib.push_back(ids);
  }
  std::ofstream(root / "calib.json") << calib.dump();
  if (write_only) {
    fmt::print("wrote {} and {}\n", (root / "model").string(), (root / "calib.json").string());
    return 0;
  }

  if (!malloc_default)  // as `gptq quantize` does
    prefer_mapped_large_allocations(huge_pages, block_reuse);
  const int threads = compute_threads();
  const double sgemm_before = sgemm_gflops(seqlen, inter, hidden);
  QuantizeOptions o;
  if (batch_rows >= 0) o.batch_rows = batch_rows;
  o.quant.bits = 4;
  o.quant.group_size = 128;
  o.calib.file = root / "calib.json";
  o.calib.nsamples = nsamples;
  o.calib.seqlen = seqlen;
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  SgemmProbes probes{seqlen, inter, hidden, probe_calls};
  Callbacks cb;
  cb.log = [](const std::string& l) { fmt::print("{}\n", l); };
  cb.progress = [&](const Progress&) {
    probes.run();
    return true;
  };
  cb.layer = [&](const LayerRecord&) {
    probes.run();
    return true;
  };
  const auto sum = quantize_model(root / "model", root / "out", o, cb);
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec; };
  const double sgemm_after = sgemm_gflops(seqlen, inter, hidden);
  const double peak = std::max(sgemm_before, sgemm_after);
  const auto& t = sum.report["totals"];
  // The quantize without the probes it ran.
  const double wall = sum.result.seconds - probes.seconds;
  const double achieved = t["gflop"].get<double>() / wall;
  fmt::print("\nquantize: {} blocks x hidden {}, {} x {} calibration tokens, {} threads\n", blocks,
             hidden, nsamples, seqlen, threads);
  fmt::print("  wall time          {:.1f} s (without the {:.1f} s of sgemm probes)\n", wall,
             probes.seconds);
  fmt::print("  peak RSS           {}\n",
             human_bytes(static_cast<double>(sum.result.peak_rss_bytes)));
  fmt::print("  page faults        {} (system time {:.1f} s; huge pages {}, freed blocks {})\n",
             after.ru_minflt - before.ru_minflt, seconds(after.ru_stime) - seconds(before.ru_stime),
             large_allocations_advised() ? "advised" : "not advised",
             freed_large_blocks_reused() ? "reused" : "unmapped");
  fmt::print("  work               {:.0f} GFLOP\n", t["gflop"].get<double>());
  fmt::print("  achieved           {:.1f} GFLOP/s\n", achieved);
  fmt::print("  OpenBLAS kernels   {} ({})\n", blas::select_blas_kernels().running,
             blas::select_blas_kernels().why);
  fmt::print("  batch rows         {}\n", o.batch_rows);
  fmt::print(
      "  sgemm same run     {:.1f} GFLOP/s ({} x {} x {}; best of 5 before {:.1f}, after "
      "{:.1f})\n",
      peak, seqlen, inter, hidden, sgemm_before, sgemm_after);
  fmt::print("  ratio              {:.2f} (issue 15 target >= 0.9)\n", achieved / peak);
  if (!probes.rates.empty()) {
    const auto [lo, hi] = std::minmax_element(probes.rates.begin(), probes.rates.end());
    const double mean = probes.mean();
    fmt::print(
        "  sgemm interleaved  {:.1f} GFLOP/s ({} probes of {} calls, time-weighted; "
        "min {:.1f}, max {:.1f})\n",
        mean, probes.rates.size(), probe_calls, *lo, *hi);
    fmt::print("  ratio interleaved  {:.2f}\n", achieved / mean);
  }
  fmt::print("  stages (wall s / cpu s, nested stages are excluded from their parent):\n");
  for (const auto& s : sum.result.stages)
    fmt::print("    {:<10} {:8.2f} {:8.2f}\n", s.name, s.wall_seconds, s.cpu_seconds);
  if (keep.empty()) fs::remove_all(root);
  return 0;
}
