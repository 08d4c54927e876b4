// Rotary position embedding, rotate_half convention (Llama, Mistral, Qwen, Gemma, Phi-3,
// GPT-NeoX), with partial rotary: only the first `rot_dims` dimensions of each head are rotated
// (GPT-NeoX rotary_pct, partial_rotary_factor), the rest pass through.
//
// As transformers computes it, in float32:
//   inv_freq[i]   (modeling_rope_utils: default, linear, dynamic, llama3, yarn, longrope)
//   angle(p, i) = float(p) * inv_freq[i];  c = cos(angle) * attention_factor, s likewise
//   x' = x * cos(emb) + rotate_half(x) * sin(emb),  emb = cat(angle, angle),
//   rotate_half(x) = cat(-x[half:], x[:half])
// i.e. for i < half: x'[i] = x[i] c_i - x[i+half] s_i, x'[i+half] = x[i+half] c_i + x[i] s_i.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "model/arch.h"

namespace gptq::nn {

// The inverse frequencies [rot_dims / 2] of `spec` for a forward whose positions end at
// seq_len - 1 (dynamic NTK and longrope depend on it, as transformers' dynamic_rope_update).
std::vector<float> rope_inv_freq(const RopeSpec& spec, int64_t rot_dims, int64_t seq_len);

class RotaryTable {
 public:
  RotaryTable() = default;
  // Default RoPE with base `theta`; tables for positions 0..positions-1 (later ones on the fly).
  RotaryTable(int64_t rot_dims, double theta, int64_t positions);
  // Given inverse frequencies [rot_dims / 2]; cos and sin are multiplied by attention_factor.
  RotaryTable(std::vector<float> inv_freq, float attention_factor, int64_t positions);

  int64_t rot_dims() const { return rot_dims_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }

  // Rotates x in place: token t (position pos0 + t) of head h starts at
  // x + t * row_stride + h * head_stride.
  void apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride, int64_t head_stride,
             int64_t pos0 = 0) const;

 private:
  void angles(int64_t p, float* c, float* s) const;
  int64_t rot_dims_ = 0, positions_ = 0;
  float attention_factor_ = 1.0f;
  std::vector<float> inv_freq_;   // [rot_dims / 2]
  std::vector<float> cos_, sin_;  // [positions, rot_dims / 2]
};

// The RoPE of one layer: the table for each sequence length the spec distinguishes (one for
// most types; short/long for longrope; one per length beyond the base for dynamic NTK).
class Rope {
 public:
  Rope(const RopeSpec& spec, int64_t rot_dims, int64_t table_positions);
  // As RotaryTable::apply, for a forward whose last position is seq_len - 1.
  void apply(float* x, int64_t tokens, int64_t heads, int64_t row_stride, int64_t head_stride,
             int64_t pos0, int64_t seq_len) const;

 private:
  std::shared_ptr<const RotaryTable> dynamic_table(int64_t seq_len) const;
  RopeSpec spec_;
  int64_t rot_dims_ = 0, table_positions_ = 0;
  RotaryTable base_, long_;
  mutable std::mutex mutex_;
  mutable std::map<int64_t, std::shared_ptr<const RotaryTable>> dynamic_;
};

}  // namespace gptq::nn
