// Reference forward pass: see reference_forward.h. Each function names the transformers code it
// follows (transformers 5.x main; file paths relative to src/transformers/).
#include "support/reference_forward.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numbers>
#include <sstream>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq::testing {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Vec = std::vector<double>;

namespace {

// ---------------------------------------------------------------------------------------------
// config.json

// Class defaults of the keys read below, from models/<family>/configuration_<family>.py. A key
// absent from config.json takes these values; a key present with null keeps null (None).
json class_defaults(const std::string& type) {
  if (type == "llama")  // LlamaConfig
    return {{"vocab_size", 32000},
            {"hidden_size", 4096},
            {"intermediate_size", 11008},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", nullptr},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 2048},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false},
            {"attention_bias", false},
            {"mlp_bias", false}};
  if (type == "mistral")  // MistralConfig
    return {{"vocab_size", 32000},
            {"hidden_size", 4096},
            {"intermediate_size", 14336},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 131072},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false},
            {"sliding_window", 4096}};
  if (type == "qwen2" || type == "qwen3")  // Qwen2Config, Qwen3Config
    return {{"vocab_size", 151936},
            {"hidden_size", 4096},
            {"intermediate_size", 22016},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 32},
            {"head_dim", type == "qwen3" ? json(128) : json(nullptr)},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 32768},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false},
            {"attention_bias", false},
            {"use_sliding_window", false},
            {"sliding_window", 4096},
            {"max_window_layers", 28}};
  if (type == "qwen2_5_vl" || type == "qwen2_5_vl_text")  // Qwen2_5_VLTextConfig
    return {{"vocab_size", 152064},
            {"hidden_size", 8192},
            {"intermediate_size", 29568},
            {"num_hidden_layers", 80},
            {"num_attention_heads", 64},
            {"num_key_value_heads", 8},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 32768},
            {"rms_norm_eps", 1e-5},
            {"use_sliding_window", false},
            {"sliding_window", 4096},
            {"max_window_layers", 80}};
  if (type == "gemma")  // GemmaConfig
    return {{"vocab_size", 256000},
            {"hidden_size", 3072},
            {"intermediate_size", 24576},
            {"num_hidden_layers", 28},
            {"num_attention_heads", 16},
            {"num_key_value_heads", 16},
            {"head_dim", 256},
            {"hidden_act", "gelu_pytorch_tanh"},
            {"max_position_embeddings", 8192},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", true},
            {"attention_bias", false}};
  if (type == "gemma2")  // Gemma2Config
    return {{"vocab_size", 256000},
            {"hidden_size", 2304},
            {"intermediate_size", 9216},
            {"num_hidden_layers", 26},
            {"num_attention_heads", 8},
            {"num_key_value_heads", 4},
            {"head_dim", 256},
            {"hidden_activation", "gelu_pytorch_tanh"},
            {"max_position_embeddings", 8192},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", true},
            {"attention_bias", false},
            {"query_pre_attn_scalar", 256},
            {"sliding_window", 4096},
            {"final_logit_softcapping", 30.0},
            {"attn_logit_softcapping", 50.0}};
  if (type == "gemma3_text")  // Gemma3TextConfig
    return {{"vocab_size", 262208},
            {"hidden_size", 2304},
            {"intermediate_size", 9216},
            {"num_hidden_layers", 26},
            {"num_attention_heads", 8},
            {"num_key_value_heads", 4},
            {"head_dim", 256},
            {"hidden_activation", "gelu_pytorch_tanh"},
            {"max_position_embeddings", 131072},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", true},
            {"attention_bias", false},
            {"query_pre_attn_scalar", 256},
            {"sliding_window", 4096},
            {"final_logit_softcapping", nullptr},
            {"attn_logit_softcapping", nullptr},
            {"use_bidirectional_attention", false},
            {"sliding_window_pattern", 6}};
  if (type == "phi3")  // Phi3Config
    return {{"vocab_size", 32064},
            {"hidden_size", 3072},
            {"intermediate_size", 8192},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 4096},
            {"original_max_position_embeddings", 4096},
            {"rms_norm_eps", 1e-5},
            {"tie_word_embeddings", false},
            {"sliding_window", nullptr}};
  if (type == "starcoder2")  // Starcoder2Config
    return {{"vocab_size", 49152},
            {"hidden_size", 3072},
            {"intermediate_size", 12288},
            {"num_hidden_layers", 30},
            {"num_attention_heads", 24},
            {"num_key_value_heads", 2},
            {"hidden_act", "gelu_pytorch_tanh"},
            {"max_position_embeddings", 4096},
            {"norm_epsilon", 1e-5},
            {"sliding_window", nullptr},
            {"use_bias", true},
            {"tie_word_embeddings", true}};
  if (type == "mixtral")  // MixtralConfig
    return {{"vocab_size", 32000},
            {"hidden_size", 4096},
            {"intermediate_size", 14336},
            {"num_hidden_layers", 32},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 4096 * 32},
            {"rms_norm_eps", 1e-5},
            {"tie_word_embeddings", false},
            {"sliding_window", nullptr},
            {"num_experts_per_tok", 2},
            {"num_local_experts", 8}};
  if (type == "qwen2_moe")  // Qwen2MoeConfig
    return {{"vocab_size", 151936},
            {"hidden_size", 2048},
            {"intermediate_size", 5632},
            {"num_hidden_layers", 24},
            {"num_attention_heads", 16},
            {"num_key_value_heads", 16},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 32768},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false},
            {"use_sliding_window", false},
            {"sliding_window", 4096},
            {"max_window_layers", 28},
            {"decoder_sparse_step", 1},
            {"moe_intermediate_size", 1408},
            {"shared_expert_intermediate_size", 5632},
            {"num_experts_per_tok", 4},
            {"num_experts", 60},
            {"norm_topk_prob", false},
            {"mlp_only_layers", nullptr},
            {"qkv_bias", true}};
  if (type == "qwen3_moe")  // Qwen3MoeConfig
    return {{"vocab_size", 151936},
            {"hidden_size", 2048},
            {"intermediate_size", 6144},
            {"num_hidden_layers", 24},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 4},
            {"head_dim", nullptr},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 32768},
            {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false},
            {"attention_bias", false},
            {"use_sliding_window", false},
            {"sliding_window", 4096},
            {"decoder_sparse_step", 1},
            {"moe_intermediate_size", 768},
            {"num_experts_per_tok", 8},
            {"num_experts", 128},
            {"norm_topk_prob", false},
            {"mlp_only_layers", nullptr}};
  fail(
      "reference: model_type '{}' is not supported (llama, mistral, qwen2, qwen3, gemma, "
      "gemma2, gemma3_text, phi3, starcoder2, mixtral, qwen2_moe, qwen3_moe and the gemma3, "
      "mistral3, llava, qwen2_5_vl text towers)",
      type);
}

