// Qwen3ForCausalLM: the Qwen2 block without q/k/v biases (attention_bias), with per-head
// RMSNorms q_norm / k_norm [head_dim] on the projections before RoPE, explicit head_dim.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

ModelHparams read_qwen2_hparams(const nlohmann::json& config);

namespace {
ModelHparams read_qwen3_hparams(const nlohmann::json& config) {
  ModelHparams h = read_qwen2_hparams(config);
  h.qkv_bias = h.o_bias = JsonObject(config, "config.json").boolean_or("attention_bias", false);
  return h;
}
}  // namespace

const ArchSpec& arch_qwen3() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_llama();
    s.name = "qwen3";
    s.model_types = {"qwen3"};
    s.block.q_norm = "self_attn.q_norm";
    s.block.k_norm = "self_attn.k_norm";
    s.read_hparams = read_qwen3_hparams;
    s.wrapper_types = {};
    return s;
  }();
  return spec;
}

}  // namespace gptq
