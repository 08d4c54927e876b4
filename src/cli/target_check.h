// `gptq quantize --target R`: the runtime rules (model/runtime_targets.h) checked on the plan of
// the run before any work; a runtime that cannot load the result is a usage error naming the rule.
#pragma once

#include <filesystem>
#include <string>

#include "gptq/quantize.h"

namespace gptq::cli {

// target: vllm | transformers | gguf | any (any: nothing is checked).
void check_quantize_target(const std::string& target, const std::filesystem::path& model_dir,
                           const QuantizeParams& q);

}  // namespace gptq::cli
