// Machine-readable description of a ModelPlan (gptq inspect --json).
#pragma once

#include <nlohmann/json.hpp>

#include "model/convert.h"

namespace gptq {

std::string linear_kind_name(LinearKind k);
nlohmann::json plan_to_json(const ModelConfig& config, const ModelPlan& plan);

// "--modules-in-block" values: each occurrence is one sequential group of comma-separated
// suffixes, or a single JSON list of lists ('[["q_proj","k_proj"],["o_proj"]]').
std::vector<std::vector<std::string>> parse_modules_in_block(const std::vector<std::string>& args);

}  // namespace gptq
