#include "cli/target_check.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/convert.h"
#include "model/dynamic_overrides.h"
#include "model/model_config.h"
#include "model/runtime_targets.h"
#include "util/error.h"

namespace gptq::cli {

void check_quantize_target(const std::string& target, const std::filesystem::path& model_dir,
                           const QuantizeParams& q) {
  const std::optional<Runtime> r = parse_runtime(target);
  if (!r) return;
  const ModelConfig cfg = ModelConfig::load(model_dir);
  const TensorStore store = TensorStore::open(model_dir);
  const DynamicOverrides dynamic(
      q.dynamic.empty() ? nlohmann::json() : nlohmann::json::parse(q.dynamic), "--dynamic");
  ConvertOptions co;
  co.bits = q.bits;
  co.group_size = q.group_size;
  co.block_name = q.block_name_to_quantize;
  co.modules_in_block = q.modules_in_block_to_quantize;
  co.allow_unaligned = q.allow_unaligned;
  co.true_sequential = q.true_sequential;
  co.zero_bias = q.zero_bias;
  co.dynamic = dynamic.empty() ? nullptr : &dynamic;
  co.lm_head = q.lm_head;
  const ModelPlan plan = convert_model(cfg, store, co);
  const TargetSettings s{q.bits,     q.group_size,    q.sym,
                         q.desc_act, q.static_groups, cfg.arch ? cfg.arch->name : ""};
  const RuntimeVerdict v = check_runtime(*r, s, plan_target_layers(plan));
  if (!v.loads())
    fail_code(ExitCode::kUsage, "--target {}: {} could not load this checkpoint: {}", target,
              runtime_name(*r), fmt::join(v.reasons, "; "));
}

}  // namespace gptq::cli
