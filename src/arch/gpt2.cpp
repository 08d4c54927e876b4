// GPT2LMHeadModel: pre-LayerNorm blocks, learned positions, fused Conv1D c_attn ([q | k | v]),
// Conv1D weights stored [in, out], gelu_new MLP, lm_head tied to wte.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_gpt2_hparams(const nlohmann::json& config) {
  JsonObject cfg(config, "config.json");
  ModelHparams h;
  h.hidden = cfg.integer("n_embd");
  h.layers = cfg.integer("n_layer");
  h.heads = cfg.integer("n_head");
  h.kv_heads = h.heads;
  h.head_dim = head_dim_of(cfg, h.hidden, h.heads);
  h.intermediate = cfg.integer_or("n_inner", 4 * h.hidden);
  h.vocab = cfg.integer("vocab_size");
  h.max_positions = cfg.integer_or("n_positions", 1024);
  h.norm_eps = cfg.number_or("layer_norm_epsilon", 1e-5);
  h.act = parse_activation(cfg, "activation_function", "gelu_new");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", true);
  h.qkv_bias = h.o_bias = h.mlp_bias = true;
  if (!cfg.boolean_or("scale_attn_weights", true) || cfg.boolean_or("scale_attn_by_inverse_layer_idx", false))
    fail("config.json: GPT-2 attention scaling variants (scale_attn_weights=false, "
         "scale_attn_by_inverse_layer_idx=true) are not supported");
  return h;
}
}  // namespace

const ArchSpec& arch_gpt2() {
  static const ArchSpec spec{
      .name = "gpt2",
      .model_types = {"gpt2"},
      .model = {.embed = "transformer.wte", .pos_embed = "transformer.wpe",
                .final_norm = "transformer.ln_f", .lm_head = "lm_head"},
      .block = {.attn_norm = "ln_1", .mlp_norm = "ln_2", .q = "", .k = "", .v = "",
                .qkv = "attn.c_attn", .o = "attn.c_proj", .gate = "", .up = "mlp.c_fc",
                .down = "mlp.c_proj"},
      .linears = {{"attn.c_attn", LinearKind::kConv1D, "attn_in"},
                  {"attn.c_proj", LinearKind::kConv1D, "attn_out"},
                  {"mlp.c_fc", LinearKind::kConv1D, "mlp_in"},
                  {"mlp.c_proj", LinearKind::kConv1D, "mlp_mid"}},
      .norm = NormType::kLayerNorm,
      .positions = PositionType::kLearned,
      .qkv = QkvLayout::kFusedConcat,
      .mlp = MlpType::kPlain,
      .read_hparams = read_gpt2_hparams,
  };
  return spec;
}

}  // namespace gptq
