#include "nn/norm.h"

#include <cmath>

#include "util/thread_pool.h"

namespace gptq::nn {

namespace {
constexpr int64_t kRowsPerTask = 32;  // rows are independent: row ranges run in parallel
}  // namespace

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* y) {
  parallel_ranges(rows, kRowsPerTask, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // mean(x^2) in double (torch sums fp32 pairwise; double is at least as exact).
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float var = static_cast<float>(ss / static_cast<double>(dim));
      const float inv = 1.0f / std::sqrt(var + eps);  // torch.rsqrt(variance + eps)
      for (int64_t i = 0; i < dim; ++i) {
        const float normed = xr[i] * inv;
        yr[i] = w[i] * normed;
      }
    }
  });
}

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b,
                float eps, float* y) {
  parallel_ranges(rows, kRowsPerTask, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // Two-pass mean and biased variance in double.
      double sum = 0;
      for (int64_t i = 0; i < dim; ++i) sum += xr[i];
      const double mean = sum / static_cast<double>(dim);
      double sq = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const double d = xr[i] - mean;
        sq += d * d;
      }
      const double var = sq / static_cast<double>(dim);
      const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
      const float fmean = static_cast<float>(mean);
      for (int64_t i = 0; i < dim; ++i) {
        const float normed = (xr[i] - fmean) * rstd;
        yr[i] = b ? normed * w[i] + b[i] : normed * w[i];
      }
    }
  });
}

void Norm::apply(const float* x, int64_t rows, float* y) const {
  if (type != NormType::kLayerNorm)  // kRmsNormUnitOffset holds 1 + w (nn::load_norm)
    rms_norm(x, rows, dim, weight.data(), eps, y);
  else
    layer_norm(x, rows, dim, weight.data(), bias.empty() ? nullptr : bias.data(), eps, y);
}

}  // namespace gptq::nn