bool is_null(const json& c, const char* key) {
  return !c.contains(key) || c.at(key).is_null();
}
std::optional<double> opt_num(const json& c, const char* key) {
  if (is_null(c, key)) return std::nullopt;
  return c.at(key).get<double>();
}
std::optional<int64_t> opt_int(const json& c, const char* key) {
  if (is_null(c, key)) return std::nullopt;
  return c.at(key).get<int64_t>();
}
// Python truthiness of an optional number (`x or default`).
double or_default(const std::optional<double>& v, double def) {
  return v && *v != 0 ? *v : def;
}

// RotaryEmbeddingConfigMixin.standardize_rope_params (modeling_rope_utils.py) for one dict, after
// the family's convert_rope_params_to_dict has filled rope_theta. `cfg` is the text config (with
// class defaults merged), `raw` the config.json text dict (to tell present keys from defaults).
RefRopeSpec standardize_rope(json d, const json& cfg, const json& raw, const std::string& type) {
  RefRopeSpec r;
  const std::string t = d.value(
      "rope_type", d.contains("type") ? d.at("type").get<std::string>() : std::string("default"));
  r.type = t;
  if (type.rfind("qwen2_5_vl", 0) == 0 && t == "mrope") r.type = "default";  // Qwen2_5_VLTextConfig
  if (type == "phi3" && (t == "su" || t == "yarn")) r.type = "longrope";     // Phi3Config BC
  r.theta = d.at("rope_theta").get<double>();
  // partial_rotary_factor: the config attribute overrides the dict (Phi3Config sets 1.0).
  if (!is_null(raw, "partial_rotary_factor"))
    r.partial_rotary_factor = raw.at("partial_rotary_factor").get<double>();
  else if (!is_null(d, "partial_rotary_factor"))
    r.partial_rotary_factor = d.at("partial_rotary_factor").get<double>();
  r.factor = opt_num(d, "factor");
  r.attention_factor = opt_num(d, "attention_factor");
  r.low_freq_factor = opt_num(d, "low_freq_factor");
  r.high_freq_factor = opt_num(d, "high_freq_factor");
  r.beta_fast = opt_num(d, "beta_fast");
  r.beta_slow = opt_num(d, "beta_slow");
  r.mscale = opt_num(d, "mscale");
  r.mscale_all_dim = opt_num(d, "mscale_all_dim");
  r.truncate =
      d.contains("truncate") && !d.at("truncate").is_null() ? d.at("truncate").get<bool>() : true;
  if (d.contains("short_factor")) r.short_factor = d.at("short_factor").get<std::vector<double>>();
  if (d.contains("long_factor")) r.long_factor = d.at("long_factor").get<std::vector<double>>();
  r.original_max_position_embeddings = opt_int(d, "original_max_position_embeddings");
  if (r.type == "llama3" || r.type == "yarn" || r.type == "longrope") {
    // A config attribute original_max_position_embeddings (Phi3Config always has one, default
    // 4096; other classes when config.json carries the key) takes priority over the dict.
    if (type == "phi3" || !is_null(raw, "original_max_position_embeddings"))
      r.original_max_position_embeddings =
          cfg.at("original_max_position_embeddings").get<int64_t>();
    else if (!r.original_max_position_embeddings)
      r.original_max_position_embeddings = cfg.at("max_position_embeddings").get<int64_t>();
  }
  return r;
}

// The flat rope dict of a single-rope family (convert_rope_params_to_dict): rope_scaling if set,
// else rope_parameters, with rope_theta from the top-level key or the class default_theta.
json rope_dict(const json& raw, double default_theta) {
  json d = json::object();
  if (raw.contains("rope_scaling") && raw.at("rope_scaling").is_object() &&
      !raw.at("rope_scaling").empty())
    d = raw.at("rope_scaling");
  else if (raw.contains("rope_parameters") && raw.at("rope_parameters").is_object())
    d = raw.at("rope_parameters");
  if (is_null(d, "rope_theta"))
    d["rope_theta"] =
        is_null(raw, "rope_theta") ? default_theta : raw.at("rope_theta").get<double>();
  return d;
}

// Which layers slide, per the text model class.
std::vector<std::string> resolve_layer_types(const std::string& family, const json& cfg,
                                             const json& raw, int64_t layers,
                                             std::optional<int64_t>& window) {
  std::vector<std::string> types(static_cast<size_t>(layers), "full_attention");
  if (family == "llama" || family == "gemma") {
    window.reset();  // LlamaModel / GemmaModel: create_causal_mask only
  } else if (family == "mistral" || family == "phi3" || family == "starcoder2" ||
             family == "mixtral") {
    // Mistral/Phi3/Starcoder2/MixtralModel: create_sliding_window_causal_mask for every layer iff
    // config.sliding_window is not None (a layer_types key is ignored).
    window = opt_int(cfg, "sliding_window");
    if (window) std::fill(types.begin(), types.end(), "sliding_attention");
  } else if (family == "qwen3_moe") {
    // Qwen3MoeConfig.__post_init__: sliding_window = sliding_window if use_sliding_window else
    // None; Qwen3MoeModel (MixtralModel) then slides on every layer iff it is not None.
    window =
        cfg.at("use_sliding_window").get<bool>() ? opt_int(cfg, "sliding_window") : std::nullopt;
    if (window) std::fill(types.begin(), types.end(), "sliding_attention");
  } else if (family == "qwen2_moe") {
    // Qwen2MoeConfig.__post_init__: sliding_window kept only with use_sliding_window; layer_types
    // default: sliding iff (i + 1) % 2 and i < max_window_layers and use_sliding_window.
    const bool use = cfg.at("use_sliding_window").get<bool>();
    window = use ? opt_int(cfg, "sliding_window") : std::nullopt;
    if (!is_null(raw, "layer_types")) {
      types = raw.at("layer_types").get<std::vector<std::string>>();
    } else {
      const int64_t mwl = cfg.at("max_window_layers").get<int64_t>();
      for (int64_t i = 0; i < layers; ++i)
        if (use && (i + 1) % 2 != 0 && i < mwl) types[i] = "sliding_attention";
    }
  } else if (family == "qwen2" || family == "qwen3") {
    // Qwen2Config.__post_init__: sliding_window = sliding_window if use_sliding_window else None;
    // layer_types default: sliding for i >= max_window_layers when sliding_window is set.
    window =
        cfg.at("use_sliding_window").get<bool>() ? opt_int(cfg, "sliding_window") : std::nullopt;
    if (!is_null(raw, "layer_types")) {
      types = raw.at("layer_types").get<std::vector<std::string>>();
    } else {
      const int64_t mwl = cfg.at("max_window_layers").get<int64_t>();
      for (int64_t i = 0; i < layers; ++i)
        if (window && i >= mwl) types[i] = "sliding_attention";
    }
  } else if (family == "gemma2" || family == "gemma3") {
    // Gemma2Config: sliding iff (i + 1) % 2; Gemma3TextConfig: iff (i + 1) % sliding_window_pattern
    // (default 6); an explicit layer_types wins.
    window = opt_int(cfg, "sliding_window");
    if (!is_null(raw, "layer_types")) {
      types = raw.at("layer_types").get<std::vector<std::string>>();
    } else {
      const int64_t pattern =
          family == "gemma2" ? 2 : cfg.at("sliding_window_pattern").get<int64_t>();
      for (int64_t i = 0; i < layers; ++i)
        if ((i + 1) % pattern != 0) types[i] = "sliding_attention";
    }
  }
  if (static_cast<int64_t>(types.size()) != layers)
    fail("config.json: layer_types has {} entries for {} layers", types.size(), layers);
  for (const auto& t : types) {
    if (t != "full_attention" && t != "sliding_attention")
      fail("config.json: layer type '{}' is not supported (full_attention, sliding_attention)", t);
    if (t == "sliding_attention" && !window)  // create_sliding_window_causal_mask raises
      fail("config.json: a sliding_attention layer without a sliding_window");
  }
  return types;
}

