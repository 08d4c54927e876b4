// RoPE settings from config.json, as transformers reads them: `rope_scaling` (transformers 4) or
// `rope_parameters` (transformers 5, possibly one entry per layer type), `type` or `rope_type`.
#pragma once

#include <string>

#include "model/arch.h"
#include "model/json_util.h"

namespace gptq {

// The RoPE of layers of `layer_type` ("full_attention" or "sliding_attention"; per-layer-type
// rope_parameters only). `default_theta` applies when neither the entry nor the config has a
// rope_theta. An unknown rope type is an error naming it.
RopeSpec read_rope(const JsonObject& cfg, double default_theta,
                   const std::string& layer_type = "full_attention");

// Whether config.json gives RoPE parameters per layer type (Gemma 3 under transformers 5).
bool has_per_layer_type_rope(const JsonObject& cfg);

}  // namespace gptq
