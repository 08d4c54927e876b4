// Float matrix transpose, blocked and vectorised (AVX-512 16x16 or AVX2 8x8 register blocks,
// chosen at run time; a plain loop elsewhere and on the edges). Pure data movement: every path
// writes the same bytes.
#pragma once

#include <cstdint>

namespace gptq {

enum class TransposeKernel { kAuto, kAvx512, kAvx2, kPlain };

// Whether this CPU runs `kernel` (kAuto and kPlain always).
bool transpose_kernel_supported(TransposeKernel kernel);

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols. src and dst must not overlap.
// `kernel` other than kAuto is for tests; it must be supported.
void transpose_f32(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows,
                   int64_t cols, TransposeKernel kernel = TransposeKernel::kAuto);

}  // namespace gptq
