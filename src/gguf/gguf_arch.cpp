#include "gguf/gguf_arch.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/error.h"

namespace gptq::gguf {

namespace {
const std::vector<GgufArch>& archs() {
  static const std::vector<GgufArch> a{
      {.family = "llama", .arch = "llama", .permute_qk = true},
      {.family = "mistral", .arch = "llama", .permute_qk = true, .swa_dropped = true},
      {.family = "qwen2", .arch = "qwen2"},
      {.family = "qwen3", .arch = "qwen3"},
      {.family = "gpt2", .arch = "gpt2"},
      {.family = "gpt_neox", .arch = "gptneox", .neox_qkv = true},
      {.family = "starcoder2", .arch = "starcoder2", .swa_dropped = true},
      {.family = "gemma", .arch = "gemma", .norm_offset = true},
  };
  return a;
}

std::string blk(int64_t i, const char* name) {
  return fmt::format("blk.{}.{}", i, name);
}
}  // namespace

std::vector<std::string> gguf_families() {
  std::vector<std::string> f;
  for (const auto& a : archs()) f.push_back(a.family);
  return f;
}

const GgufArch& gguf_arch_for(const std::string& family) {
  for (const auto& a : archs())
    if (a.family == family) return a;
  fail("GGUF export does not support the {} family yet (supported: {})", family,
       fmt::join(gguf_families(), ", "));
}

std::vector<TensorMapping> tensor_mappings(const GgufArch& g, const ModelConfig& config,
                                           const ModelLayout& layout,
                                           const std::string& block_prefix, bool head_present) {
  const ArchSpec& spec = config.require_arch();
  const ModelHparams& hp = config.hp;
  std::vector<TensorMapping> m;
  m.push_back({layout.embed, "token_embd"});
  if (!layout.pos_embed.empty()) m.push_back({layout.pos_embed, "position_embd"});
  const BlockLayout& b = spec.block;
  for (int64_t i = 0; i < hp.layers; ++i) {
    const std::string p = fmt::format("{}.{}.", block_prefix, i);
    auto add = [&](const std::string& local, const char* name, RowOrder rows, bool norm,
                   bool linear) {
      if (!local.empty()) m.push_back({p + local, blk(i, name), rows, norm, linear});
    };
    add(b.attn_norm, "attn_norm", RowOrder::kAsIs, true, false);
    add(b.q, "attn_q", g.permute_qk ? RowOrder::kLlamaQ : RowOrder::kAsIs, false, true);
    add(b.k, "attn_k", g.permute_qk ? RowOrder::kLlamaK : RowOrder::kAsIs, false, true);
    add(b.v, "attn_v", RowOrder::kAsIs, false, true);
    add(b.qkv, "attn_qkv", g.neox_qkv ? RowOrder::kNeoxQkv : RowOrder::kAsIs, false, true);
    add(b.q_norm, "attn_q_norm", RowOrder::kAsIs, true, false);
    add(b.k_norm, "attn_k_norm", RowOrder::kAsIs, true, false);
    add(b.o, "attn_output", RowOrder::kAsIs, false, true);
    add(b.attn_out_norm, "post_attention_norm", RowOrder::kAsIs, true, false);
    add(b.mlp_norm, "ffn_norm", RowOrder::kAsIs, true, false);
    add(b.gate, "ffn_gate", RowOrder::kAsIs, false, true);
    add(b.gate_up, "ffn_up", RowOrder::kAsIs, false, true);
    add(b.up, "ffn_up", RowOrder::kAsIs, false, true);
    add(b.down, "ffn_down", RowOrder::kAsIs, false, true);
    add(b.mlp_out_norm, "post_ffw_norm", RowOrder::kAsIs, true, false);
  }
  m.push_back({layout.final_norm, "output_norm", RowOrder::kAsIs, true, false});
  if (head_present) m.push_back({layout.lm_head, "output"});
  return m;
}

std::vector<int64_t> row_order(RowOrder order, int64_t rows, const ModelHparams& hp) {
  std::vector<int64_t> src(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) src[r] = r;
  if (order == RowOrder::kLlamaQ || order == RowOrder::kLlamaK) {
    const int64_t heads = order == RowOrder::kLlamaQ ? hp.heads : hp.kv_heads;
    if (heads <= 0 || rows % (2 * heads) != 0)
      fail("the Q/K permutation needs {} rows to split into {} heads of even size", rows, heads);
    const int64_t half = rows / heads / 2;
    // permute: reshape(heads, 2, half) -> swap -> (heads, half, 2)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t j = 0; j < 2; ++j) src[h * 2 * half + i * 2 + j] = h * 2 * half + j * half + i;
  } else if (order == RowOrder::kNeoxQkv) {
    const int64_t heads = hp.heads;
    if (heads <= 0 || rows % (3 * heads) != 0)
      fail("the fused QKV has {} rows, not 3 x {} heads", rows, heads);
    const int64_t hd = rows / heads / 3;
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < hd; ++d) src[t * heads * hd + h * hd + d] = h * 3 * hd + t * hd + d;
  }
  return src;
}

