// An independent reference forward pass for today's decoder families, written from transformers'
// modeling code (models/<family>/modeling_*.py, modeling_rope_utils.py, masking_utils.py at
// transformers 5.x main, August 2026) as plain loops in double precision. It reads config.json
// (including a multimodal model's text_config) and the checkpoint's tensors; it shares no code with
// the engine (src/nn) and exists to check it.
//
// Families (the text model's model_type): llama, mistral, qwen2, qwen3, gemma, gemma2,
// gemma3_text, phi3, starcoder2, the mixtures of experts mixtral, qwen2_moe, qwen3_moe, and the
// text towers of gemma3, mistral3, llava and qwen2_5_vl.
//
// Conventions (what the engine must match, within 1e-4 x max|logit|):
//  * RoPE inverse frequencies follow each ROPE_INIT_FUNCTIONS entry, evaluated in double and then
//    rounded to float32 (torch keeps inv_freq as a float32 buffer); the angle t * inv_freq is
//    rounded to float32 (torch's float32 matmul), its cos / sin are taken in double and multiplied
//    by the attention factor. Sequence-length-dependent types see seq_len = T, the length of the
//    whole sequence run in one forward from an empty cache (dynamic: base rescaled only when
//    T > max_position_embeddings; longrope: long factors only when T > original max).
//  * Sliding window: query i sees key j iff j <= i and i - j < sliding_window
//    (masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window).
//  * Gemma's embedding normalizer sqrt(hidden_size) is rounded to float32 and then to the model
//    dtype named by config.json (torch_dtype or dtype: bfloat16 / float16; float32 or absent:
//    no further rounding), as `embed_scale.to(weight.dtype)`.
//  * Mixture-of-experts blocks (MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock,
//    Qwen3MoeSparseMoeBlock with their TopKRouter and Experts): router logits = gate(h) (no bias);
//    probabilities = softmax over all experts (transformers: in float32); the top_k largest
//    probabilities (torch.topk; ties, which the tiny models never produce, go to the lower
//    index), renormalised to sum 1 (Mixtral always; Qwen only with norm_topk_prob); output =
//    sum of weight x expert(h), expert(h) = down(act(gate(h)) * up(h)) (Mixtral: w2(act(w1 h) *
//    w3 h)); Qwen2-MoE adds sigmoid(shared_expert_gate(h)) * shared_expert(h). See route_token().
//    Sparse layers: Mixtral all; Qwen i not in mlp_only_layers and (i + 1) % decoder_sparse_step
//    == 0 (num_experts > 0); the others a dense MLP of intermediate_size.
//  * Everything else (norms, softmax, activations, residual adds) in double: no bf16 emulation.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gptq::testing {

// One rope_parameters dict, standardized as RotaryEmbeddingConfigMixin.standardize_rope_params does
// (rope_scaling or rope_parameters; "type" or "rope_type"; rope_theta and partial_rotary_factor
// moved in; original_max_position_embeddings filled in for llama3 / yarn / longrope).
struct RefRopeSpec {
  std::string type = "default";  // default, linear, dynamic, yarn, longrope, llama3
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;
  std::optional<double> factor, attention_factor, low_freq_factor, high_freq_factor, beta_fast,
      beta_slow, mscale, mscale_all_dim;
  std::optional<int64_t> original_max_position_embeddings;
  bool truncate = true;                           // yarn
  std::vector<double> short_factor, long_factor;  // longrope
};

struct RopeFrequencies {
  std::vector<double> inv_freq;   // [rotary_dim / 2], each value representable in float32
  double attention_factor = 1.0;  // multiplies cos and sin
  int64_t rotary_dim() const { return 2 * static_cast<int64_t>(inv_freq.size()); }
};

// The inverse frequencies (and attention factor) of `rope` for a head of `head_dim` dims (rotary
// dims: int(head_dim * partial_rotary_factor)), for a forward over `seq_len` tokens.
RopeFrequencies rope_frequencies(const RefRopeSpec& rope, int64_t head_dim,
                                 int64_t max_position_embeddings, int64_t seq_len);

