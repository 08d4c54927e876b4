// Architectures as data. One ArchSpec per model family (src/arch/<name>.cpp) says:
//   - where the tensors live (name templates per role, relative to the model or to a block),
//   - which linear layers a block holds, in module registration order (= Optimum's get_layers
//     order, which is also the true-sequential order), and which of them read the same input
//     (they share one Hessian),
//   - how the block forward is assembled from the shared pieces (norm, attention, MLP),
//   - how config.json maps to the hyper-parameters.
// Adding a model = one file in src/arch/ + one line in src/arch/registry.cpp.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {

enum class LinearKind { kLinear, kConv1D, kConv2d };  // Conv1D: GPT-2 family, stored [in, out]
// kRmsNormUnitOffset: Gemma's RMSNorm, y = rmsnorm(x) * (1 + w) (the stored w is an offset).
enum class NormType { kRmsNorm, kLayerNorm, kRmsNormUnitOffset };
enum class Activation { kSilu, kGelu, kGeluTanh, kRelu };
enum class PositionType { kRotary, kLearned };
// kSeparate: q/k/v linears. kFusedConcat: one linear producing [q | k | v] (GPT-2 c_attn).
// kFusedPerHead: one linear producing, per head, [q_h | k_h | v_h] (GPT-NeoX query_key_value).
enum class QkvLayout { kSeparate, kFusedConcat, kFusedPerHead };
// gated: down(act(gate(x)) * up(x)) (Phi-3's fused gate_up_proj: [gate | up] = gate_up(x));
// plain: fc2(act(fc1(x)))
enum class MlpType { kGated, kPlain };

struct LinearSpec {
  std::string name;         // module path inside a block, e.g. "self_attn.q_proj"
  LinearKind kind = LinearKind::kLinear;
  std::string input_group;  // layers with the same input_group read the same activations
};

// Mixture-of-Experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE): a router picks top-k experts per token;
// each expert is a gated MLP; an optional shared expert runs on every token, scaled by
// sigmoid(shared_expert_gate(x)). Names are relative to the block; "{e}" is the expert index.
struct MoeLayout {
  std::string router;                               // e.g. "mlp.gate" ("" = not a MoE family)
  std::string expert_gate, expert_up, expert_down;  // e.g. "mlp.experts.{e}.gate_proj"
  std::string shared_gate, shared_up, shared_down;  // "" = no shared expert
  std::string shared_expert_gate;                   // [1, hidden] sigmoid gate of the shared expert
  bool empty() const { return router.empty(); }
};

// Module names relative to a block ("" = absent). Parameters are "<module>.weight"/".bias".
struct BlockLayout {
  std::string attn_norm, mlp_norm;
  std::string q, k, v, qkv, o;
  std::string gate, up, down;  // plain MLP: up = first linear, down = second
  std::string gate_up;         // fused [gate | up] (Phi-3), instead of gate and up
  // Optional norms: per-head q/k norms after the projections, before RoPE (Qwen3, Gemma 3); the
  // sandwich norms on the attention and MLP outputs before their residual adds (Gemma 2/3).
  std::string q_norm, k_norm, attn_out_norm, mlp_out_norm;
};

// Module names relative to the model root.
struct ModelLayout {
  std::string embed;       // token embedding
  std::string pos_embed;   // learned positions ("" for rotary)
  std::string final_norm;
  std::string lm_head;     // "" or absent tensor -> tied to embed
};

// Rotary embedding frequencies as transformers' modeling_rope_utils computes them (rope_type
// default, linear, dynamic, yarn, longrope, llama3), read from rope_scaling / rope_parameters.
struct RopeSpec {
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_positions = 0;  // llama3 / yarn (rope_scaling's) and longrope (config's)
  // dynamic NTK: frequencies are recomputed for sequences longer than this (max_position_embeddings)
  int64_t dynamic_base_positions = 0;
  // yarn / longrope: cos and sin are multiplied by attention_factor (derived when absent)
  double attention_factor = 1.0;
  double beta_fast = 32.0, beta_slow = 1.0;
  bool truncate = true;
  // longrope: per-frequency divisors; long ones for sequences beyond original_max_positions
  std::vector<double> short_factor, long_factor;
};

