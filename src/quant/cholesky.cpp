// Inverse Cholesky factor for the GPTQ solver (spec 2.4 / 2.8).
//
// The reference computes L = chol(H), H^-1 = cholesky_inverse(L), U = chol(H^-1, upper). U is what
// the solver needs: with H^-1 = U^T U, row c of U restricted to columns >= c is (up to the factor
// U[c,c]) the row of the inverse Hessian of the not-yet-quantized columns, so the optimal update
// after quantizing column c is  W[:, j] -= (w_c - q_c) / U[c,c] * U[c, j]  for j > c.
// Here U comes from one Cholesky of the reversed H and one triangular inverse (the same U up to
// rounding, half the flops; see inverse_cholesky_upper).
//
// Determinism: OpenBLAS's potrf/potri change their blocking with the thread count, so their bits
// depend on it. Here every step uses a fixed block size and BLAS calls through util/blas.h, whose
// tiles depend on the shape alone, or pool tasks whose bounds do, so a run gives the same bytes
// with 1 or 64 threads.
//
// Layout trick: a full symmetric matrix reads the same in row- and column-major order, so the
// work is column-major on the lower triangle.
#include <algorithm>
#include <cmath>
#include <vector>

#include <lapacke.h>

#include "quant/gptq.h"
#include "util/blas.h"
#include "util/thread_pool.h"

namespace gptq {

namespace {

// Panel widths: the Cholesky's trailing updates are rank-`panel` SYRKs (wider panels read and
// write the trailing matrix fewer times, but leave fewer tasks for the inverse: 256 pays from
// K ~ 4096 on, bench_gptq BM_InverseCholesky); a panel's diagonal block is factored kInnerPanel
// columns at a time; the inverse's row blocks are `panel` tall. A function of K alone.
int64_t panel_for(int64_t k) {
  return k >= 4096 ? 256 : 128;
}
constexpr int64_t kInnerPanel = 64;

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

// Blocked right-looking lower Cholesky (column-major, n x n, leading dimension lda): per panel of
// `panel` columns, factor the diagonal block (itself blocked, kInnerPanel), solve the panel below
// it (trsm), update the trailing matrix (syrk).
int64_t cholesky_lower(float* a, int64_t n, int64_t lda, int64_t panel) {
  for (int64_t j = 0; j < n; j += panel) {
    const int64_t jb = std::min(panel, n - j);
    float* a11 = a + j * lda + j;
    const int64_t info = panel > kInnerPanel ? cholesky_lower(a11, jb, lda, kInnerPanel)
                                             : cholesky_unblocked(a11, jb, lda);
    if (info) return j + info;
    const int64_t rest = n - j - jb;
    if (rest == 0) break;
    float* a21 = a11 + jb;
    blas::strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, rest, jb, 1.0f,
                a11, lda, a21, lda);
    float* a22 = a + (j + jb) * lda + j + jb;
    blas::ssyrk(CblasColMajor, CblasLower, CblasNoTrans, rest, jb, -1.0f, a21, lda, 1.0f, a22, lda);
  }
  return 0;
}

// X = L^-1 for the lower factor L of step 1 (column-major), written as X^T into the upper
// triangle, with no k x k scratch. Row block J = [j0, j0 + jb) (`panel` rows) of X^T solves
//   [Y1 Y2] [A11^T A21^T; 0 A22^T] = [I 0]   (A = L[j0:, j0:] = [A11 0; A21 A22]):
//   Y1 = A11^-T (a jb x jb inverse), Y2 A22^T = -Y1 A21^T (a GEMM and a triangular solve).
// Y2 lies strictly above the diagonal and each block reads only L below it, so the blocks are
// independent tasks on the pool, each one serial BLAS sequence (bits independent of the thread
// count); the Y1 blocks, which overlap L's diagonal blocks, go into place after all tasks.
int64_t lower_inverse_into_upper(float* a, int64_t k, int64_t panel) {
  const int64_t blocks = (k + panel - 1) / panel;
  std::vector<float> diag_inv(static_cast<size_t>(blocks * panel * panel), 0.0f);
  std::vector<int64_t> failed(static_cast<size_t>(blocks), 0);
  parallel_for(blocks, [&](int64_t b) {  // block 0 (the most work) is claimed first
    const int64_t j0 = b * panel, jb = std::min(panel, k - j0), j1 = j0 + jb;
    float* t = diag_inv.data() + b * panel * panel;  // A11^-1, lower, column-major, ld jb
    for (int64_t c = 0; c < jb; ++c) {
      for (int64_t r = c; r < jb; ++r) t[c * jb + r] = a[(j0 + c) * k + j0 + r];
    }
    const lapack_int n = static_cast<lapack_int>(jb);
    if (const lapack_int info = LAPACKE_strtri_work(LAPACK_COL_MAJOR, 'L', 'N', n, t, n)) {
      failed[static_cast<size_t>(b)] = info > 0 ? j0 + info : j0 + 1;
      return;
    }
    const int64_t rest = k - j1;
    if (rest == 0) return;
    float* y2 = a + j1 * k + j0;  // [jb, rest], ld k
    blas::sgemm(CblasColMajor, CblasTrans, CblasTrans, jb, rest, jb, -1.0f, t, jb, a + j0 * k + j1,
                k, 0.0f, y2, k);
    blas::strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, jb, rest, 1.0f,
                a + j1 * k + j1, k, y2, k);
  });
  for (const int64_t f : failed) {
    if (f) return f;
  }
  for (int64_t b = 0; b < blocks; ++b) {  // Y1 = (A11^-1)^T into the diagonal block's upper part
    const int64_t j0 = b * panel, jb = std::min(panel, k - j0);
    const float* t = diag_inv.data() + b * panel * panel;
    for (int64_t c = 0; c < jb; ++c) {
      for (int64_t r = 0; r <= c; ++r) a[(j0 + c) * k + j0 + r] = t[r * jb + c];
    }
  }
  return 0;
}

}  // namespace

// The factor through the reversed matrix (J the k x k reversal, J = J^T = J^-1):
//   J H J = L L^T (Cholesky, L lower)  =>  H = (J L J)(J L J)^T with J L J upper, so
//   H^-1 = (J L J)^-T (J L J)^-1 = U^T U  with  U = (J L J)^-1 = J L^-1 J  (upper).
// One Cholesky and one triangular inverse: 2/3 k^3 flops, where chol -> inverse -> chol (the
// reference's order) takes 4/3 k^3. Reversing both indices of a k x k array is reversing its k^2
// elements, so J H J and the final J X J are std::reverse.
int64_t inverse_cholesky_upper(float* a, int64_t k) {
  const int64_t kk = k * k;
  std::reverse(a, a + kk);
  // 1) J H J = L L^T: L in the lower triangle, column-major.
  const int64_t panel = panel_for(k);
  if (const int64_t info = cholesky_lower(a, k, k, panel)) return k + 1 - info;  // column of H
  // 2) X = L^-1, stored as X^T in the upper triangle (column-major), which step 1 left free.
  if (const int64_t info = lower_inverse_into_upper(a, k, panel)) return k + 1 - info;
  // 3) Column-major X^T is row-major X; U = J X J is then its reversal, row-major upper.
  std::reverse(a, a + kk);
  for (int64_t i = 0; i < k; ++i) {
    const float d = a[i * k + i];
    if (!(d > 0.0f) || !std::isfinite(d)) return i + 1;
  }
  return 0;
}

}  // namespace gptq