// The text model's hyperparameters as transformers resolves them from config.json: class
// defaults for absent keys (null where the class allows None), per-family rules.
struct TextSpec {
  std::string family;  // llama, mistral, qwen2 (also Qwen2.5-VL's text model), qwen3, gemma,
                       // gemma2, gemma3, phi3, starcoder2, mixtral, qwen2_moe, qwen3_moe
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, layers = 0,
          vocab = 0, max_position_embeddings = 0;
  double norm_eps = 1e-6;
  std::string activation;  // silu, gelu, gelu_pytorch_tanh, gelu_new
  bool qkv_bias = false, o_bias = false, mlp_bias = false;
  double attn_scale = 0;  // query scaling: head_dim^-0.5 or query_pre_attn_scalar^-0.5
  std::optional<double> attn_softcap, final_softcap;
  std::optional<int64_t> sliding_window;  // used by the "sliding_attention" layers
  std::vector<std::string> layer_types;   // per layer: full_attention or sliding_attention
  std::map<std::string, RefRopeSpec> rope;   // by layer type
  double embed_scale = 1.0;               // Gemma: sqrt(hidden) rounded as above
  bool tie_word_embeddings = false;       // the flag the model class reads
  std::string dtype;                      // torch_dtype / dtype ("" when absent)
  // Mixture of experts (mixtral, qwen2_moe, qwen3_moe); experts = 0 for dense families.
  int64_t experts = 0, experts_per_tok = 0;
  int64_t moe_intermediate = 0;     // a routed expert's width (Mixtral: intermediate_size)
  int64_t shared_intermediate = 0;  // Qwen2-MoE's shared expert; 0: none
  bool norm_topk_prob = false;      // renormalise the top-k weights (Mixtral: always true)
  std::vector<bool> sparse_layers;  // per layer: a MoE block (true) or a dense MLP
};

// Resolves a config.json (text-only or multimodal).
TextSpec text_spec(const nlohmann::json& config);

// Gemma's normalizer: float32(sqrt(hidden)) rounded to `dtype` ("bfloat16", "float16"; "float32"
// or "": unchanged). Throws gptq::Error for another dtype.
double gemma_embed_scale(int64_t hidden, const std::string& dtype);

// The causal mask with an optional sliding window: may query `q` attend to key `k`?
bool attends(int64_t q, int64_t k, std::optional<int64_t> sliding_window);

// The routing of one token from its router logits [experts]: softmax over all experts, the
// top_k largest probabilities (largest first; equal ones: lower index first), divided by their sum
// when `renormalize`.
struct RefRouting {
  std::vector<int64_t> experts;  // [top_k]
  std::vector<double> weights;   // [top_k], the routing weights of those experts
};
RefRouting route_token(const std::vector<double>& router_logits, int64_t top_k, bool renormalize);

class ReferenceForward {
 public:
  // Reads config.json and every tensor the text model uses (model.safetensors or shards).
  explicit ReferenceForward(const std::filesystem::path& model_dir);

  // logits [T, vocab] (row-major) of one sequence at positions 0..T-1.
  std::vector<double> logits(const std::vector<int32_t>& ids) const;
  // Per layer, the router logits [T, experts] (row-major) of one forward over `ids`; an empty
  // vector for a dense layer (and for every layer of a dense family).
  std::vector<std::vector<double>> router_logits(const std::vector<int32_t>& ids) const;
  // [layer][expert]: how many of the tokens of one forward over `ids` were routed to that expert
  // (each token counts once per expert it is routed to: a sparse layer's counts sum to
  // T x experts_per_tok); an empty vector for a dense layer.
  std::vector<std::vector<int64_t>> expert_token_counts(const std::vector<int32_t>& ids) const;
  int64_t vocab() const { return spec_.vocab; }
  const TextSpec& spec() const { return spec_; }
  // Where the text model's tensors were found ("model.", "model.language_model.",
  // "language_model.model.") and the head ("lm_head.weight", "language_model.lm_head.weight", or
  // the embedding when tied).
  const std::string& prefix() const { return prefix_; }
  const std::string& head_name() const { return head_; }

 private:
  using Vec = std::vector<double>;
  const Vec& W(const std::string& name) const;

  Vec linear(const Vec& x, int64_t T, const std::string& module, bool bias) const;
  Vec norm(const Vec& x, int64_t d, const std::string& module) const;
  Vec attention(int64_t layer, const Vec& h, int64_t T) const;
  Vec mlp(int64_t layer, const Vec& h, int64_t T) const;
  Vec moe(int64_t layer, const Vec& h, int64_t T, Vec* router_logits) const;
  Vec block(int64_t layer, Vec x, int64_t T, Vec* router_logits) const;
  // The final hidden states [T, hidden] (after the final norm); router logits per layer if asked.
  Vec forward(const std::vector<int32_t>& ids, std::vector<Vec>* router_logits) const;

  TextSpec spec_;
  std::string prefix_, head_;
  std::map<std::string, Vec> w_;
};

}  // namespace gptq::testing
