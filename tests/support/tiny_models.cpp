#include "support/tiny_models.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "io/safetensors_writer.h"
#include "support/fixtures.h"
#include "util/fp16.h"

namespace gptq::testing {

namespace fs = std::filesystem;
using json = nlohmann::json;

void add_linear(TinyModel& m, const std::string& name, int64_t n, int64_t k, bool bias, bool conv1d) {
  const float s = 1.0f / std::sqrt(static_cast<float>(k));
  m.tensors.push_back(
      {name + ".weight", conv1d ? std::vector<int64_t>{k, n} : std::vector<int64_t>{n, k}, s});
  if (bias) m.tensors.push_back({name + ".bias", {n}, 0.1f});
}
void add_norm(TinyModel& m, const std::string& name, int64_t d, bool bias) {
  m.tensors.push_back({name + ".weight", {d}, 0.1f, 1.0f});
  if (bias) m.tensors.push_back({name + ".bias", {d}, 0.1f});
}

TinyModel llama_like(const std::string& type, int64_t hidden, int64_t heads, int64_t kv,
                     int64_t head_dim, bool qkv_bias, bool tied, double theta, int64_t inter) {
  TinyModel m;
  m.family = "llama";
  if (inter == 0) inter = 2 * hidden + 8;
  m.config = {{"model_type", type},
              {"hidden_size", hidden},
              {"num_attention_heads", heads},
              {"num_key_value_heads", kv},
              {"head_dim", head_dim},
              {"intermediate_size", inter},
              {"num_hidden_layers", kLayers},
              {"vocab_size", kVocab},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", theta},
              {"max_position_embeddings", kMaxPos},
              {"hidden_act", "silu"},
              {"tie_word_embeddings", tied}};
  m.tensors.push_back({"model.embed_tokens.weight", {kVocab, hidden}, 1.0f});
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add_norm(m, p + "input_layernorm", hidden, false);
    add_linear(m, p + "self_attn.q_proj", heads * head_dim, hidden, qkv_bias);
    add_linear(m, p + "self_attn.k_proj", kv * head_dim, hidden, qkv_bias);
    add_linear(m, p + "self_attn.v_proj", kv * head_dim, hidden, qkv_bias);
    add_linear(m, p + "self_attn.o_proj", hidden, heads * head_dim, false);
    add_norm(m, p + "post_attention_layernorm", hidden, false);
    add_linear(m, p + "mlp.gate_proj", inter, hidden, false);
    add_linear(m, p + "mlp.up_proj", inter, hidden, false);
    add_linear(m, p + "mlp.down_proj", hidden, inter, false);
  }
  add_norm(m, "model.norm", hidden, false);
  if (!tied) add_linear(m, "lm_head", kVocab, hidden, false);
  return m;
}

TinyModel gpt2_model(int64_t hidden, int64_t heads) {
  TinyModel m;
  m.family = "gpt2";
  m.config = {{"model_type", "gpt2"},       {"n_embd", hidden},
              {"n_layer", kLayers},         {"n_head", heads},
              {"vocab_size", kVocab},       {"n_positions", kMaxPos},
              {"layer_norm_epsilon", 1e-5}, {"activation_function", "gelu_new"}};
  m.tensors.push_back({"transformer.wte.weight", {kVocab, hidden}, 1.0f});
  m.tensors.push_back({"transformer.wpe.weight", {kMaxPos, hidden}, 0.5f});
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    add_norm(m, p + "ln_1", hidden, true);
    add_linear(m, p + "attn.c_attn", 3 * hidden, hidden, true, true);
    add_linear(m, p + "attn.c_proj", hidden, hidden, true, true);
    add_norm(m, p + "ln_2", hidden, true);
    add_linear(m, p + "mlp.c_fc", 4 * hidden, hidden, true, true);
    add_linear(m, p + "mlp.c_proj", hidden, 4 * hidden, true, true);
  }
  add_norm(m, "transformer.ln_f", hidden, true);
  return m;
}

