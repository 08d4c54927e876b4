// Dense BLAS on the process's thread pool, with results that do not depend on the thread count.
//
// Why: OpenBLAS's own threading splits the output among `threads` ranges whose bounds are not
// multiples of its micro-kernel's tile, and the rows at a bound go through the edge kernels, which
// accumulate in another order: measured on this project's shapes, sgemm with 3 threads differs
// from 1 or 2 in the last bits of a few rows, strsm with 5. A GPTQ run amplifies one such bit into
// other rounded codes, so `--threads` changed the output.
//
// How: OpenBLAS is kept single-threaded (its own workers, which it starts when it is loaded and
// which spin for a while, are stopped at load time); the output is cut into tiles whose bounds
// depend only on the problem's shape, each tile one single-threaded BLAS call, run on the pool
// (util/thread_pool.h). Every element is then computed by the same call with the same operands
// whatever the thread count. Same arguments as the CBLAS routines (row- or column-major). Every
// BLAS call of the library goes through these functions.
#pragma once

#include <cblas.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace gptq::blas {

// C = alpha op(A) op(B) + beta C, C [m, n], K = k.
void sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n,
           int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc);
// C = alpha op(A) op(A)^T + beta C on the `uplo` triangle of C [n, n]; op(A) is [n, k].
void ssyrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, int64_t n, int64_t k,
           float alpha, const float* a, int64_t lda, float beta, float* c, int64_t ldc);
// Solves op(A) X = alpha B (left) or X op(A) = alpha B (right) for X in place of B [m, n].
void strsm(CBLAS_ORDER order, CBLAS_SIDE side, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans,
           CBLAS_DIAG diag, int64_t m, int64_t n, float alpha, const float* a, int64_t lda,
           float* b, int64_t ldb);
// C [m, n] = A [m, k] B^T (row-major, lda = ldb = k, ldc = n; alpha 1, beta 0) for a B [n, k] that
// is not in memory as fp32: fill_b(j0, nj, buf) writes its rows [j0, j0 + nj) into buf (nj * k
// floats) when they are needed (e.g. converted from 16-bit storage). The tiles and BLAS calls are
// exactly those of sgemm(RowMajor, NoTrans, Trans, m, n, k, 1, A, k, B, k, 0, C, n), so the result
// is the same bit for bit; B is filled one column tile (at most 512 rows) at a time per thread,
// or whole for a problem that sgemm does not split (then n k < 2^21 / m floats).
void sgemm_nt_filled_b(int64_t m, int64_t n, int64_t k, const float* a,
                       const std::function<void(int64_t j0, int64_t nj, float* buf)>& fill_b,
                       float* c);
// C_i [m, n_i] = A [m, k] B_i^T for several B_i [n_i, k] (row-major, beta 0): the tiles and BLAS
// calls of sgemm(RowMajor, NoTrans, Trans, m, n_i, k, 1, A, k, B_i, k, 0, C_i, n_i) for every i,
// so the same bits, but in one parallel loop: the threads wait for each other once, not once per
// product (q, k and v of one input; gate and up).
struct GemmNt {
  const float* b;
  int64_t n;
  float* c;
};
void sgemm_nt_many(int64_t m, int64_t k, const float* a, const std::vector<GemmNt>& products);
// y = alpha op(A) x + beta y, A [m, n] (unit strides).
void sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE trans, int64_t m, int64_t n, float alpha,
           const float* a, int64_t lda, const float* x, float beta, float* y);

// Makes OpenBLAS single-threaded (idempotent; every function above calls it).
void use_serial_blas();

}  // namespace gptq::blas
