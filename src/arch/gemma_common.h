// What Gemma 1, 2 and 3 share (src/arch/gemma.cpp).
#pragma once

#include "model/arch.h"

namespace gptq {

// Llama-like keys plus Gemma's: the MLP activation (from `activation_key`), tied head by
// default, embedding scale.
ModelHparams read_gemma_common(const nlohmann::json& config, const char* activation_key);
// The Llama layout with Gemma's (1 + w) RMSNorm.
ArchSpec gemma_spec_base();
// Gemma 2/3: attention scale query_pre_attn_scalar^-0.5, soft-capping, sliding layers by
// `layer_types`, else every `pattern`-th layer (1-based) is global.
void read_gemma2_attention(ModelHparams& h, const nlohmann::json& config, int64_t pattern);

}  // namespace gptq