TinyModel opt_model(int64_t hidden, int64_t heads, bool norm_before) {
  TinyModel m;
  m.family = "opt";
  const int64_t ffn = 3 * hidden;
  m.config = {{"model_type", "opt"},
              {"hidden_size", hidden},
              {"num_attention_heads", heads},
              {"ffn_dim", ffn},
              {"num_hidden_layers", kLayers},
              {"vocab_size", kVocab},
              {"max_position_embeddings", kMaxPos},
              {"do_layer_norm_before", norm_before},
              {"activation_function", "relu"},
              {"word_embed_proj_dim", hidden}};
  m.tensors.push_back({"model.decoder.embed_tokens.weight", {kVocab, hidden}, 1.0f});
  m.tensors.push_back({"model.decoder.embed_positions.weight", {kMaxPos + 2, hidden}, 0.5f});
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    add_linear(m, p + "self_attn.k_proj", hidden, hidden, true);
    add_linear(m, p + "self_attn.v_proj", hidden, hidden, true);
    add_linear(m, p + "self_attn.q_proj", hidden, hidden, true);
    add_linear(m, p + "self_attn.out_proj", hidden, hidden, true);
    add_norm(m, p + "self_attn_layer_norm", hidden, true);
    add_linear(m, p + "fc1", ffn, hidden, true);
    add_linear(m, p + "fc2", hidden, ffn, true);
    add_norm(m, p + "final_layer_norm", hidden, true);
  }
  add_norm(m, "model.decoder.final_layer_norm", hidden, true);
  return m;
}

TinyModel neox_model(int64_t hidden, int64_t heads, bool parallel) {
  TinyModel m;
  m.family = "gpt_neox";
  const int64_t inter = 4 * hidden;
  m.config = {{"model_type", "gpt_neox"},
              {"hidden_size", hidden},
              {"num_attention_heads", heads},
              {"intermediate_size", inter},
              {"num_hidden_layers", kLayers},
              {"vocab_size", kVocab},
              {"max_position_embeddings", kMaxPos},
              {"rotary_pct", 0.25},
              {"rotary_emb_base", 10000},
              {"layer_norm_eps", 1e-5},
              {"hidden_act", "gelu"},
              {"use_parallel_residual", parallel}};
  m.tensors.push_back({"gpt_neox.embed_in.weight", {kVocab, hidden}, 1.0f});
  for (int64_t i = 0; i < kLayers; ++i) {
    const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
    add_norm(m, p + "input_layernorm", hidden, true);
    add_norm(m, p + "post_attention_layernorm", hidden, true);
    add_linear(m, p + "attention.query_key_value", 3 * hidden, hidden, true);
    add_linear(m, p + "attention.dense", hidden, hidden, true);
    add_linear(m, p + "mlp.dense_h_to_4h", inter, hidden, true);
    add_linear(m, p + "mlp.dense_4h_to_h", hidden, inter, true);
  }
  add_norm(m, "gpt_neox.final_layer_norm", hidden, true);
  add_linear(m, "embed_out", kVocab, hidden, false);
  return m;
}

// Writes config.json + model.safetensors with random values stored as `dtype`.
fs::path write_tiny(const TinyModel& m, DType dtype, uint32_t seed, const std::string& skip_tensor) {
  const fs::path dir = scratch_dir(m.config.at("model_type").get<std::string>());
  {
    std::FILE* f = std::fopen((dir / "config.json").c_str(), "w");
    const std::string s = m.config.dump(2);
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
  }
  std::vector<TensorSpec> specs;
  for (const auto& t : m.tensors)
    if (t.name != skip_tensor) specs.push_back({t.name, dtype, t.shape});
  SafetensorsWriter w(dir, specs, {});
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto& t : m.tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = t.offset + t.scale * nd(rng);
    if (t.name == skip_tensor) continue;
    const int64_t rows = t.shape.empty() ? 1 : t.shape[0], row = rows > 0 ? n / rows : 0;
    for (const RowEdit& e : t.row_edits) {
      if (e.row < 0 || e.row >= rows || e.source >= rows)
        throw std::invalid_argument("write_tiny: row edit out of range in " + t.name);
      for (int64_t j = 0; j < row; ++j)
        v[static_cast<size_t>(e.row * row + j)] =
            e.source < 0 ? 0.0f : e.factor * v[static_cast<size_t>(e.source * row + j)];
    }
    if (dtype == DType::F32) {
      w.write(t.name, v.data(), v.size() * 4);
    } else {
      std::vector<uint16_t> h(v.size());
      if (dtype == DType::F16)
        f32_to_f16(v.data(), h.data(), v.size());
      else
        f32_to_bf16(v.data(), h.data(), v.size());
      w.write(t.name, h.data(), h.size() * 2);
    }
  }
  w.finish();
  return dir;
}

}  // namespace gptq::testing
