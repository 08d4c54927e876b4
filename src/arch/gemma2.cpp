// Gemma2ForCausalLM: Gemma with sandwich norms (input_layernorm -> attention ->
// post_attention_layernorm -> residual; pre_feedforward_layernorm -> MLP ->
// post_feedforward_layernorm -> residual), attention scale query_pre_attn_scalar^-0.5, attention
// logit soft-capping, sliding-window attention on even layers (layer_types), final logit
// soft-capping.
#include <cmath>

#include "arch/archs.h"
#include "arch/gemma_common.h"
#include "arch/hparams_util.h"

namespace gptq {

void read_gemma2_attention(ModelHparams& h, const nlohmann::json& config, int64_t pattern) {
  const JsonObject cfg(config, "config.json");
  const double scalar = cfg.number_or("query_pre_attn_scalar", static_cast<double>(h.head_dim));
  if (!(scalar > 0)) fail("config.json: query_pre_attn_scalar must be positive, got {}", scalar);
  h.attn_scale = 1.0 / std::sqrt(scalar);
  h.attn_softcap = cfg.number_or("attn_logit_softcapping", 0.0);
  h.final_softcap = cfg.number_or("final_logit_softcapping", 0.0);
  if (h.attn_softcap < 0 || h.final_softcap < 0)
    fail("config.json: soft-capping values must be positive or null");
  read_sliding_layers(h, cfg, 4096, [&](int64_t i) { return (i + 1) % pattern != 0; });
}

namespace {
ModelHparams read_gemma2_hparams(const nlohmann::json& config) {
  ModelHparams h = read_gemma_common(config, "hidden_activation");
  read_gemma2_attention(h, config, 2);
  return h;
}
}  // namespace

const ArchSpec& arch_gemma2() {
  static const ArchSpec spec = [] {
    ArchSpec s = gemma_spec_base();
    s.name = "gemma2";
    s.model_types = {"gemma2"};
    s.block.attn_out_norm = "post_attention_layernorm";
    s.block.mlp_norm = "pre_feedforward_layernorm";
    s.block.mlp_out_norm = "post_feedforward_layernorm";
    s.read_hparams = read_gemma2_hparams;
    return s;
  }();
  return spec;
}

}  // namespace gptq
