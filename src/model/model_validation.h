// One validation of the model description (config.json) against itself and the checkpoint, used
// by quantize, eval, generate and the loader alike: dimensions within limits before anything is
// sized by them, finite positive numbers, exactly the blocks num_hidden_layers says, and an output
// head that is present unless config.json ties it to the embedding.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "model/arch.h"

namespace gptq {

// Largest values accepted from config.json (far beyond any published model; they bound what a
// damaged config can make the program allocate or multiply).
struct ModelLimits {
  static constexpr int64_t kLayers = 4096;
  static constexpr int64_t kHidden = int64_t{1} << 18;
  static constexpr int64_t kHeads = 4096;
  static constexpr int64_t kHeadDim = 8192;
  static constexpr int64_t kAttentionWidth = int64_t{1} << 20;  // heads * head_dim
  static constexpr int64_t kIntermediate = int64_t{1} << 21;
  static constexpr int64_t kVocab = int64_t{1} << 23;
  static constexpr int64_t kPositions = int64_t{1} << 28;
};

// The integer dimensions (hidden, layers, heads, kv heads, head_dim, intermediate, vocab,
// max_position_embeddings, experts): each in 1..limit; errors name `source` and the key.
void check_model_dims(const ModelHparams& h, const std::string& source);

// check_model_dims plus the numbers: norm eps, rope theta and factor, rotary fraction, soft caps
// and scales finite (and positive where a zero is meaningless).
void validate_hparams(const ModelHparams& h, const std::string& source);

// The checkpoint `what` (a directory) holds blocks 0..n-1 under `block_name` with n =
// num_hidden_layers of `config_file`.
void check_block_count(int64_t config_layers, const std::vector<int64_t>& blocks,
                       const std::string& block_name, const std::string& config_file,
                       const std::string& what);

// An untied output head must be in the checkpoint (float `<head>.weight` or GPTQ `<head>.qweight`);
// transformers would initialise a missing one at random.
void check_output_head(const ModelHparams& h, const std::string& head,
                       const std::function<bool(const std::string&)>& has_tensor,
                       const std::string& config_file, const std::string& what);

}  // namespace gptq
