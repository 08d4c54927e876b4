#include "arch/rope_params.h"

#include <cmath>

namespace gptq {

namespace {

// The dict holding the RoPE parameters of `layer_type`, or nullptr (plain default RoPE).
const nlohmann::json* rope_dict(const JsonObject& cfg, const std::string& layer_type) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!cfg.has(key)) continue;
    const nlohmann::json& d = cfg.raw().at(key);
    if (!d.is_object())
      fail("{}: {} must be an object or null, got {}", cfg.source(), key, d.dump().substr(0, 60));
    if (d.contains("full_attention") || d.contains("sliding_attention")) {
      if (!d.contains(layer_type) || !d.at(layer_type).is_object())
        fail("{}: {} has no object for layer type '{}'", cfg.source(), key, layer_type);
      return &d.at(layer_type);
    }
    return &d;
  }
  return nullptr;
}

std::vector<double> factors(const JsonObject& r, const std::string& key) {
  if (!r.has(key) || !r.raw().at(key).is_array())
    fail("{}: longrope needs '{}' as a list of numbers", r.source(), key);
  std::vector<double> out;
  for (const auto& v : r.raw().at(key)) {
    if (!v.is_number()) fail("{}: '{}' must hold numbers only", r.source(), key);
    out.push_back(v.get<double>());
    if (!(out.back() > 0) || !std::isfinite(out.back()))
      fail("{}: '{}' must hold positive finite numbers", r.source(), key);
  }
  return out;
}

double positive(const JsonObject& r, const std::string& key) {
  const double v = r.number(key);
  if (!(v > 0) || !std::isfinite(v))
    fail("{}: '{}' must be a positive number, got {}", r.source(), key, v);
  return v;
}

}  // namespace

bool has_per_layer_type_rope(const JsonObject& cfg) {
  if (!cfg.has("rope_parameters") || !cfg.raw().at("rope_parameters").is_object()) return false;
  const auto& d = cfg.raw().at("rope_parameters");
  return d.contains("full_attention") || d.contains("sliding_attention");
}

RopeSpec read_rope(const JsonObject& cfg, double default_theta, const std::string& layer_type) {
  RopeSpec s;
  s.theta = cfg.number_or("rope_theta", default_theta);
  const nlohmann::json* d = rope_dict(cfg, layer_type);
  if (!d) return s;
  const JsonObject r(*d, cfg.source() + " rope parameters");
  s.theta = r.number_or("rope_theta", s.theta);
  s.type = r.string_or("rope_type", r.string_or("type", "default"));
  if (!(s.theta > 0) || !std::isfinite(s.theta))
    fail("{}: rope_theta must be a positive number, got {}", cfg.source(), s.theta);
  const int64_t max_pos = cfg.integer_or("max_position_embeddings", 2048);
  // Multimodal RoPE (Qwen2-VL): text-only positions are equal in every section, which is the
  // default RoPE.
  if (s.type == "default" || s.type == "mrope") {
    s.type = "default";
  } else if (s.type == "linear") {
    s.factor = positive(r, "factor");
  } else if (s.type == "dynamic") {
    // _compute_dynamic_ntk_parameters: base scaled once a sequence exceeds max_position_embeddings.
    s.factor = positive(r, "factor");
    s.dynamic_base_positions = max_pos;
  } else if (s.type == "llama3") {
    s.factor = positive(r, "factor");
    s.low_freq_factor = positive(r, "low_freq_factor");
    s.high_freq_factor = positive(r, "high_freq_factor");
    s.original_max_positions = r.integer("original_max_position_embeddings");
    if (s.high_freq_factor == s.low_freq_factor)
      fail("{}: llama3 RoPE needs high_freq_factor != low_freq_factor", cfg.source());
  } else if (s.type == "yarn") {
    // _compute_yarn_parameters: a rope_scaling original_max_position_embeddings replaces the
    // factor by max_position_embeddings / original (DeepSeek-V3's convention).
    s.factor = positive(r, "factor");
    s.original_max_positions = max_pos;
    if (r.has("original_max_position_embeddings")) {
      s.original_max_positions = r.integer("original_max_position_embeddings");
      s.factor = static_cast<double>(max_pos) / static_cast<double>(s.original_max_positions);
    }
    auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    if (r.has("attention_factor")) {
      s.attention_factor = r.number("attention_factor");
    } else {
      const double m = r.number_or("mscale", 0), m_all = r.number_or("mscale_all_dim", 0);
      s.attention_factor = m != 0 && m_all != 0 ? mscale(s.factor, m) / mscale(s.factor, m_all)
                                                : mscale(s.factor, 1.0);
    }
    if (r.has("beta_fast") && r.number("beta_fast") != 0) s.beta_fast = r.number("beta_fast");
    if (r.has("beta_slow") && r.number("beta_slow") != 0) s.beta_slow = r.number("beta_slow");
    s.truncate = r.boolean_or("truncate", true);
  } else if (s.type == "longrope" || s.type == "su") {
    // _compute_longrope_parameters (Phi-3): with a top-level original_max_position_embeddings
    // the factor is max_position_embeddings / original.
    s.type = "longrope";
    s.short_factor = factors(r, "short_factor");
    s.long_factor = factors(r, "long_factor");
    s.factor = r.number_or("factor", 1.0);
    s.original_max_positions = max_pos;
    if (cfg.has("original_max_position_embeddings")) {
      s.original_max_positions = cfg.integer("original_max_position_embeddings");
      s.factor = static_cast<double>(max_pos) / static_cast<double>(s.original_max_positions);
    } else if (r.has("original_max_position_embeddings")) {
      s.original_max_positions = r.integer("original_max_position_embeddings");
      s.factor = static_cast<double>(max_pos) / static_cast<double>(s.original_max_positions);
    }
    if (r.has("attention_factor"))
      s.attention_factor = r.number("attention_factor");
    else
      s.attention_factor =
          s.factor <= 1.0 ? 1.0
                          : std::sqrt(1 + std::log(s.factor) /
                                              std::log(static_cast<double>(s.original_max_positions)));
  } else {
    fail("{}: RoPE type '{}' is not supported (supported: default, linear, dynamic, llama3, yarn, "
         "longrope, mrope)",
         cfg.source(), s.type);
  }
  if (s.original_max_positions < 0 || (s.type != "default" && s.type != "linear" && s.type != "dynamic" &&
                                       s.original_max_positions <= 0))
    fail("{}: original_max_position_embeddings must be positive", cfg.source());
  if (!(s.attention_factor > 0) || !std::isfinite(s.attention_factor))
    fail("{}: the RoPE attention factor must be a positive number", cfg.source());
  return s;
}

}  // namespace gptq
