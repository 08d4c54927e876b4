// Per-row quantization grid (AutoGPTQ Quantizer.find_params with perchannel=True, spec 2.3),
// with the optional MSE search of the clipping range (GPTQModel `mse`, spec 2.6).
//
// All arithmetic is float32 in the order of the reference so that scales and zeros are
// bit-identical to a torch run on the same slice.
#include <cmath>
#include <cstdint>
#include <limits>

#include "quant/gptq.h"
#include "util/error.h"

namespace gptq {
namespace {

// Sum over one row of |Q(x) - x|^norm for a candidate grid (scale, zero).
double grid_error(const float* row, int64_t cols, float scale, float zero, int maxq, float norm) {
  double err = 0.0;
  const bool square = norm == 2.0f;
  for (int64_t c = 0; c < cols; ++c) {
    const float x = row[c];
    const float d =
        std::fabs(dequantize_code(quantize_code(x, scale, zero, maxq), scale, zero) - x);
    if (d == 0.0f) continue;
    err += square ? static_cast<double>(d) * d : static_cast<double>(std::pow(d, norm));
  }
  return err;
}

}  // namespace

void find_grid_into(const float* x, int64_t rows, int64_t cols, int64_t ld, const QuantConfig& cfg,
                    float* scale, float* zero) {
  const int maxq = cfg.maxq();
  const float maxqf = static_cast<float>(maxq);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ld;
    // The range always contains 0: xmin = min(row_min, 0), xmax = max(row_max, 0).
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      xmin = row[c] < xmin ? row[c] : xmin;
      xmax = row[c] > xmax ? row[c] : xmax;
    }
    if (cfg.sym) {
      xmax = std::fmax(std::fabs(xmin), xmax);
      // Only rows with a negative value get the mirrored minimum; an all-positive row keeps
      // xmin = 0, so its grid [0 - zero, maxq - zero] * scale covers only [0, ~xmax/2].
      if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {  // all-zero row: any non-zero scale will do
      xmin = -1.0f;
      xmax = 1.0f;
    }
    float s = (xmax - xmin) / maxqf;
    // sym: zero = (maxq + 1) / 2, the grid is [-(maxq+1)/2, (maxq-1)/2] * scale.
    const float sym_zero = static_cast<float>((maxq + 1) / 2);
    float z = cfg.sym ? sym_zero : std::nearbyint(-xmin / s);

    if (cfg.mse_norm > 0.0) {
      // Shrink the range by p = 1 - i/grid, i < maxshrink*grid, keep the first candidate with the
      // smallest sum |Q(x) - x|^norm (p = 1 is the plain min/max grid).
      const float norm = static_cast<float>(cfg.mse_norm);
      const int steps = static_cast<int>(cfg.mse_maxshrink * cfg.mse_grid);
      double best = std::numeric_limits<double>::infinity();
      for (int i = 0; i < steps; ++i) {
        const float p = static_cast<float>(1.0 - static_cast<double>(i) / cfg.mse_grid);
        const float xmin1 = p * xmin, xmax1 = p * xmax;
        const float s1 = (xmax1 - xmin1) / maxqf;
        const float z1 = cfg.sym ? sym_zero : std::nearbyint(-xmin1 / s1);
        // 2-bit asymmetric grids are coarse enough that the neighbouring zero points are worth
        // trying as well (GPTQModel).
        const int nz = (!cfg.sym && cfg.bits == 2) ? 3 : 1;
        const float zc[3] = {z1, z1 - 1.0f, z1 + 1.0f};
        for (int t = 0; t < nz; ++t) {
          if (zc[t] < 0.0f || zc[t] > maxqf) continue;
          const double err = grid_error(row, cols, s1, zc[t], maxq, norm);
          if (err < best) {
            best = err;
            s = s1;
            z = zc[t];
          }
        }
      }
    }
    scale[r] = s;
    zero[r] = z;
  }
}

GridParams find_grid(const float* x, int64_t rows, int64_t cols, int64_t ld,
                     const QuantConfig& cfg) {
  if (rows < 0 || cols <= 0 || ld < cols) {
    fail_code(ExitCode::kInternal, "find_grid: bad shape rows={} cols={} ld={}", rows, cols, ld);
  }
  GridParams g;
  g.scale.resize(static_cast<size_t>(rows));
  g.zero.resize(static_cast<size_t>(rows));
  find_grid_into(x, rows, cols, ld, cfg, g.scale.data(), g.zero.data());
  return g;
}

}  // namespace gptq
