// Phi3ForCausalLM (Phi-3, Phi-3.5, Phi-4-mini, Phi-4): fused qkv_proj ([q | k | v]) and
// gate_up_proj ([gate | up], up * act(gate)), each quantized as stored (one Hessian each);
// longrope RoPE (short / long factors picked by the sequence length), partial_rotary_factor,
// sliding-window attention on every layer when sliding_window is set.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_phi3_hparams(const nlohmann::json& config) {
  const JsonObject cfg(config, "config.json");
  ModelHparams h = read_llama_like_hparams(config);
  h.norm_eps = cfg.number_or("rms_norm_eps", 1e-5);
  h.qkv_bias = h.o_bias = h.mlp_bias = false;
  read_sliding_layers(h, cfg, 0, [](int64_t) { return true; });
  return h;
}
}  // namespace

const ArchSpec& arch_phi3() {
  static const ArchSpec spec{
      .name = "phi3",
      .model_types = {"phi3"},
      .model = {.embed = "model.embed_tokens", .pos_embed = "", .final_norm = "model.norm",
                .lm_head = "lm_head"},
      .block = {.attn_norm = "input_layernorm", .mlp_norm = "post_attention_layernorm",
                .qkv = "self_attn.qkv_proj", .o = "self_attn.o_proj",
                .down = "mlp.down_proj", .gate_up = "mlp.gate_up_proj"},
      .linears = {{"self_attn.qkv_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.o_proj", LinearKind::kLinear, "attn_out"},
                  {"mlp.gate_up_proj", LinearKind::kLinear, "mlp_in"},
                  {"mlp.down_proj", LinearKind::kLinear, "mlp_mid"}},
      .norm = NormType::kRmsNorm,
      .positions = PositionType::kRotary,
      .qkv = QkvLayout::kFusedConcat,
      .mlp = MlpType::kGated,
      .read_hparams = read_phi3_hparams,
  };
  return spec;
}

}  // namespace gptq
