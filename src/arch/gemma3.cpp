// Gemma3ForCausalLM (gemma3_text) and the language model of Gemma3ForConditionalGeneration:
// the Gemma 2 block plus per-head q_norm / k_norm ((1 + w) RMSNorm) before RoPE, five sliding
// layers per global one (sliding_window_pattern, or layer_types), the sliding layers with their
// own default RoPE (rope_local_base_freq) and the global ones with rope_theta + rope_scaling;
// transformers 5 gives both as rope_parameters per layer type. attn_logit_softcapping is never
// applied; final_logit_softcapping only by Gemma3ForCausalLM (not inside multimodal checkpoints).
#include "arch/archs.h"
#include "arch/gemma_common.h"
#include "arch/hparams_util.h"
#include "arch/rope_params.h"

namespace gptq {

namespace {
ModelHparams read_gemma3_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_gemma_common(config, "hidden_activation");
  read_gemma2_attention(h, config, cfg.integer_or("sliding_window_pattern", 6));
  h.attn_softcap = 0;  // Gemma3Attention passes no softcap, whatever attn_logit_softcapping says
  h.has_rope_local = true;
  if (has_per_layer_type_rope(cfg)) {
    h.rope = read_rope(cfg, 1000000.0, "full_attention");
    h.rope_local = read_rope(cfg, 10000.0, "sliding_attention");
  } else {
    h.rope = read_rope(cfg, 1000000.0);
    h.rope_local = RopeSpec{.theta = cfg.number_or("rope_local_base_freq", 10000.0)};
  }
  h.rope_theta = h.rope.theta;
  return h;
}
}  // namespace

const ArchSpec& arch_gemma3() {
  static const ArchSpec spec = [] {
    ArchSpec s = gemma_spec_base();
    s.name = "gemma3";
    s.model_types = {"gemma3_text"};
    s.block.q_norm = "self_attn.q_norm";
    s.block.k_norm = "self_attn.k_norm";
    s.block.attn_out_norm = "post_attention_layernorm";
    s.block.mlp_norm = "pre_feedforward_layernorm";
    s.block.mlp_out_norm = "post_feedforward_layernorm";
    s.read_hparams = read_gemma3_hparams;
    s.wrapper_types = {"gemma3"};
    s.wrapper_overrides = R"({"final_logit_softcapping": null})";
    // transformers' Gemma3TextConfig defaults (the text_config of gemma-3-4b-it and larger
    // lists only a few keys)
    s.text_defaults = R"({"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
        "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "attention_bias": false, "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "final_logit_softcapping": null, "attn_logit_softcapping": null,
        "rope_local_base_freq": 10000.0, "sliding_window_pattern": 6,
        "tie_word_embeddings": true})";
    return s;
  }();
  return spec;
}

}  // namespace gptq
