// GemmaForCausalLM (Gemma 1): the Llama block with Gemma's RMSNorm y = norm(x) * (1 + w),
// embeddings times sqrt(hidden_size) rounded to the model dtype, GeGLU MLP, explicit head_dim,
// tied head. Gemma 1's MLP uses hidden_act (transformers >= 4.50; the published gemma-7b says
// "gelu", the exact erf GELU); Gemma 2 and 3 use hidden_activation.
#include "arch/archs.h"
#include "arch/gemma_common.h"
#include "arch/hparams_util.h"

namespace gptq {

ModelHparams read_gemma_common(const nlohmann::json& config, const char* activation_key) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_llama_like_hparams(config);
  h.act = parse_activation(cfg, activation_key, "gelu_pytorch_tanh");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", true);
  h.embed_scale = gemma_embed_scale(cfg, h.hidden);
  return h;
}

ArchSpec gemma_spec_base() {
  ArchSpec s = arch_llama();
  s.norm = NormType::kRmsNormUnitOffset;
  s.wrapper_types = {};
  s.text_defaults = "{}";
  return s;
}

const ArchSpec& arch_gemma() {
  static const ArchSpec spec = [] {
    ArchSpec s = gemma_spec_base();
    s.name = "gemma";
    s.model_types = {"gemma"};
    s.read_hparams = [](const nlohmann::json& config) { return read_gemma_common(config, "hidden_act"); };
    return s;
  }();
  return spec;
}

}  // namespace gptq
