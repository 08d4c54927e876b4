// Round-to-nearest: the grid of every group from the original weights, no error feedback.
// Same grid (spec 2.3), group layout and g_idx = k / group_size as the GPTQ result.
#include <algorithm>
#include <cmath>

#include "quant/gptq.h"
#include "util/error.h"

namespace gptq {

GptqResult rtn_quantize(const float* w, int64_t n, int64_t k, const QuantConfig& cfg) {
  cfg.validate();
  if (n <= 0 || k <= 0) fail_code(ExitCode::kInternal, "rtn_quantize: bad shape [{}, {}]", n, k);
  for (int64_t i = 0; i < n * k; ++i) {
    if (!std::isfinite(w[i])) {
      fail_code(ExitCode::kBadInput, "rtn_quantize: weight holds a non-finite value at [{}, {}]",
                i / k, i % k);
    }
  }
  const int64_t gs = cfg.group_size > 0 ? cfg.group_size : k;
  const int64_t groups = (k + gs - 1) / gs;
  const int maxq = cfg.maxq();

  GptqResult res;
  res.n = n;
  res.k = k;
  res.groups = groups;
  res.scales.resize(static_cast<size_t>(groups * n));
  res.zeros.resize(static_cast<size_t>(groups * n));
  res.codes.resize(static_cast<size_t>(n * k));
  res.dequant.resize(static_cast<size_t>(n * k));
  res.g_idx.resize(static_cast<size_t>(k));
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t c0 = g * gs, c1 = std::min(k, c0 + gs);
    float* scale = res.scales.data() + g * n;
    float* zero = res.zeros.data() + g * n;
    find_grid_into(w + c0, n, c1 - c0, k, cfg, scale, zero);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const int code = quantize_code(w[r * k + c], scale[r], zero[r], maxq);
        res.codes[r * k + c] = static_cast<uint8_t>(code);
        res.dequant[r * k + c] = dequantize_code(code, scale[r], zero[r]);
      }
    }
    for (int64_t c = c0; c < c1; ++c) res.g_idx[c] = static_cast<int32_t>(g);
  }
  return res;
}

}  // namespace gptq
