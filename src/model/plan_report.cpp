#include "model/plan_report.h"

#include "util/error.h"

namespace gptq {

std::string linear_kind_name(LinearKind k) {
  switch (k) {
    case LinearKind::kLinear: return "Linear";
    case LinearKind::kConv1D: return "Conv1D";
    case LinearKind::kConv2d: return "Conv2d";
  }
  return "?";
}

nlohmann::json plan_to_json(const ModelConfig& config, const ModelPlan& plan) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : plan.layers) {
    nlohmann::json j{{"name", l.name},
                     {"block", l.block},
                     {"kind", linear_kind_name(l.kind)},
                     {"in_features", l.in_features},
                     {"out_features", l.out_features},
                     {"bias", l.has_bias},
                     {"weight_dtype", std::string(dtype_name(l.weight_dtype))},
                     {"quantize", l.quantize}};
    if (l.quantize) {
      j["groups"] = l.groups;
      j["packed"] = {{"qweight", {{"dtype", "I32"}, {"shape", l.qweight_shape()}}},
                     {"qzeros", {{"dtype", "I32"}, {"shape", l.qzeros_shape()}}},
                     {"scales", {{"dtype", "F16"}, {"shape", l.scales_shape()}}},
                     {"g_idx", {{"dtype", "I32"}, {"shape", {l.in_features}}}}};
      if (l.writes_bias) j["packed"]["bias"] = {{"dtype", "F16"}, {"shape", {l.out_features}}};
      nlohmann::json issues = nlohmann::json::array();
      for (const auto& i : l.loader_issues) issues.push_back({{"loader", i.loader}, {"condition", i.condition}, {"effect", i.effect}});
      j["loader_issues"] = std::move(issues);
    } else {
      j["reason"] = l.skip_reason;
    }
    layers.push_back(std::move(j));
  }
  const int64_t n_quant = std::count_if(plan.layers.begin(), plan.layers.end(),
                                        [](const QuantLayer& l) { return l.quantize; });
  return {{"model_dir", config.dir.string()},
          {"model_type", config.model_type},
          {"architecture", config.architecture},
          {"arch_supported", config.arch != nullptr},
          {"block_name", plan.block_name},
          {"block_name_detected", plan.block_name_detected},
          {"num_blocks", plan.num_blocks},
          {"bits", plan.bits},
          {"group_size", plan.group_size},
          {"sequential_groups", plan.sequential_groups},
          {"layers", layers},
          {"totals",
           {{"layers_quantized", n_quant},
            {"layers_float", static_cast<int64_t>(plan.layers.size()) - n_quant},
            {"params_total", plan.params_total},
            {"params_quantized", plan.params_quantized},
            {"input_bytes", plan.input_bytes},
            {"estimated_output_bytes", plan.estimated_output_bytes}}},
          {"warnings", plan.warnings},
          {"loader_warnings", plan.loader_warnings}};
}

std::vector<std::vector<std::string>> parse_modules_in_block(const std::vector<std::string>& args) {
  std::vector<std::vector<std::string>> groups;
  if (args.size() == 1 && !args[0].empty() && args[0][0] == '[') {
    try {
      const auto j = nlohmann::json::parse(args[0]);
      for (const auto& g : j) {
        std::vector<std::string> group;
        if (g.is_string()) {
          group.push_back(g.get<std::string>());
        } else {
          for (const auto& s : g) group.push_back(s.get<std::string>());
        }
        groups.push_back(std::move(group));
      }
    } catch (const nlohmann::json::exception& e) {
      fail_code(ExitCode::kUsage,
                "--modules-in-block: expected a JSON list of lists of names, e.g. "
                "'[[\"q_proj\",\"k_proj\"],[\"o_proj\"]]' ({})",
                e.what());
    }
  } else {
    for (const auto& a : args) {
      std::vector<std::string> group;
      size_t start = 0;
      while (start <= a.size()) {
        const size_t end = std::min(a.find(',', start), a.size());
        if (end > start) group.push_back(a.substr(start, end - start));
        start = end + 1;
      }
      if (!group.empty()) groups.push_back(std::move(group));
    }
  }
  for (const auto& g : groups)
    for (const auto& s : g)
      if (s.empty()) fail_code(ExitCode::kUsage, "--modules-in-block: empty module name");
  return groups;
}

}  // namespace gptq
