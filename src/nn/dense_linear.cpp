#include "nn/dense_linear.h"

#include <cblas.h>

namespace gptq::nn {

void linear_forward(const float* x, int64_t rows, const float* w, const float* bias, int64_t n,
                    int64_t k, float* y) {
  if (rows == 0) return;
  if (rows == 1) {  // decoding: a GEMV streams W once (sgemm would repack it first)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(n), static_cast<int>(k), 1.0f, w,
                static_cast<int>(k), x, 1, 0.0f, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(k), w, static_cast<int>(k), 0.0f, y,
              static_cast<int>(n));
  }
  if (bias)
    for (int64_t r = 0; r < rows; ++r) {
      float* yr = y + r * n;
      for (int64_t j = 0; j < n; ++j) yr[j] += bias[j];
    }
}

DenseLinear::DenseLinear(std::vector<float> w, std::vector<float> bias, int64_t n, int64_t k)
    : n_(n), k_(k), w_(std::move(w)), bias_(std::move(bias)) {}

void DenseLinear::forward(const float* x, int64_t rows, float* y) const {
  linear_forward(x, rows, w_.data(), bias_.empty() ? nullptr : bias_.data(), n_, k_, y);
}

}  // namespace gptq::nn
