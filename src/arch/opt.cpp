// OPTForCausalLM: LayerNorm blocks (pre-norm unless do_layer_norm_before=false), learned
// positions with an offset of 2, separate biased q/k/v/out_proj, ReLU fc1/fc2 MLP.
// Registration order inside OPTAttention is k, v, q, out.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_opt_hparams(const nlohmann::json& config) {
  JsonObject cfg(config, "config.json");
  ModelHparams h;
  h.hidden = cfg.integer("hidden_size");
  h.layers = cfg.integer("num_hidden_layers");
  h.heads = cfg.integer("num_attention_heads");
  h.kv_heads = h.heads;
  h.head_dim = head_dim_of(cfg, h.hidden, h.heads);
  h.intermediate = cfg.integer("ffn_dim");
  h.vocab = cfg.integer("vocab_size");
  h.max_positions = cfg.integer_or("max_position_embeddings", 2048);
  h.norm_eps = 1e-5;  // nn.LayerNorm default
  h.pos_offset = 2;
  h.act = parse_activation(cfg, "activation_function", "relu");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", true);
  const bool bias = cfg.boolean_or("enable_bias", true);
  h.qkv_bias = h.o_bias = h.mlp_bias = bias;
  h.norm_before = cfg.boolean_or("do_layer_norm_before", true);
  if (cfg.integer_or("word_embed_proj_dim", h.hidden) != h.hidden)
    fail("config.json: OPT with word_embed_proj_dim != hidden_size (project_in/out) is not supported");
  return h;
}
}  // namespace

const ArchSpec& arch_opt() {
  static const ArchSpec spec{
      .name = "opt",
      .model_types = {"opt"},
      .model = {.embed = "model.decoder.embed_tokens", .pos_embed = "model.decoder.embed_positions",
                .final_norm = "model.decoder.final_layer_norm", .lm_head = "lm_head"},
      .block = {.attn_norm = "self_attn_layer_norm", .mlp_norm = "final_layer_norm",
                .q = "self_attn.q_proj", .k = "self_attn.k_proj", .v = "self_attn.v_proj",
                .qkv = "", .o = "self_attn.out_proj", .gate = "", .up = "fc1", .down = "fc2"},
      .linears = {{"self_attn.k_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.v_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.q_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.out_proj", LinearKind::kLinear, "attn_out"},
                  {"fc1", LinearKind::kLinear, "mlp_in"},
                  {"fc2", LinearKind::kLinear, "mlp_mid"}},
      .norm = NormType::kLayerNorm,
      .positions = PositionType::kLearned,
      .qkv = QkvLayout::kSeparate,
      .mlp = MlpType::kPlain,
      .read_hparams = read_opt_hparams,
  };
  return spec;
}

}  // namespace gptq
