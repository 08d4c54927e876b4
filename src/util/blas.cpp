#include "util/blas.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "util/blas_kernels.h"
#include "util/thread_pool.h"

// OpenBLAS's (pthreads build) worker shutdown; exported, not declared in its headers.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace gptq::blas {

namespace {

// Tile edges (rows / columns of the output) and the work below which a call stays whole: constants,
// or functions of the shape alone, never of the thread count.
constexpr int64_t kTile = 256;
constexpr double kMinSplitWork = double{1 << 21};  // multiply-adds

// Offset of element (i, j) of a stored matrix.
int64_t at(CBLAS_ORDER o, int64_t i, int64_t j, int64_t ld) {
  return o == CblasRowMajor ? i * ld + j : i + j * ld;
}

int64_t tiles_of(int64_t n, int64_t tile = kTile) {
  return (n + tile - 1) / tile;
}

// Offset of row r of op(A) (an [rows, k] view of A).
int64_t op_row(CBLAS_ORDER o, CBLAS_TRANSPOSE t, int64_t r, int64_t ld) {
  return t == CblasNoTrans ? at(o, r, 0, ld) : at(o, 0, r, ld);
}

// Offset of column c of op(B) (a [k, cols] view of B).
int64_t op_col(CBLAS_ORDER o, CBLAS_TRANSPOSE t, int64_t c, int64_t ld) {
  return t == CblasNoTrans ? at(o, 0, c, ld) : at(o, c, 0, ld);
}

// Whether sgemm runs an [m, n] x k product as one BLAS call (too little work to share).
bool gemm_unsplit(int64_t m, int64_t n, int64_t k) {
  return static_cast<double>(m) * static_cast<double>(n) *
             static_cast<double>(std::max<int64_t>(k, 1)) <
         kMinSplitWork;
}

// The gemm tile edge for an [m, n] output: large tiles (less packing per flop) when there are
// enough of them to share among threads, smaller ones for small outputs.
int64_t gemm_tile(int64_t m, int64_t n) {
  for (const int64_t t : {512, 256})
    if (tiles_of(m, t) * tiles_of(n, t) >= 16) return t;
  return 128;
}

// The output tiles of an [m, n] x k product: {i0, rows, j0, cols}, one per BLAS call; a single
// tile for a product that sgemm does not split. Functions of the shape alone.
struct GemmTile {
  int64_t i0, mi, j0, nj;
};
std::vector<GemmTile> gemm_tiles(int64_t m, int64_t n, int64_t k) {
  if (gemm_unsplit(m, n, k)) return {{0, m, 0, n}};
  const int64_t tile = gemm_tile(m, n), tm = tiles_of(m, tile), tn = tiles_of(n, tile);
  std::vector<GemmTile> tiles;
  for (int64_t t = 0; t < tm * tn; ++t) {
    const int64_t i0 = (t / tn) * tile, j0 = (t % tn) * tile;
    tiles.push_back({i0, std::min(tile, m - i0), j0, std::min(tile, n - j0)});
  }
  return tiles;
}

// The syrk tile edge for an [n, n] triangle, by the same rule: 512 (packing ~30% of a 128 tile's
// time at the Hessians' shapes, bench_gptq BM_HessianAccumulate) when the triangle has 16 tiles.
int64_t syrk_tile(int64_t n) {
  for (const int64_t t : {512, 256}) {
    const int64_t nt = tiles_of(n, t);
    if (nt * (nt + 1) / 2 >= 16) return t;
  }
  return 128;
}

CBLAS_TRANSPOSE flip(CBLAS_TRANSPOSE t) {
  return t == CblasNoTrans ? CblasTrans : CblasNoTrans;
}

}  // namespace

void use_serial_blas() {
  static const bool once = [] {
    select_blas_kernels();
    openblas_set_num_threads(1);
    // OpenBLAS started its own workers when it was loaded; each spins on sched_yield (~0.1 s of
    // CPU) before it sleeps, and none will ever get work: stop them (what OpenBLAS itself does
    // before a fork). Weak: other BLAS builds do not have the function.
    if (blas_thread_shutdown_) blas_thread_shutdown_();
    return true;
  }();
  (void)once;
}

namespace {
// At load time, before anything runs (and is measured).
[[maybe_unused]] const bool g_serial_at_load = (use_serial_blas(), true);
}  // namespace

void sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
           float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
           float* c, int64_t ldc) {
  use_serial_blas();
  if (m <= 0 || n <= 0) return;
  auto call = [&](int64_t i0, int64_t mi, int64_t j0, int64_t nj) {
    cblas_sgemm(o, ta, tb, static_cast<blasint>(mi), static_cast<blasint>(nj),
                static_cast<blasint>(k), alpha, a + op_row(o, ta, i0, lda),
                static_cast<blasint>(lda), b + op_col(o, tb, j0, ldb), static_cast<blasint>(ldb),
                beta, c + at(o, i0, j0, ldc), static_cast<blasint>(ldc));
  };
  if (gemm_unsplit(m, n, k)) {  // on the calling thread, without the pool
    call(0, m, 0, n);
    return;
  }
  const std::vector<GemmTile> tiles = gemm_tiles(m, n, k);
  parallel_for(static_cast<int64_t>(tiles.size()), [&](int64_t t) {
    const GemmTile& x = tiles[static_cast<size_t>(t)];
    call(x.i0, x.mi, x.j0, x.nj);
  });
}

void sgemm_nt_many(int64_t m, int64_t k, const float* a, const std::vector<GemmNt>& products) {
  use_serial_blas();
  if (m <= 0) return;
  std::vector<std::pair<const GemmNt*, GemmTile>> tiles;  // every product's tiles, one loop
  for (const GemmNt& p : products)
    if (p.n > 0)
      for (const GemmTile& t : gemm_tiles(m, p.n, k)) tiles.emplace_back(&p, t);
  parallel_for(static_cast<int64_t>(tiles.size()), [&](int64_t i) {
    const auto& [p, x] = tiles[static_cast<size_t>(i)];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(x.mi),
                static_cast<blasint>(x.nj), static_cast<blasint>(k), 1.0f, a + x.i0 * k,
                static_cast<blasint>(k), p->b + x.j0 * k, static_cast<blasint>(k), 0.0f,
                p->c + x.i0 * p->n + x.j0, static_cast<blasint>(p->n));
  });
}

void sgemm_nt_filled_b(int64_t m, int64_t n, int64_t k, const float* a,
                       const std::function<void(int64_t, int64_t, float*)>& fill_b, float* c) {
  use_serial_blas();
  if (m <= 0 || n <= 0) return;
  // The calls of sgemm above for these operands, with B's rows [j0, j0 + nj) at buf.
  auto call = [&](int64_t i0, int64_t mi, int64_t j0, int64_t nj, const float* buf) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(mi),
                static_cast<blasint>(nj), static_cast<blasint>(k), 1.0f, a + i0 * k,
                static_cast<blasint>(k), buf, static_cast<blasint>(k), 0.0f, c + i0 * n + j0,
                static_cast<blasint>(n));
  };
  if (gemm_unsplit(m, n, k)) {
    std::vector<float> buf(static_cast<size_t>(n * k));
    fill_b(0, n, buf.data());
    call(0, m, 0, n, buf.data());
    return;
  }
  // Column tile jt (B's rows [jt * tile, ...)) is filled into the buffer of slot jt % slots and
  // multiplied by every row tile of A there.
  const int64_t tile = gemm_tile(m, n), tm = tiles_of(m, tile), tn = tiles_of(n, tile);
  const int64_t slots = std::min<int64_t>(tn, compute_threads());
  std::vector<float> bufs(static_cast<size_t>(slots * tile * k));
  parallel_for(slots, [&](int64_t s) {
    float* buf = bufs.data() + s * tile * k;
    for (int64_t jt = s; jt < tn; jt += slots) {
      const int64_t j0 = jt * tile, nj = std::min(tile, n - j0);
      fill_b(j0, nj, buf);
      for (int64_t it = 0; it < tm; ++it) {
        const int64_t i0 = it * tile;
        call(i0, std::min(tile, m - i0), j0, nj, buf);
      }
    }
  });
}

