#include "nn/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "nn/vec_math.h"

namespace gptq::nn {

void causal_softmax_inplace(float* s, int64_t tokens) {
  offset_causal_softmax_inplace(s, tokens, 0);
}

void causal_attention(const AttentionShape& shape, const HeadsView& q, const HeadsView& k,
                      const HeadsView& v, int64_t tokens, float* out, std::vector<float>& scores) {
  const int64_t t = tokens, d = shape.head_dim;
  const int64_t group = shape.heads / shape.kv_heads;  // query heads per kv head
  const int64_t out_stride = shape.heads * d;
  scores.resize(static_cast<size_t>(t * t));
  for (int64_t h = 0; h < shape.heads; ++h) {
    const int64_t g = h / group;
    // S = scale * Q_h K_g^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), static_cast<int>(t),
                static_cast<int>(d), shape.scale, q.head(h), static_cast<int>(q.row_stride),
                k.head(g), static_cast<int>(k.row_stride), 0.0f, scores.data(),
                static_cast<int>(t));
    offset_causal_softmax_inplace(scores.data(), t, 0, shape.window, shape.softcap);
    // O_h = P V_g, written into the head's columns of out.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(t), static_cast<int>(d),
                static_cast<int>(t), 1.0f, scores.data(), static_cast<int>(t), v.head(g),
                static_cast<int>(v.row_stride), 0.0f, out + h * d, static_cast<int>(out_stride));
  }
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
  const int64_t t = tokens, n = past + tokens, d = shape.head_dim;
  const int64_t group = shape.heads / shape.kv_heads;  // query heads per kv head
  const int64_t out_stride = shape.heads * d;
  scores.resize(static_cast<size_t>(t * n));
  for (int64_t h = 0; h < shape.heads; ++h) {
    const int64_t g = h / group;
    // S = scale * Q_h K_g^T  [t, n]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), static_cast<int>(n),
                static_cast<int>(d), shape.scale, q.head(h), static_cast<int>(q.row_stride),
                k.head(g), static_cast<int>(k.row_stride), 0.0f, scores.data(),
                static_cast<int>(n));
    offset_causal_softmax_inplace(scores.data(), t, past, shape.window, shape.softcap);
    // O_h = P V_g  [t, d]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(t), static_cast<int>(d),
                static_cast<int>(n), 1.0f, scores.data(), static_cast<int>(n), v.head(g),
                static_cast<int>(v.row_stride), 0.0f, out + h * d, static_cast<int>(out_stride));
  }
}

}  // namespace gptq::nn
