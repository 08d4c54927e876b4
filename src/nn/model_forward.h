// The whole causal LM in fp32: embeddings (tokens + learned positions, OPT's offset of 2), the
// blocks, the final norm and the LM head (tied to the token embedding when the config says so or
// the head tensor is absent).
//
// Blocks are either all resident (small models, tests) or built on demand one at a time by a
// BlockProvider (default: loaded from the checkpoint), so that a large model is evaluated block by
// block over many windows with only one block's fp32 weights in memory (forward_windows).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "nn/block_forward.h"
#include "util/huge_pages.h"

namespace gptq {

class TensorStore;
struct TensorInfo;

struct ModelForwardOptions {
  bool load_blocks = true;  // false: blocks are built on demand (streaming evaluation)
  std::string block_name;   // "" = detected (Optimum's block patterns)
};

// Builds block `index` (e.g. loaded from the checkpoint, then quantized); called in block order.
using BlockProvider = std::function<std::unique_ptr<BlockForward>(int64_t index)>;

class ModelForward {
 public:
  // Reads the embeddings, final norm and head (and the blocks if options.load_blocks). `store`
  // must outlive the object: an untied (or 16-bit) token embedding is read from its mapping at
  // lookup, an F16 / BF16 head at every head() call, and blocks built on demand by the default
  // provider are read from it.
  ModelForward(const ModelConfig& config, const TensorStore& store,
               const ModelForwardOptions& options = {});
  ~ModelForward();
  ModelForward(const ModelForward&) = delete;
  ModelForward& operator=(const ModelForward&) = delete;

  const ModelConfig& config() const { return config_; }
  const ModelHparams& hparams() const { return config_.hp; }
  int64_t hidden() const { return config_.hp.hidden; }
  int64_t vocab() const { return vocab_; }
  int64_t num_blocks() const { return config_.hp.layers; }
  // Longest sequence the learned position table allows (rotary models: unlimited, INT64_MAX).
  int64_t max_tokens() const;

  // x [T, hidden] = token embedding (+ position embedding of positions 0..T-1).
  void embed(const int32_t* ids, int64_t tokens, float* x) const;
  // Same for the positions pos0..pos0+T-1 (incremental decoding).
  void embed(const int32_t* ids, int64_t tokens, float* x, int64_t pos0) const;
  // logits [rows, vocab] = lm_head(final_norm(x [rows, hidden])); x is not modified.
  void head(const float* x, int64_t rows, float* logits) const;

  // Resident blocks (load_blocks = true, or set with set_block).
  bool blocks_resident() const;
  BlockForward& block(int64_t index);
  const BlockForward& block(int64_t index) const;
  void set_block(int64_t index, std::unique_ptr<BlockForward> block);
  // Replaces the output head (a quantized head at inference); x W^T + b of the final-norm output.
  void set_head(std::unique_ptr<LinearOp> head);
  bool head_replaced() const { return head_op_ != nullptr; }
  // Blocks on demand: replaces the provider (and drops resident blocks).
  void set_block_provider(BlockProvider provider);
  // Block `index` loaded from the checkpoint (dense fp32).
  std::unique_ptr<BlockForward> load_block(int64_t index) const;

  // One sequence, positions 0..T-1: logits [T, vocab].
  std::vector<float> logits(const std::vector<int32_t>& ids) const;
  void logits(const int32_t* ids, int64_t tokens, float* out) const;

  // ---- Incremental decoding (generation) with a KV cache; resident blocks only ----
  // An empty cache shaped for this model with room for `capacity` positions.
  nn::KvCache make_kv_cache(int64_t capacity) const;
  // Runs `tokens` new ids at positions cache.length().. through every block (prefill: the whole
  // prompt; decode: one token), appending their keys and values to the cache, and leaves their
  // final hidden states (before the final norm) in x [tokens, hidden]; then advances the cache.
  // head() of the rows gives the logits the whole-sequence forward gives those positions.
  void forward_cached(const int32_t* ids, int64_t tokens, nn::KvCache& cache, float* x) const;

  // Final hidden states (before the final norm) of `n` independent windows of T tokens each:
  // ids [n * T] -> x [n * T, hidden]. Resident blocks: window by window. On demand: each block is
  // built once and run over all n windows (streaming).
  void forward_windows(const int32_t* ids, int64_t n, int64_t tokens, float* x) const;

 private:
  ModelConfig config_;
  const TensorStore* store_;
  std::string block_name_;
  int64_t vocab_ = 0;
  int64_t pos_rows_ = 0;
  // [vocab, hidden] in fp32 when the head is tied to it and stored in fp32 (or F64); otherwise
  // the embedding stays in the mapping (embed_src_) and a token's row is converted when embed()
  // looks it up (not at load).
  FloatBuffer embed_;
  const TensorInfo* embed_src_ = nullptr;
  std::vector<float> pos_embed_;  // [max_positions + pos_offset, hidden] or empty
  FloatBuffer lm_head_;           // [vocab, hidden]: an untied F32 (or F64) head; else empty
  // An F16 / BF16 head (untied lm_head, or the tied embedding) used from the mapping
  // (nn/half_linear.h); lm_head_ and embed_ are then empty.
  const TensorInfo* head16_ = nullptr;
  std::unique_ptr<LinearOp> head_op_;  // replaces lm_head_ / embed_ / head16_ when set
  struct FinalNorm;
  std::unique_ptr<FinalNorm> final_norm_;
  std::vector<std::unique_ptr<BlockForward>> blocks_;
  BlockProvider provider_;
};

}  // namespace gptq
