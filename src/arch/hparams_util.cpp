#include "arch/hparams_util.h"

namespace gptq {

Activation parse_activation(const JsonObject& cfg, const std::string& key, const std::string& def) {
  const std::string a = cfg.string_or(key, def);
  if (a == "silu" || a == "swish") return Activation::kSilu;
  if (a == "gelu") return Activation::kGelu;
  if (a == "gelu_new" || a == "gelu_pytorch_tanh" || a == "gelu_fast") return Activation::kGeluTanh;
  if (a == "relu") return Activation::kRelu;
  fail("{}: {} '{}' is not supported (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, relu)",
       cfg.source(), key, a);
}

int64_t head_dim_of(const JsonObject& cfg, int64_t hidden, int64_t heads) {
  if (heads <= 0) fail("{}: the number of attention heads must be positive", cfg.source());
  if (cfg.has("head_dim")) return cfg.integer("head_dim");
  if (hidden % heads != 0)
    fail("{}: hidden size {} is not divisible by {} heads", cfg.source(), hidden, heads);
  return hidden / heads;
}

ModelHparams read_llama_like_hparams(const nlohmann::json& config) {
  JsonObject cfg(config, "config.json");
  ModelHparams h;
  h.hidden = cfg.integer("hidden_size");
  h.layers = cfg.integer("num_hidden_layers");
  h.heads = cfg.integer("num_attention_heads");
  h.kv_heads = cfg.integer_or("num_key_value_heads", h.heads);
  h.head_dim = head_dim_of(cfg, h.hidden, h.heads);
  h.intermediate = cfg.integer("intermediate_size");
  h.vocab = cfg.integer("vocab_size");
  h.max_positions = cfg.integer_or("max_position_embeddings", 2048);
  h.norm_eps = cfg.number_or("rms_norm_eps", 1e-6);
  h.rope_theta = cfg.number_or("rope_theta", 10000.0);
  h.act = parse_activation(cfg, "hidden_act", "silu");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", false);
  h.qkv_bias = cfg.boolean_or("attention_bias", false);
  h.o_bias = h.qkv_bias;
  h.mlp_bias = cfg.boolean_or("mlp_bias", false);
  if (cfg.has("rope_scaling")) {
    const auto& rs = config.at("rope_scaling");
    if (!rs.is_object())
      fail("config.json: rope_scaling must be an object or null, got {}", rs.dump().substr(0, 60));
    const JsonObject r(rs, "config.json rope_scaling");
    const std::string type = r.string_or("rope_type", r.string_or("type", "default"));
    if (type != "default")
      fail("config.json: rope_scaling type '{}' is not supported yet (only default RoPE)", type);
  }
  if (h.kv_heads <= 0 || h.heads % h.kv_heads != 0)
    fail("config.json: num_attention_heads {} is not a multiple of num_key_value_heads {}", h.heads,
         h.kv_heads);
  return h;
}

}  // namespace gptq
