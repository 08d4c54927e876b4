// Per-architecture facts of llama.cpp's GGUF, as convert_hf_to_gguf.py writes them: the
// general.architecture name, tensor names (gguf-py constants: token_embd, blk.N.attn_q, ...), the
// row reorderings the converter applies (Llama's Q/K RoPE permutation, GPT-NeoX's per-head fused
// QKV -> [Q | K | V]), Gemma's (1 + w) norms stored as 1 + w, the experts of MoE layers stacked
// into 3-D tensors, tensors computed from config.json (Phi-3's longrope factors, Llama 3.1's
// rope_freqs), and the hyper-parameter keys; what llama.cpp's architecture cannot compute is
// refused with the reason (write_arch_metadata).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "model/model_config.h"

namespace gptq::gguf {

// How the converter reorders the output rows of a tensor.
enum class RowOrder {
  kAsIs,
  kLlamaQ,   // permute(w, n_head, n_head): per head, rows (2, hd/2) -> (hd/2, 2)
  kLlamaK,   // permute(w, n_head, n_head_kv)
  kNeoxQkv,  // per head [q_h | k_h | v_h] -> [q | k | v]
};

struct GgufArch {
  std::string family;  // gptq.cpp's ArchSpec name ("llama", "mistral", ...)
  std::string arch;    // general.architecture ("llama", "qwen2", "gpt2", "gptneox", ...)
  bool permute_qk = false;
  bool neox_qkv = false;
  bool norm_offset = false;  // Gemma: the stored (1 + w) norm weight w is written as 1 + w
  // A sliding window on every layer is dropped by the converter (llama.cpp attends to everything).
  bool swa_dropped = false;
  // llama.cpp applies the window by a period (attention.sliding_window_pattern p: layer i slides
  // when i % p < p - 1), the key written with the window (Gemma 2, default period 2; Gemma 3, 6).
  bool swa_pattern = false;
  // Gemma 2: llama.cpp always soft-caps the attention scores and the logits (keys
  // {arch}.attn_logit_softcapping / final_logit_softcapping); Gemma 3: the logits when the key is
  // written.
  bool softcap = false;
  bool final_softcap_optional = false;
  // Gemma 2/3: llama.cpp scales queries by head_dim^-0.5 (hidden / heads at its 27B layer count)
  // whatever query_pre_attn_scalar says. fold_attn_scale: a different scale is folded into the
  // q_norm weight (exact in F32); otherwise such a checkpoint is refused.
  int64_t attn_scale_alt_layers = 0;
  bool fold_attn_scale = false;
  bool text_tower = false;   // the language model of a multimodal checkpoint exports as this arch
  bool rope_local = false;   // {arch}.rope.freq_base_swa for the sliding layers (Gemma 3)
  bool longrope = false;     // Phi-3: rope_factors_long / _short tensors, attn_factor key
  bool llama3_rope = false;  // rope_type llama3 -> the rope_freqs tensor (LlamaModel)
  // Mixture of experts: stacked ffn_{gate,up,down}_exps, ffn_gate_inp router (F32).
  bool moe = false;
  bool moe_norm_topk = true;  // llama.cpp's fixed renormalisation of the top-k weights
  bool moe_expert_ff =
      false;  // {arch}.expert_feed_forward_length (+ _shared_ with a shared expert)
};

// The GGUF description of a family; throws naming the family and the supported ones.
const GgufArch& gguf_arch_for(const std::string& family);
std::vector<std::string> gguf_families();

// One tensor of the source checkpoint as the GGUF file holds it.
struct TensorMapping {
  std::string hf_module;  // "model.layers.0.self_attn.q_proj" (parameters: .weight, .bias)
  std::string gguf_name;  // "blk.0.attn_q" (+ ".weight" / ".bias" appended by the exporter)
  RowOrder rows = RowOrder::kAsIs;
  bool is_norm = false;
  bool is_linear = false;  // a block linear (quantized in a GPTQ checkpoint)
  bool keep_f32 = false;   // a float weight llama.cpp wants in F32 (routers, shared-expert gates)
  float scale = 1.0f;      // norms: multiplies the stored weight (after the Gemma offset)
  // A stack of linears (the experts of a layer, in expert order): one 3-D tensor {k, n, experts}.
  std::vector<std::string> experts;
  // A tensor computed from config.json (RoPE factors), written as F32; hf_module is empty.
  std::vector<float> values;
};

// Every module of the model that the GGUF file holds, in the converter's order (embeddings, blocks,
// final norm, head). `block_prefix` is the checkpoint's block list ("model.layers").
// `head_present`: the checkpoint holds an untied head.
std::vector<TensorMapping> tensor_mappings(const GgufArch& g, const ModelConfig& config,
                                           const ModelLayout& layout,
                                           const std::string& block_prefix, bool head_present);

// Source row of each destination row for a reordering of `rows` rows.
std::vector<int64_t> row_order(RowOrder order, int64_t rows, const ModelHparams& hp);

// The {arch}.* hyper-parameter keys; returns warnings (what llama.cpp will compute differently).
std::vector<std::string> write_arch_metadata(GgufWriter& w, const GgufArch& g,
                                             const ModelConfig& config);

}  // namespace gptq::gguf
