// Text generation with a KV cache: prefill the prompt in one pass (rows = prompt length: the
// GEMM path of the linears), then one token per step (rows = 1: QuantLinear's fused GEMV), each
// step's token drawn by the Sampler from the last position's logits. Stops at an end-of-sequence
// id (not returned) or after max_new_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "nn/sampler.h"

namespace gptq {

class ModelForward;
struct ModelConfig;

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplerOptions sampling;
  std::vector<int32_t> eos_ids;  // stop ids (e.g. eos_token_ids()); empty: run to the limit
};

struct Generation {
  std::vector<int32_t> tokens;  // generated ids (without the prompt and the final EOS)
  bool stopped_at_eos = false;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;  // prompt forward + the first token's sampling
  int64_t decode_steps = 0;    // one-token forwards (each gives the next token)
  double decode_seconds = 0;

  double prefill_tokens_per_second() const;  // prompt tokens / prefill time
  double decode_tokens_per_second() const;   // decode steps / decode time
};

// The model's context length: max_position_embeddings (n_positions, ...) of its config, else
// the learned position table's length, else unlimited (INT64_MAX).
int64_t context_length(const ModelForward& model);

// Throws gptq::Error (kUsage) unless a prompt of `prompt_tokens` (> 0) + `max_new_tokens` (>= 0)
// fits in context_length(model); the message names both and the largest max_new_tokens that fits.
void check_generation_fits(const ModelForward& model, int64_t prompt_tokens,
                           int64_t max_new_tokens);

// Generates from `prompt` (non-empty; ids as the tokenizer gives them). `on_token` is called with
// each generated id as soon as it is drawn (not with the EOS). Checks check_generation_fits first.
Generation generate(const ModelForward& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = {});

// The end-of-sequence ids of a checkpoint, as transformers' generate() stops on: eos_token_id of
// generation_config.json (int or list) if present, else of config.json, plus the tokenizer's
// (tokenizer_eos, -1 = none). Sorted, without duplicates.
std::vector<int32_t> eos_token_ids(const ModelConfig& config, int32_t tokenizer_eos);

}  // namespace gptq