// ---------------------------------------------------------------------------------------------
// RoPE (modeling_rope_utils.py)

float f32(double v) {
  return static_cast<float>(v);
}

// torch.arange(0, dim, 2).float() / dim, in float32.
double rope_exponent(int64_t j, int64_t dim) {
  return static_cast<double>(f32(static_cast<double>(f32(2.0 * j)) / f32(dim)));
}

// `compute_default_rope_parameters` (e.g. LlamaRotaryEmbedding): 1 / base^(2j / dim).
Vec default_inv_freq(double base, int64_t dim) {
  Vec inv(static_cast<size_t>(dim / 2));
  for (int64_t j = 0; j < dim / 2; ++j) inv[j] = 1.0 / std::pow(base, rope_exponent(j, dim));
  return inv;
}

// _compute_yarn_parameters.
RopeFrequencies yarn(const RefRopeSpec& r, int64_t dim, int64_t max_positions) {
  const int64_t original = *r.original_max_position_embeddings;
  const double factor = r.factor ? *r.factor : static_cast<double>(max_positions) / original;
  auto get_mscale = [](double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
  };
  RopeFrequencies out;
  if (r.attention_factor) {
    out.attention_factor = *r.attention_factor;
  } else if (or_default(r.mscale, 0) != 0 && or_default(r.mscale_all_dim, 0) != 0) {
    out.attention_factor = get_mscale(factor, *r.mscale) / get_mscale(factor, *r.mscale_all_dim);
  } else {
    out.attention_factor = get_mscale(factor, 1.0);
  }
  const double beta_fast = or_default(r.beta_fast, 32), beta_slow = or_default(r.beta_slow, 1);
  // find_correction_dim / find_correction_range (truncate: floor / ceil).
  auto correction_dim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2 * std::numbers::pi)) / (2 * std::log(r.theta));
  };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (r.truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // linear_ramp_factor: prevent singularity
  out.inv_freq.resize(static_cast<size_t>(dim / 2));
  for (int64_t j = 0; j < dim / 2; ++j) {
    const double ramp = std::clamp((static_cast<double>(j) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1.0 - ramp;  // inv_freq_extrapolation_factor
    const double pos_freq = std::pow(r.theta, rope_exponent(j, dim));
    out.inv_freq[j] =
        1.0 / (factor * pos_freq) * (1 - extrapolation) + 1.0 / pos_freq * extrapolation;
  }
  return out;
}

// _compute_longrope_parameters (seq_len as longrope_frequency_update passes it).
RopeFrequencies longrope(const RefRopeSpec& r, int64_t dim, int64_t max_positions, int64_t seq_len) {
  const int64_t original = *r.original_max_position_embeddings;
  const double factor = r.factor ? *r.factor : static_cast<double>(max_positions) / original;
  RopeFrequencies out;
  if (r.attention_factor)
    out.attention_factor = *r.attention_factor;
  else
    out.attention_factor =
        factor <= 1.0 ? 1.0
                      : std::sqrt(1 + std::log(factor) / std::log(static_cast<double>(original)));
  const Vec& ext = seq_len > original ? r.long_factor : r.short_factor;
  if (static_cast<int64_t>(ext.size()) != dim / 2)
    fail("config.json: longrope {} has {} entries, expected rotary dim / 2 = {}",
         seq_len > original ? "long_factor" : "short_factor", ext.size(), dim / 2);
  out.inv_freq.resize(static_cast<size_t>(dim / 2));
  for (int64_t j = 0; j < dim / 2; ++j)
    out.inv_freq[j] = 1.0 / (f32(ext[j]) * std::pow(r.theta, rope_exponent(j, dim)));
  return out;
}

// _compute_llama3_parameters.
Vec llama3(const RefRopeSpec& r, int64_t dim) {
  Vec inv = default_inv_freq(r.theta, dim);
  const double factor = *r.factor, low = *r.low_freq_factor, high = *r.high_freq_factor;
  const double old_context = static_cast<double>(*r.original_max_position_embeddings);
  const double low_wavelen = old_context / low, high_wavelen = old_context / high;
  for (double& f : inv) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      f /= factor;                           // low frequencies: interpolated
    } else if (!(wavelen < high_wavelen)) {  // medium: smoothed between the two
      const double smooth = (old_context / wavelen - low) / (high - low);
      f = (1 - smooth) * f / factor + smooth * f;
    }  // high frequencies: unchanged
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------
// Math pieces

// ACT2FN (activations.py): silu, gelu (erf), gelu_pytorch_tanh / gelu_new (tanh approximation).
double activation(const std::string& act, double x) {
  if (act == "silu" || act == "swish") return x / (1.0 + std::exp(-x));
  if (act == "gelu") return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
  if (act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu_fast")
    return 0.5 * x *
           (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
  if (act == "relu") return std::max(x, 0.0);
  fail("reference: activation '{}' is not supported", act);
}

// rotate_half + apply_rotary_pos_emb on the first rotary_dim dims of one head (Phi3's variant:
// q_rot = q[..., :rotary_dim], q_pass = the rest). cos / sin: [rotary_dim / 2] for this position.
void apply_rope(double* v, const Vec& cos, const Vec& sin) {
  const size_t half = cos.size();
  const Vec orig(v, v + 2 * half);
  for (size_t j = 0; j < 2 * half; ++j) {
    const double rotated = j < half ? -orig[j + half] : orig[j - half];  // cat(-x2, x1)
    v[j] = orig[j] * cos[j % half] + rotated * sin[j % half];            // cat(freqs, freqs)
  }
}

// Qwen3Attention (Qwen3, Qwen3-MoE) and Gemma3Attention normalise q and k per head.
bool has_qk_norm(const std::string& family) {
  return family == "qwen3" || family == "qwen3_moe" || family == "gemma3";
}

// The module holding a sparse layer's block: MixtralDecoderLayer.block_sparse_moe (the name in
// Mixtral checkpoints), Qwen2Moe/Qwen3MoeDecoderLayer.mlp.
std::string moe_module(const std::string& family) {
  return family == "mixtral" ? "block_sparse_moe." : "mlp.";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public helpers

// MixtralTopKRouter / Qwen2MoeTopKRouter.forward after the gate: softmax(router_logits, dtype
// float32) over the experts, torch.topk(probabilities, top_k) (sorted, largest first), then
// router_top_value /= router_top_value.sum() (Mixtral always, Qwen when norm_topk_prob).
RefRouting route_token(const std::vector<double>& router_logits, int64_t top_k, bool renormalize) {
  const auto n = static_cast<int64_t>(router_logits.size());
  if (top_k <= 0 || top_k > n) fail("reference: top_k {} outside [1, {}]", top_k, n);
  const double mx = *std::max_element(router_logits.begin(), router_logits.end());
  Vec p(router_logits.size());
  double sum = 0;
  for (size_t e = 0; e < p.size(); ++e) sum += (p[e] = std::exp(router_logits[e] - mx));
  for (double& v : p) v /= sum;
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) order[e] = e;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  RefRouting r;
  r.experts.assign(order.begin(), order.begin() + top_k);
  double top = 0;
  for (const int64_t e : r.experts) top += p[e];
  for (const int64_t e : r.experts) r.weights.push_back(renormalize ? p[e] / top : p[e]);
  return r;
}

RopeFrequencies rope_frequencies(const RefRopeSpec& r, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t seq_len) {
  // dim = int(head_dim * partial_rotary_factor)
  const auto dim = static_cast<int64_t>(static_cast<double>(head_dim) * r.partial_rotary_factor);
  if (dim <= 0 || dim % 2 != 0) fail("reference: rotary dim {} must be positive and even", dim);
  RopeFrequencies out;
  if (r.type == "default") {
    out.inv_freq = default_inv_freq(r.theta, dim);
  } else if (r.type == "linear") {  // _compute_linear_scaling_rope_parameters
    out.inv_freq = default_inv_freq(r.theta, dim);
    for (double& f : out.inv_freq) f = f32(f32(f) / f32(*r.factor));
  } else if (r.type == "dynamic") {
    // _compute_dynamic_ntk_parameters with the seq_len dynamic_frequency_update passes (T, only
    // when T exceeds max_position_embeddings; before that the init-time frequencies apply, which
    // are the same formula at seq_len = max_position_embeddings, i.e. the default ones).
    const double seq = static_cast<double>(std::max(seq_len, max_position_embeddings));
    const double factor = *r.factor;
    const double base =
        r.theta *
        std::pow(factor * seq / static_cast<double>(max_position_embeddings) - (factor - 1),
                 static_cast<double>(dim) / static_cast<double>(dim - 2));
    out.inv_freq = default_inv_freq(base, dim);
  } else if (r.type == "yarn") {
    out = yarn(r, dim, max_position_embeddings);
  } else if (r.type == "longrope") {
    out = longrope(r, dim, max_position_embeddings, seq_len);
  } else if (r.type == "llama3") {
    out.inv_freq = llama3(r, dim);
  } else {
    fail("reference: rope_type '{}' is not supported", r.type);
  }
  for (double& f : out.inv_freq) f = f32(f);  // the float32 inv_freq buffer
  return out;
}

double gemma_embed_scale(int64_t hidden, const std::string& dtype) {
  // Gemma*TextScaledWordEmbedding: embed_scale = torch.tensor(hidden_size**0.5) (float32),
  // used as embed_scale.to(self.weight.dtype).
  const float s = f32(std::sqrt(static_cast<double>(hidden)));
  if (dtype == "bfloat16") return bf16_to_f32(f32_to_bf16(s));
  if (dtype == "float16") return f16_to_f32(f32_to_f16(s));
  if (dtype == "float32" || dtype.empty()) return s;
  fail("reference: dtype '{}' is not supported (bfloat16, float16, float32)", dtype);
}

bool attends(int64_t q, int64_t k, std::optional<int64_t> sliding_window) {
  // causal_mask_function: kv_idx <= q_idx; sliding_window_overlay: kv_idx > q_idx - sliding_window.
  return k <= q && (!sliding_window || k > q - *sliding_window);
}

TextSpec text_spec(const json& config) {
  const std::string top = config.value("model_type", "");
  json raw;          // the text config as written
  std::string type;  // its model_type
  bool multimodal = true;
  if (top == "gemma3" || top == "mistral3" || top == "llava") {
    raw = config.value("text_config", json::object());
    type = raw.value("model_type", top == "gemma3"     ? "gemma3_text"
                                   : top == "mistral3" ? "mistral"
                                                       : "llama");
  } else if (top == "qwen2_5_vl") {  // Hub configs are flat; transformers 5 nests text_config
    raw = config.contains("text_config") ? config.at("text_config") : config;
    type = "qwen2_5_vl";
  } else {
    raw = config;
    type = top;
    multimodal = false;
  }
  json cfg = class_defaults(type);
  for (const auto& [k, v] : raw.items()) cfg[k] = v;

  TextSpec s;
  s.family = type == "gemma3_text"                               ? "gemma3"
             : type == "qwen2_5_vl" || type == "qwen2_5_vl_text" ? "qwen2"
                                                                 : type;
  s.hidden = cfg.at("hidden_size").get<int64_t>();
  s.heads = cfg.at("num_attention_heads").get<int64_t>();
  s.kv_heads =
      is_null(cfg, "num_key_value_heads") ? s.heads : cfg.at("num_key_value_heads").get<int64_t>();
  // head_dim: the config attribute, else hidden_size // num_attention_heads.
  s.head_dim = is_null(cfg, "head_dim") ? s.hidden / s.heads : cfg.at("head_dim").get<int64_t>();
  s.intermediate = cfg.at("intermediate_size").get<int64_t>();
  s.layers = cfg.at("num_hidden_layers").get<int64_t>();
  s.vocab = cfg.at("vocab_size").get<int64_t>();
  s.max_position_embeddings = cfg.at("max_position_embeddings").get<int64_t>();
  if (s.heads <= 0 || s.kv_heads <= 0 || s.heads % s.kv_heads != 0)
    fail("config.json: {} heads are not a multiple of {} key/value heads", s.heads, s.kv_heads);
  s.norm_eps = cfg.at(s.family == "starcoder2" ? "norm_epsilon" : "rms_norm_eps").get<double>();
  // Gemma2/Gemma3 MLPs read hidden_activation; every other family (Gemma 1 included, since
  // transformers 4.50) reads hidden_act.
  s.activation =
      cfg.at(s.family == "gemma2" || s.family == "gemma3" ? "hidden_activation" : "hidden_act")
          .get<std::string>();
  if (s.family == "llama") {
    s.qkv_bias = s.o_bias = cfg.at("attention_bias").get<bool>();
    s.mlp_bias = cfg.at("mlp_bias").get<bool>();
  } else if (s.family == "qwen2") {  // Qwen2Attention: q/k/v with bias, o_proj without
    s.qkv_bias = true;
  } else if (s.family == "qwen2_moe") {  // Qwen2MoeAttention: q/k/v bias per qkv_bias
    s.qkv_bias = cfg.at("qkv_bias").get<bool>();
  } else if (s.family == "qwen3" || s.family == "qwen3_moe" || s.family == "gemma" ||
             s.family == "gemma2" || s.family == "gemma3") {
    s.qkv_bias = s.o_bias = cfg.at("attention_bias").get<bool>();
  } else if (s.family == "starcoder2") {
    s.qkv_bias = s.o_bias = s.mlp_bias = cfg.at("use_bias").get<bool>();
  }  // mistral, phi3, mixtral: no biases
  // Gemma2/3Attention: scaling = query_pre_attn_scalar**-0.5; the others head_dim**-0.5.
  const double scalar = s.family == "gemma2" || s.family == "gemma3"
                            ? cfg.at("query_pre_attn_scalar").get<double>()
                            : static_cast<double>(s.head_dim);
  s.attn_scale = 1.0 / std::sqrt(scalar);
  if (s.family == "gemma2") {
    s.attn_softcap = opt_num(cfg, "attn_logit_softcapping");
    s.final_softcap = opt_num(cfg, "final_logit_softcapping");
  } else if (s.family == "gemma3") {
    // Gemma3Attention never passes softcap to the attention function; Gemma3ForCausalLM caps the
    // logits, Gemma3ForConditionalGeneration does not.
    if (!multimodal) s.final_softcap = opt_num(cfg, "final_logit_softcapping");
    if (!is_null(cfg, "use_bidirectional_attention") &&
        cfg.at("use_bidirectional_attention").get<bool>())
      fail("reference: use_bidirectional_attention is not supported");
  }
  s.layer_types = resolve_layer_types(s.family, cfg, raw, s.layers, s.sliding_window);

  // Mixture of experts: MixtralSparseMoeBlock on every layer; Qwen2Moe/Qwen3MoeDecoderLayer:
  // a sparse block iff the layer is not in mlp_only_layers (None: []) and num_experts > 0 and
  // (layer + 1) % decoder_sparse_step == 0, else Qwen2MoeMLP(intermediate_size).
  s.sparse_layers.assign(static_cast<size_t>(s.layers), false);
  if (s.family == "mixtral") {
    s.experts = cfg.at("num_local_experts").get<int64_t>();
    s.moe_intermediate = s.intermediate;
    s.norm_topk_prob = true;  // MixtralTopKRouter always renormalises
    s.sparse_layers.assign(static_cast<size_t>(s.layers), true);
  } else if (s.family == "qwen2_moe" || s.family == "qwen3_moe") {
    s.experts = cfg.at("num_experts").get<int64_t>();
    s.moe_intermediate = cfg.at("moe_intermediate_size").get<int64_t>();
    if (s.family == "qwen2_moe")
      s.shared_intermediate = cfg.at("shared_expert_intermediate_size").get<int64_t>();
    s.norm_topk_prob = cfg.at("norm_topk_prob").get<bool>();
    const std::vector<int64_t> mlp_only =
        is_null(cfg, "mlp_only_layers") ? std::vector<int64_t>{}
                                        : cfg.at("mlp_only_layers").get<std::vector<int64_t>>();
    const int64_t step = cfg.at("decoder_sparse_step").get<int64_t>();
    if (step <= 0) fail("config.json: decoder_sparse_step {} must be positive", step);
    for (int64_t i = 0; i < s.layers; ++i)
      s.sparse_layers[i] = std::find(mlp_only.begin(), mlp_only.end(), i) == mlp_only.end() &&
                           s.experts > 0 && (i + 1) % step == 0;
  }
  if (s.experts > 0) {
    s.experts_per_tok = cfg.at("num_experts_per_tok").get<int64_t>();
    if (s.experts_per_tok <= 0 || s.experts_per_tok > s.experts)
      fail("config.json: num_experts_per_tok {} outside [1, {}]", s.experts_per_tok, s.experts);
  }

  // RoPE parameters per layer type.
  if (s.family == "gemma3") {
    // Gemma3TextConfig.convert_rope_params_to_dict: rope_parameters per layer type; rope_scaling
    // (old format) updates the full-attention dict only; rope_theta (default 1e6) for full,
    // rope_local_base_freq (default 1e4) for sliding layers.
    json per = json::object();
    if (raw.contains("rope_parameters") && raw.at("rope_parameters").is_object())
      per = raw.at("rope_parameters");
    for (const char* lt : {"full_attention", "sliding_attention"})
      if (is_null(per, lt)) per[lt] = {{"rope_type", "default"}};
    if (raw.contains("rope_scaling") && raw.at("rope_scaling").is_object())
      per["full_attention"].update(raw.at("rope_scaling"));
    if (is_null(per["full_attention"], "rope_theta"))
      per["full_attention"]["rope_theta"] =
          is_null(raw, "rope_theta") ? 1e6 : raw.at("rope_theta").get<double>();
    if (is_null(per["sliding_attention"], "rope_theta"))
      per["sliding_attention"]["rope_theta"] =
          is_null(raw, "rope_local_base_freq") ? 1e4 : raw.at("rope_local_base_freq").get<double>();
    for (const char* lt : {"full_attention", "sliding_attention"})
      s.rope[lt] = standardize_rope(per[lt], cfg, raw, type);
  } else {
    // Class default_theta: 1e6 for Qwen2.5-VL's text config and MixtralConfig, else 1e4.
    const double default_theta =
        (s.family == "qwen2" && type != "qwen2") || s.family == "mixtral" ? 1e6 : 1e4;
    const RefRopeSpec r = standardize_rope(rope_dict(raw, default_theta), cfg, raw, type);
    s.rope["full_attention"] = s.rope["sliding_attention"] = r;
  }

  // The model's dtype: top-level torch_dtype (dtype in transformers 5), else the text config's.
  for (const json* c : std::initializer_list<const json*>{&config, &raw})
    for (const char* k : {"dtype", "torch_dtype"})
      if (s.dtype.empty() && !is_null(*c, k)) s.dtype = c->at(k).get<std::string>();
  if (s.family == "gemma" || s.family == "gemma2" || s.family == "gemma3")
    s.embed_scale = gemma_embed_scale(s.hidden, s.dtype);

  // tie_word_embeddings: the flag of the model class that owns lm_head.
  if (top == "gemma3" || top == "mistral3")  // Gemma3Config / Mistral3Config default True
    s.tie_word_embeddings = config.value("tie_word_embeddings", true);
  else if (top == "llava")  // LlavaConfig: False, unless its text config ties
    s.tie_word_embeddings =
        config.value("tie_word_embeddings", false) || cfg.value("tie_word_embeddings", false);
  else if (top == "qwen2_5_vl")
    s.tie_word_embeddings = config.value("tie_word_embeddings", false);
  else
    s.tie_word_embeddings = cfg.at("tie_word_embeddings").get<bool>();
  return s;
}

// ---------------------------------------------------------------------------------------------
// ReferenceForward

ReferenceForward::ReferenceForward(const fs::path& model_dir) {
  std::ifstream f(model_dir / "config.json");
  if (!f) fail("reference: cannot read {}", (model_dir / "config.json").string());
  std::stringstream ss;
  ss << f.rdbuf();
  spec_ = text_spec(json::parse(ss.str()));

  const TensorStore store = TensorStore::open(model_dir);
  for (const char* p :
       {"model.language_model.", "language_model.model.", "model.", "language_model."})
    if (store.find(std::string(p) + "embed_tokens.weight")) {
      prefix_ = p;
      break;
    }
  if (prefix_.empty()) fail("reference: {} has no embed_tokens.weight", model_dir.string());
  for (const char* h : {"lm_head.weight", "language_model.lm_head.weight"})
    if (store.find(h)) {
      head_ = h;
      break;
    }
  // PreTrainedModel.tie_weights: a head in the checkpoint is used as is (tying is skipped when the
  // two differ); a missing head is the embedding when the config ties.
  if (head_.empty()) {
    if (!spec_.tie_word_embeddings)
      fail("reference: {} has no lm_head.weight and tie_word_embeddings is false",
           model_dir.string());
    head_ = prefix_ + "embed_tokens.weight";
  }

  // The tensors the text model uses, with their shapes.
  const TextSpec& s = spec_;
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  std::map<std::string, std::vector<int64_t>> want;
  want[prefix_ + "embed_tokens.weight"] = {s.vocab, s.hidden};
  want[head_] = {s.vocab, s.hidden};
  const bool layer_norm = s.family == "starcoder2";
  auto norm_of = [&](const std::string& m, int64_t d) {
    want[m + ".weight"] = {d};
    if (layer_norm) want[m + ".bias"] = {d};
  };
  auto linear_of = [&](const std::string& m, int64_t n, int64_t k, bool bias) {
    want[m + ".weight"] = {n, k};
    if (bias) want[m + ".bias"] = {n};
  };
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = prefix_ + "layers." + std::to_string(i) + ".";
    norm_of(p + "input_layernorm", s.hidden);
    norm_of(p + "post_attention_layernorm", s.hidden);
    if (s.family == "phi3") {
      linear_of(p + "self_attn.qkv_proj", q + 2 * kv, s.hidden, false);
    } else {
      linear_of(p + "self_attn.q_proj", q, s.hidden, s.qkv_bias);
      linear_of(p + "self_attn.k_proj", kv, s.hidden, s.qkv_bias);
      linear_of(p + "self_attn.v_proj", kv, s.hidden, s.qkv_bias);
    }
    linear_of(p + "self_attn.o_proj", s.hidden, q, s.o_bias);
    if (s.sparse_layers[i]) {  // router, experts, shared expert and its gate
      const std::string b = p + moe_module(s.family);
      const int64_t I = s.moe_intermediate;
      linear_of(b + "gate", s.experts, s.hidden, false);
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string x = b + "experts." + std::to_string(e) + ".";
        const bool mixtral = s.family == "mixtral";
        linear_of(x + (mixtral ? "w1" : "gate_proj"), I, s.hidden, false);
        linear_of(x + (mixtral ? "w3" : "up_proj"), I, s.hidden, false);
        linear_of(x + (mixtral ? "w2" : "down_proj"), s.hidden, I, false);
      }
      if (s.shared_intermediate > 0) {
        linear_of(b + "shared_expert.gate_proj", s.shared_intermediate, s.hidden, false);
        linear_of(b + "shared_expert.up_proj", s.shared_intermediate, s.hidden, false);
        linear_of(b + "shared_expert.down_proj", s.hidden, s.shared_intermediate, false);
        linear_of(b + "shared_expert_gate", 1, s.hidden, false);
      }
    } else if (s.family == "phi3") {
      linear_of(p + "mlp.gate_up_proj", 2 * s.intermediate, s.hidden, false);
      linear_of(p + "mlp.down_proj", s.hidden, s.intermediate, false);
    } else if (s.family == "starcoder2") {
      linear_of(p + "mlp.c_fc", s.intermediate, s.hidden, s.mlp_bias);
      linear_of(p + "mlp.c_proj", s.hidden, s.intermediate, s.mlp_bias);
    } else {
      linear_of(p + "mlp.gate_proj", s.intermediate, s.hidden, s.mlp_bias);
      linear_of(p + "mlp.up_proj", s.intermediate, s.hidden, s.mlp_bias);
      linear_of(p + "mlp.down_proj", s.hidden, s.intermediate, s.mlp_bias);
    }
    if (has_qk_norm(s.family)) {
      norm_of(p + "self_attn.q_norm", s.head_dim);
      norm_of(p + "self_attn.k_norm", s.head_dim);
    }
    if (s.family == "gemma2" || s.family == "gemma3") {
      norm_of(p + "pre_feedforward_layernorm", s.hidden);
      norm_of(p + "post_feedforward_layernorm", s.hidden);
    }
  }
  norm_of(prefix_ + "norm", s.hidden);

  for (const auto& [name, shape] : want) {
    const TensorInfo& t = store.get(name);
    if (t.shape != shape) {
      std::string expected = "[";
      for (size_t i = 0; i < shape.size(); ++i)
        expected += (i ? ", " : "") + std::to_string(shape[i]);
      fail("reference: {} has shape {}, the config implies {}]", name, t.shape_str(), expected);
    }
    const std::vector<float> v = tensor_to_f32(t);
    w_[name] = Vec(v.begin(), v.end());
  }
}

const Vec& ReferenceForward::W(const std::string& name) const {
  const auto it = w_.find(name);
  if (it == w_.end()) fail("reference: tensor {} was not loaded", name);
  return it->second;
}

// nn.Linear: y = x W^T (+ b), W [n, k].
Vec ReferenceForward::linear(const Vec& x, int64_t T, const std::string& module, bool bias) const {
  const Vec& w = W(module + ".weight");
  const int64_t k = static_cast<int64_t>(x.size()) / T, n = static_cast<int64_t>(w.size()) / k;
  const Vec* b = bias ? &W(module + ".bias") : nullptr;
  Vec y(static_cast<size_t>(T * n));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b ? (*b)[j] : 0.0;
      for (int64_t c = 0; c < k; ++c) acc += x[t * k + c] * w[j * k + c];
      y[t * n + j] = acc;
    }
  return y;
}

// Rows of d values: LlamaRMSNorm (x / rms * w), GemmaRMSNorm (x / rms * (1 + w), Gemma 1-3) or
// nn.LayerNorm ((x - mean) / std * w + b, Starcoder2), per the family.
Vec ReferenceForward::norm(const Vec& x, int64_t d, const std::string& module) const {
  const int64_t rows = static_cast<int64_t>(x.size()) / d;
  const Vec& w = W(module + ".weight");
  const bool gemma =
      spec_.family == "gemma" || spec_.family == "gemma2" || spec_.family == "gemma3";
  const bool layer_norm = spec_.family == "starcoder2";
  const Vec* b = layer_norm ? &W(module + ".bias") : nullptr;
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* v = &x[r * d];
    double mean = 0;
    if (layer_norm) {
      for (int64_t j = 0; j < d; ++j) mean += v[j];
      mean /= d;
    }
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += (v[j] - mean) * (v[j] - mean);
    const double inv = 1.0 / std::sqrt(ss / d + spec_.norm_eps);
    for (int64_t j = 0; j < d; ++j) {
      const double n = (v[j] - mean) * inv;
      y[r * d + j] = b ? n * w[j] + (*b)[j] : n * (gemma ? 1.0 + w[j] : w[j]);
    }
  }
  return y;
}

