// Tiny checkpoints of today's model families, shaped like the real ones: config.json with every key
// the published config.json has (dimensions shrunk), and the tensor list a checkpoint of that
// config holds, under the real Hugging Face tensor names. Written with write_tiny() (random
// values).
//
// The sizes are chosen so that at the tests' sequence length (kFamilyTestTokens = 40) every
// length-dependent feature is active: sliding windows of 8, original_max_position_embeddings of
// 32 (longrope picks its long factors, dynamic NTK rescales its base) and llama3 / yarn factors
// that touch frequencies whose wavelengths are long relative to the small original context.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "support/tiny_models.h"

namespace gptq::testing {

constexpr int64_t kFamilyVocab = 64;       // vocab_size of every family config
constexpr int64_t kFamilyTestTokens = 40;  // the sequence length the configs are sized for

// The kinds family_config() knows, in a stable order:
//   llama (Llama-3-8B shape, plain RoPE), llama3 (Llama-3.1: rope_type llama3), llama_linear,
//   llama_dynamic, llama_yarn, mistral (v0.3 shape: sliding_window null), mistral_sliding
//   (v0.1 shape: sliding_window 8), qwen2, qwen3, gemma, gemma2, gemma3_text, phi3_longrope
//   (Phi-3.5-mini), phi4_mini (partial_rotary_factor 0.75), starcoder2, gemma3 (multimodal
//   Gemma3ForConditionalGeneration), mistral3, llava, qwen2_5_vl, and the transformers-5 style
//   qwen3_v5 (rope_parameters, dtype) and gemma3_v5 (per-layer-type rope_parameters, layer_types),
//   and the mixtures of experts (see moe_kinds()).
const std::vector<std::string>& family_kinds();

// The mixture-of-experts kinds (the last ones of family_kinds()), hidden 64, 4 heads, 2 KV heads:
//   mixtral   (Mixtral-8x7B keys) 2 layers, head_dim 16, 8 experts of width intermediate_size 96,
//             top-2 renormalised, every layer sparse; `block_sparse_moe.gate` [8, 64],
//             `block_sparse_moe.experts.E.{w1,w3}` [96, 64], `.w2` [64, 96].
//   qwen2_moe (Qwen1.5-MoE-A2.7B / Qwen2-57B-A14B keys) 3 layers, head_dim 16, 8 experts of width
//             moe_intermediate_size 64, top-2 not renormalised (norm_topk_prob false), a shared
//             expert of width 128 gated by sigmoid(`mlp.shared_expert_gate` [1, 64]), q/k/v biases;
//             mlp_only_layers [1]: layers 0 and 2 sparse, layer 1 a dense `mlp.{gate,up,down}_proj`
//             of intermediate_size 160.
//   qwen3_moe (Qwen3-30B-A3B keys) 2 layers, explicit head_dim 32, q_norm / k_norm, 16 experts of
//             width 64, top-4 renormalised (norm_topk_prob true), no shared expert, every layer
//             sparse. Qwen tensors: `mlp.gate` [E, 64], `mlp.experts.E.{gate,up,down}_proj`.
// Router weights are 2 / sqrt(hidden) N(0, 1): logits of standard deviation about 2.
const std::vector<std::string>& moe_kinds();

// config.json of one kind (see family_kinds()); throws std::invalid_argument for an unknown kind.
nlohmann::json family_config(const std::string& kind);

// Where a multimodal checkpoint keeps its text model.
//   kCurrent: as transformers >= 4.52 saves it: `model.language_model.*` + `lm_head` (Qwen2.5-VL:
//             also `model.visual.*`; the others `model.vision_tower.*`,
//             `model.multi_modal_projector.*`).
//   kLegacy:  as the published checkpoints hold it: `language_model.model.*` +
//             `language_model.lm_head` + `vision_tower.*`, `multi_modal_projector.*` (Gemma 3,
//             Mistral 3, LLaVA); Qwen2.5-VL: `model.*` + `lm_head` + `visual.*`.
// Text-only families ignore it (`model.*` + `lm_head`).
enum class MultimodalLayout { kCurrent, kLegacy };

// The tensors (real names and shapes) a checkpoint of `config` holds, dispatching on model_type
// (the top-level one for multimodal configs). Text tensors come first, in the order embed, layers,
// final norm, head; the few vision-tower / projector tensors of multimodal models come last, so
// that a multimodal checkpoint and a text-only one of the same text config written with the same
// seed hold the same text weights. RMSNorm weights are 1 + 0.1 N(0, 1), Gemma's (1 + w) norms
// 0.1 N(0, 1), LayerNorms 1 + 0.1 N(0, 1) with 0.1 N(0, 1) biases. No head tensor when the config
// ties the embeddings. family = the top-level model_type.
TinyModel tiny_from_config(const nlohmann::json& config,
                           MultimodalLayout layout = MultimodalLayout::kCurrent);

// Makes `expert` of sparse layer `layer` receive no token, whatever the input, by editing that
// layer's router weight (`m` from tiny_from_config(config); the other tensors are unchanged, and
// so are the router's other random rows):
//   * the starved expert's row is zero, so its logit is exactly 0 for every hidden state;
//   * the first 2 x top_k other experts (in index order) form top_k pairs whose rows are exact
//     negations of each other (row b = -row a; negation is exact in every storage dtype and in
//     any router matmul that treats all rows alike), so in each pair one logit is >= 0 and the
//     other its negation.
// Each pair thus holds an expert whose logit is >= the starved one's, and strictly greater unless
// the hidden state is exactly orthogonal to that pair's row: top_k experts always beat the
// starved one, which is never chosen. (The router has no bias and its input, the normalised
// hidden state, has no sign-constant channel, so no single row can be made smaller than every
// other for all inputs; pairs need no such channel.) Throws std::invalid_argument for a dense
// layer or kind, an unknown expert, or fewer than 2 x top_k + 1 experts.
void starve_expert(TinyModel& m, const nlohmann::json& config, int64_t layer, int64_t expert);

}  // namespace gptq::testing
