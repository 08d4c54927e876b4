// Starcoder2ForCausalLM: pre-LayerNorm blocks (with bias, norm_epsilon), biased q/k/v/o and MLP
// linears (use_bias), plain MLP c_fc -> gelu_pytorch_tanh -> c_proj, RoPE, sliding-window
// attention on every layer when sliding_window is set, head tied by default.
#include "arch/archs.h"
#include "arch/hparams_util.h"
#include "arch/rope_params.h"

namespace gptq {

namespace {
ModelHparams read_starcoder2_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h;
  read_decoder_dims(h, cfg, 4096);
  h.norm_eps = cfg.number_or("norm_epsilon", 1e-5);
  h.rope = read_rope(cfg, 10000.0);
  h.rope_theta = h.rope.theta;
  h.rotary_pct = cfg.number_or("partial_rotary_factor", 1.0);
  h.act = parse_activation(cfg, "hidden_act", "gelu_pytorch_tanh");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", true);
  h.qkv_bias = h.o_bias = h.mlp_bias = cfg.boolean_or("use_bias", true);
  if (h.kv_heads <= 0 || h.heads % h.kv_heads != 0)
    fail("config.json: num_attention_heads {} is not a multiple of num_key_value_heads {}", h.heads,
         h.kv_heads);
  read_sliding_layers(h, cfg, 0, [](int64_t) { return true; });
  return h;
}
}  // namespace

const ArchSpec& arch_starcoder2() {
  static const ArchSpec spec{
      .name = "starcoder2",
      .model_types = {"starcoder2"},
      .model = {.embed = "model.embed_tokens", .pos_embed = "", .final_norm = "model.norm",
                .lm_head = "lm_head"},
      .block = {.attn_norm = "input_layernorm", .mlp_norm = "post_attention_layernorm",
                .q = "self_attn.q_proj", .k = "self_attn.k_proj", .v = "self_attn.v_proj",
                .o = "self_attn.o_proj", .up = "mlp.c_fc", .down = "mlp.c_proj"},
      .linears = {{"self_attn.q_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.k_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.v_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.o_proj", LinearKind::kLinear, "attn_out"},
                  {"mlp.c_fc", LinearKind::kLinear, "mlp_in"},
                  {"mlp.c_proj", LinearKind::kLinear, "mlp_mid"}},
      .norm = NormType::kLayerNorm,
      .positions = PositionType::kRotary,
      .qkv = QkvLayout::kSeparate,
      .mlp = MlpType::kPlain,
      .read_hparams = read_starcoder2_hparams,
  };
  return spec;
}

}  // namespace gptq
