// MistralForCausalLM: the Llama block with sliding-window attention on every layer when
// sliding_window is set (Mistral 7B v0.1; null from v0.2 on). Also the language model of
// Mistral 3 (Mistral-Small-3.1) multimodal checkpoints.
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

namespace {
ModelHparams read_mistral_hparams(const nlohmann::json& config) {
  ModelHparams h = read_llama_like_hparams(config);
  read_sliding_layers(h, JsonObject(config, "config.json"), 4096, [](int64_t) { return true; });
  return h;
}
}  // namespace

const ArchSpec& arch_mistral() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_llama();
    s.name = "mistral";
    s.model_types = {"mistral"};
    s.read_hparams = read_mistral_hparams;
    s.wrapper_types = {"mistral3"};
    // transformers' MistralConfig defaults
    s.text_defaults = R"({"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "hidden_act": "silu", "max_position_embeddings": 131072, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false})";
    return s;
  }();
  return spec;
}

}  // namespace gptq
