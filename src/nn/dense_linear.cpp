#include "nn/dense_linear.h"

#include "util/blas.h"
#include "util/error.h"

namespace gptq::nn {

namespace {

void add_bias(const float* bias, int64_t rows, int64_t n, float* y) {
  if (!bias) return;
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * n;
    for (int64_t j = 0; j < n; ++j) yr[j] += bias[j];
  }
}

}  // namespace

void linear_forward(const float* x, int64_t rows, const float* w, const float* bias, int64_t n,
                    int64_t k, float* y) {
  if (rows == 0) return;
  if (rows == 1) {  // decoding: a GEMV streams W once (sgemm would repack it first)
    blas::sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w, k, x, 0.0f, y);
  } else {
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
  }
  add_bias(bias, rows, n, y);
}

void forward_many(const std::vector<const DenseLinear*>& linears, const float* x, int64_t rows,
                  const std::vector<float*>& ys) {
  if (rows == 1 || linears.size() == 1) {
    for (size_t i = 0; i < linears.size(); ++i) linears[i]->forward(x, rows, ys[i]);
    return;
  }
  if (rows == 0) return;
  const int64_t k = linears.front()->in_features();
  std::vector<blas::GemmNt> products;
  for (size_t i = 0; i < linears.size(); ++i) {
    if (linears[i]->in_features() != k)
      fail_code(ExitCode::kInternal, "forward_many: linears of {} and {} inputs", k,
                linears[i]->in_features());
    products.push_back({linears[i]->weight().data(), linears[i]->out_features(), ys[i]});
  }
  blas::sgemm_nt_many(rows, k, x, products);
  for (size_t i = 0; i < linears.size(); ++i) {
    const std::vector<float>& b = linears[i]->bias();
    add_bias(b.empty() ? nullptr : b.data(), rows, linears[i]->out_features(), ys[i]);
  }
}

DenseLinear::DenseLinear(std::vector<float> w, std::vector<float> bias, int64_t n, int64_t k)
    : n_(n), k_(k), w_(std::move(w)), bias_(std::move(bias)) {}

void DenseLinear::forward(const float* x, int64_t rows, float* y) const {
  linear_forward(x, rows, w_.data(), bias_.empty() ? nullptr : bias_.data(), n_, k_, y);
}

}  // namespace gptq::nn