// The attention module of each family (LlamaAttention, Qwen3Attention with q_norm / k_norm before
// RoPE, Phi3Attention with fused qkv_proj, Gemma2Attention with soft-capping, ...) with
// eager_attention_forward: GQA (repeat_kv), scaling, soft-capping, causal / sliding-window mask,
// softmax, o_proj.
Vec ReferenceForward::attention(int64_t layer, const Vec& h, int64_t T) const {
  const TextSpec& s = spec_;
  const std::string p = prefix_ + "layers." + std::to_string(layer) + ".self_attn.";
  const int64_t H = s.heads, KV = s.kv_heads, hd = s.head_dim;
  Vec q, k, v;
  if (s.family == "phi3") {  // qkv = [q (H*hd) | k (KV*hd) | v (KV*hd)]
    const Vec qkv = linear(h, T, p + "qkv_proj", false);
    const int64_t n = (H + 2 * KV) * hd;
    q.resize(T * H * hd), k.resize(T * KV * hd), v.resize(T * KV * hd);
    for (int64_t t = 0; t < T; ++t) {
      std::copy_n(&qkv[t * n], H * hd, &q[t * H * hd]);
      std::copy_n(&qkv[t * n + H * hd], KV * hd, &k[t * KV * hd]);
      std::copy_n(&qkv[t * n + (H + KV) * hd], KV * hd, &v[t * KV * hd]);
    }
  } else {
    q = linear(h, T, p + "q_proj", s.qkv_bias);
    k = linear(h, T, p + "k_proj", s.qkv_bias);
    v = linear(h, T, p + "v_proj", s.qkv_bias);
  }
  if (has_qk_norm(s.family)) {  // per-head RMSNorm over head_dim
    q = norm(q, hd, p + "q_norm");
    k = norm(k, hd, p + "k_norm");
  }

  // RoPE of this layer's type (Gemma 3: local base on sliding layers) for seq_len T.
  const std::string& type = s.layer_types[layer];
  const RopeFrequencies rf = rope_frequencies(s.rope.at(type), hd, s.max_position_embeddings, T);
  const size_t half = rf.inv_freq.size();
  Vec cos(half), sin(half);
  for (int64_t t = 0; t < T; ++t) {
    for (size_t j = 0; j < half; ++j) {
      const double angle = f32(static_cast<double>(t) * rf.inv_freq[j]);  // float32 product
      cos[j] = std::cos(angle) * rf.attention_factor;
      sin[j] = std::sin(angle) * rf.attention_factor;
    }
    for (int64_t hh = 0; hh < H; ++hh) apply_rope(&q[(t * H + hh) * hd], cos, sin);
    for (int64_t hh = 0; hh < KV; ++hh) apply_rope(&k[(t * KV + hh) * hd], cos, sin);
  }

  const std::optional<int64_t> window =
      type == "sliding_attention" ? s.sliding_window : std::nullopt;
  Vec out(static_cast<size_t>(T * H * hd), 0.0);
  Vec score(static_cast<size_t>(T));
  for (int64_t hh = 0; hh < H; ++hh) {
    const int64_t g = hh / (H / KV);  // repeat_kv: query head hh reads key/value head hh / groups
    for (int64_t i = 0; i < T; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < T; ++j) {
        if (!attends(i, j, window)) continue;
        double dot = 0;
        for (int64_t c = 0; c < hd; ++c) dot += q[(i * H + hh) * hd + c] * k[(j * KV + g) * hd + c];
        double sc = dot * s.attn_scale;
        if (s.attn_softcap) sc = std::tanh(sc / *s.attn_softcap) * *s.attn_softcap;
        score[j] = sc;
        mx = std::max(mx, sc);
      }
      double sum = 0;
      for (int64_t j = 0; j < T; ++j)
        if (attends(i, j, window)) sum += (score[j] = std::exp(score[j] - mx));
      for (int64_t j = 0; j < T; ++j) {
        if (!attends(i, j, window)) continue;
        const double pj = score[j] / sum;
        for (int64_t c = 0; c < hd; ++c)
          out[(i * H + hh) * hd + c] += pj * v[(j * KV + g) * hd + c];
      }
    }
  }
  return linear(out, T, p + "o_proj", s.o_bias);
}

