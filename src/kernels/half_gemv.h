// GEMV over a matrix stored in 16-bit floats (IEEE binary16 or bfloat16): y = W x with W [n, k]
// row-major, read directly from its storage (a mapped checkpoint tensor), so that decoding streams
// 2 bytes per weight instead of the 4 of an fp32 copy. Highway kernels, dispatched at run time.
//
// Accumulation order (fixed; it defines the result bit for bit on a given SIMD target): for one
// row, the elements are cut into slices j = 0, 1, ... of L float lanes (the last one zero-padded);
// slice j goes into accumulator a[j % 2] (a += w_slice * x_slice, fused multiply-add, after the
// exact conversion of w to float); the row's value is the lane sum of a0 + a1. Each row is computed
// by one thread whatever the grouping of rows or the thread count, so y does not depend on either.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptq::kernels {

enum class HalfType { kF16, kBF16 };

// y[r - r0] for rows [r0, r1) of W, on the calling thread. `w` is the start of W (element [0, 0]);
// it may have any byte alignment. x has k floats.
void half_gemv_rows(HalfType type, const void* w, int64_t k, const float* x, int64_t r0, int64_t r1,
                    float* y);

// y [n] = W [n, k] x on `threads` threads of the shared pool (0: compute_threads()); rows are cut
// into fixed ranges (kHalfGemvTaskRows), independent of the thread count.
void half_gemv(HalfType type, const void* w, int64_t n, int64_t k, const float* x, float* y,
               int threads = 0);

constexpr int64_t kHalfGemvTaskRows = 256;

}  // namespace gptq::kernels
