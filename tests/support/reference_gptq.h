// A slow, literal implementation of GPTQ (spec 2.3 - 2.4 and GAR of 2.6) for cross-checking the
// fast solver: plain loops, no BLAS/LAPACK, Cholesky and inverse in double, the column loop in
// float exactly as the pseudo-code (block copy W1, Err1, rank-1 updates, the lazy update, and group
// grids read from W, not W1). Shares nothing with src/quant except the QuantConfig struct.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/quant_config.h"

namespace gptq::testing {

struct ReferenceResult {
  std::vector<uint8_t> codes;  // [N, K] original column order
  std::vector<float> dequant;  // [N, K]
  std::vector<float> scales;   // [G, N] (creation order; GAR re-ordered to original groups)
  std::vector<float> zeros;    // [G, N]
  std::vector<int32_t> g_idx;  // [K]
  double loss = 0;             // sum of losses / nsamples
};

// w [N, K], h [K, K] (finalized Hessian). Ignores mse_* (plain min/max grid).
ReferenceResult reference_gptq(const float* w, int64_t n, int64_t k, const float* h,
                               int64_t nsamples, const QuantConfig& cfg);

// tr((W - Q) H (W - Q)^T) in double: the layer objective up to the scale of H.
double hessian_weighted_error(const float* w, const float* q, int64_t n, int64_t k, const float* h);

}  // namespace gptq::testing
