// Inverse Cholesky factor for the GPTQ solver (spec 2.4 / 2.8).
//
// The reference computes L = chol(H), H^-1 = cholesky_inverse(L), U = chol(H^-1, upper). U is what
// the solver needs: with H^-1 = U^T U, row c of U restricted to columns >= c is (up to the factor
// U[c,c]) the row of the inverse Hessian of the not-yet-quantized columns, so the optimal update
// after quantizing column c is  W[:, j] -= (w_c - q_c) / U[c,c] * U[c, j]  for j > c.
//
// Layout trick: a full symmetric matrix reads the same in row- and column-major order, so all three
// LAPACK calls work column-major on the 'L' triangle without any copy or transposition. The final
// column-major lower factor L2 (H^-1 = L2 L2^T), read row-major, is L2^T = U.
#include <lapacke.h>

#include <cmath>

#include "quant/gptq.h"

namespace gptq {

int64_t inverse_cholesky_upper(float* a, int64_t k) {
  const lapack_int n = static_cast<lapack_int>(k);
  // 1) H = L L^T (lower triangle, column-major).
  lapack_int info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n);
  if (info != 0) return info > 0 ? info : 1;
  // 2) H^-1 = L^-T L^-1 into the same lower triangle.
  info = LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', n, a, n);
  if (info != 0) return info > 0 ? info : 1;
  // 3) H^-1 = L2 L2^T; row-major this is U = L2^T in the upper triangle.
  info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, 'L', n, a, n);
  if (info != 0) return info > 0 ? info : 1;
  for (int64_t i = 0; i < k; ++i) {
    const float d = a[i * k + i];
    if (!(d > 0.0f) || !std::isfinite(d)) return i + 1;
  }
  return 0;
}

}  // namespace gptq
