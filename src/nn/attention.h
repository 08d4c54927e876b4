// Causal multi-head attention with grouped KV heads (GQA/MQA), fp32:
//   for each query head h (kv head g = h / (heads / kv_heads), as transformers' repeat_kv):
//     S = scale * Q_h K_g^T            [T, T]  (sgemm)
//     P = softmax(S) over j <= i        (causal; masked entries are exactly 0)
//     O_h = P V_g                       [T, head_dim]  (sgemm)
//   out = [O_0 | O_1 | ... ]            [T, heads * head_dim]
// Q, K and V are read through strided views, so separate q/k/v outputs and fused qkv outputs
// (GPT-2 [q | k | v], GPT-NeoX per-head [q_h | k_h | v_h]) are used in place.
#pragma once

#include <cstdint>
#include <vector>

namespace gptq::nn {

// Head h of token t starts at data + t * row_stride + h * head_stride.
struct HeadsView {
  float* data = nullptr;
  int64_t row_stride = 0;
  int64_t head_stride = 0;
  float* head(int64_t h) const { return data + h * head_stride; }
};

struct AttentionShape {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 1.0f;   // usually 1 / sqrt(head_dim)
  float softcap = 0;    // > 0: scores = softcap * tanh(scores / softcap) (Gemma 2), before the mask
  int64_t window = 0;   // > 0: query at position p sees keys p - window + 1 .. p (sliding window)
};

// out [T, heads * head_dim]; `scores` is scratch (as cached_causal_attention with past = 0).
void causal_attention(const AttentionShape& shape, const HeadsView& q, const HeadsView& k,
                      const HeadsView& v, int64_t tokens, float* out, std::vector<float>& scores);

// Row-wise causal softmax of s [T, T] in place: row i over columns 0..i, columns > i set to 0.
void causal_softmax_inplace(float* s, int64_t tokens);
// Whether a query at position q sees the key at position k (causal, sliding window).
inline bool attends(int64_t q, int64_t k, int64_t window) {
  return k <= q && (window <= 0 || q - k < window);
}

// Incremental (KV-cached) form: `tokens` new queries at positions past..past+tokens-1 attend to
// the keys / values of positions 0..past+tokens-1 (k and v hold all of them, the new ones
// included, e.g. views of a KV cache): query i sees positions 0..past+i. past = 0 is
// causal_attention. out [tokens, heads * head_dim]; `scores` is scratch, resized to at most
// 128 * (past + tokens) (queries go in chunks of 128 rows, each against the keys it can see).
void cached_causal_attention(const AttentionShape& shape, const HeadsView& q, const HeadsView& k,
                             const HeadsView& v, int64_t past, int64_t tokens, float* out,
                             std::vector<float>& scores);

// Row-wise softmax of s [rows, past + rows] in place: row i over columns lo..past+i, the other
// columns set to 0; lo = 0, or past + i - window + 1 with a sliding window. softcap > 0 caps the
// scores first (softcap * tanh(s / softcap)).
void offset_causal_softmax_inplace(float* s, int64_t rows, int64_t past, int64_t window = 0,
                                   float softcap = 0);

}  // namespace gptq::nn
