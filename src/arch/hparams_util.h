// Shared config.json readers for the per-architecture files.
#pragma once

#include <string>

#include "model/arch.h"
#include "model/json_util.h"

namespace gptq {

// transformers ACT2FN names -> Activation; error naming the key for unknown ones.
Activation parse_activation(const JsonObject& cfg, const std::string& key, const std::string& def);

// The Llama-family keys (hidden_size, num_attention_heads, num_key_value_heads, head_dim,
// intermediate_size, rms_norm_eps, rope_theta, hidden_act, tie_word_embeddings, ...).
ModelHparams read_llama_like_hparams(const nlohmann::json& config);

// head_dim from the config if present, else hidden / heads (checked to divide).
int64_t head_dim_of(const JsonObject& cfg, int64_t hidden, int64_t heads);

}  // namespace gptq
