#include "model/model_validation.h"

#include <cmath>

#include "util/error.h"

namespace gptq {

namespace {

void check_range(const std::string& source, const char* key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    fail("{}: {} is {}, expected {}..{}; the file is damaged or not this model's config.json",
         source, key, v, lo, hi);
}

void check_number(const std::string& source, const char* key, double v, bool positive) {
  if (!std::isfinite(v) || (positive ? v <= 0 : v < 0))
    fail("{}: {} is {}, expected a finite number {}; fix config.json", source, key, v,
         positive ? "> 0" : ">= 0");
}

void check_rope(const std::string& source, const RopeSpec& r, const char* what) {
  check_number(source, what, r.theta, true);
  if (!std::isfinite(r.factor) || r.factor <= 0)
    fail("{}: rope factor is {}, expected a finite number > 0; fix config.json", source, r.factor);
}

}  // namespace

void check_model_dims(const ModelHparams& h, const std::string& source) {
  using L = ModelLimits;
  check_range(source, "num_hidden_layers", h.layers, 1, L::kLayers);
  check_range(source, "hidden_size", h.hidden, 1, L::kHidden);
  check_range(source, "num_attention_heads", h.heads, 1, L::kHeads);
  check_range(source, "num_key_value_heads", h.kv_heads, 1, h.heads);
  check_range(source, "head_dim", h.head_dim, 1, L::kHeadDim);
  if (h.heads * h.head_dim > L::kAttentionWidth)  // both bounded: no overflow
    fail("{}: num_attention_heads {} x head_dim {} is more than {}; the file is damaged", source,
         h.heads, h.head_dim, L::kAttentionWidth);
  check_range(source, "intermediate_size", h.intermediate, 1, L::kIntermediate);
  check_range(source, "vocab_size", h.vocab, 1, L::kVocab);
  check_range(source, "max_position_embeddings", h.max_positions, 1, L::kPositions);
  if (h.num_experts != 0) {
    check_range(source, "num_experts", h.num_experts, 1, 4096);
    check_range(source, "moe_intermediate_size", h.moe_intermediate, 1, L::kIntermediate);
  }
  check_range(source, "shared_expert_intermediate_size", h.shared_intermediate, 0,
              L::kIntermediate);
  check_range(source, "sliding_window", h.sliding_window, 0, L::kPositions);
}

void validate_hparams(const ModelHparams& h, const std::string& source) {
  check_model_dims(h, source);
  check_number(source, "the norm epsilon (rms_norm_eps / layer_norm_eps)", h.norm_eps, true);
  check_number(source, "rope_theta", h.rope_theta, true);
  check_rope(source, h.rope, "rope_theta");
  if (h.has_rope_local) check_rope(source, h.rope_local, "rope_local_base_freq");
  if (!std::isfinite(h.rotary_pct) || h.rotary_pct <= 0 || h.rotary_pct > 1)
    fail("{}: the rotary fraction (partial_rotary_factor / rotary_pct) is {}, expected 0 < x <= 1",
         source, h.rotary_pct);
  check_number(source, "the attention scale (query_pre_attn_scalar)", h.attn_scale, false);
  check_number(source, "attn_logit_softcapping", h.attn_softcap, false);
  check_number(source, "final_logit_softcapping", h.final_softcap, false);
  check_number(source, "the embedding scale", h.embed_scale, false);
}

void check_block_count(int64_t config_layers, const std::vector<int64_t>& blocks,
                       const std::string& block_name, const std::string& config_file,
                       const std::string& what) {
  const auto n = static_cast<int64_t>(blocks.size());
  if (n != config_layers)
    fail(
        "{}: num_hidden_layers is {} but the checkpoint {} has {} blocks in '{}': config.json and "
        "the "
        "weights do not belong together; use the config.json of this checkpoint",
        config_file, config_layers, what, n, block_name);
  for (int64_t i = 0; i < n; ++i)
    if (blocks[static_cast<size_t>(i)] != i)
      fail("checkpoint {}: block {}.{} is missing (blocks must be numbered 0..{})", what,
           block_name, i, n - 1);
}

void check_output_head(const ModelHparams& h, const std::string& head,
                       const std::function<bool(const std::string&)>& has_tensor,
                       const std::string& config_file, const std::string& what) {
  if (h.tie_word_embeddings || head.empty()) return;
  if (has_tensor(head + ".weight") || has_tensor(head + ".qweight")) return;
  fail(
      "checkpoint {}: the output head {}.weight is missing and {} does not tie it to the embedding "
      "(tie_word_embeddings is false); the checkpoint is incomplete: download it again",
      what, head, config_file);
}

}  // namespace gptq