// LlamaMLP (down(act(gate) * up)), Phi3MLP (gate_up_proj: first half gate, second half up;
// up * act(gate)), Starcoder2MLP (c_proj(act(c_fc))).
Vec ReferenceForward::mlp(int64_t layer, const Vec& h, int64_t T) const {
  const TextSpec& s = spec_;
  const std::string p = prefix_ + "layers." + std::to_string(layer) + ".mlp.";
  const int64_t I = s.intermediate;
  Vec a(static_cast<size_t>(T * I));
  if (s.family == "starcoder2") {
    a = linear(h, T, p + "c_fc", s.mlp_bias);
    for (double& e : a) e = activation(s.activation, e);
    return linear(a, T, p + "c_proj", s.mlp_bias);
  }
  if (s.family == "phi3") {
    const Vec gu = linear(h, T, p + "gate_up_proj", false);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < I; ++j)
        a[t * I + j] = gu[t * 2 * I + I + j] * activation(s.activation, gu[t * 2 * I + j]);
  } else {
    const Vec g = linear(h, T, p + "gate_proj", s.mlp_bias),
              u = linear(h, T, p + "up_proj", s.mlp_bias);
    for (size_t j = 0; j < a.size(); ++j) a[j] = activation(s.activation, g[j]) * u[j];
  }
  return linear(a, T, p + "down_proj", s.mlp_bias);
}

