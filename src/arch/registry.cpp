// The architecture registry: add a line here for a new src/arch/<name>.cpp.
#include "arch/archs.h"

namespace gptq {

const std::vector<const ArchSpec*>& all_archs() {
  static const std::vector<const ArchSpec*> archs{
      &arch_llama(), &arch_mistral(), &arch_qwen2(),  &arch_gpt2(),  &arch_opt(),
      &arch_gpt_neox(), &arch_qwen3(), &arch_gemma(), &arch_gemma2(), &arch_gemma3(),
      &arch_phi3(), &arch_starcoder2(), &arch_mixtral(), &arch_qwen2_moe(), &arch_qwen3_moe(),
  };
  return archs;
}

const ArchSpec* find_arch(const std::string& model_type) {
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->model_types)
      if (t == model_type) return a;
  return nullptr;
}

std::string expert_name(const std::string& tmpl, int64_t expert) {
  std::string s = tmpl;
  const auto pos = s.find("{e}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(expert));
  return s;
}

std::vector<LinearSpec> ArchSpec::block_linears(const ModelHparams& hp, int64_t layer) const {
  if (moe.empty() || !hp.is_moe_layer(layer)) return linears;
  std::vector<LinearSpec> out;
  for (const auto& l : linears)
    if (l.input_group == "attn_in" || l.input_group == "attn_out") out.push_back(l);
  for (int64_t e = 0; e < hp.num_experts; ++e) {
    const std::string in = "expert." + std::to_string(e) + ".in", mid = "expert." + std::to_string(e) + ".mid";
    out.push_back({expert_name(moe.expert_gate, e), LinearKind::kLinear, in});
    out.push_back({expert_name(moe.expert_up, e), LinearKind::kLinear, in});
    out.push_back({expert_name(moe.expert_down, e), LinearKind::kLinear, mid});
  }
  if (!moe.shared_gate.empty()) {
    out.push_back({moe.shared_gate, LinearKind::kLinear, "mlp_in"});
    out.push_back({moe.shared_up, LinearKind::kLinear, "mlp_in"});
    out.push_back({moe.shared_down, LinearKind::kLinear, "shared_mid"});
  }
  return out;
}

const ArchSpec* find_wrapper_arch(const std::string& model_type) {
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->wrapper_types)
      if (t == model_type) return a;
  return nullptr;
}

}  // namespace gptq
