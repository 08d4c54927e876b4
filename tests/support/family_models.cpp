#include "support/family_models.h"

#include <cmath>
#include <stdexcept>

namespace gptq::testing {

using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------------
// config.json of each kind. Keys and their order follow the published config.json of the named
// checkpoint; dimensions (and token ids, kept inside the 64-token vocabulary) are shrunk.

// meta-llama/Meta-Llama-3-8B: plain RoPE (rope_scaling null).
json llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 60},
          {"eos_token_id", 61},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"model_type", "llama"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"pretraining_tp", 1},
          {"rms_norm_eps", 1e-05},
          {"rope_scaling", nullptr},
          {"rope_theta", 500000.0},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.40.0.dev0"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// meta-llama/Llama-3.1-8B-Instruct. head_dim 16: wavelengths 2 pi 500000^(j/8) = 6.3, 32.4, 167,
// ... against original_max_position_embeddings 64 (low_freq_wavelen 64, high_freq_wavelen 16):
// frequency 0 is kept, 1 is smoothed, 2..7 are divided by 8.
json llama3_config() {
  json c = llama_config();
  c["eos_token_id"] = {61, 62, 63};
  c["max_position_embeddings"] = 1024;
  c["mlp_bias"] = false;
  c["rope_scaling"] = {{"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 64},
                       {"rope_type", "llama3"}};
  c["transformers_version"] = "4.42.3";
  return c;
}

// meta-llama/Llama-2-7b-hf keys, with a Llama-2-era rope_scaling ("type", not "rope_type").
json llama2_config(const json& rope_scaling, int64_t max_positions) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", max_positions},
          {"model_type", "llama"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"pretraining_tp", 1},
          {"rms_norm_eps", 1e-05},
          {"rope_scaling", rope_scaling},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float16"},
          {"transformers_version", "4.31.0.dev0"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// Dynamic NTK: max_position_embeddings 32 < 40 tokens, so the base is rescaled for seq_len 40.
json llama_dynamic_config() {
  return llama2_config({{"type", "dynamic"}, {"factor", 2.0}}, 32);
}

// YaRN on a Llama-3 config (attention_factor unset: derived as 0.1 ln(factor) + 1).
json llama_yarn_config() {
  json c = llama_config();
  c["max_position_embeddings"] = 128;
  c["rope_theta"] = 10000.0;
  c["rope_scaling"] = {{"rope_type", "yarn"},
                       {"factor", 4.0},
                       {"original_max_position_embeddings", 32},
                       {"beta_fast", 32.0},
                       {"beta_slow", 1.0}};
  return c;
}

// mistralai/Mistral-7B-v0.3 (sliding_window null) and Mistral-7B-v0.1 (sliding_window 4096,
// here 8; v0.1 has no attention_dropout key).
json mistral_config(bool sliding) {
  json c = {{"architectures", {"MistralForCausalLM"}},
            {"attention_dropout", 0.0},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"hidden_act", "silu"},
            {"hidden_size", 64},
            {"initializer_range", 0.02},
            {"intermediate_size", 160},
            {"max_position_embeddings", 256},
            {"model_type", "mistral"},
            {"num_attention_heads", 4},
            {"num_hidden_layers", 2},
            {"num_key_value_heads", 2},
            {"rms_norm_eps", 1e-05},
            {"rope_theta", 1000000.0},
            {"sliding_window", nullptr},
            {"tie_word_embeddings", false},
            {"torch_dtype", "bfloat16"},
            {"transformers_version", "4.42.0.dev0"},
            {"use_cache", true},
            {"vocab_size", kFamilyVocab}};
  if (sliding) {
    c.erase("attention_dropout");
    c["rope_theta"] = 10000.0;
    c["sliding_window"] = 8;
    c["transformers_version"] = "4.34.0.dev0";
  }
  return c;
}

// Qwen/Qwen2.5-7B-Instruct. use_sliding_window is false, so sliding_window (8 here) is unused.
json qwen2_config() {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 62},
          {"eos_token_id", 63},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"max_window_layers", 2},
          {"model_type", "qwen2"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-06},
          {"rope_theta", 1000000.0},
          {"sliding_window", 8},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.43.1"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", kFamilyVocab}};
}

// Qwen/Qwen3-8B: explicit head_dim (32 with hidden 64: q_proj is 128 x 64).
json qwen3_config() {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 62},
          {"eos_token_id", 63},
          {"head_dim", 32},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"max_window_layers", 2},
          {"model_type", "qwen3"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-06},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.51.0"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", kFamilyVocab}};
}

