// Packing GPTQ results into the checkpoint tensors and back (spec sections 3.2 - 3.7).
//   qweight int32 [K*b/32, N]: per column n, the codes of 32 consecutive input channels form an
//                             LSB-first bitstream of 32*b bits spread over b words.
//   qzeros  int32 [G, N*b/32]: the same along the output dimension, per group.
//   scales  fp16  [G, N];  g_idx int32 [K].
// Sizes use ceil(K*b/32) and ceil(N*b/32) (equal to the floor formulas when K, N % 32 == 0).
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quant_config.h"

namespace gptq {

struct PackedLinear {
  int bits = 4;
  int group_size = 128;  // as in the config (-1 allowed)
  int64_t in_features = 0, out_features = 0, groups = 0;
  CheckpointFormat format = CheckpointFormat::kGptq;
  std::vector<int32_t> qweight;  // [qweight_rows(), N]
  std::vector<int32_t> qzeros;   // [G, qzeros_cols()]
  std::vector<uint16_t> scales;  // [G, N] IEEE fp16 bits
  std::vector<int32_t> g_idx;    // [K]

  int64_t qweight_rows() const { return (in_features * bits + 31) / 32; }
  int64_t qzeros_cols() const { return (out_features * bits + 31) / 32; }
};

// codes [N, K], scales/zeros [G, N], g_idx [K] -> packed tensors.
PackedLinear pack_linear(const uint8_t* codes, const float* scales, const float* zeros,
                         const int32_t* g_idx, int64_t n, int64_t k, int64_t groups, int bits,
                         int group_size, CheckpointFormat format);

// Bit-level helpers (exposed for tests and the kernels).
void pack_bits_columns(const uint8_t* codes_kn, int64_t k, int64_t n, int bits, int32_t* out);
void unpack_bits_columns(const int32_t* packed, int64_t k, int64_t n, int bits, uint8_t* codes_kn);

// Inverse of pack_linear: codes [N, K] and zero points [G, N] as the solver gave them
// (v1 stored zeros get +1 back; values are taken modulo 2^bits as the fields hold).
void unpack_linear(const PackedLinear& p, std::vector<uint8_t>* codes_nk, std::vector<int32_t>* zeros_gn);

// W_deq [N, K] = scales[g_idx[k], n] * (q[k, n] - z[g_idx[k], n]) (spec 3.6).
std::vector<float> dequantize_linear(const PackedLinear& p);

}  // namespace gptq
