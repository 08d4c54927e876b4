#include "nn/model_forward.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "io/safetensors.h"
#include "model/convert.h"
#include "model/model_validation.h"
#include "nn/dense_linear.h"
#include "nn/half_linear.h"
#include "nn/norm.h"
#include "nn/weight_loader.h"
#include "util/error.h"

namespace gptq {

struct ModelForward::FinalNorm {
  nn::Norm norm;
};

ModelForward::ModelForward(const ModelConfig& config, const TensorStore& store,
                           const ModelForwardOptions& options)
    : config_(config),
      store_(&store),
      block_name_(options.block_name),
      final_norm_(std::make_unique<FinalNorm>()) {
  const ArchSpec& a = config_.require_arch();
  const ModelHparams& hp = config_.hp;
  if (!hp.norm_before)
    fail("{}: post-LayerNorm models (do_layer_norm_before=false) are not supported",
         config_.model_type);
  if (block_name_.empty()) block_name_ = nn::detect_block_name(store);
  const std::string config_file = (config_.dir / "config.json").string();
  check_block_count(hp.layers, find_block_indices(store.names(), block_name_), block_name_,
                    config_file, store.root().string());

  const ModelLayout names = model_layout(
      config_, [&](const std::string& n) { return nn::find_param(store, n) != nullptr; });
  vocab_ = hp.vocab;
  // Only a tied fp32 head needs the whole table in fp32; otherwise rows are converted at lookup
  // (and a 16-bit tied head is multiplied from the mapping).
  const TensorInfo& embed =
      nn::check_param(store, names.embed + ".weight", {vocab_, hp.hidden}, "token embedding");
  if (hp.tie_word_embeddings && !nn::is_half_tensor(embed)) {
    embed_ = FloatBuffer(static_cast<size_t>(vocab_ * hp.hidden));
    tensor_to_f32(embed, embed_.data());
  } else {
    embed_src_ = &embed;
    if (hp.tie_word_embeddings) head16_ = &embed;
  }
  if (!names.pos_embed.empty()) {
    pos_rows_ = hp.max_positions + hp.pos_offset;
    pos_embed_ = nn::load_param(store, names.pos_embed + ".weight", {pos_rows_, hp.hidden},
                                "learned position embedding");
  }
  final_norm_->norm =
      nn::load_norm(store, names.final_norm, a.norm, hp.hidden, static_cast<float>(hp.norm_eps));
  // transformers ties lm_head to the input embedding when tie_word_embeddings is set; an untied
  // head must be in the checkpoint (float here, or GPTQ: set_head by the loader).
  check_output_head(
      hp, names.lm_head, [&](const std::string& n) { return nn::find_param(store, n) != nullptr; },
      config_file, store.root().string());
  const std::string head_name = names.lm_head + ".weight";
  if (!hp.tie_word_embeddings && !names.lm_head.empty() && nn::find_param(store, head_name)) {
    const TensorInfo& head = nn::check_param(store, head_name, {vocab_, hp.hidden}, "LM head");
    if (nn::is_half_tensor(head)) {
      head16_ = &head;
    } else {
      lm_head_ = FloatBuffer(static_cast<size_t>(vocab_ * hp.hidden));
      tensor_to_f32(head, lm_head_.data());
    }
  }

  if (options.load_blocks) {
    blocks_.resize(static_cast<size_t>(hp.layers));
    for (int64_t i = 0; i < hp.layers; ++i) blocks_[i] = load_block(i);
  }
}

ModelForward::~ModelForward() = default;

int64_t ModelForward::max_tokens() const {
  return pos_embed_.empty() ? std::numeric_limits<int64_t>::max()
                            : pos_rows_ - config_.hp.pos_offset;
}

void ModelForward::embed(const int32_t* ids, int64_t tokens, float* x) const {
  embed(ids, tokens, x, 0);
}

void ModelForward::embed(const int32_t* ids, int64_t tokens, float* x, int64_t pos0) const {
  const int64_t d = hidden();
  if (pos0 < 0 || pos0 + tokens > max_tokens())
    fail("a sequence of {} tokens exceeds the model's {} learned positions", pos0 + tokens,
         max_tokens());
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab_)
      fail("token id {} at position {} is outside the vocabulary [0, {})", id, t, vocab_);
    float* xr = x + t * d;
    const float* e = xr;
    if (embed_src_)
      tensor_range_to_f32(*embed_src_, static_cast<int64_t>(id) * d, d,
                          xr);  // the row, converted in place
    else
      e = embed_.data() + static_cast<int64_t>(id) * d;
    if (config_.hp.embed_scale > 0) {  // Gemma: inputs_embeds * normalizer
      const auto scale = static_cast<float>(config_.hp.embed_scale);
      for (int64_t i = 0; i < d; ++i) xr[i] = e[i] * scale;
    } else if (pos_embed_.empty()) {
      if (e != xr) std::copy(e, e + d, xr);
    } else {
      const float* p = pos_embed_.data() + (pos0 + t + config_.hp.pos_offset) * d;
      for (int64_t i = 0; i < d; ++i) xr[i] = e[i] + p[i];
    }
  }
}

