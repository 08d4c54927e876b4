#include "nn/rotary.h"

#include <cmath>

#include "util/error.h"

namespace gptq::nn {

RotaryTable::RotaryTable(int64_t rot_dims, double theta, int64_t positions)
    : rot_dims_(rot_dims), positions_(positions) {
  if (rot_dims <= 0 || rot_dims % 2 != 0)
    fail("rotary embedding: the number of rotated dimensions must be positive and even, got {}",
         rot_dims);
  const int64_t half = rot_dims / 2;
  inv_freq_.resize(half);
  // torch: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), all float32.
  const float base = static_cast<float>(theta);
  for (int64_t i = 0; i < half; ++i) {
    const float expo = static_cast<float>(2 * i) / static_cast<float>(rot_dims);
    inv_freq_[i] = 1.0f / std::pow(base, expo);
  }
  cos_.resize(positions * half);
  sin_.resize(positions * half);
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float a = static_cast<float>(p) * inv_freq_[i];
      cos_[p * half + i] = std::cos(a);
      sin_[p * half + i] = std::sin(a);
    }
}

void RotaryTable::apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride,
                        int64_t head_stride, int64_t pos0) const {
  const int64_t half = rot_dims_ / 2;
  std::vector<float> extra_cos, extra_sin;  // positions beyond the table (rare)
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t p = pos0 + t;
    const float* c;
    const float* s;
    if (p < positions_) {
      c = cos_.data() + p * half;
      s = sin_.data() + p * half;
    } else {
      extra_cos.resize(half);
      extra_sin.resize(half);
      for (int64_t i = 0; i < half; ++i) {
        const float a = static_cast<float>(p) * inv_freq_[i];
        extra_cos[i] = std::cos(a);
        extra_sin[i] = std::sin(a);
      }
      c = extra_cos.data();
      s = extra_sin.data();
    }
    float* row = x + t * row_stride;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = row + h * head_stride;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i], x2 = v[i + half];
        v[i] = x1 * c[i] - x2 * s[i];
        v[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

}  // namespace gptq::nn
