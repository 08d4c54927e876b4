// The GPTQ pieces used by the pipeline: quantization grid parameters, Hessian accumulation,
// the solver and round-to-nearest. Semantics: ../shared/docs/gptq-spec.md sections 2.2 - 2.6.
// All matrices are row-major float32. W is the math weight [N, K] (nn.Linear layout).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/quant_config.h"

namespace gptq {

// Per-row quantization grid of one group: scale and (integral) zero point.
struct GridParams {
  std::vector<float> scale;  // [rows]
  std::vector<float> zero;   // [rows]
};

// min/max (optionally MSE-searched) grid of x [rows, cols] with row stride `ld` (spec 2.3).
GridParams find_grid(const float* x, int64_t rows, int64_t cols, int64_t ld,
                     const QuantConfig& cfg);

// As find_grid, writing scale[r] and zero[r] for r < rows (no allocation; the solver calls it
// per row tile and group).
void find_grid_into(const float* x, int64_t rows, int64_t cols, int64_t ld, const QuantConfig& cfg,
                    float* scale, float* zero);

// Code of one value: clamp(round_half_even(x / scale) + zero, 0, maxq).
inline int quantize_code(float x, float scale, float zero, int maxq);
// The fake-quantized value of a code: scale * (code - zero), in float as the references compute it.
inline float dequantize_code(int code, float scale, float zero) {
  return scale * (static_cast<float>(code) - zero);
}

// Running Hessian H = 2/n * sum x x^T over the rows x of layer inputs (n = number of sequences
// fed, as AutoGPTQ/Optimum count it). Partial accumulators merge (sum of x x^T and counts add),
// so threads or processes can each take a share of the calibration data.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t k);
  // x: [rows, k] row-major inputs of `nseq` sequences (rows = tokens).
  void add(const float* x, int64_t rows, int64_t nseq);
  void merge(const HessianAccumulator& other);
  int64_t k() const { return k_; }
  int64_t nsamples() const { return nseq_; }
  int64_t rows_seen() const { return rows_; }
  // H [k, k] full symmetric, = 2/nsamples * X^T X (the rvalue form scales the sum in place: no
  // second K^2 buffer at the largest Hessian).
  std::vector<float> finalize() const&;
  std::vector<float> finalize() &&;
  // The raw sum X^T X [k, k] (upper triangle valid, the rest 0), for moving partial sums between
  // processes; from_raw rebuilds an accumulator from it.
  const std::vector<float>& raw() const { return xtx_; }
  static HessianAccumulator from_raw(int64_t k, int64_t nseq, int64_t rows, std::vector<float> xtx);

 private:
  float scale() const;  // 2 / nsamples (an error without sequences)
  int64_t k_;
  int64_t nseq_ = 0;
  int64_t rows_ = 0;
  std::vector<float> xtx_;  // upper triangle valid (SYRK)
};

struct GptqResult {
  int64_t n = 0, k = 0, groups = 0;
  std::vector<uint8_t> codes;  // [N, K] in original column order, each in [0, maxq]
  std::vector<float> scales;   // [G, N] group g = creation order (matches g_idx)
  std::vector<float> zeros;    // [G, N] integral values
  std::vector<int32_t> g_idx;  // [K]
  std::vector<float> dequant;  // [N, K] scale * (code - zero): the fake-quantized weight
  double loss = 0;             // sum of per-weight losses / nsamples, as AutoGPTQ reports
  double damp = 0;             // damp_percent finally used
  int damp_retries = 0;        // times damping was raised after a failed Cholesky
  int dead_columns = 0;        // columns with diag(H) == 0
};

// What the solver takes from the Hessian alone: the processing order and the upper factor U of
// the damped, permuted H^-1. Linears that read the same inputs (q/k/v, gate/up) share one.
struct GptqFactor {
  int64_t k = 0;
  std::vector<int32_t> perm;  // processing position -> original column
  bool permuted = false;      // perm is not the identity
  std::vector<int32_t> dead;  // columns with diag(H) == 0 (their weights are zeroed)
  std::vector<float> u;       // [K, K] upper factor in processing order
  double damp = 0;            // damp_percent finally used
  int damp_retries = 0;
};

// The factor of the finalized Hessian `h` [K, K] (not modified) under cfg's damping and order.
// `layer` names the layer(s) in error messages.
GptqFactor gptq_factor(const float* h, int64_t k, const QuantConfig& cfg, const std::string& layer);

// Whether two layers' settings give the same factor of the same Hessian.
bool same_factor(const QuantConfig& a, const QuantConfig& b);

// Solves GPTQ for one layer with a factor of its Hessian made under the same settings
// (same_factor). `nsamples` only scales the reported loss. `layer` names the layer in errors.
GptqResult gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& factor,
                         int64_t nsamples, const QuantConfig& cfg, const std::string& layer);

// As above, factoring `h` [K, K] (the finalized Hessian, copied, not modified) first.
GptqResult gptq_quantize(const float* w, int64_t n, int64_t k, const float* h, int64_t nsamples,
                         const QuantConfig& cfg, const std::string& layer);

// Round-to-nearest with the same grid and group layout (baseline; g_idx = k / group_size).
GptqResult rtn_quantize(const float* w, int64_t n, int64_t k, const QuantConfig& cfg);

// ---- Building blocks of the solver (exposed for tests and benchmarks) ----

// Column processing orders as perm[position] = original column.
// act-order (desc_act): argsort of diag(H) descending; stable, so ties keep column order.
std::vector<int32_t> act_order_permutation(const float* diag, int64_t k);
// GPTQModel GAR (act_group_aware, spec 2.6): inside every full group of `group_size` columns sort
// by diag descending; order the full groups by their largest diag descending (stable); the tail
// columns (k % group_size) stay last in identity order.
std::vector<int32_t> gar_permutation(const float* diag, int64_t k, int64_t group_size);

// Upper Cholesky factor of the inverse (spec 2.4): `a` [k, k] full symmetric positive definite
// (row-major, damping already added) is overwritten so that its upper triangle holds U with
// H^-1 = U^T U (the strict lower triangle is left undefined). Blocked Cholesky of the reversed
// matrix, then a triangular inverse, with a fixed blocking (results independent of the thread
// count; see cholesky.cpp). Returns 0 on success, otherwise the 1-based column of H where the
// factorization broke down.
int64_t inverse_cholesky_upper(float* a, int64_t k);

// Round half to even without a libm call, so loops over it vectorise: adding and subtracting
// 1.5 * 2^23 rounds in the FPU's default mode (nearest-even) and is exact for |v| < 2^22. Larger
// values are returned unchanged; callers clamp them to [0, maxq] anyway, so the code is the same as
// with std::nearbyint for every input.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return __builtin_fabsf(v) < 4194304.0f ? (v + kMagic) - kMagic : v;
}

inline int quantize_code(float x, float scale, float zero, int maxq) {
  float q = round_half_even(x / scale) + zero;
  // Written so that a NaN (0/0 from a zero scale) lands on code 0 instead of an undefined cast.
  q = q >= 0.f ? q : 0.f;
  q = q <= static_cast<float>(maxq) ? q : static_cast<float>(maxq);
  return static_cast<int>(q);
}

}  // namespace gptq
