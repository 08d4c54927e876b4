// Peak memory of quantizing a Mixture-of-Experts block: a random Qwen3-MoE-shaped checkpoint (one
// block, hidden 1024, 64 experts of width 512, top-4) against a dense Llama block of the same hidden
// size (intermediate 2816), both BF16, quantized at 4-bit g128 with the same calibration tokens in
// separate child processes. Reports each child's peak RSS (getrusage of the child) and wall time,
// and, as the baseline, the MoE run with every expert held at once (--moe-experts-per-chunk 64).
//   bench_moe [--experts 64] [--nsamples 16] [--seqlen 512] [--chunk 8]
#include <fmt/core.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/safetensors_writer.h"
#include "pipeline/quantize.h"
#include "util/fp16.h"
#include "util/progress.h"

namespace fs = std::filesystem;
using namespace gptq;

namespace {

constexpr int64_t kHidden = 1024, kHeads = 16, kKv = 4, kHeadDim = 64, kVocab = 2048;

void write_tensors(const fs::path& dir, const std::vector<TensorSpec>& specs) {
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
    f32_to_bf16(v.data(), h.data(), n);
    w.write(s.name, h.data(), n * 2);
  }
  w.finish();
}

std::vector<TensorSpec> common_specs(bool qk_norm) {
  const std::string p = "model.layers.0.";
  std::vector<TensorSpec> s{{"model.embed_tokens.weight", DType::BF16, {kVocab, kHidden}},
                            {"model.norm.weight", DType::BF16, {kHidden}},
                            {"lm_head.weight", DType::BF16, {kVocab, kHidden}},
                            {p + "input_layernorm.weight", DType::BF16, {kHidden}},
                            {p + "post_attention_layernorm.weight", DType::BF16, {kHidden}},
                            {p + "self_attn.q_proj.weight", DType::BF16, {kHeads * kHeadDim, kHidden}},
                            {p + "self_attn.k_proj.weight", DType::BF16, {kKv * kHeadDim, kHidden}},
                            {p + "self_attn.v_proj.weight", DType::BF16, {kKv * kHeadDim, kHidden}},
                            {p + "self_attn.o_proj.weight", DType::BF16, {kHidden, kHeads * kHeadDim}}};
  if (qk_norm)
    for (const char* n : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"})
      s.push_back({p + n, DType::BF16, {kHeadDim}});
  return s;
}

nlohmann::json common_config(const char* type) {
  return {{"model_type", type},        {"hidden_size", kHidden},          {"num_attention_heads", kHeads},
          {"num_key_value_heads", kKv}, {"head_dim", kHeadDim},           {"num_hidden_layers", 1},
          {"vocab_size", kVocab},       {"max_position_embeddings", 4096}, {"rms_norm_eps", 1e-6},
          {"rope_theta", 1e6},          {"torch_dtype", "bfloat16"},      {"tie_word_embeddings", false}};
}

void write_moe(const fs::path& dir, int64_t experts, int64_t inter) {
  fs::create_directories(dir);
  nlohmann::json c = common_config("qwen3_moe");
  c["num_experts"] = experts;
  c["num_experts_per_tok"] = 4;
  c["moe_intermediate_size"] = inter;
  c["intermediate_size"] = 2816;
  c["norm_topk_prob"] = true;
  c["decoder_sparse_step"] = 1;
  c["mlp_only_layers"] = nlohmann::json::array();
  std::ofstream(dir / "config.json") << c.dump(2);
  std::vector<TensorSpec> s = common_specs(true);
  s.push_back({"model.layers.0.mlp.gate.weight", DType::BF16, {experts, kHidden}});
  for (int64_t e = 0; e < experts; ++e) {
    const std::string p = fmt::format("model.layers.0.mlp.experts.{}.", e);
    s.push_back({p + "gate_proj.weight", DType::BF16, {inter, kHidden}});
    s.push_back({p + "up_proj.weight", DType::BF16, {inter, kHidden}});
    s.push_back({p + "down_proj.weight", DType::BF16, {kHidden, inter}});
  }
  write_tensors(dir, s);
}

void write_dense(const fs::path& dir, int64_t inter) {
  fs::create_directories(dir);
  nlohmann::json c = common_config("llama");
  c["intermediate_size"] = inter;
  std::ofstream(dir / "config.json") << c.dump(2);
  std::vector<TensorSpec> s = common_specs(false);
  s.push_back({"model.layers.0.mlp.gate_proj.weight", DType::BF16, {inter, kHidden}});
  s.push_back({"model.layers.0.mlp.up_proj.weight", DType::BF16, {inter, kHidden}});
  s.push_back({"model.layers.0.mlp.down_proj.weight", DType::BF16, {kHidden, inter}});
  write_tensors(dir, s);
}

struct ChildRun {
  double peak_rss = 0, seconds = 0;
};

// Quantizes `model` in a child process; its peak RSS from wait4's rusage.
ChildRun quantize_in_child(const fs::path& model, const fs::path& out, const fs::path& calib, int64_t nsamples,
                           int64_t seqlen, int64_t chunk) {
  Stopwatch sw;
  const pid_t pid = ::fork();
  if (pid == 0) {
    QuantizeOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 128;
    o.calib.file = calib;
    o.calib.nsamples = nsamples;
    o.calib.seqlen = seqlen;
    o.moe_experts_per_chunk = chunk;
    try {
      quantize_model(model, out, o, [](const std::string&) {});
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "quantizing %s failed\n", model.c_str());
    std::exit(1);
  }
  return {static_cast<double>(ru.ru_maxrss) * 1024.0, sw.seconds()};
}

}  // namespace

