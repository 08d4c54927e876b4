#include "nn/half_linear.h"

#include <algorithm>
#include <vector>

#include "io/safetensors.h"
#include "kernels/half_gemv.h"
#include "util/blas.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq::nn {

bool is_half_tensor(const TensorInfo& w) {
  return w.dtype == DType::F16 || w.dtype == DType::BF16;
}

void half_linear_forward(const TensorInfo& w, const float* x, int64_t rows, int64_t n, int64_t k,
                         float* y) {
  if (!is_half_tensor(w) || w.numel() != n * k || w.nbytes != static_cast<size_t>(n * k) * 2)
    fail_code(ExitCode::kInternal,
              "half_linear_forward: tensor '{}' ({} {}) is not an [{}, {}] "
              "F16/BF16 matrix",
              w.name, dtype_name(w.dtype), w.shape_str(), n, k);
  if (rows <= 0 || n <= 0) return;
  if (rows == 1) {
    kernels::half_gemv(w.dtype == DType::F16 ? kernels::HalfType::kF16 : kernels::HalfType::kBF16,
                       w.data, n, k, x, y);
    return;
  }
  // Chunk c (rows [c * kHalfChunkRows, ...) of W) is converted into the scratch of slot
  // c % slots and multiplied there; a chunk's sgemm runs serially inside its task (nested pool
  // calls do), with the same tiles and operands whatever the slot or the thread count.
  const int64_t chunks = (n + kHalfChunkRows - 1) / kHalfChunkRows;
  const int64_t slots = std::min<int64_t>(chunks, std::max(1, compute_threads()));
  std::vector<float> scratch(static_cast<size_t>(slots * kHalfChunkRows * k));
  parallel_for(slots, [&](int64_t s) {
    float* wf = scratch.data() + s * kHalfChunkRows * k;
    for (int64_t c = s; c < chunks; c += slots) {
      const int64_t r0 = c * kHalfChunkRows, m = std::min(kHalfChunkRows, n - r0);
      tensor_range_to_f32(w, r0 * k, m * k, wf);
      blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, k, 1.0f, x, k, wf, k, 0.0f,
                  y + r0, n);
    }
  });
}

}  // namespace gptq::nn
