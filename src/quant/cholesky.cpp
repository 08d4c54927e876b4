// Inverse Cholesky factor for the GPTQ solver (spec 2.4 / 2.8).
//
// The reference computes L = chol(H), H^-1 = cholesky_inverse(L), U = chol(H^-1, upper). U is what
// the solver needs: with H^-1 = U^T U, row c of U restricted to columns >= c is (up to the factor
// U[c,c]) the row of the inverse Hessian of the not-yet-quantized columns, so the optimal update
// after quantizing column c is  W[:, j] -= (w_c - q_c) / U[c,c] * U[c, j]  for j > c.
//
// Determinism: OpenBLAS's potrf/potri change their blocking with the thread count, so their bits
// depend on it. Here the factorizations use a fixed block size and only BLAS-3 calls (trsm, syrk)
// through util/blas.h, whose tiles depend on the shape alone, and the inverse is potri on one
// thread, so a run gives the same bytes with 1 or 64 threads.
//
// Layout trick: a full symmetric matrix reads the same in row- and column-major order, so the
// work is column-major on the lower triangle; the final column-major lower factor L2
// (H^-1 = L2 L2^T), read row-major, is L2^T = U.
#include <algorithm>
#include <cmath>
#include <vector>

#include <lapacke.h>

#include "quant/gptq.h"
#include "util/blas.h"

namespace gptq {

namespace {

constexpr int64_t kBlock = 128;

// Unblocked lower Cholesky of an n x n column-major block (leading dimension lda), left-looking:
// column j -= L[j, p] * column p for p < j in order, then scaled by 1 / sqrt(pivot).
int64_t cholesky_unblocked(float* a, int64_t n, int64_t lda) {
  for (int64_t j = 0; j < n; ++j) {
    float* cj = a + j * lda;
    for (int64_t p = 0; p < j; ++p) {
      const float* cp = a + p * lda;
      const float ljp = cp[j];
      for (int64_t i = j; i < n; ++i) cj[i] -= ljp * cp[i];
    }
    const float d = cj[j];
    if (!(d > 0.0f) || !std::isfinite(d)) return j + 1;
    const float s = std::sqrt(d);
    cj[j] = s;
    const float inv = 1.0f / s;
    for (int64_t i = j + 1; i < n; ++i) cj[i] *= inv;
  }
  return 0;
}

// Blocked right-looking lower Cholesky (column-major, n x n): per 128-column panel, factor the
// diagonal block, solve the panel below it (trsm), update the trailing matrix (syrk).
int64_t cholesky_lower(float* a, int64_t n) {
  for (int64_t j = 0; j < n; j += kBlock) {
    const int64_t jb = std::min(kBlock, n - j);
    float* a11 = a + j * n + j;
    if (const int64_t info = cholesky_unblocked(a11, jb, n)) return j + info;
    const int64_t rest = n - j - jb;
    if (rest == 0) break;
    float* a21 = a11 + jb;
    blas::strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rest, jb, 1.0f,
                a11, n, a21, n);
    float* a22 = a + (j + jb) * n + j + jb;
    blas::ssyrk(CblasColMajor, CblasLower, CblasNoTrans, rest, jb, -1.0f, a21, n, 1.0f, a22, n);
  }
  return 0;
}

}  // namespace

int64_t inverse_cholesky_upper(float* a, int64_t k) {
  // 1) H = L L^T (lower triangle, column-major).
  if (const int64_t info = cholesky_lower(a, k)) return info;
  // 2) H^-1 = L^-T L^-1 in place: LAPACK's potri (a blocked triangular inverse, then L^-T L^-1),
  // 2/3 k^3 flops and no k x k scratch. It runs on the calling thread: OpenBLAS is single-threaded
  // here (util/blas.h), so its blocking, and the bits, do not depend on the thread count.
  const lapack_int n = static_cast<lapack_int>(k);
  if (const lapack_int info = LAPACKE_spotri_work(LAPACK_COL_MAJOR, 'L', n, a, n); info != 0)
    return info > 0 ? static_cast<int64_t>(info) : 1;
  // 3) H^-1 = L2 L2^T; row-major this is U = L2^T in the upper triangle.
  if (const int64_t info = cholesky_lower(a, k)) return info;
  for (int64_t i = 0; i < k; ++i) {
    const float d = a[i * k + i];
    if (!(d > 0.0f) || !std::isfinite(d)) return i + 1;
  }
  return 0;
}

}  // namespace gptq
