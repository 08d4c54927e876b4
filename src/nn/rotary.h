// Rotary position embedding, rotate_half convention (Llama, Mistral, Qwen2, GPT-NeoX), with
// partial rotary: only the first `rot_dims` dimensions of each head are rotated (GPT-NeoX
// rotary_pct), the rest pass through.
//
// As transformers computes it, in float32:
//   inv_freq[i] = 1 / theta^(float(2i) / rot_dims)          i < rot_dims / 2
//   angle(p, i) = float(p) * inv_freq[i];  cos/sin of it in float32
//   x' = x * cos(emb) + rotate_half(x) * sin(emb),  emb = cat(angle, angle),
//   rotate_half(x) = cat(-x[half:], x[:half])
// i.e. for i < half: x'[i] = x[i] cos_i - x[i+half] sin_i, x'[i+half] = x[i+half] cos_i + x[i]
// sin_i.
#pragma once

#include <cstdint>
#include <vector>

namespace gptq::nn {

class RotaryTable {
 public:
  RotaryTable() = default;
  // Tables for positions 0..positions-1 (later positions are computed on the fly).
  RotaryTable(int64_t rot_dims, double theta, int64_t positions);

  int64_t rot_dims() const { return rot_dims_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

  // Rotates x in place: token t (position pos0 + t) of head h starts at
  // x + t * row_stride + h * head_stride.
  void apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride, int64_t head_stride,
             int64_t pos0 = 0) const;

 private:
  int64_t rot_dims_ = 0, positions_ = 0;
  std::vector<float> inv_freq_;   // [rot_dims / 2]
  std::vector<float> cos_, sin_;  // [positions, rot_dims / 2]
};

}  // namespace gptq::nn