std::vector<std::string> write_arch_metadata(GgufWriter& w, const GgufArch& g,
                                             const ModelConfig& config) {
  std::vector<std::string> warnings;
  const ModelHparams& hp = config.hp;
  const nlohmann::json& raw = config.text_raw;
  const std::string& a = g.arch;
  auto key = [&](const char* k) { return a + "." + k; };
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_u32(key("context_length"), u32(hp.max_positions));
  w.add_u32(key("embedding_length"), u32(hp.hidden));
  w.add_u32(key("block_count"), u32(hp.layers));
  w.add_u32(key("feed_forward_length"), u32(hp.intermediate));
  w.add_u32(key("attention.head_count"), u32(hp.heads));
  w.add_u32(key("attention.head_count_kv"), u32(hp.kv_heads));
  const ArchSpec& spec = config.require_arch();
  if (spec.norm == NormType::kLayerNorm)
    w.add_f32(key("attention.layer_norm_epsilon"), static_cast<float>(hp.norm_eps));
  else
    w.add_f32(key("attention.layer_norm_rms_epsilon"), static_cast<float>(hp.norm_eps));
  if (raw.contains("head_dim") && raw.at("head_dim").is_number_integer()) {
    w.add_u32(key("attention.key_length"), u32(hp.head_dim));
    w.add_u32(key("attention.value_length"), u32(hp.head_dim));
  }
  if (spec.positions == PositionType::kRotary) {
    w.add_f32(key("rope.freq_base"), static_cast<float>(hp.rope_theta));
    w.add_u32(key("rope.dimension_count"),
              u32(static_cast<int64_t>(hp.rotary_pct * static_cast<double>(hp.head_dim))));
    const RopeSpec& r = hp.rope;
    if (r.type == "linear") {
      w.add_string(key("rope.scaling.type"), "linear");
      w.add_f32(key("rope.scaling.factor"), static_cast<float>(r.factor));
    } else if (r.type == "yarn") {
      w.add_string(key("rope.scaling.type"), "yarn");
      w.add_f32(key("rope.scaling.factor"), static_cast<float>(r.factor));
      w.add_u32(key("rope.scaling.original_context_length"), u32(r.original_max_positions));
    } else if (r.type != "default") {
      fail(
          "GGUF export: rope_type {} of config.json is not exported yet (default, linear and yarn "
          "are)",
          r.type);
    }
  }
  if (hp.sliding_window > 0 && !hp.layer_sliding.empty()) {
    const bool all =
        std::all_of(hp.layer_sliding.begin(), hp.layer_sliding.end(), [](bool b) { return b; });
    if (!all || !g.swa_dropped)
      fail("GGUF export: the sliding-window attention of {} ({} tokens) is not exported yet",
           g.family, hp.sliding_window);
    warnings.push_back(
        fmt::format("sliding_window {}: llama.cpp's {} attends to the whole context "
                    "(convert_hf_to_gguf.py drops the window too); "
                    "outputs differ beyond {} tokens",
                    hp.sliding_window, g.arch, hp.sliding_window));
  }
  w.add_u32(key("vocab_size"), u32(hp.vocab));
  if (g.neox_qkv) w.add_bool(key("use_parallel_residual"), hp.parallel_residual);
  return warnings;
}

}  // namespace gptq::gguf