int main(int argc, char** argv) {
  int64_t experts = 64, nsamples = 16, seqlen = 512, chunk = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--experts") experts = std::stoll(argv[i + 1]);
    else if (a == "--nsamples") nsamples = std::stoll(argv[i + 1]);
    else if (a == "--seqlen") seqlen = std::stoll(argv[i + 1]);
    else if (a == "--chunk") chunk = std::stoll(argv[i + 1]);
  }
  const int64_t moe_inter = 512, dense_inter = 2816;
  const fs::path root = fs::temp_directory_path() / fmt::format("gptq-bench-moe-{}", ::getpid());
  fs::remove_all(root);
  fmt::print("writing a random Qwen3-MoE block ({} experts x {} wide, top-4) and a dense Llama block (intermediate "
             "{}), hidden {}, BF16 ...\n",
             experts, moe_inter, dense_inter, kHidden);
  write_moe(root / "moe", experts, moe_inter);
  write_dense(root / "dense", dense_inter);
  nlohmann::json calib = nlohmann::json::array();
  std::mt19937 rng(2);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(kVocab - 1));
  for (int64_t s = 0; s < nsamples; ++s) {
    std::vector<int32_t> ids(static_cast<size_t>(seqlen));
    for (auto& t : ids) t = tok(rng);
    calib.push_back(ids);
  }
  std::ofstream(root / "calib.json") << calib.dump();

  const ChildRun dense = quantize_in_child(root / "dense", root / "dense-q", root / "calib.json", nsamples, seqlen, chunk);
  const ChildRun moe = quantize_in_child(root / "moe", root / "moe-q", root / "calib.json", nsamples, seqlen, chunk);
  const ChildRun moe_all =
      quantize_in_child(root / "moe", root / "moe-q-all", root / "calib.json", nsamples, seqlen, experts);
  const double moe_fp32 = 3.0 * experts * moe_inter * kHidden * 4, dense_fp32 = 3.0 * dense_inter * kHidden * 4;
  fmt::print("\n{} x {} calibration tokens; peak RSS of the quantizing process:\n", nsamples, seqlen);
  fmt::print("  dense block (MLP {} fp32)                         {:>10}  {:.1f} s\n", human_bytes(dense_fp32),
             human_bytes(dense.peak_rss), dense.seconds);
  fmt::print("  MoE block, {} experts at a time (experts {} fp32) {:>10}  {:.1f} s\n", chunk, human_bytes(moe_fp32),
             human_bytes(moe.peak_rss), moe.seconds);
  fmt::print("  MoE block, all {} experts at once (baseline)        {:>10}  {:.1f} s\n", experts,
             human_bytes(moe_all.peak_rss), moe_all.seconds);
  fmt::print("  ratio MoE / dense                                  {:.2f} (target < 2)\n", moe.peak_rss / dense.peak_rss);
  fs::remove_all(root);
  return 0;
}
