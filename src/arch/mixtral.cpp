// MixtralForCausalLM: the Mistral block with a sparse MoE MLP on every layer: router
// block_sparse_moe.gate, experts block_sparse_moe.experts.{e}.{w1 (gate), w3 (up), w2 (down)},
// softmax over the router logits in fp32, top-k, always renormalised.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_mixtral_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_llama_like_hparams(config);
  read_sliding_layers(h, cfg, 0, [](int64_t) { return true; });  // MixtralConfig: sliding_window None
  read_moe(h, cfg, "num_local_experts", "intermediate_size", true);
  h.norm_topk_prob = true;  // MixtralSparseMoeBlock always renormalises
  return h;
}
}  // namespace

const ArchSpec& arch_mixtral() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_mistral();
    s.name = "mixtral";
    s.model_types = {"mixtral"};
    s.moe = {.router = "block_sparse_moe.gate",
             .expert_gate = "block_sparse_moe.experts.{e}.w1",
             .expert_up = "block_sparse_moe.experts.{e}.w3",
             .expert_down = "block_sparse_moe.experts.{e}.w2"};
    s.float_modules = {"block_sparse_moe.gate"};
    s.read_hparams = read_mixtral_hparams;
    s.wrapper_types = {};
    s.text_defaults = "{}";
    return s;
  }();
  return spec;
}

}  // namespace gptq
