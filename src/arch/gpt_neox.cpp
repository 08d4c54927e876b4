// GPTNeoXForCausalLM (Pythia): LayerNorm, parallel residual, fused per-head query_key_value,
// partial rotary (rotary_pct, rotate_half convention), GELU MLP, untied embed_out.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_gpt_neox_hparams(const nlohmann::json& config) {
  JsonObject cfg(config, "config.json");
  ModelHparams h;
  h.hidden = cfg.integer("hidden_size");
  h.layers = cfg.integer("num_hidden_layers");
  h.heads = cfg.integer("num_attention_heads");
  h.kv_heads = h.heads;
  h.head_dim = head_dim_of(cfg, h.hidden, h.heads);
  h.intermediate = cfg.integer("intermediate_size");
  h.vocab = cfg.integer("vocab_size");
  h.max_positions = cfg.integer_or("max_position_embeddings", 2048);
  h.norm_eps = cfg.number_or("layer_norm_eps", 1e-5);
  h.rotary_pct = cfg.number_or("rotary_pct", cfg.number_or("partial_rotary_factor", 0.25));
  h.rope_theta = cfg.number_or("rotary_emb_base", cfg.number_or("rope_theta", 10000.0));
  h.rope.theta = h.rope_theta;
  h.act = parse_activation(cfg, "hidden_act", "gelu");
  h.parallel_residual = cfg.boolean_or("use_parallel_residual", true);
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", false);
  const bool bias = cfg.boolean_or("attention_bias", true);
  h.qkv_bias = h.o_bias = bias;
  h.mlp_bias = true;
  return h;
}
}  // namespace

const ArchSpec& arch_gpt_neox() {
  static const ArchSpec spec{
      .name = "gpt_neox",
      .model_types = {"gpt_neox"},
      .model = {.embed = "gpt_neox.embed_in", .pos_embed = "",
                .final_norm = "gpt_neox.final_layer_norm", .lm_head = "embed_out"},
      .block = {.attn_norm = "input_layernorm", .mlp_norm = "post_attention_layernorm", .q = "",
                .k = "", .v = "", .qkv = "attention.query_key_value", .o = "attention.dense",
                .gate = "", .up = "mlp.dense_h_to_4h", .down = "mlp.dense_4h_to_h"},
      .linears = {{"attention.query_key_value", LinearKind::kLinear, "attn_in"},
                  {"attention.dense", LinearKind::kLinear, "attn_out"},
                  {"mlp.dense_h_to_4h", LinearKind::kLinear, "mlp_in"},
                  {"mlp.dense_4h_to_h", LinearKind::kLinear, "mlp_mid"}},
      .norm = NormType::kLayerNorm,
      .positions = PositionType::kRotary,
      .qkv = QkvLayout::kFusedPerHead,
      .mlp = MlpType::kPlain,
      .read_hparams = read_gpt_neox_hparams,
  };
  return spec;
}

}  // namespace gptq
