#include "cli/target_check.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/convert.h"
#include "model/dynamic_overrides.h"
#include "model/model_config.h"
#include "model/runtime_targets.h"
#include "pipeline/quantize.h"
#include "util/error.h"

namespace gptq::cli {

void check_quantize_target(const std::string& target, const std::filesystem::path& model_dir,
                           const QuantizeParams& q) {
  const std::optional<Runtime> r = parse_runtime(target);
  if (!r) return;
  const ModelConfig cfg = ModelConfig::load(model_dir);
  const TensorStore store = TensorStore::open(model_dir);
  // The plan the run will make (the same options, overrides parsed by the bounded reader).
  const QuantizeOptions o = to_quantize_options(q);
  const DynamicOverrides dynamic(o.dynamic, "--dynamic");
  const ModelPlan plan = convert_model(cfg, store, convert_options(o, &dynamic));
  const TargetSettings s{q.bits,     q.group_size,    q.sym,
                         q.desc_act, q.static_groups, cfg.arch ? cfg.arch->name : ""};
  const RuntimeVerdict v = check_runtime(*r, s, plan_target_layers(plan));
  if (!v.loads())
    fail_code(ExitCode::kUsage, "--target {}: {} could not load this checkpoint: {}", target,
              runtime_name(*r), fmt::join(v.reasons, "; "));
}

}  // namespace gptq::cli
