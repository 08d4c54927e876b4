#include "arch/hparams_util.h"

#include <cmath>

#include "arch/rope_params.h"
#include "model/model_validation.h"
#include "util/fp16.h"

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
  if (heads <= 0 || heads > ModelLimits::kHeads)
    fail("{}: the number of attention heads is {}, expected 1..{}", cfg.source(), heads,
         ModelLimits::kHeads);
  if (hidden <= 0 || hidden > ModelLimits::kHidden)
    fail("{}: the hidden size is {}, expected 1..{}", cfg.source(), hidden, ModelLimits::kHidden);
  if (cfg.has("head_dim")) return cfg.integer("head_dim");
  if (hidden % heads != 0)
    fail("{}: hidden size {} is not divisible by {} heads", cfg.source(), hidden, heads);
  return hidden / heads;
}

void read_sliding_layers(ModelHparams& h, const JsonObject& cfg, int64_t default_window,
                         const std::function<bool(int64_t layer)>& by_default) {
  h.sliding_window = cfg.raw().contains("sliding_window") ? cfg.integer_or("sliding_window", 0) : default_window;
  if (h.sliding_window < 0) fail("{}: sliding_window must be positive or null", cfg.source());
  h.layer_sliding.assign(static_cast<size_t>(std::max<int64_t>(h.layers, 0)), false);
  if (cfg.has("layer_types")) {
    const auto& types = cfg.raw().at("layer_types");
    if (!types.is_array() || static_cast<int64_t>(types.size()) != h.layers)
      fail("{}: layer_types must list one type per layer ({} layers)", cfg.source(), h.layers);
    for (int64_t i = 0; i < h.layers; ++i) {
      const auto& t = types[static_cast<size_t>(i)];
      if (!t.is_string()) fail("{}: layer_types[{}] must be a string", cfg.source(), i);
      const std::string s = t.get<std::string>();
      if (s == "sliding_attention")
        h.layer_sliding[static_cast<size_t>(i)] = true;
      else if (s != "full_attention")
        fail("{}: layer_types[{}] is '{}'; supported: full_attention, sliding_attention", cfg.source(), i, s);
    }
  } else {
    for (int64_t i = 0; i < h.layers; ++i) h.layer_sliding[static_cast<size_t>(i)] = by_default(i);
  }
  bool any = false;
  for (bool b : h.layer_sliding) any |= b;
  if (any && h.sliding_window == 0 && cfg.has("layer_types"))
    fail("{}: layer_types has sliding layers but sliding_window is not set", cfg.source());
  if (!any || h.sliding_window == 0) {
    h.sliding_window = 0;
    h.layer_sliding.assign(h.layer_sliding.size(), false);
  }
}

void read_moe(ModelHparams& h, const JsonObject& cfg, const char* experts_key, const char* inter_key,
              bool renormalize) {
  h.num_experts = cfg.integer(experts_key);
  h.experts_per_token = cfg.integer("num_experts_per_tok");
  h.moe_intermediate = cfg.integer(inter_key);
  h.norm_topk_prob = cfg.boolean_or("norm_topk_prob", renormalize);
  if (h.num_experts <= 0 || h.num_experts > 4096)
    fail("{}: {} must be in 1..4096, got {}", cfg.source(), experts_key, h.num_experts);
  if (h.experts_per_token <= 0 || h.experts_per_token > h.num_experts)
    fail("{}: num_experts_per_tok must be in 1..{} ({}), got {}", cfg.source(), h.num_experts, experts_key,
         h.experts_per_token);
  if (h.moe_intermediate <= 0) fail("{}: {} must be positive", cfg.source(), inter_key);
  const int64_t step = cfg.integer_or("decoder_sparse_step", 1);
  if (step <= 0) fail("{}: decoder_sparse_step must be positive, got {}", cfg.source(), step);
  std::vector<bool> dense(static_cast<size_t>(std::max<int64_t>(h.layers, 0)), false);
  if (cfg.has("mlp_only_layers")) {
    const auto& l = cfg.raw().at("mlp_only_layers");
    if (!l.is_array()) fail("{}: mlp_only_layers must be a list of layer indices", cfg.source());
    for (const auto& v : l) {
      if (!v.is_number_integer()) fail("{}: mlp_only_layers must hold integers", cfg.source());
      const auto i = v.get<int64_t>();
      if (i >= 0 && i < h.layers) dense[static_cast<size_t>(i)] = true;
    }
  }
  h.layer_moe.assign(dense.size(), false);
  for (int64_t i = 0; i < h.layers; ++i)
    h.layer_moe[static_cast<size_t>(i)] = !dense[static_cast<size_t>(i)] && (i + 1) % step == 0;
}

double gemma_embed_scale(const JsonObject& cfg, int64_t hidden) {
  const auto scale = static_cast<float>(std::sqrt(static_cast<double>(hidden)));
  const std::string dtype = cfg.string_or("torch_dtype", cfg.string_or("dtype", "float32"));
  uint16_t bits = 0;
  float rounded = scale;
  if (dtype == "bfloat16") {
    f32_to_bf16(&scale, &bits, 1);
    bf16_to_f32(&bits, &rounded, 1);
  } else if (dtype == "float16") {
    f32_to_f16(&scale, &bits, 1);
    f16_to_f32(&bits, &rounded, 1);
  }
  return rounded;
}

void read_decoder_dims(ModelHparams& h, const JsonObject& cfg, int64_t default_positions) {
  h.hidden = cfg.integer("hidden_size");
  h.layers = cfg.integer("num_hidden_layers");
  h.heads = cfg.integer("num_attention_heads");
  h.kv_heads = cfg.integer_or("num_key_value_heads", h.heads);
  h.head_dim = head_dim_of(cfg, h.hidden, h.heads);
  h.intermediate = cfg.integer("intermediate_size");
  h.vocab = cfg.integer("vocab_size");
  h.max_positions = cfg.integer_or("max_position_embeddings", default_positions);
  check_model_dims(h, cfg.source());  // before anything is sized by them
}

ModelHparams read_llama_like_hparams(const nlohmann::json& config) {
  JsonObject cfg(config, "config.json");
  ModelHparams h;
  read_decoder_dims(h, cfg, 2048);
  h.norm_eps = cfg.number_or("rms_norm_eps", 1e-6);
  h.rope = read_rope(cfg, 10000.0);
  h.rope_theta = h.rope.theta;
  h.rotary_pct = cfg.number_or("partial_rotary_factor", 1.0);
  h.act = parse_activation(cfg, "hidden_act", "silu");
  h.tie_word_embeddings = cfg.boolean_or("tie_word_embeddings", false);
  h.qkv_bias = cfg.boolean_or("attention_bias", false);
  h.o_bias = h.qkv_bias;
  h.mlp_bias = cfg.boolean_or("mlp_bias", false);
  if (h.kv_heads <= 0 || h.heads % h.kv_heads != 0)
    fail("config.json: num_attention_heads {} is not a multiple of num_key_value_heads {}", h.heads,
         h.kv_heads);
  h.layer_sliding.assign(static_cast<size_t>(std::max<int64_t>(h.layers, 0)), false);
  return h;
}

}  // namespace gptq
