#include "nn/attention.h"

#include <algorithm>
#include <cmath>

#include "nn/vec_math.h"
#include "util/blas.h"
#include "util/thread_pool.h"

namespace gptq::nn {

void causal_softmax_inplace(float* s, int64_t tokens) {
  offset_causal_softmax_inplace(s, tokens, 0);
}

void causal_attention(const AttentionShape& shape, const HeadsView& q, const HeadsView& k,
                      const HeadsView& v, int64_t tokens, float* out, std::vector<float>& scores) {
  cached_causal_attention(shape, q, k, v, 0, tokens, out, scores);
}

void offset_causal_softmax_inplace(float* s, int64_t rows, int64_t past, int64_t window,
                                   float softcap) {
  const int64_t cols = past + rows;
  for (int64_t i = 0; i < rows; ++i) {
    float* row = s + i * cols;
    const int64_t n = past + i + 1;  // columns up to and including the query's position
    const int64_t lo = window > 0 ? std::max<int64_t>(0, n - window) : 0;
    float* span = row + lo;
    if (softcap > 0)
      for (int64_t j = 0; j < n - lo; ++j) span[j] = softcap * std::tanh(span[j] / softcap);
    const float mx = max_value(span, n - lo);
    const float inv = static_cast<float>(1.0 / exp_shifted(span, n - lo, mx, span));
    for (int64_t j = 0; j < n - lo; ++j) span[j] *= inv;
    std::fill(row, row + lo, 0.0f);
    std::fill(row + n, row + cols, 0.0f);
  }
}

void cached_causal_attention(const AttentionShape& shape, const HeadsView& q, const HeadsView& k,
                             const HeadsView& v, int64_t past, int64_t tokens, float* out,
                             std::vector<float>& scores) {
  const int64_t t = tokens, d = shape.head_dim;
  const int64_t group = shape.heads / shape.kv_heads;  // query heads per kv head
  const int64_t out_stride = shape.heads * d;
  // Queries go kQueryChunk at a time: a chunk ending at query i1 needs the keys up to past + i1
  // only, so the products skip (most of) the masked upper triangle. Each score is the same dot
  // product as over all keys, and the dropped columns of P are exact zeros.
  constexpr int64_t kQueryChunk = 128;
  // One query head: its scores and output columns are its own, so heads run in parallel.
  auto head = [&](int64_t h, std::vector<float>& s) {
    const int64_t g = h / group;
    s.resize(static_cast<size_t>(std::min(t, kQueryChunk) * (past + t)));
    for (int64_t i0 = 0; i0 < t; i0 += kQueryChunk) {
      const int64_t c = std::min(kQueryChunk, t - i0), n = past + i0 + c;
      // S = scale * Q_h[i0:i0+c] K_g[0:n]^T  [c, n]
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c, n, d, shape.scale,
                  q.head(h) + i0 * q.row_stride, q.row_stride, k.head(g), k.row_stride, 0.0f,
                  s.data(), n);
      offset_causal_softmax_inplace(s.data(), c, past + i0, shape.window, shape.softcap);
      // O_h[i0:i0+c] = P V_g[0:n]  [c, d], written into the head's columns of out.
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, d, n, 1.0f, s.data(), n, v.head(g),
                  v.row_stride, 0.0f, out + i0 * out_stride + h * d, out_stride);
    }
  };
  if (compute_threads() == 1) {
    for (int64_t h = 0; h < shape.heads; ++h) head(h, scores);
    return;
  }
  parallel_for(shape.heads, [&](int64_t h) {
    thread_local std::vector<float> s;
    head(h, s);
  });
}

}  // namespace gptq::nn