// A sparse layer's block (MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock, Qwen3MoeSparseMoeBlock):
// router logits = gate(h) (no bias), route_token() per token, the weighted sum of the chosen
// experts (MixtralExperts: down(act(gate) * up) per expert, Mixtral's w1 = gate, w3 = up,
// w2 = down), plus, for Qwen2-MoE, sigmoid(shared_expert_gate(h)) * shared_expert(h).
// `router_logits` (if not null) receives the [T, experts] logits.
Vec ReferenceForward::moe(int64_t layer, const Vec& h, int64_t T, Vec* router_logits) const {
  const TextSpec& s = spec_;
  const std::string b = prefix_ + "layers." + std::to_string(layer) + "." + moe_module(s.family);
  const int64_t d = s.hidden, E = s.experts, I = s.moe_intermediate;
  const bool mixtral = s.family == "mixtral";
  const Vec logits = linear(h, T, b + "gate", false);
  if (router_logits) *router_logits = logits;
  Vec out(static_cast<size_t>(T * d), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const RefRouting r =
        route_token(Vec(&logits[t * E], &logits[t * E] + E), s.experts_per_tok, s.norm_topk_prob);
    const Vec x(&h[t * d], &h[t * d] + d);
    for (size_t k = 0; k < r.experts.size(); ++k) {
      const std::string e = b + "experts." + std::to_string(r.experts[k]) + ".";
      const Vec g = linear(x, 1, e + (mixtral ? "w1" : "gate_proj"), false),
                u = linear(x, 1, e + (mixtral ? "w3" : "up_proj"), false);
      Vec a(static_cast<size_t>(I));
      for (int64_t j = 0; j < I; ++j) a[j] = activation(s.activation, g[j]) * u[j];
      const Vec y = linear(a, 1, e + (mixtral ? "w2" : "down_proj"), false);
      for (int64_t j = 0; j < d; ++j) out[t * d + j] += r.weights[k] * y[j];
    }
  }
  if (s.shared_intermediate > 0) {
    const Vec g = linear(h, T, b + "shared_expert.gate_proj", false),
              u = linear(h, T, b + "shared_expert.up_proj", false);
    Vec a(g.size());
    for (size_t j = 0; j < a.size(); ++j) a[j] = activation(s.activation, g[j]) * u[j];
    const Vec y = linear(a, T, b + "shared_expert.down_proj", false);
    const Vec gate = linear(h, T, b + "shared_expert_gate", false);  // [T, 1]
    for (int64_t t = 0; t < T; ++t) {
      const double sig = 1.0 / (1.0 + std::exp(-gate[t]));
      for (int64_t j = 0; j < d; ++j) out[t * d + j] += sig * y[t * d + j];
    }
  }
  return out;
}

