#include "nn/half_linear.h"

#include "io/safetensors.h"
#include "kernels/half_gemv.h"
#include "util/blas.h"
#include "util/error.h"

namespace gptq::nn {

bool is_half_tensor(const TensorInfo& w) {
  return w.dtype == DType::F16 || w.dtype == DType::BF16;
}

void half_linear_forward(const TensorInfo& w, const float* x, int64_t rows, int64_t n, int64_t k,
                         float* y) {
  if (!is_half_tensor(w) || w.numel() != n * k || w.nbytes != static_cast<size_t>(n * k) * 2)
    fail_code(ExitCode::kInternal,
              "half_linear_forward: tensor '{}' ({} {}) is not an [{}, {}] F16/BF16 matrix", w.name,
              dtype_name(w.dtype), w.shape_str(), n, k);
  if (rows <= 0 || n <= 0) return;
  if (rows == 1) {
    kernels::half_gemv(w.dtype == DType::F16 ? kernels::HalfType::kF16 : kernels::HalfType::kBF16,
                       w.data, n, k, x, y);
    return;
  }
  // W's rows converted one sgemm column tile at a time (util/blas.h): the bits of sgemm over an
  // fp32 copy of W, without the copy.
  blas::sgemm_nt_filled_b(
      rows, n, k, x,
      [&](int64_t j0, int64_t nj, float* buf) { tensor_range_to_f32(w, j0 * k, nj * k, buf); }, y);
}

}  // namespace gptq::nn
