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
enum class NormType { kRmsNorm, kLayerNorm };
enum class Activation { kSilu, kGelu, kGeluTanh, kRelu };
enum class PositionType { kRotary, kLearned };
// kSeparate: q/k/v linears. kFusedConcat: one linear producing [q | k | v] (GPT-2 c_attn).
// kFusedPerHead: one linear producing, per head, [q_h | k_h | v_h] (GPT-NeoX query_key_value).
enum class QkvLayout { kSeparate, kFusedConcat, kFusedPerHead };
enum class MlpType { kGated, kPlain };  // gated: down(act(gate(x)) * up(x)); plain: fc2(act(fc1(x)))

struct LinearSpec {
  std::string name;         // module path inside a block, e.g. "self_attn.q_proj"
  LinearKind kind = LinearKind::kLinear;
  std::string input_group;  // layers with the same input_group read the same activations
};

// Module names relative to a block ("" = absent). Parameters are "<module>.weight"/".bias".
struct BlockLayout {
  std::string attn_norm, mlp_norm;
  std::string q, k, v, qkv, o;
  std::string gate, up, down;  // plain MLP: up = first linear, down = second
};

// Module names relative to the model root.
struct ModelLayout {
  std::string embed;       // token embedding
  std::string pos_embed;   // learned positions ("" for rotary)
  std::string final_norm;
  std::string lm_head;     // "" or absent tensor -> tied to embed
};

// Hyper-parameters read from config.json (names as transformers uses them).
struct ModelHparams {
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0;
  int64_t vocab = 0, max_positions = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  double rotary_pct = 1.0;       // fraction of head_dim that is rotated (GPT-NeoX rotary_pct)
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
  std::vector<LinearSpec> linears;  // registration order inside a block
  NormType norm = NormType::kRmsNorm;
  PositionType positions = PositionType::kRotary;
  QkvLayout qkv = QkvLayout::kSeparate;
  MlpType mlp = MlpType::kGated;
  ModelHparams (*read_hparams)(const nlohmann::json& config) = nullptr;

  // How the linear `local` (e.g. "attn.c_attn") stores its weight; kLinear if not listed.
  LinearKind linear_kind(const std::string& local) const {
    for (const auto& l : linears)
      if (l.name == local) return l.kind;
    return LinearKind::kLinear;
  }
};

// The registry (src/arch/registry.cpp).
const std::vector<const ArchSpec*>& all_archs();
// By config.json model_type; nullptr if unknown.
const ArchSpec* find_arch(const std::string& model_type);

}  // namespace gptq
