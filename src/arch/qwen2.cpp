// Qwen2ForCausalLM: the Llama block with biases on q/k/v (not on o_proj or the MLP).
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_qwen2_hparams(const nlohmann::json& config) {
  ModelHparams h = read_llama_like_hparams(config);
  h.qkv_bias = true;
  h.o_bias = false;
  h.mlp_bias = false;
  return h;
}
}  // namespace

const ArchSpec& arch_qwen2() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_llama();
    s.name = "qwen2";
    s.model_types = {"qwen2"};
    s.read_hparams = read_qwen2_hparams;
    return s;
  }();
  return spec;
}

}  // namespace gptq
