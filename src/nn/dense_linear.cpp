#include "nn/dense_linear.h"

#include "util/blas.h"

namespace gptq::nn {

void linear_forward(const float* x, int64_t rows, const float* w, const float* bias, int64_t n,
                    int64_t k, float* y) {
  if (rows == 0) return;
  if (rows == 1) {  // decoding: a GEMV streams W once (sgemm would repack it first)
    blas::sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 0.0f, y);
  } else {
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
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