// Hyper-parameters read from config.json (names as transformers uses them).
struct ModelHparams {
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  int64_t vocab = 0, max_positions = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeSpec rope;                 // global layers (rope.theta == rope_theta)
  RopeSpec rope_local;           // sliding-window layers when they use another RoPE (Gemma 3)
  bool has_rope_local = false;
  double rotary_pct = 1.0;       // fraction of head_dim that is rotated (GPT-NeoX rotary_pct)
  // Sliding-window attention: query i sees keys j with i - j < sliding_window on the layers
  // marked in layer_sliding (empty = none).
  int64_t sliding_window = 0;
  std::vector<bool> layer_sliding;
  double attn_scale = 0;         // softmax scale; 0 = 1/sqrt(head_dim)
  double attn_softcap = 0;       // Gemma 2: scores = cap * tanh(scores / cap); 0 = off
  double final_softcap = 0;      // Gemma 2: logits = cap * tanh(logits / cap); 0 = off
  double embed_scale = 0;        // Gemma: embeddings times this (already rounded); 0 = off
  // Mixture of experts: which layers are sparse (empty: none), experts, top-k, expert and shared
  // expert widths, whether the top-k routing weights are renormalised to sum to 1.
  std::vector<bool> layer_moe;
  int64_t num_experts = 0, experts_per_token = 0, moe_intermediate = 0, shared_intermediate = 0;
  bool norm_topk_prob = true;
  bool is_moe_layer(int64_t layer) const {
    return layer >= 0 && layer < static_cast<int64_t>(layer_moe.size()) && layer_moe[static_cast<size_t>(layer)];
  }
  int64_t pos_offset = 0;        // OPT's learned positions start at index 2
  Activation act = Activation::kSilu;
  bool parallel_residual = false;  // GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
  bool tie_word_embeddings = false;
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  bool norm_before = true;       // OPT do_layer_norm_before
};

struct ArchSpec {
  std::string name;                      // registry key, e.g. "llama"
  std::vector<std::string> model_types;  // config.json "model_type" values handled
  ModelLayout model;
  BlockLayout block;
  std::vector<LinearSpec> linears;  // registration order inside a block (dense MLP layers)
  MoeLayout moe;                    // sparse layers replace the MLP linears of `linears` by these
  // Modules that look like linears but stay float (routers, shared-expert gates), as GPTQModel.
  std::vector<std::string> float_modules;
  NormType norm = NormType::kRmsNorm;
  PositionType positions = PositionType::kRotary;
  QkvLayout qkv = QkvLayout::kSeparate;
  MlpType mlp = MlpType::kGated;
  ModelHparams (*read_hparams)(const nlohmann::json& config) = nullptr;
  // Multimodal wrappers (model_type of the whole checkpoint, e.g. "llava") whose language model
  // is this family; their text_config (or, without one, the top level) is read with
  // text_defaults underneath: the keys transformers' config class supplies when absent.
  std::vector<std::string> wrapper_types;
  const char* text_defaults = "{}";
  // Keys forced on the language model of such a wrapper (what its ForConditionalGeneration
  // class does not apply, e.g. Gemma 3's final soft-capping).
  const char* wrapper_overrides = "{}";

  // How the linear `local` (e.g. "attn.c_attn") stores its weight; kLinear if not listed.
  LinearKind linear_kind(const std::string& local) const {
    for (const auto& l : linears)
      if (l.name == local) return l.kind;
    return LinearKind::kLinear;
  }
  // The linears of block `layer` in registration order: `linears`, or on a sparse layer the
  // attention linears followed by every expert's (input groups "expert.<e>.in" / ".mid") and the
  // shared expert's ("mlp_in" / "shared_mid").
  std::vector<LinearSpec> block_linears(const ModelHparams& hp, int64_t layer) const;
};

// The expert module name of a template ("mlp.experts.{e}.up_proj", 3 -> "mlp.experts.3.up_proj").
std::string expert_name(const std::string& tmpl, int64_t expert);

// The registry (src/arch/registry.cpp).
const std::vector<const ArchSpec*>& all_archs();
// By config.json model_type; nullptr if unknown.
const ArchSpec* find_arch(const std::string& model_type);
// The family whose language model a multimodal checkpoint of `model_type` holds; nullptr if none.
const ArchSpec* find_wrapper_arch(const std::string& model_type);

}  // namespace gptq
