// ggml's k-quants (ggml-common.h / ggml-quants.c of llama.cpp): super-blocks of 256 values split
// into sub-blocks, each with an integer scale (and, for the "min" types, an integer min) times an
// fp16 super-block scale d (and dmin). Written from the published block layouts:
//   Q2_K (84 B):  scales[16] (low nibble: scale, high nibble: min), qs[64] (2-bit), d, dmin;
//                 16 sub-blocks of 16, x = d*sc*q - dmin*m, q in 0..3.
//   Q3_K (110 B): hmask[32] (3rd bit), qs[64] (low 2 bits), scales[12] (16 x 6 bits, biased 32),
//                 d; 16 sub-blocks of 16, x = d*(s-32)*(q-4), q in 0..7.
//   Q4_K (144 B): d, dmin, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128] (4-bit);
//                 8 sub-blocks of 32, x = d*sc*q - dmin*m, q in 0..15.
//   Q5_K (176 B): d, dmin, scales[12], qh[32] (5th bit), qs[128]; as Q4_K with q in 0..31.
//   Q6_K (210 B): ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d;
//                 16 sub-blocks of 16, x = d*sc*(q-32), q in 0..63.
// Dequantization reproduces ggml's dequantize_row_q*_K bit for bit. The quantizer is not ggml's
// reference (quantize_row_q*_K_ref, which fits each sub-block under a weighted or absolute-error
// objective and rounds the sub-block scales once): it minimises the plain squared error of what
// ggml reads back. Per super-block: sub-block fits (a grid of trial scales with least-squares
// scale/min, plus ggml's own fit as one starting point), a few super-block scales d/dmin, then
// alternating refinement (optimal codes for the scales, least-squares d/dmin, every integer
// sub-block scale with its best min), each step kept only when the error drops. Blocks are
// independent and quantized in parallel (util/thread_pool.h); the bytes do not depend on threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/ggml_quant.h"

namespace gptq::gguf {

constexpr int64_t kQkK = 256;  // values per k-quant super-block

bool is_k_quant(GgmlType t);

// x [n] -> one row of super-blocks (n % 256 == 0), minimising sum (x - dequant)^2.
void quantize_row_k(GgmlType t, const float* x, int64_t n, std::byte* out);
// One row of super-blocks -> y [n]; bit-identical to ggml's to_float.
void dequantize_row_k(GgmlType t, const std::byte* in, int64_t n, float* y);

// What llama.cpp's llama-quantize writes instead of a k-quant for a tensor whose rows are not a
// multiple of 256 (llama_tensor_get_type: Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1,
// Q6_K -> Q8_0), restricted to the 32-value types this writer has: the nearest with at least as
// many bits per weight (Q2_K/Q3_K -> Q4_0, Q4_K -> Q4_1, Q5_K/Q6_K -> Q8_0).
GgmlType k_quant_fallback(GgmlType t);

// Bits per weight of a type (type_size * 8 / block_size).
double bits_per_weight(GgmlType t);

}  // namespace gptq::gguf
