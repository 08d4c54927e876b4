// ggml's tensor types and block formats (ggml.h / ggml-common.h of llama.cpp), the reference
// quantizers (quantize_row_*_ref of ggml-quants.c: what llama-quantize uses without an importance
// matrix) and the dequantizers (dequantize_row_*), written from the published block layouts.
//   Q4_0: 32 values, fp16 d + 16 bytes; x = d * (q - 8), q in 0..15 (low nibbles: values 0..15,
//         high nibbles: values 16..31).
//   Q4_1: 32 values, fp16 d, fp16 m + 16 bytes; x = d * q + m.
//   Q8_0: 32 values, fp16 d + 32 int8; x = d * q.
//   Q2_K..Q6_K: super-blocks of 256 values, see gguf/ggml_kquant.h (quantize_row/dequantize_row
//   dispatch to it; their quantizer minimises the squared error instead of following ggml's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gptq::gguf {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kQ2_K = 10,  // k-quants: super-blocks of 256 (gguf/ggml_kquant.h)
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

// "f32", "f16", "q4_0", "q4_K", ... (ggml's type_name); "?" for a type this file does not know.
std::string type_name(GgmlType t);
// Parses a type name (case-insensitive); false if unknown.
bool parse_type(std::string_view name, GgmlType* t);
bool is_known(uint32_t t);
bool is_quantized(GgmlType t);
int64_t block_size(GgmlType t);  // values per block (1 for float types)
size_t type_size(GgmlType t);    // bytes per block
// Bytes of a row of n values (n a multiple of block_size).
size_t row_size(GgmlType t, int64_t n);

// x [n] -> one row of blocks (n % block_size == 0); the reference algorithms of ggml.
void quantize_row(GgmlType t, const float* x, int64_t n, std::byte* out);
// One row of blocks -> y [n].
void dequantize_row(GgmlType t, const std::byte* in, int64_t n, float* y);

// Raw block writers for exact conversions (codes already on ggml's grid).
// Q4_0 block: d (fp16 bits), q[32] in 0..15.
void pack_q4_0_block(uint16_t d, const uint8_t* q, std::byte* out);
// Q4_1 block: d, m (fp16 bits), q[32] in 0..15.
void pack_q4_1_block(uint16_t d, uint16_t m, const uint8_t* q, std::byte* out);
// Q8_0 block: d (fp16 bits), q[32] in -128..127.
void pack_q8_0_block(uint16_t d, const int8_t* q, std::byte* out);

}  // namespace gptq::gguf
