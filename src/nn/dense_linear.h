// Dense fp32 linear layer: y = x W^T + b with W the math matrix [N, K] (nn.Linear layout), one
// sgemm per call (sgemv for one row).
#pragma once

#include <cstdint>
#include <vector>

#include "nn/block_forward.h"

namespace gptq::nn {

// y [rows, n] = x [rows, k] W^T (+ bias), W [n, k] row-major.
void linear_forward(const float* x, int64_t rows, const float* w, const float* bias, int64_t n,
                    int64_t k, float* y);

class DenseLinear final : public LinearOp {
 public:
  // w [n, k]; bias empty or [n].
  DenseLinear(std::vector<float> w, std::vector<float> bias, int64_t n, int64_t k);

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  void forward(const float* x, int64_t rows, float* y) const override;

  const std::vector<float>& weight() const { return w_; }
  const std::vector<float>& bias() const { return bias_; }
  // Same shape [n, k] (checked by the caller).
  void set_weight(std::vector<float> w) { w_ = std::move(w); }

 private:
  int64_t n_, k_;
  std::vector<float> w_, bias_;
};

// ys[i] [rows, n_i] = linears[i](x [rows, k]) for linears of the same input: their products in
// one parallel loop (blas::sgemm_nt_many), the same bits as one forward each.
void forward_many(const std::vector<const DenseLinear*>& linears, const float* x, int64_t rows,
                  const std::vector<float*>& ys);

}  // namespace gptq::nn
