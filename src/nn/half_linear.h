// The output head from its 16-bit storage: y = x W^T with W [n, k] an F16 or BF16 tensor of the
// mapped checkpoint, never converted as a whole (an fp32 copy doubles the bytes a decode step
// reads: 524 MB instead of 262 MB for a 32000 x 4096 head).
#pragma once

#include <cstdint>

namespace gptq {
struct TensorInfo;
}  // namespace gptq

namespace gptq::nn {

// True if `w` is stored as F16 or BF16 (half_linear_forward takes it).
bool is_half_tensor(const TensorInfo& w);

// y [rows, n] = x [rows, k] W^T, W = `w` viewed as [n, k] (F16 or BF16; checked).
//   rows == 1: the 16-bit GEMV (kernels/half_gemv.h) on the thread pool.
//   rows > 1:  W converted one sgemm column tile (<= 512 rows) at a time per thread
//              (blas::sgemm_nt_filled_b): bit-identical to sgemm over an fp32 copy of W.
void half_linear_forward(const TensorInfo& w, const float* x, int64_t rows, int64_t n, int64_t k,
                         float* y);

}  // namespace gptq::nn
