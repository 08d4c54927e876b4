// LlamaForCausalLM: pre-RMSNorm blocks, rotary attention (rotate_half) with GQA, SwiGLU MLP.
// RoPE of any rope_type (Llama 3.1+: llama3). Also the language model of Llava checkpoints.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

const ArchSpec& arch_llama() {
  static const ArchSpec spec{
      .name = "llama",
      .model_types = {"llama"},
      .model = {.embed = "model.embed_tokens", .pos_embed = "", .final_norm = "model.norm",
                .lm_head = "lm_head"},
      .block = {.attn_norm = "input_layernorm", .mlp_norm = "post_attention_layernorm",
                .q = "self_attn.q_proj", .k = "self_attn.k_proj", .v = "self_attn.v_proj",
                .qkv = "", .o = "self_attn.o_proj",
                .gate = "mlp.gate_proj", .up = "mlp.up_proj", .down = "mlp.down_proj"},
      .linears = {{"self_attn.q_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.k_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.v_proj", LinearKind::kLinear, "attn_in"},
                  {"self_attn.o_proj", LinearKind::kLinear, "attn_out"},
                  {"mlp.gate_proj", LinearKind::kLinear, "mlp_in"},
                  {"mlp.up_proj", LinearKind::kLinear, "mlp_in"},
                  {"mlp.down_proj", LinearKind::kLinear, "mlp_mid"}},
      .norm = NormType::kRmsNorm,
      .positions = PositionType::kRotary,
      .qkv = QkvLayout::kSeparate,
      .mlp = MlpType::kGated,
      .read_hparams = read_llama_like_hparams,
      .wrapper_types = {"llava", "llava_next"},
      // transformers' LlamaConfig defaults, for the text_config of multimodal checkpoints
      .text_defaults = R"({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
          "num_hidden_layers": 32, "num_attention_heads": 32, "hidden_act": "silu",
          "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
          "tie_word_embeddings": false})",
  };
  return spec;
}

}  // namespace gptq