void ModelForward::head(const float* x, int64_t rows, float* logits) const {
  if (rows == 0) return;
  const int64_t d = hidden();
  std::vector<float> normed(static_cast<size_t>(rows * d));
  final_norm_->norm.apply(x, rows, normed.data());
  if (head_op_) {
    head_op_->forward(normed.data(), rows, logits);
  } else if (head16_) {
    nn::half_linear_forward(*head16_, normed.data(), rows, vocab_, d, logits);
  } else {
    if (lm_head_.empty() && !config_.hp.tie_word_embeddings)
      fail(
          "checkpoint {}: the output head is quantized but no GPTQ head was loaded (is "
          "quantization_config missing from config.json?)",
          store_->root().string());
    const float* w = lm_head_.empty() ? embed_.data() : lm_head_.data();
    nn::linear_forward(normed.data(), rows, w, nullptr, vocab_, d, logits);
  }
  if (const auto cap = static_cast<float>(config_.hp.final_softcap); cap > 0)  // Gemma 2
    for (int64_t i = 0; i < rows * vocab_; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
  // A NaN or infinite logit makes every probability meaningless (a NaN-blind softmax would report
  // a uniform distribution): a numerical failure, not a result.
  for (int64_t i = 0; i < rows * vocab_; ++i)
    if (!std::isfinite(logits[i]))
      fail_code(ExitCode::kNumerical,
                "the model {} computed a non-finite logit ({} for token {} at row {}): its weights "
                "overflow float32 in the forward pass; the checkpoint is broken or not this "
                "config.json's model",
                store_->root().string(), logits[i], i % vocab_, i / vocab_);
}

bool ModelForward::blocks_resident() const {
  return !blocks_.empty();
}

BlockForward& ModelForward::block(int64_t index) {
  if (!blocks_resident() || index < 0 || index >= num_blocks() || !blocks_[index])
    fail("block {} is not resident in this ModelForward ({} blocks, built on demand: {})", index,
         num_blocks(), !blocks_resident());
  return *blocks_[index];
}

const BlockForward& ModelForward::block(int64_t index) const {
  return const_cast<ModelForward*>(this)->block(index);
}

void ModelForward::set_block(int64_t index, std::unique_ptr<BlockForward> block) {
  if (index < 0 || index >= num_blocks()) fail("set_block: index {} out of range", index);
  if (blocks_.empty()) blocks_.resize(static_cast<size_t>(num_blocks()));
  blocks_[index] = std::move(block);
}

void ModelForward::set_head(std::unique_ptr<LinearOp> head) {
  if (!head || head->in_features() != hidden() || head->out_features() != vocab_)
    fail("set_head: the output head must map {} features to {} logits", hidden(), vocab_);
  head_op_ = std::move(head);
  lm_head_ = FloatBuffer();
  head16_ = nullptr;
}

void ModelForward::set_block_provider(BlockProvider provider) {
  blocks_.clear();
  provider_ = std::move(provider);
}

std::unique_ptr<BlockForward> ModelForward::load_block(int64_t index) const {
  BlockOptions o;
  o.block_name = block_name_;
  return std::make_unique<BlockForward>(config_, *store_, index, o);
}

std::vector<float> ModelForward::logits(const std::vector<int32_t>& ids) const {
  std::vector<float> out(ids.size() * static_cast<size_t>(vocab_));
  logits(ids.data(), static_cast<int64_t>(ids.size()), out.data());
  return out;
}

void ModelForward::logits(const int32_t* ids, int64_t tokens, float* out) const {
  std::vector<float> x(static_cast<size_t>(tokens * hidden()));
  forward_windows(ids, 1, tokens, x.data());
  head(x.data(), tokens, out);
}

nn::KvCache ModelForward::make_kv_cache(int64_t capacity) const {
  return nn::KvCache(num_blocks(), config_.hp.kv_heads * config_.hp.head_dim, capacity);
}

void ModelForward::forward_cached(const int32_t* ids, int64_t tokens, nn::KvCache& cache,
                                  float* x) const {
  if (!blocks_resident())
    fail_code(ExitCode::kInternal,
              "incremental decoding needs the blocks resident (load the model with its blocks)");
  if (cache.blocks() != num_blocks() || cache.width() != config_.hp.kv_heads * config_.hp.head_dim)
    fail_code(ExitCode::kInternal,
              "KV cache of {} blocks x width {} does not fit the model ({} blocks x {}); make it "
              "with make_kv_cache",
              cache.blocks(), cache.width(), num_blocks(),
              config_.hp.kv_heads * config_.hp.head_dim);
  if (tokens <= 0) return;
  embed(ids, tokens, x, cache.length());
  const size_t n = static_cast<size_t>(tokens * hidden());
  SequenceState st;
  st.tokens = tokens;
  st.resid.assign(x, x + n);
  for (int64_t i = 0; i < num_blocks(); ++i) {
    if (!blocks_[i]) fail("ModelForward: block {} is neither resident nor provided", i);
    blocks_[i]->forward_cached(st, cache.block(i, tokens));
  }
  std::copy(st.resid.begin(), st.resid.end(), x);
  cache.advance(tokens);
}

void ModelForward::forward_windows(const int32_t* ids, int64_t n, int64_t tokens, float* x) const {
  const int64_t stride = tokens * hidden();
  for (int64_t w = 0; w < n; ++w) embed(ids + w * tokens, tokens, x + w * stride);
  SequenceState st;  // buffers reused across windows
  st.tokens = tokens;
  auto run = [&](const BlockForward& b, float* xw) {
    st.resid.assign(xw, xw + stride);
    b.forward(st);
    std::copy(st.resid.begin(), st.resid.end(), xw);
  };
  if (blocks_resident()) {
    for (const auto& b : blocks_)
      if (!b) fail("ModelForward: some blocks are neither resident nor provided");
    for (int64_t w = 0; w < n; ++w)
      for (const auto& b : blocks_) run(*b, x + w * stride);
    return;
  }
  for (int64_t i = 0; i < num_blocks(); ++i) {
    std::unique_ptr<BlockForward> b = provider_ ? provider_(i) : load_block(i);
    if (!b) fail("ModelForward: the block provider returned no block {}", i);
    for (int64_t w = 0; w < n; ++w) run(*b, x + w * stride);
  }
}

}  // namespace gptq