// LlamaDecoderLayer (pre-norm residual blocks; Mistral, Qwen, Gemma 1, Phi3, Starcoder2, Mixtral,
// Qwen-MoE alike) or Gemma2/Gemma3DecoderLayer (post-attention and pre/post-feedforward norms).
Vec ReferenceForward::block(int64_t layer, Vec x, int64_t T, Vec* router_logits) const {
  const std::string p = prefix_ + "layers." + std::to_string(layer) + ".";
  const int64_t d = spec_.hidden;
  const bool sandwich = spec_.family == "gemma2" || spec_.family == "gemma3";
  Vec a = attention(layer, norm(x, d, p + "input_layernorm"), T);
  if (sandwich) a = norm(a, d, p + "post_attention_layernorm");
  for (size_t i = 0; i < x.size(); ++i) x[i] += a[i];
  const Vec h =
      norm(x, d, p + (sandwich ? "pre_feedforward_layernorm" : "post_attention_layernorm"));
  Vec m = spec_.sparse_layers[layer] ? moe(layer, h, T, router_logits) : mlp(layer, h, T);
  if (sandwich) m = norm(m, d, p + "post_feedforward_layernorm");
  for (size_t i = 0; i < x.size(); ++i) x[i] += m[i];
  return x;
}

// <Family>Model.forward: embed_tokens (* normalizer for Gemma), the layers, the final norm.
Vec ReferenceForward::forward(const std::vector<int32_t>& ids,
                              std::vector<Vec>* router_logits) const {
  const TextSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(ids.size()), d = s.hidden;
  const Vec& embed = W(prefix_ + "embed_tokens.weight");
  Vec x(static_cast<size_t>(T * d));
  for (int64_t t = 0; t < T; ++t) {
    if (ids[t] < 0 || ids[t] >= s.vocab)
      fail("reference: token id {} outside [0, {})", ids[t], s.vocab);
    for (int64_t j = 0; j < d; ++j) x[t * d + j] = embed[ids[t] * d + j] * s.embed_scale;
  }
  if (router_logits) router_logits->assign(static_cast<size_t>(s.layers), Vec{});
  for (int64_t i = 0; i < s.layers; ++i)
    x = block(i, std::move(x), T, router_logits ? &(*router_logits)[i] : nullptr);
  return norm(x, d, prefix_ + "norm");
}

