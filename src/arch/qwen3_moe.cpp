// Qwen3MoeForCausalLM (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3 attention (q/k norms) and, on sparse
// layers, a router mlp.gate over mlp.experts.{e}.{gate,up,down}_proj without a shared expert;
// top-k weights renormalised with norm_topk_prob.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

ModelHparams read_qwen2_hparams(const nlohmann::json& config);

namespace {
ModelHparams read_qwen3_moe_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_qwen2_hparams(config);
  h.qkv_bias = h.o_bias = cfg.boolean_or("attention_bias", false);
  read_moe(h, cfg, "num_experts", "moe_intermediate_size", false);
  return h;
}
}  // namespace

const ArchSpec& arch_qwen3_moe() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_qwen3();
    s.name = "qwen3_moe";
    s.model_types = {"qwen3_moe"};
    s.moe = {.router = "mlp.gate",
             .expert_gate = "mlp.experts.{e}.gate_proj",
             .expert_up = "mlp.experts.{e}.up_proj",
             .expert_down = "mlp.experts.{e}.down_proj"};
    s.float_modules = {"mlp.gate"};
    s.read_hparams = read_qwen3_moe_hparams;
    return s;
  }();
  return spec;
}

}  // namespace gptq
