// Qwen2MoeForCausalLM (Qwen1.5-MoE, Qwen2-57B-A14B): the Qwen2 block whose MLP is, on sparse
// layers, a router mlp.gate over mlp.experts.{e}.{gate,up,down}_proj (moe_intermediate_size) plus
// a shared expert mlp.shared_expert.* (shared_expert_intermediate_size) scaled by
// sigmoid(mlp.shared_expert_gate(x)); top-k weights renormalised only with norm_topk_prob. Dense
// layers (mlp_only_layers, decoder_sparse_step) keep mlp.{gate,up,down}_proj of intermediate_size.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

ModelHparams read_qwen2_hparams(const nlohmann::json& config);

namespace {
ModelHparams read_qwen2_moe_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_qwen2_hparams(config);
  read_moe(h, cfg, "num_experts", "moe_intermediate_size", false);
  h.shared_intermediate = cfg.integer("shared_expert_intermediate_size");
  if (h.shared_intermediate <= 0) fail("config.json: shared_expert_intermediate_size must be positive");
  return h;
}
}  // namespace

const ArchSpec& arch_qwen2_moe() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_qwen2();
    s.name = "qwen2_moe";
    s.model_types = {"qwen2_moe"};
    s.moe = {.router = "mlp.gate",
             .expert_gate = "mlp.experts.{e}.gate_proj",
             .expert_up = "mlp.experts.{e}.up_proj",
             .expert_down = "mlp.experts.{e}.down_proj",
             .shared_gate = "mlp.shared_expert.gate_proj",
             .shared_up = "mlp.shared_expert.up_proj",
             .shared_down = "mlp.shared_expert.down_proj",
             .shared_expert_gate = "mlp.shared_expert_gate"};
    s.float_modules = {"mlp.gate", "mlp.shared_expert_gate"};
    s.read_hparams = read_qwen2_moe_hparams;
    s.wrapper_types = {};
    s.text_defaults = "{}";
    return s;
  }();
  return spec;
}

}  // namespace gptq