std::vector<std::vector<double>> ReferenceForward::router_logits(
    const std::vector<int32_t>& ids) const {
  std::vector<Vec> out;
  forward(ids, &out);
  return out;
}

std::vector<std::vector<int64_t>> ReferenceForward::expert_token_counts(
    const std::vector<int32_t>& ids) const {
  const std::vector<Vec> logits = router_logits(ids);
  std::vector<std::vector<int64_t>> counts(logits.size());
  const int64_t E = spec_.experts;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i].empty()) continue;
    counts[i].assign(static_cast<size_t>(E), 0);
    for (size_t t = 0; t * E < logits[i].size(); ++t) {
      const Vec row(&logits[i][t * E], &logits[i][t * E] + E);
      for (const int64_t e : route_token(row, spec_.experts_per_tok, spec_.norm_topk_prob).experts)
        ++counts[i][e];
    }
  }
  return counts;
}

// <Family>ForCausalLM.forward: the model, lm_head, final logit soft-capping (Gemma 2; Gemma 3
// text-only when set).
std::vector<double> ReferenceForward::logits(const std::vector<int32_t>& ids) const {
  const TextSpec& s = spec_;
  const int64_t T = static_cast<int64_t>(ids.size()), d = s.hidden;
  if (T == 0) return {};
  const Vec x = forward(ids, nullptr);
  const Vec& head = W(head_);
  Vec out(static_cast<size_t>(T * s.vocab));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t v = 0; v < s.vocab; ++v) {
      double acc = 0;
      for (int64_t j = 0; j < d; ++j) acc += x[t * d + j] * head[v * d + j];
      if (s.final_softcap) acc = std::tanh(acc / *s.final_softcap) * *s.final_softcap;
      out[t * s.vocab + v] = acc;
    }
  return out;
}

}  // namespace gptq::testing