// The same model as transformers 5 saves it: rope_parameters (no top-level rope_theta), dtype,
// layer_types.
json qwen3_v5_config() {
  json c = qwen3_config();
  c.erase("rope_scaling");
  c.erase("rope_theta");
  c.erase("torch_dtype");
  c["dtype"] = "bfloat16";
  c["layer_types"] = {"full_attention", "full_attention"};
  c["pad_token_id"] = nullptr;
  c["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}};
  c["transformers_version"] = "5.0.0";
  return c;
}

// google/gemma-2b. hidden 96: the normalizer sqrt(96) = 9.798 is 9.8125 in bfloat16. hidden_act
// "gelu" with hidden_activation null, as the published config.json.
json gemma_config() {
  return {{"architectures", {"GemmaForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 2},
          {"eos_token_id", 1},
          {"head_dim", 32},
          {"hidden_act", "gelu"},
          {"hidden_activation", nullptr},
          {"hidden_size", 96},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"model_type", "gemma"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"pad_token_id", 0},
          {"rms_norm_eps", 1e-06},
          {"rope_scaling", nullptr},
          {"rope_theta", 10000.0},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.44.2"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// google/gemma-2-2b keys; torch_dtype float32 as google/gemma-2-9b (no normalizer rounding).
// query_pre_attn_scalar 24 != head_dim 32. Layers: 0 sliding, 1 full.
json gemma2_config() {
  return {{"architectures", {"Gemma2ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"attn_logit_softcapping", 50.0},
          {"bos_token_id", 2},
          {"cache_implementation", "hybrid"},
          {"eos_token_id", 1},
          {"final_logit_softcapping", 30.0},
          {"head_dim", 32},
          {"hidden_act", "gelu_pytorch_tanh"},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"hidden_size", 96},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"model_type", "gemma2"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"pad_token_id", 0},
          {"query_pre_attn_scalar", 24},
          {"rms_norm_eps", 1e-06},
          {"rope_theta", 10000.0},
          {"sliding_window", 8},
          {"torch_dtype", "float32"},
          {"transformers_version", "4.44.2"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// google/gemma-3-1b-it: sliding_window_pattern 2 over 4 layers (0, 2 sliding; 1, 3 full).
json gemma3_text_config() {
  return {{"architectures", {"Gemma3ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"attn_logit_softcapping", nullptr},
          {"bos_token_id", 2},
          {"cache_implementation", "hybrid"},
          {"eos_token_id", {1, 63}},
          {"final_logit_softcapping", nullptr},
          {"head_dim", 32},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"hidden_size", 96},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"model_type", "gemma3_text"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 4},
          {"num_key_value_heads", 2},
          {"pad_token_id", 0},
          {"query_pre_attn_scalar", 48},
          {"rms_norm_eps", 1e-06},
          {"rope_local_base_freq", 10000},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000},
          {"sliding_window", 8},
          {"sliding_window_pattern", 2},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.50.0.dev0"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// A Gemma 3 text config as transformers 5 saves it: layer_types (here not a repeating pattern),
// per-layer-type rope_parameters (linear x8 on full layers, default 10000 on sliding ones), no
// rope_theta / rope_local_base_freq / rope_scaling / sliding_window_pattern, dtype.
json gemma3_v5_config() {
  json c = gemma3_text_config();
  for (const char* k : {"cache_implementation", "rope_local_base_freq", "rope_scaling",
                        "rope_theta", "sliding_window_pattern", "torch_dtype"})
    c.erase(k);
  c["dtype"] = "bfloat16";
  c["layer_types"] = {"sliding_attention", "sliding_attention", "full_attention",
                      "sliding_attention"};
  c["rope_parameters"] = {
      {"full_attention", {{"factor", 8.0}, {"rope_theta", 1000000.0}, {"rope_type", "linear"}}},
      {"sliding_attention", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}};
  c["tie_word_embeddings"] = true;
  c["transformers_version"] = "5.0.0";
  c["use_bidirectional_attention"] = false;
  return c;
}

// microsoft/Phi-3.5-mini-instruct: longrope with the pretraining context (32 here) at top level,
// max_position_embeddings 256 (factor 8: attention factor sqrt(1 + ln 8 / ln 32) = sqrt(1.6)).
json phi3_longrope_config() {
  const json short_factor = {1.0, 1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 1.7};
  const json long_factor = {1.0, 1.5, 2.3, 3.5, 5.0, 7.0, 9.5, 12.0};
  return {{"_name_or_path", "Phi-3.5-mini-instruct"},
          {"architectures", {"Phi3ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"auto_map",
           {{"AutoConfig", "configuration_phi3.Phi3Config"},
            {"AutoModelForCausalLM", "modeling_phi3.Phi3ForCausalLM"}}},
          {"bos_token_id", 1},
          {"embd_pdrop", 0.0},
          {"eos_token_id", 63},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"model_type", "phi3"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"original_max_position_embeddings", 32},
          {"pad_token_id", 63},
          {"resid_pdrop", 0.0},
          {"rms_norm_eps", 1e-05},
          {"rope_scaling",
           {{"long_factor", long_factor}, {"short_factor", short_factor}, {"type", "longrope"}}},
          {"rope_theta", 10000.0},
          {"sliding_window", 8},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.43.3"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// microsoft/Phi-4-mini-instruct: partial_rotary_factor 0.75 (24 of 32 head dims rotate, 12
// factors), tied embeddings, a sliding_window far beyond any test length (as published).
json phi4_mini_config() {
  json short_factor = json::array(), long_factor = json::array();
  for (int i = 0; i < 12; ++i) {
    short_factor.push_back(1.0);
    long_factor.push_back(std::pow(1.1183, i));  // 1, 1.118, 1.251, ... as the published factors
  }
  return {{"architectures", {"Phi3ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"auto_map",
           {{"AutoConfig", "configuration_phi3.Phi3Config"},
            {"AutoModelForCausalLM", "modeling_phi3.Phi3ForCausalLM"},
            {"AutoTokenizer", "Xenova/gpt-4o"}}},
          {"bos_token_id", 60},
          {"embd_pdrop", 0.0},
          {"eos_token_id", 60},
          {"full_attn_mod", 1},
          {"hidden_act", "silu"},
          {"hidden_size", 128},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"interpolate_factor", 1},
          {"lm_head_bias", false},
          {"max_position_embeddings", 256},
          {"mlp_bias", false},
          {"model_type", "phi3"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"original_max_position_embeddings", 32},
          {"pad_token_id", 60},
          {"partial_rotary_factor", 0.75},
          {"resid_pdrop", 0.0},
          {"rms_norm_eps", 1e-05},
          {"rope_scaling",
           {{"long_factor", long_factor}, {"short_factor", short_factor}, {"type", "longrope"}}},
          {"rope_theta", 10000.0},
          {"sliding_window", 262144},
          {"tie_word_embeddings", true},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.45.0"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// bigcode/starcoder2-3b: LayerNorms with bias, biased projections, tied embeddings (no
// tie_word_embeddings key: Starcoder2Config defaults to True), sliding window 8.
json starcoder2_config() {
  return {{"architectures", {"Starcoder2ForCausalLM"}},
          {"attention_dropout", 0.1},
          {"bos_token_id", 0},
          {"embedding_dropout", 0.1},
          {"eos_token_id", 0},
          {"hidden_act", "gelu_pytorch_tanh"},
          {"hidden_size", 64},
          {"initializer_range", 0.018042},
          {"intermediate_size", 256},
          {"max_position_embeddings", 256},
          {"mlp_type", "default"},
          {"model_type", "starcoder2"},
          {"norm_epsilon", 1e-05},
          {"norm_type", "layer_norm"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"residual_dropout", 0.1},
          {"rope_theta", 999999.4420358813},
          {"sliding_window", 8},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.37.0.dev0"},
          {"use_bias", true},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// google/gemma-3-4b-it: a sparse text_config that relies on Gemma3TextConfig's defaults
// (rope_theta 1e6, rope_local_base_freq 1e4, sliding_window_pattern 6, query_pre_attn_scalar 256,
// rms_norm_eps 1e-6, gelu_pytorch_tanh); the shrunk sizes are added. 6 layers: 0-4 slide, 5 is
// full. Linear RoPE x8 on the full layer only.
json gemma3_config() {
  return {{"architectures", {"Gemma3ForConditionalGeneration"}},
          {"boi_token_index", 60},
          {"eoi_token_index", 61},
          {"eos_token_id", {1, 63}},
          {"image_token_index", 62},
          {"initializer_range", 0.02},
          {"mm_tokens_per_image", 4},
          {"model_type", "gemma3"},
          {"text_config",
           {{"head_dim", 32},
            {"hidden_size", 96},
            {"intermediate_size", 160},
            {"model_type", "gemma3_text"},
            {"num_attention_heads", 4},
            {"num_hidden_layers", 6},
            {"num_key_value_heads", 2},
            {"rope_scaling", {{"factor", 8.0}, {"rope_type", "linear"}}},
            {"sliding_window", 8},
            {"vocab_size", kFamilyVocab}}},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.50.0.dev0"},
          {"vision_config",
           {{"hidden_size", 32},
            {"image_size", 28},
            {"intermediate_size", 64},
            {"model_type", "siglip_vision_model"},
            {"num_attention_heads", 2},
            {"num_hidden_layers", 1},
            {"patch_size", 14},
            {"vision_use_head", false}}}};
}

// mistralai/Mistral-Small-3.1-24B-Instruct-2503: a Mistral text tower with explicit head_dim (32
// with hidden 64), sliding_window null, rope_theta 1e9; a Pixtral vision tower.
json mistral3_config() {
  return {{"architectures", {"Mistral3ForConditionalGeneration"}},
          {"image_token_index", 10},
          {"model_type", "mistral3"},
          {"multimodal_projector_bias", false},
          {"projector_hidden_act", "gelu"},
          {"spatial_merge_size", 2},
          {"text_config",
           {{"attention_dropout", 0.0},
            {"head_dim", 32},
            {"hidden_act", "silu"},
            {"hidden_size", 64},
            {"initializer_range", 0.02},
            {"intermediate_size", 160},
            {"max_position_embeddings", 256},
            {"model_type", "mistral"},
            {"num_attention_heads", 4},
            {"num_hidden_layers", 2},
            {"num_key_value_heads", 2},
            {"rms_norm_eps", 1e-05},
            {"rope_theta", 1000000000.0},
            {"sliding_window", nullptr},
            {"use_cache", true},
            {"vocab_size", kFamilyVocab}}},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.50.0.dev0"},
          {"vision_config",
           {{"attention_dropout", 0.0},
            {"head_dim", 16},
            {"hidden_act", "silu"},
            {"hidden_size", 32},
            {"image_size", 28},
            {"initializer_range", 0.02},
            {"intermediate_size", 64},
            {"model_type", "pixtral"},
            {"num_attention_heads", 2},
            {"num_channels", 3},
            {"num_hidden_layers", 1},
            {"patch_size", 14},
            {"rope_theta", 10000.0}}},
          {"vision_feature_layer", -1}};
}

// llava-hf/llava-1.5-7b-hf: a Llama text tower (text_config relies on LlamaConfig defaults for
// rope_theta 10000 and hidden_act silu; the shrunk sizes are added), float16, a CLIP vision tower.
json llava_config() {
  return {{"architectures", {"LlavaForConditionalGeneration"}},
          {"ignore_index", -100},
          {"image_token_index", 60},
          {"model_type", "llava"},
          {"pad_token_id", 61},
          {"projector_hidden_act", "gelu"},
          {"text_config",
           {{"_name_or_path", "lmsys/vicuna-7b-v1.5"},
            {"architectures", {"LlamaForCausalLM"}},
            {"hidden_size", 64},
            {"intermediate_size", 160},
            {"max_position_embeddings", 256},
            {"model_type", "llama"},
            {"num_attention_heads", 4},
            {"num_hidden_layers", 2},
            {"num_key_value_heads", 2},
            {"rms_norm_eps", 1e-05},
            {"torch_dtype", "float16"},
            {"vocab_size", kFamilyVocab}}},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float16"},
          {"transformers_version", "4.36.0.dev0"},
          {"vision_config",
           {{"hidden_size", 32},
            {"image_size", 28},
            {"intermediate_size", 64},
            {"model_type", "clip_vision_model"},
            {"num_attention_heads", 2},
            {"num_hidden_layers", 1},
            {"patch_size", 14},
            {"projection_dim", 32},
            {"vocab_size", 32000}}},
          {"vision_feature_layer", -2},
          {"vision_feature_select_strategy", "default"},
          {"vocab_size", kFamilyVocab}};
}

// Qwen/Qwen2.5-VL-7B-Instruct: the text parameters at top level (no text_config), M-RoPE
// (mrope_section sums to head_dim / 2 = 8; text-only positions make it plain RoPE).
json qwen2_5_vl_config() {
  return {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 56},
          {"eos_token_id", 57},
          {"vision_start_token_id", 58},
          {"vision_end_token_id", 59},
          {"vision_token_id", 60},
          {"image_token_id", 61},
          {"video_token_id", 62},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"max_window_layers", 2},
          {"model_type", "qwen2_5_vl"},
          {"num_attention_heads", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-06},
          {"rope_theta", 1000000.0},
          {"sliding_window", 8},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.41.2"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vision_config",
           {{"depth", 1},
            {"hidden_act", "silu"},
            {"hidden_size", 32},
            {"intermediate_size", 64},
            {"num_heads", 2},
            {"in_chans", 3},
            {"out_hidden_size", 64},
            {"patch_size", 14},
            {"spatial_merge_size", 2},
            {"spatial_patch_size", 14},
            {"window_size", 112},
            {"fullatt_block_indexes", {0}},
            {"tokens_per_second", 2},
            {"temporal_patch_size", 2}}},
          {"rope_scaling", {{"type", "mrope"}, {"mrope_section", {2, 3, 3}}}},
          {"vocab_size", kFamilyVocab}};
}

// mistralai/Mixtral-8x7B-v0.1 keys (router_jitter_noise as MixtralConfig saves it since 4.38):
// 8 experts, top-2, every layer sparse; the experts' width is intermediate_size.
json mixtral_config() {
  return {{"architectures", {"MixtralForCausalLM"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 96},
          {"max_position_embeddings", 256},
          {"model_type", "mixtral"},
          {"num_attention_heads", 4},
          {"num_experts_per_tok", 2},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"num_local_experts", 8},
          {"output_router_logits", false},
          {"rms_norm_eps", 1e-05},
          {"rope_theta", 1000000.0},
          {"router_aux_loss_coef", 0.02},
          {"router_jitter_noise", 0.0},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.36.0.dev0"},
          {"use_cache", true},
          {"vocab_size", kFamilyVocab}};
}

// Qwen/Qwen1.5-MoE-A2.7B / Qwen2-57B-A14B keys: 8 experts of width moe_intermediate_size 64, top-2
// without renormalisation (norm_topk_prob false), a gated shared expert of width 128, q/k/v
// biases. 3 layers, decoder_sparse_step 1 and mlp_only_layers [1]: layers 0 and 2 are sparse,
// layer 1 a dense MLP of intermediate_size 160.
json qwen2_moe_config() {
  return {{"architectures", {"Qwen2MoeForCausalLM"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 62},
          {"decoder_sparse_step", 1},
          {"eos_token_id", 63},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 160},
          {"max_position_embeddings", 256},
          {"max_window_layers", 3},
          {"mlp_only_layers", json::array({1})},
          {"model_type", "qwen2_moe"},
          {"moe_intermediate_size", 64},
          {"norm_topk_prob", false},
          {"num_attention_heads", 4},
          {"num_experts", 8},
          {"num_experts_per_tok", 2},
          {"num_hidden_layers", 3},
          {"num_key_value_heads", 2},
          {"output_router_logits", false},
          {"rms_norm_eps", 1e-06},
          {"rope_theta", 1000000.0},
          {"router_aux_loss_coef", 0.001},
          {"shared_expert_intermediate_size", 128},
          {"sliding_window", 8},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.40.1"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", kFamilyVocab}};
}

// Qwen/Qwen3-30B-A3B: 16 experts (128 published) of width 64, top-4 (8), renormalised
// (norm_topk_prob true), no shared expert, q_norm / k_norm, explicit head_dim 32 with hidden 64
// (as the published 128 with 2048 / 32 heads: head_dim is not hidden / heads), mlp_only_layers [].
// intermediate_size is unused: every layer is sparse.
json qwen3_moe_config() {
  return {{"architectures", {"Qwen3MoeForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 62},
          {"decoder_sparse_step", 1},
          {"eos_token_id", 63},
          {"head_dim", 32},
          {"hidden_act", "silu"},
          {"hidden_size", 64},
          {"initializer_range", 0.02},
          {"intermediate_size", 192},
          {"max_position_embeddings", 256},
          {"max_window_layers", 2},
          {"mlp_only_layers", json::array()},
          {"model_type", "qwen3_moe"},
          {"moe_intermediate_size", 64},
          {"norm_topk_prob", true},
          {"num_attention_heads", 4},
          {"num_experts", 16},
          {"num_experts_per_tok", 4},
          {"num_hidden_layers", 2},
          {"num_key_value_heads", 2},
          {"output_router_logits", false},
          {"rms_norm_eps", 1e-06},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000.0},
          {"router_aux_loss_coef", 0.001},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"},
          {"transformers_version", "4.51.0"},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", kFamilyVocab}};
}

// ---------------------------------------------------------------------------------------------
// Tensor lists

int64_t int_or(const json& c, const char* key, int64_t def) {
  return c.contains(key) && !c.at(key).is_null() ? c.at(key).get<int64_t>() : def;
}
bool bool_or(const json& c, const char* key, bool def) {
  return c.contains(key) && !c.at(key).is_null() ? c.at(key).get<bool>() : def;
}

struct TextShape {
  int64_t hidden, heads, kv, head_dim, inter, layers, vocab;
};

TextShape text_shape(const json& c, int64_t default_head_dim) {
  TextShape s{};
  s.hidden = c.at("hidden_size").get<int64_t>();
  s.heads = c.at("num_attention_heads").get<int64_t>();
  s.kv = int_or(c, "num_key_value_heads", s.heads);
  s.head_dim = int_or(c, "head_dim", default_head_dim > 0 ? default_head_dim : s.hidden / s.heads);
  s.inter = c.at("intermediate_size").get<int64_t>();
  s.layers = c.at("num_hidden_layers").get<int64_t>();
  s.vocab = c.at("vocab_size").get<int64_t>();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE)

bool is_moe_type(const std::string& type) {
  return type == "mixtral" || type == "qwen2_moe" || type == "qwen3_moe";
}

struct MoeShape {
  int64_t experts = 0, top_k = 0, inter = 0, shared = 0;  // shared: 0 without a shared expert
};

MoeShape moe_shape(const json& c, const std::string& type) {
  MoeShape m;
  m.top_k = c.at("num_experts_per_tok").get<int64_t>();
  if (type == "mixtral") {
    m.experts = c.at("num_local_experts").get<int64_t>();
    m.inter = c.at("intermediate_size").get<int64_t>();
  } else {
    m.experts = c.at("num_experts").get<int64_t>();
    m.inter = c.at("moe_intermediate_size").get<int64_t>();
    if (type == "qwen2_moe") m.shared = c.at("shared_expert_intermediate_size").get<int64_t>();
  }
  return m;
}

// MixtralDecoderLayer: every layer sparse. Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer: layer i
// is sparse iff i is not in mlp_only_layers, num_experts > 0 and (i + 1) % decoder_sparse_step
// == 0.
bool sparse_layer(const json& c, const std::string& type, int64_t i) {
  if (type == "mixtral") return true;
  if (type != "qwen2_moe" && type != "qwen3_moe") return false;
  if (c.contains("mlp_only_layers") && c.at("mlp_only_layers").is_array())
    for (const auto& l : c.at("mlp_only_layers"))
      if (l.get<int64_t>() == i) return false;
  const int64_t step = int_or(c, "decoder_sparse_step", 1);
  return c.at("num_experts").get<int64_t>() > 0 && step > 0 && (i + 1) % step == 0;
}

// The module holding a layer's MoE block: `block_sparse_moe.` (Mixtral checkpoints) or `mlp.`.
std::string moe_module(const std::string& type) {
  return type == "mixtral" ? "block_sparse_moe." : "mlp.";
}

// Router rows of scale 2 / sqrt(hidden): the normalised hidden state has norm about
// sqrt(hidden), so router logits have a standard deviation near 2 and the top-k changes from
// token to token while the k-th and (k+1)-th logits are rarely close.
constexpr float kRouterScale = 2.0f;

// One sparse block: router, routed experts (Mixtral: w1 gate, w3 up, w2 down), Qwen2-MoE's shared
// expert and its [1, hidden] gate.
void add_moe(TinyModel& m, const std::string& type, const MoeShape& moe, const std::string& p,
             int64_t hidden) {
  const std::string b = p + moe_module(type);
  m.tensors.push_back({b + "gate.weight",
                       {moe.experts, hidden},
                       kRouterScale / std::sqrt(static_cast<float>(hidden))});
  for (int64_t e = 0; e < moe.experts; ++e) {
    const std::string x = b + "experts." + std::to_string(e) + ".";
    if (type == "mixtral") {
      add_linear(m, x + "w1", moe.inter, hidden, false);
      add_linear(m, x + "w2", hidden, moe.inter, false);
      add_linear(m, x + "w3", moe.inter, hidden, false);
    } else {
      add_linear(m, x + "gate_proj", moe.inter, hidden, false);
      add_linear(m, x + "up_proj", moe.inter, hidden, false);
      add_linear(m, x + "down_proj", hidden, moe.inter, false);
    }
  }
  if (moe.shared > 0) {
    add_linear(m, b + "shared_expert.gate_proj", moe.shared, hidden, false);
    add_linear(m, b + "shared_expert.up_proj", moe.shared, hidden, false);
    add_linear(m, b + "shared_expert.down_proj", hidden, moe.shared, false);
    add_linear(m, b + "shared_expert_gate", 1, hidden, false);
  }
}

// Gemma's RMSNorm computes x * (1 + w): its weights are stored around 0.
void add_gemma_norm(TinyModel& m, const std::string& name, int64_t d) {
  m.tensors.push_back({name + ".weight", {d}, 0.1f, 0.0f});
}

// The text model: embed_tokens, layers, norm under `prefix`; `head` unless tied.
void add_text_model(TinyModel& m, const json& c, const std::string& type, const std::string& prefix,
                    const std::string& head, bool tied) {
  const bool gemma = type == "gemma" || type == "gemma2" || type == "gemma3_text";
  const TextShape s = text_shape(c, gemma ? 256 : type == "qwen3" ? 128 : 0);
  const int64_t q = s.heads * s.head_dim, kv = s.kv * s.head_dim;
  // Gemma multiplies the embedding by sqrt(hidden): store it at 1 / sqrt(hidden). A tied head
  // reads the embedding: keep it small so that the logits are not dominated by each row's own
  // token.
  const float embed_scale = gemma  ? 1.0f / std::sqrt(static_cast<float>(s.hidden))
                            : tied ? 0.25f
                                   : 1.0f;
  m.tensors.push_back({prefix + "embed_tokens.weight", {s.vocab, s.hidden}, embed_scale});
  auto norm = [&](const std::string& name, int64_t d) {
    if (gemma)
      add_gemma_norm(m, name, d);
    else
      add_norm(m, name, d, type == "starcoder2");
  };
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = prefix + "layers." + std::to_string(i) + ".";
    norm(p + "input_layernorm", s.hidden);
    if (type == "phi3") {  // fused q|k|v and gate|up, no biases
      add_linear(m, p + "self_attn.qkv_proj", q + 2 * kv, s.hidden, false);
      add_linear(m, p + "self_attn.o_proj", s.hidden, q, false);
      norm(p + "post_attention_layernorm", s.hidden);
      add_linear(m, p + "mlp.gate_up_proj", 2 * s.inter, s.hidden, false);
      add_linear(m, p + "mlp.down_proj", s.hidden, s.inter, false);
      continue;
    }
    bool qkv_bias = false, o_bias = false, mlp_bias = false;
    if (type == "llama") {
      qkv_bias = o_bias = bool_or(c, "attention_bias", false);
      mlp_bias = bool_or(c, "mlp_bias", false);
    } else if (type == "qwen2" || type == "qwen2_5_vl") {
      qkv_bias = true;
    } else if (type == "qwen2_moe") {  // Qwen2MoeConfig.qkv_bias (default True), o_proj never
      qkv_bias = bool_or(c, "qkv_bias", true);
    } else if (type == "qwen3" || type == "qwen3_moe" || gemma) {
      qkv_bias = o_bias = bool_or(c, "attention_bias", false);
    } else if (type == "starcoder2") {
      qkv_bias = o_bias = mlp_bias = bool_or(c, "use_bias", true);
    }
    add_linear(m, p + "self_attn.q_proj", q, s.hidden, qkv_bias);
    add_linear(m, p + "self_attn.k_proj", kv, s.hidden, qkv_bias);
    add_linear(m, p + "self_attn.v_proj", kv, s.hidden, qkv_bias);
    add_linear(m, p + "self_attn.o_proj", s.hidden, q, o_bias);
    if (type == "qwen3" || type == "qwen3_moe") {
      add_norm(m, p + "self_attn.q_norm", s.head_dim, false);
      add_norm(m, p + "self_attn.k_norm", s.head_dim, false);
    } else if (type == "gemma3_text") {
      add_gemma_norm(m, p + "self_attn.q_norm", s.head_dim);
      add_gemma_norm(m, p + "self_attn.k_norm", s.head_dim);
    }
    norm(p + "post_attention_layernorm", s.hidden);
    if (type == "gemma2" || type == "gemma3_text") {
      add_gemma_norm(m, p + "pre_feedforward_layernorm", s.hidden);
      add_gemma_norm(m, p + "post_feedforward_layernorm", s.hidden);
    }
    if (sparse_layer(c, type, i)) {
      add_moe(m, type, moe_shape(c, type), p, s.hidden);
    } else if (type == "starcoder2") {
      add_linear(m, p + "mlp.c_fc", s.inter, s.hidden, mlp_bias);
      add_linear(m, p + "mlp.c_proj", s.hidden, s.inter, mlp_bias);
    } else {
      add_linear(m, p + "mlp.gate_proj", s.inter, s.hidden, mlp_bias);
      add_linear(m, p + "mlp.up_proj", s.inter, s.hidden, mlp_bias);
      add_linear(m, p + "mlp.down_proj", s.hidden, s.inter, mlp_bias);
    }
  }
  norm(prefix + "norm", s.hidden);
  if (!tied) add_linear(m, head, s.vocab, s.hidden, false);
}

// A weight (and bias) of a vision module, copied unchanged by a quantizer.
void add_vision(TinyModel& m, const std::string& name, std::vector<int64_t> shape, bool bias) {
  const int64_t n = shape[0];
  m.tensors.push_back({name + ".weight", std::move(shape), 0.05f});
  if (bias) m.tensors.push_back({name + ".bias", {n}, 0.05f});
}

// The default of tie_word_embeddings in each text config class.
bool ties_by_default(const std::string& type) {
  return type == "gemma" || type == "gemma2" || type == "gemma3_text" || type == "starcoder2";
}

}  // namespace

const std::vector<std::string>& family_kinds() {
  static const std::vector<std::string> kinds = {
      "llama",           "llama3",    "llama_linear", "llama_dynamic", "llama_yarn", "mistral",
      "mistral_sliding", "qwen2",     "qwen3",        "gemma",         "gemma2",     "gemma3_text",
      "phi3_longrope",   "phi4_mini", "starcoder2",   "gemma3",        "mistral3",   "llava",
      "qwen2_5_vl",      "qwen3_v5",  "gemma3_v5",    "mixtral",       "qwen2_moe",  "qwen3_moe"};
  return kinds;
}

const std::vector<std::string>& moe_kinds() {
  static const std::vector<std::string> kinds = {"mixtral", "qwen2_moe", "qwen3_moe"};
  return kinds;
}

json family_config(const std::string& kind) {
  if (kind == "llama") return llama_config();
  if (kind == "llama3") return llama3_config();
  if (kind == "llama_linear") return llama2_config({{"type", "linear"}, {"factor", 2.0}}, 256);
  if (kind == "llama_dynamic") return llama_dynamic_config();
  if (kind == "llama_yarn") return llama_yarn_config();
  if (kind == "mistral") return mistral_config(false);
  if (kind == "mistral_sliding") return mistral_config(true);
  if (kind == "qwen2") return qwen2_config();
  if (kind == "qwen3") return qwen3_config();
  if (kind == "qwen3_v5") return qwen3_v5_config();
  if (kind == "gemma") return gemma_config();
  if (kind == "gemma2") return gemma2_config();
  if (kind == "gemma3_text") return gemma3_text_config();
  if (kind == "gemma3_v5") return gemma3_v5_config();
  if (kind == "phi3_longrope") return phi3_longrope_config();
  if (kind == "phi4_mini") return phi4_mini_config();
  if (kind == "starcoder2") return starcoder2_config();
  if (kind == "gemma3") return gemma3_config();
  if (kind == "mistral3") return mistral3_config();
  if (kind == "llava") return llava_config();
  if (kind == "qwen2_5_vl") return qwen2_5_vl_config();
  if (kind == "mixtral") return mixtral_config();
  if (kind == "qwen2_moe") return qwen2_moe_config();
  if (kind == "qwen3_moe") return qwen3_moe_config();
  throw std::invalid_argument("family_config: unknown kind '" + kind + "'");
}

TinyModel tiny_from_config(const json& config, MultimodalLayout layout) {
  TinyModel m;
  const std::string type = config.at("model_type").get<std::string>();
  m.family = type;
  m.config = config;
  const bool legacy = layout == MultimodalLayout::kLegacy;

  if (type == "gemma3" || type == "mistral3" || type == "llava") {
    const json& text = config.at("text_config");
    const std::string text_type = text.value("model_type", type == "gemma3"     ? "gemma3_text"
                                                           : type == "mistral3" ? "mistral"
                                                                                : "llama");
    // Gemma 3 checkpoints tie (Gemma3Config defaults to True); the published Mistral 3 ones
    // carry a head (Mistral3Config's True default aside, its text config is untied); LLaVA ties
    // only when its config or text config says so.
    bool tied = false;
    if (type == "gemma3")
      tied = bool_or(config, "tie_word_embeddings", true);
    else
      tied = bool_or(config, "tie_word_embeddings", false) ||
             bool_or(text, "tie_word_embeddings", false);
    const std::string lm = legacy ? "language_model.model." : "model.language_model.";
    const std::string head = legacy ? "language_model.lm_head" : "lm_head";
    add_text_model(m, text, text_type, lm, head, tied);
    const std::string v = legacy ? "" : "model.";
    const json& vc = config.at("vision_config");
    const int64_t d = vc.at("hidden_size").get<int64_t>();
    const int64_t ff = vc.at("intermediate_size").get<int64_t>();
    const int64_t patch = vc.at("patch_size").get<int64_t>();
    const int64_t side = vc.at("image_size").get<int64_t>() / patch;
    const int64_t text_hidden = text.at("hidden_size").get<int64_t>();
    if (type == "gemma3") {  // SigLIP + Gemma3MultiModalProjector
      const std::string t = v + "vision_tower.vision_model.";
      add_vision(m, t + "embeddings.patch_embedding", {d, 3, patch, patch}, true);
      add_vision(m, t + "embeddings.position_embedding", {side * side, d}, false);
      add_vision(m, t + "encoder.layers.0.self_attn.q_proj", {d, d}, true);
      add_vision(m, t + "encoder.layers.0.mlp.fc1", {ff, d}, true);
      add_vision(m, t + "post_layernorm", {d}, true);
      m.tensors.push_back(
          {v + "multi_modal_projector.mm_input_projection_weight", {d, text_hidden}, 0.05f});
      add_vision(m, v + "multi_modal_projector.mm_soft_emb_norm", {d}, false);
    } else if (type == "mistral3") {  // Pixtral + Mistral3MultiModalProjector
      const int64_t merge = int_or(config, "spatial_merge_size", 2);
      const std::string t = v + "vision_tower.";
      add_vision(m, t + "patch_conv", {d, 3, patch, patch}, false);
      add_vision(m, t + "ln_pre", {d}, false);
      add_vision(m, t + "transformer.layers.0.attention_norm", {d}, false);
      add_vision(m, t + "transformer.layers.0.attention.q_proj", {d, d}, false);
      add_vision(m, t + "transformer.layers.0.feed_forward.gate_proj", {ff, d}, false);
      const std::string p = v + "multi_modal_projector.";
      const bool pb = bool_or(config, "multimodal_projector_bias", false);
      add_vision(m, p + "norm", {d}, false);
      add_vision(m, p + "patch_merger.merging_layer", {d, d * merge * merge}, false);
      add_vision(m, p + "linear_1", {text_hidden, d}, pb);
      add_vision(m, p + "linear_2", {text_hidden, text_hidden}, pb);
    } else {  // CLIP + LlavaMultiModalProjector
      const std::string t = v + "vision_tower.vision_model.";
      add_vision(m, t + "embeddings.class_embedding", {d}, false);
      add_vision(m, t + "embeddings.patch_embedding", {d, 3, patch, patch}, false);
      add_vision(m, t + "embeddings.position_embedding", {side * side + 1, d}, false);
      add_vision(m, t + "pre_layrnorm", {d}, true);
      add_vision(m, t + "encoder.layers.0.self_attn.q_proj", {d, d}, true);
      const std::string p = v + "multi_modal_projector.";
      add_vision(m, p + "linear_1", {text_hidden, d}, true);
      add_vision(m, p + "linear_2", {text_hidden, text_hidden}, true);
    }
    return m;
  }

  if (type == "qwen2_5_vl") {
    const json& text = config.contains("text_config") ? config.at("text_config") : config;
    const bool tied = bool_or(config, "tie_word_embeddings", false);
    add_text_model(m, text, "qwen2_5_vl", legacy ? "model." : "model.language_model.", "lm_head",
                   tied);
    const std::string v = legacy ? "visual." : "model.visual.";
    const json& vc = config.at("vision_config");
    const int64_t d = vc.at("hidden_size").get<int64_t>();
    const int64_t ff = vc.at("intermediate_size").get<int64_t>();
    const int64_t patch = vc.at("patch_size").get<int64_t>();
    const int64_t tp = int_or(vc, "temporal_patch_size", 2),
                  merge = int_or(vc, "spatial_merge_size", 2);
    const int64_t out = vc.at("out_hidden_size").get<int64_t>(), merged = d * merge * merge;
    add_vision(m, v + "patch_embed.proj", {d, 3, tp, patch, patch}, false);
    add_vision(m, v + "blocks.0.norm1", {d}, false);
    add_vision(m, v + "blocks.0.attn.qkv", {3 * d, d}, true);
    add_vision(m, v + "blocks.0.attn.proj", {d, d}, true);
    add_vision(m, v + "blocks.0.mlp.gate_proj", {ff, d}, true);
    add_vision(m, v + "merger.ln_q", {d}, false);
    add_vision(m, v + "merger.mlp.0", {merged, merged}, true);
    add_vision(m, v + "merger.mlp.2", {out, merged}, true);
    return m;
  }

  static const char* const kText[] = {"llama",      "mistral", "qwen2",       "qwen3",
                                      "gemma",      "gemma2",  "gemma3_text", "phi3",
                                      "starcoder2", "mixtral", "qwen2_moe",   "qwen3_moe"};
  bool known = false;
  for (const char* t : kText) known = known || type == t;
  if (!known)
    throw std::invalid_argument("tiny_from_config: unsupported model_type '" + type + "'");
  const bool tied = bool_or(config, "tie_word_embeddings", ties_by_default(type));
  add_text_model(m, config, type, "model.", "lm_head", tied);
  return m;
}

void starve_expert(TinyModel& m, const json& config, int64_t layer, int64_t expert) {
  const std::string type = config.at("model_type").get<std::string>();
  if (!is_moe_type(type))
    throw std::invalid_argument("starve_expert: '" + type + "' has no experts");
  if (layer < 0 || layer >= config.at("num_hidden_layers").get<int64_t>() ||
      !sparse_layer(config, type, layer))
    throw std::invalid_argument("starve_expert: layer " + std::to_string(layer) +
                                " is not a sparse layer");
  const MoeShape moe = moe_shape(config, type);
  if (expert < 0 || expert >= moe.experts)
    throw std::invalid_argument("starve_expert: no expert " + std::to_string(expert));
  if (moe.experts - 1 < 2 * moe.top_k)
    throw std::invalid_argument("starve_expert: needs 2 x top_k experts besides the starved one");
  const std::string name =
      "model.layers." + std::to_string(layer) + "." + moe_module(type) + "gate.weight";
  for (TensorGen& t : m.tensors) {
    if (t.name != name) continue;
    t.row_edits.push_back({expert, -1, 0.0f});  // logit exactly 0 for every hidden state
    std::vector<int64_t> others;
    for (int64_t e = 0; e < moe.experts; ++e)
      if (e != expert) others.push_back(e);
    for (int64_t g = 0; g < moe.top_k; ++g)  // row others[2g + 1] = -row others[2g]
      t.row_edits.push_back({others[2 * g + 1], others[2 * g], -1.0f});
    return;
  }
  throw std::invalid_argument("starve_expert: the checkpoint has no " + name);
}

}  // namespace gptq::testing