void ssyrk(CBLAS_ORDER o, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, float beta, float* c, int64_t ldc) {
  use_serial_blas();
  if (n <= 0) return;
  if (static_cast<double>(n) * static_cast<double>(n) *
          static_cast<double>(std::max<int64_t>(k, 1)) <
      2 * kMinSplitWork) {
    cblas_ssyrk(o, uplo, trans, static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                static_cast<blasint>(lda), beta, c, static_cast<blasint>(ldc));
    return;
  }
  // Tiles of the triangle: (i, j) with j >= i (upper) or j <= i (lower); diagonal tiles by syrk,
  // the others by gemm: C_ij = alpha op(A)_i op(A)_j^T + beta C_ij. The diagonal tiles (half the
  // work of the others) go last, so that the threads finish closer together.
  const int64_t tile = syrk_tile(n), nt = tiles_of(n, tile);
  std::vector<std::pair<int64_t, int64_t>> tiles;
  for (int64_t i = 0; i < nt; ++i)
    for (int64_t j = 0; j < nt; ++j)
      if (i != j && (uplo == CblasUpper ? j > i : j < i)) tiles.emplace_back(i, j);
  for (int64_t i = 0; i < nt; ++i) tiles.emplace_back(i, i);
  parallel_for(static_cast<int64_t>(tiles.size()), [&](int64_t t) {
    const int64_t i0 = tiles[t].first * tile, j0 = tiles[t].second * tile;
    const int64_t ni = std::min(tile, n - i0), nj = std::min(tile, n - j0);
    if (i0 == j0) {
      cblas_ssyrk(o, uplo, trans, static_cast<blasint>(ni), static_cast<blasint>(k), alpha,
                  a + op_row(o, trans, i0, lda), static_cast<blasint>(lda), beta,
                  c + at(o, i0, i0, ldc), static_cast<blasint>(ldc));
    } else {
      cblas_sgemm(o, trans, flip(trans), static_cast<blasint>(ni), static_cast<blasint>(nj),
                  static_cast<blasint>(k), alpha, a + op_row(o, trans, i0, lda),
                  static_cast<blasint>(lda), a + op_col(o, flip(trans), j0, lda),
                  static_cast<blasint>(lda), beta, c + at(o, i0, j0, ldc),
                  static_cast<blasint>(ldc));
    }
  });
}

void strsm(CBLAS_ORDER o, CBLAS_SIDE side, CBLAS_UPLO uplo, CBLAS_TRANSPOSE trans, CBLAS_DIAG diag,
           int64_t m, int64_t n, float alpha, const float* a, int64_t lda, float* b, int64_t ldb) {
  use_serial_blas();
  if (m <= 0 || n <= 0) return;
  // Left: the columns of X are independent; right: its rows.
  const bool left = side == CblasLeft;
  const int64_t order = left ? m : n, free = left ? n : m;
  auto call = [&](int64_t f0, int64_t nf) {
    cblas_strsm(o, side, uplo, trans, diag, static_cast<blasint>(left ? m : nf),
                static_cast<blasint>(left ? nf : n), alpha, a, static_cast<blasint>(lda),
                b + (left ? at(o, 0, f0, ldb) : at(o, f0, 0, ldb)), static_cast<blasint>(ldb));
  };
  if (static_cast<double>(order) * static_cast<double>(order) * static_cast<double>(free) <
      2 * kMinSplitWork) {
    call(0, free);
    return;
  }
  parallel_for(tiles_of(free),
               [&](int64_t t) { call(t * kTile, std::min(kTile, free - t * kTile)); });
}

void sgemv(CBLAS_ORDER o, CBLAS_TRANSPOSE trans, int64_t m, int64_t n, float alpha, const float* a,
           int64_t lda, const float* x, float beta, float* y) {
  use_serial_blas();
  if (m <= 0 || n <= 0) return;
  // Outputs: rows of A (no transpose) or its columns; each tile computes a range of them.
  const bool rows = trans == CblasNoTrans;
  const int64_t outputs = rows ? m : n;
  auto call = [&](int64_t r0, int64_t nr) {
    cblas_sgemv(o, trans, static_cast<blasint>(rows ? nr : m), static_cast<blasint>(rows ? n : nr),
                alpha, a + (rows ? at(o, r0, 0, lda) : at(o, 0, r0, lda)),
                static_cast<blasint>(lda), x, 1, beta, y + r0, 1);
  };
  if (static_cast<double>(m) * static_cast<double>(n) < kMinSplitWork / 8) {
    call(0, outputs);
    return;
  }
  parallel_for(tiles_of(outputs),
               [&](int64_t t) { call(t * kTile, std::min(kTile, outputs - t * kTile)); });
}

}  // namespace gptq::blas
