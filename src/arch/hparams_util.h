// Shared config.json readers for the per-architecture files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/json_util.h"

namespace gptq {

// transformers ACT2FN names -> Activation; error naming the key for unknown ones.
Activation parse_activation(const JsonObject& cfg, const std::string& key, const std::string& def);

// The dimensions every decoder config has under transformers' names: hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads (default: heads), head_dim,
// intermediate_size, vocab_size, max_position_embeddings (default `default_positions`).
void read_decoder_dims(ModelHparams& h, const JsonObject& cfg, int64_t default_positions);

// The Llama-family keys (hidden_size, num_attention_heads, num_key_value_heads, head_dim,
// intermediate_size, rms_norm_eps, rope_theta / rope_scaling / rope_parameters,
// partial_rotary_factor, hidden_act, tie_word_embeddings, attention_bias, mlp_bias).
ModelHparams read_llama_like_hparams(const nlohmann::json& config);

// head_dim from the config if present (and not null), else hidden / heads (checked to divide).
int64_t head_dim_of(const JsonObject& cfg, int64_t hidden, int64_t heads);

// Which layers use sliding-window attention: config.json's `layer_types` when present
// ("sliding_attention" / "full_attention", one per layer), else `by_default(layer)`. Sets
// h.sliding_window from `sliding_window`: null means none, an absent key the family's
// transformers default `default_window` (0: none).
void read_sliding_layers(ModelHparams& h, const JsonObject& cfg, int64_t default_window,
                         const std::function<bool(int64_t layer)>& by_default);

// Mixture-of-experts keys: `experts_key` experts of `inter_key` width, num_experts_per_tok,
// norm_topk_prob (default `renormalize`), and the sparse layers: (i + 1) % decoder_sparse_step == 0
// and i not in mlp_only_layers (Qwen-MoE; Mixtral has neither key: every layer).
void read_moe(ModelHparams& h, const JsonObject& cfg, const char* experts_key, const char* inter_key,
              bool renormalize);

// The Gemma embedding normalizer sqrt(hidden_size) rounded to the model dtype (torch_dtype /
// dtype: bfloat16 or float16), as `torch.tensor(hidden_size**0.5, dtype=...)` does.
double gemma_embed_scale(const JsonObject& cfg, int64_t hidden);

}  // namespace gptq
