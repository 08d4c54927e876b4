#include "gguf/gguf_arch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace gptq::gguf {

namespace {
const std::vector<GgufArch>& archs() {
  static const std::vector<GgufArch> a{
      {.family = "llama", .arch = "llama", .permute_qk = true, .llama3_rope = true},
      {.family = "mistral", .arch = "llama", .permute_qk = true, .swa_dropped = true},
      {.family = "qwen2", .arch = "qwen2"},
      {.family = "qwen3", .arch = "qwen3"},
      {.family = "gpt2", .arch = "gpt2"},
      {.family = "gpt_neox", .arch = "gptneox", .neox_qkv = true},
      {.family = "starcoder2", .arch = "starcoder2", .swa_dropped = true},
      {.family = "gemma", .arch = "gemma", .norm_offset = true},
      {.family = "gemma2",
       .arch = "gemma2",
       .norm_offset = true,
       .swa_pattern = true,
       .softcap = true,
       .attn_scale_alt_layers = 46},
      {.family = "gemma3",
       .arch = "gemma3",
       .norm_offset = true,
       .swa_pattern = true,
       .final_softcap_optional = true,
       .attn_scale_alt_layers = 62,
       .fold_attn_scale = true,
       .text_tower = true,
       .rope_local = true},
      {.family = "phi3", .arch = "phi3", .swa_dropped = true, .longrope = true},
      {.family = "mixtral", .arch = "llama", .permute_qk = true, .swa_dropped = true, .moe = true},
      {.family = "qwen2_moe",
       .arch = "qwen2moe",
       .moe = true,
       .moe_norm_topk = false,
       .moe_expert_ff = true},
      {.family = "qwen3_moe", .arch = "qwen3moe", .moe = true, .moe_expert_ff = true},
  };
  return a;
}

std::string blk(int64_t i, const char* name) {
  return fmt::format("blk.{}.{}", i, name);
}

// The query scale llama.cpp's Gemma 2/3 apply: head_dim^-0.5, or (hidden / heads)^-0.5 at the
// layer count of the 27B models.
double llama_cpp_attn_scale(const GgufArch& g, const ModelHparams& hp) {
  const int64_t d = hp.layers == g.attn_scale_alt_layers ? hp.hidden / hp.heads : hp.head_dim;
  return 1.0 / std::sqrt(static_cast<double>(d));
}

double hf_attn_scale(const ModelHparams& hp) {
  return hp.attn_scale > 0 ? hp.attn_scale : 1.0 / std::sqrt(static_cast<double>(hp.head_dim));
}

int64_t rope_dims(const ModelHparams& hp) {
  return static_cast<int64_t>(hp.rotary_pct * static_cast<double>(hp.head_dim));
}

// Llama 3.1's frequency divisors as convert_hf_to_gguf.py's LlamaModel computes them (rope_freqs).
std::vector<float> llama3_rope_freqs(const ModelHparams& hp) {
  const RopeSpec& r = hp.rope;
  const int64_t dim = rope_dims(hp);
  const double old_ctx = static_cast<double>(r.original_max_positions);
  const double low_wavelen = old_ctx / r.low_freq_factor;
  const double high_wavelen = old_ctx / r.high_freq_factor;
  std::vector<float> f;
  for (int64_t i = 0; i < dim; i += 2) {
    const double freq = 1.0 / std::pow(r.theta, static_cast<double>(i) / static_cast<double>(dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double factor = 1.0;
    if (wavelen < high_wavelen)
      factor = 1.0;
    else if (wavelen > low_wavelen)
      factor = r.factor;
    else {
      const double smooth =
          (old_ctx / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      factor = 1.0 / ((1 - smooth) / r.factor + smooth);
    }
    f.push_back(static_cast<float>(factor));
  }
  return f;
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
    if (g.moe && hp.is_moe_layer(i)) {
      const MoeLayout& e = spec.moe;
      m.push_back(
          {.hf_module = p + e.router, .gguf_name = blk(i, "ffn_gate_inp"), .keep_f32 = true});
      auto stack = [&](const std::string& tmpl, const char* name) {
        TensorMapping s{.hf_module = p + tmpl, .gguf_name = blk(i, name), .is_linear = true};
        for (int64_t x = 0; x < hp.num_experts; ++x) s.experts.push_back(p + expert_name(tmpl, x));
        m.push_back(std::move(s));
      };
      stack(e.expert_gate, "ffn_gate_exps");
      stack(e.expert_up, "ffn_up_exps");
      stack(e.expert_down, "ffn_down_exps");
      if (!e.shared_gate.empty()) {
        add(e.shared_expert_gate, "ffn_gate_inp_shexp", RowOrder::kAsIs, false, false);
        m.back().keep_f32 = true;
        add(e.shared_gate, "ffn_gate_shexp", RowOrder::kAsIs, false, true);
        add(e.shared_up, "ffn_up_shexp", RowOrder::kAsIs, false, true);
        add(e.shared_down, "ffn_down_shexp", RowOrder::kAsIs, false, true);
      }
    } else {
      add(b.gate, "ffn_gate", RowOrder::kAsIs, false, true);
      add(b.gate_up, "ffn_up", RowOrder::kAsIs, false, true);
      add(b.up, "ffn_up", RowOrder::kAsIs, false, true);
      add(b.down, "ffn_down", RowOrder::kAsIs, false, true);
    }
    add(b.mlp_out_norm, "post_ffw_norm", RowOrder::kAsIs, true, false);
  }
  m.push_back({layout.final_norm, "output_norm", RowOrder::kAsIs, true, false});
  if (head_present) m.push_back({layout.lm_head, "output"});
  // Gemma 3: the query scale query_pre_attn_scalar^-0.5 where llama.cpp's differs, folded into
  // the q_norm weight (the queries are normalised, then scaled).
  if (g.fold_attn_scale) {
    const double c = hf_attn_scale(hp) / llama_cpp_attn_scale(g, hp);
    for (TensorMapping& t : m)
      if (t.gguf_name.ends_with(".attn_q_norm")) t.scale = static_cast<float>(c);
  }
  const int64_t half = rope_dims(hp) / 2;
  if (g.longrope && hp.rope.type == "longrope") {
    auto factors = [&](const std::vector<double>& v, const char* name) {
      if (static_cast<int64_t>(v.size()) != half)
        fail("GGUF export: rope_scaling.{} has {} values, llama.cpp needs rotary dims / 2 = {}",
             name, v.size(), half);
      return std::vector<float>(v.begin(), v.end());
    };
    m.push_back(
        {.gguf_name = "rope_factors_long", .values = factors(hp.rope.long_factor, "long_factor")});
    m.push_back({.gguf_name = "rope_factors_short",
                 .values = factors(hp.rope.short_factor, "short_factor")});
  }
  if (g.llama3_rope && hp.rope.type == "llama3")
    m.push_back({.gguf_name = "rope_freqs", .values = llama3_rope_freqs(hp)});
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
    } else if (r.type == "longrope" && g.longrope) {
      // Phi3MiniModel: no scaling type; the factors are tensors, the attention factor a key.
      w.add_f32(key("rope.scaling.attn_factor"), static_cast<float>(r.attention_factor));
      w.add_u32(key("rope.scaling.original_context_length"), u32(r.original_max_positions));
    } else if (r.type == "llama3" && g.llama3_rope) {
      // the rope_freqs tensor (tensor_mappings) holds the divisors
    } else if (r.type != "default") {
      fail(
          "GGUF export: rope_type {} of config.json is not exported for {} (default, linear and "
          "yarn are{}{})",
          r.type, g.family, g.longrope ? ", longrope too" : "",
          g.llama3_rope ? ", llama3 too" : "");
    }
    if (g.rope_local && hp.has_rope_local) {
      if (hp.rope_local.type != "default")
        fail(
            "GGUF export: llama.cpp's {} has no rope scaling on sliding layers ({} in config.json)",
            g.arch, hp.rope_local.type);
      w.add_f32(key("rope.freq_base_swa"), static_cast<float>(hp.rope_local.theta));
    }
  }
  if (g.swa_pattern) {
    // The period p with layer i sliding iff i % p < p - 1 (p = 1: none, 0: all), as llama.cpp's
    // set_swa_pattern; written even when the checkpoint's own rule is layer_types.
    const int64_t n = static_cast<int64_t>(hp.layer_sliding.size());
    auto slides = [&](int64_t i) {
      return hp.sliding_window > 0 && i < n && hp.layer_sliding[static_cast<size_t>(i)];
    };
    int64_t period = -1;
    for (int64_t p = 0; p <= hp.layers && period < 0; ++p) {
      bool ok = true;
      for (int64_t i = 0; i < hp.layers && ok; ++i) ok = slides(i) == (p == 0 || i % p < p - 1);
      if (ok) period = p;
    }
    if (period < 0)
      fail(
          "GGUF export: llama.cpp's {} slides the window on every p-th layer but one; the sliding "
          "layers of config.json (layer_types) follow no such period",
          g.arch);
    w.add_u32(key("attention.sliding_window"), u32(hp.sliding_window));
    w.add_u32(key("attention.sliding_window_pattern"), u32(period));
  } else if (hp.sliding_window > 0 && !hp.layer_sliding.empty()) {
    const bool all =
        std::all_of(hp.layer_sliding.begin(), hp.layer_sliding.end(), [](bool b) { return b; });
    if (!all || !g.swa_dropped)
      fail("GGUF export: the sliding-window attention of {} ({} tokens) is not exported yet",
           g.family, hp.sliding_window);
    warnings.push_back(
        fmt::format("sliding_window {}: llama.cpp's {} attends to the whole context "
                    "(with convert_hf_to_gguf.py's file too); "
                    "outputs differ beyond {} tokens",
                    hp.sliding_window, g.arch, hp.sliding_window));
  }
  if (g.softcap) {
    if (!(hp.attn_softcap > 0) || !(hp.final_softcap > 0))
      fail(
          "GGUF export: llama.cpp's {} always soft-caps attention scores and logits; config.json "
          "sets attn_logit_softcapping {} and final_logit_softcapping {} (0: off)",
          g.arch, hp.attn_softcap, hp.final_softcap);
    w.add_f32(key("attn_logit_softcapping"), static_cast<float>(hp.attn_softcap));
    w.add_f32(key("final_logit_softcapping"), static_cast<float>(hp.final_softcap));
  } else if (g.final_softcap_optional && hp.final_softcap > 0) {
    w.add_f32(key("final_logit_softcapping"), static_cast<float>(hp.final_softcap));
  }
  if (g.attn_scale_alt_layers > 0 && !g.fold_attn_scale) {
    const double ours = hf_attn_scale(hp), theirs = llama_cpp_attn_scale(g, hp);
    if (std::abs(ours - theirs) > 1e-6 * theirs)
      fail(
          "GGUF export: llama.cpp's {} scales queries by head_dim^-0.5 = {:.6g} (hidden / heads at "
          "{} layers); query_pre_attn_scalar of config.json gives {:.6g}",
          g.arch, theirs, g.attn_scale_alt_layers, ours);
  }
  if (g.moe) {
    if (hp.num_experts <= 0) fail("GGUF export: {} has no experts", g.family);
    for (int64_t i = 0; i < hp.layers; ++i)
      if (!hp.is_moe_layer(i))
        fail(
            "GGUF export: llama.cpp's {} has no dense MLP layers; layer {} of this checkpoint is "
            "one (mlp_only_layers / decoder_sparse_step)",
            g.arch, i);
    if (hp.norm_topk_prob != g.moe_norm_topk)
      fail(
          "GGUF export: llama.cpp's {} {} the top-k expert weights; config.json has norm_topk_prob "
          "{}",
          g.arch, g.moe_norm_topk ? "always renormalises" : "never renormalises",
          hp.norm_topk_prob);
    if (!g.moe_expert_ff && hp.moe_intermediate != hp.intermediate)
      fail("GGUF export: llama.cpp's {} sizes the experts by feed_forward_length {}, not {}",
           g.arch, hp.intermediate, hp.moe_intermediate);
    w.add_u32(key("expert_count"), u32(hp.num_experts));
    w.add_u32(key("expert_used_count"), u32(hp.experts_per_token));
    if (g.moe_expert_ff) {
      w.add_u32(key("expert_feed_forward_length"), u32(hp.moe_intermediate));
      if (hp.shared_intermediate > 0)
        w.add_u32(key("expert_shared_feed_forward_length"), u32(hp.shared_intermediate));
    }
  }
  w.add_u32(key("vocab_size"), u32(hp.vocab));
  if (g.neox_qkv) w.add_bool(key("use_parallel_residual"), hp.parallel_residual);
  return warnings;
}

}  // namespace gptq::gguf
