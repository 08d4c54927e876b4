// Qwen2ForCausalLM: the Llama block with biases on q/k/v (not on o_proj or the MLP); sliding
// windows only with use_sliding_window, on layers >= max_window_layers. Also the language model
// of Qwen2-VL / Qwen2.5-VL checkpoints (text keys at the top level or in text_config; their
// multimodal RoPE equals the default one on text-only positions).
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

ModelHparams read_qwen2_hparams(const nlohmann::json& config) {
  ModelHparams h = read_llama_like_hparams(config);
  h.qkv_bias = true;
  h.o_bias = false;
  h.mlp_bias = false;
  const JsonObject cfg(config, "config.json");
  const bool use = cfg.boolean_or("use_sliding_window", false);
  const int64_t from = cfg.integer_or("max_window_layers", h.layers);
  if (!use && !cfg.has("layer_types")) {
    h.sliding_window = 0;
  } else {
    read_sliding_layers(h, cfg, 4096, [&](int64_t i) { return use && i >= from; });
  }
  return h;
}

const ArchSpec& arch_qwen2() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_llama();
    s.name = "qwen2";
    s.model_types = {"qwen2", "qwen2_vl_text", "qwen2_5_vl_text"};
    s.read_hparams = read_qwen2_hparams;
    s.wrapper_types = {"qwen2_vl", "qwen2_5_vl"};
    // transformers' Qwen2_5_VLTextConfig defaults
    s.text_defaults = R"({"vocab_size": 152064, "hidden_size": 8192, "intermediate_size": 29568,
        "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
        "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-5,
        "rope_theta": 1000000.0, "use_sliding_window": false, "sliding_window": 4096,
        "max_window_layers": 80, "tie_word_embeddings": false})";
    return s;
  }();
  return spec;
}

}  // namespace gptq
