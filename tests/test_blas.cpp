// util/blas.h, util/transpose.h and util/thread_pool.h: the tiled BLAS routines equal a
// double-precision reference (every order, transpose, triangle and side), give the same bits for
// every thread count on shapes that are cut into several tiles, and the compute-thread scopes nest.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "util/blas.h"
#include "util/blas_kernels.h"
#include "util/thread_pool.h"
#include "util/transpose.h"

namespace gptq {
namespace {

std::vector<float> random_matrix(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

// Element (i, j) of a stored matrix.
float at(const std::vector<float>& a, CBLAS_ORDER o, int64_t i, int64_t j, int64_t ld) {
  return a[static_cast<size_t>(o == CblasRowMajor ? i * ld + j : i + j * ld)];
}

// op(A)(i, p).
float op(const std::vector<float>& a, CBLAS_ORDER o, CBLAS_TRANSPOSE t, int64_t i, int64_t p,
         int64_t ld) {
  return t == CblasNoTrans ? at(a, o, i, p, ld) : at(a, o, p, i, ld);
}

// Runs f() with 1, 2, 3 and 5 threads; the results must be bit-identical. Returns the first.
template <class F>
std::vector<float> same_for_every_thread_count(F f) {
  std::vector<float> first;
  for (int threads : {1, 2, 3, 5}) {
    const ComputeThreadsScope scope(threads);
    const std::vector<float> r = f();
    if (first.empty()) {
      first = r;
    } else {
      EXPECT_EQ(0, std::memcmp(first.data(), r.data(), r.size() * sizeof(float)))
          << threads << " threads";
    }
  }
  return first;
}

const CBLAS_ORDER kOrders[] = {CblasRowMajor, CblasColMajor};
const CBLAS_TRANSPOSE kTrans[] = {CblasNoTrans, CblasTrans};

TEST(Blas, SgemmTilesEqualReference) {
  const int64_t m = 300, n = 530, k = 40;  // 2 x 3 tiles
  for (CBLAS_ORDER o : kOrders)
    for (CBLAS_TRANSPOSE ta : kTrans)
      for (CBLAS_TRANSPOSE tb : kTrans) {
        // Stored shapes: op(A) [m, k], op(B) [k, n]; leading dimensions with some padding.
        const int64_t ar = ta == CblasNoTrans ? m : k, ac = ta == CblasNoTrans ? k : m;
        const int64_t br = tb == CblasNoTrans ? k : n, bc = tb == CblasNoTrans ? n : k;
        const int64_t lda = (o == CblasRowMajor ? ac : ar) + 3,
                      ldb = (o == CblasRowMajor ? bc : br) + 1;
        const int64_t ldc = (o == CblasRowMajor ? n : m) + 2;
        const auto a = random_matrix((o == CblasRowMajor ? ar : ac) * lda, 1);
        const auto b = random_matrix((o == CblasRowMajor ? br : bc) * ldb, 2);
        const auto c0 = random_matrix((o == CblasRowMajor ? m : n) * ldc, 3);
        const auto c = same_for_every_thread_count([&] {
          auto out = c0;
          blas::sgemm(o, ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 2.0f, out.data(),
                      ldc);
          return out;
        });
        double worst = 0;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double ref = 2.0 * at(c0, o, i, j, ldc);
            for (int64_t p = 0; p < k; ++p)
              ref += 0.5 * op(a, o, ta, i, p, lda) * op(b, o, tb, p, j, ldb);
            worst = std::max(worst, std::abs(ref - at(c, o, i, j, ldc)));
          }
        EXPECT_LT(worst, 1e-4) << o << " " << ta << " " << tb;
      }
}

TEST(Blas, SsyrkTilesEqualReference) {
  // Tile edges by size (blas.cpp syrk_tile): 600 -> 128 (5 x 5, a short last tile), 1300 -> 256
  // (6 x 6, last 20), 2600 -> 512 (6 x 6, last 40).
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{600, 20}, {1300, 3}, {2600, 2}})
  for (CBLAS_ORDER o : kOrders)
    for (CBLAS_TRANSPOSE t : kTrans)
      for (CBLAS_UPLO uplo : {CblasUpper, CblasLower}) {
        const int64_t ar = t == CblasNoTrans ? n : k, ac = t == CblasNoTrans ? k : n;
        const int64_t lda = o == CblasRowMajor ? ac : ar;
        const auto a = random_matrix(ar * ac, 4);
        const auto c0 = random_matrix(n * n, 5);
        const auto c = same_for_every_thread_count([&] {
          auto out = c0;
          blas::ssyrk(o, uplo, t, n, k, 1.5f, a.data(), lda, 0.5f, out.data(), n);
          return out;
        });
        double worst = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j) {
            const bool in = uplo == CblasUpper ? j >= i : j <= i;
            double ref = in ? 0.5 * at(c0, o, i, j, n) : at(c0, o, i, j, n);
            if (in)
              for (int64_t p = 0; p < k; ++p)
                ref += 1.5 * op(a, o, t, i, p, lda) * op(a, o, t, j, p, lda);
            worst = std::max(worst, std::abs(ref - at(c, o, i, j, n)));
          }
        EXPECT_LT(worst, 1e-4) << n << " " << o << " " << t << " " << uplo;
      }
}

TEST(Blas, StrsmTilesEqualReference) {
  const int64_t m = 300, n = 600;  // the free dimension cut into 3 tiles (left) or 2 (right)
  for (CBLAS_ORDER o : kOrders)
    for (CBLAS_SIDE side : {CblasLeft, CblasRight})
      for (CBLAS_UPLO uplo : {CblasUpper, CblasLower})
        for (CBLAS_TRANSPOSE t : kTrans) {
          const int64_t na = side == CblasLeft ? m : n;
          // Well conditioned: unit-sized diagonal, small off-diagonal entries.
          auto a = random_matrix(na * na, 6);
          for (auto& v : a) v *= 1.0f / static_cast<float>(na);
          for (int64_t i = 0; i < na; ++i)
            a[static_cast<size_t>(i * na + i)] = 1.0f + std::abs(a[i * na + i]);
          const int64_t ldb = o == CblasRowMajor ? n : m;
          const auto b0 = random_matrix(m * n, 7);
          const auto x = same_for_every_thread_count([&] {
            auto out = b0;
            blas::strsm(o, side, uplo, t, CblasNonUnit, m, n, 1.0f, a.data(), na, out.data(), ldb);
            return out;
          });
          // op(A) restricted to its triangle, times X, gives B back.
          auto tri = [&](int64_t i, int64_t j) {
            const int64_t r = t == CblasNoTrans ? i : j,
                          c = t == CblasNoTrans ? j : i;  // element of A
            const bool in = uplo == CblasUpper ? c >= r : c <= r;
            return in ? static_cast<double>(at(a, o, r, c, na)) : 0.0;
          };
          double worst = 0;
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double s = 0;
              if (side == CblasLeft) {
                for (int64_t p = 0; p < m; ++p) s += tri(i, p) * at(x, o, p, j, ldb);
              } else {
                for (int64_t p = 0; p < n; ++p) s += at(x, o, i, p, ldb) * tri(p, j);
              }
              worst = std::max(worst, std::abs(s - at(b0, o, i, j, ldb)));
            }
          EXPECT_LT(worst, 1e-3) << o << " " << side << " " << uplo << " " << t;
        }
}

// Several products of one A in one loop: each C_i has the bits of its own sgemm call, for
// products that sgemm splits into tiles (large n) and ones it runs whole (small n), and any
// thread count.
TEST(Blas, SgemmNtManyEqualsOneSgemmEach) {
  const int64_t m = 600, k = 300;
  const auto a = random_matrix(m * k, 11);
  const std::vector<int64_t> widths{1100, 3, 513};
  std::vector<std::vector<float>> b;
  for (size_t i = 0; i < widths.size(); ++i)
    b.push_back(random_matrix(widths[i] * k, 12 + static_cast<uint32_t>(i)));
  const auto many = same_for_every_thread_count([&] {
    std::vector<std::vector<float>> c;
    std::vector<blas::GemmNt> products;
    for (size_t i = 0; i < widths.size(); ++i)
      c.emplace_back(static_cast<size_t>(m * widths[i]), -1.0f);
    for (size_t i = 0; i < widths.size(); ++i)
      products.push_back({b[i].data(), widths[i], c[i].data()});
    blas::sgemm_nt_many(m, k, a.data(), products);
    std::vector<float> all;
    for (const auto& ci : c) all.insert(all.end(), ci.begin(), ci.end());
    return all;
  });
  std::vector<float> each;
  for (size_t i = 0; i < widths.size(); ++i) {
    std::vector<float> c(static_cast<size_t>(m * widths[i]));
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, widths[i], k, 1.0f, a.data(), k,
                b[i].data(), k, 0.0f, c.data(), widths[i]);
    each.insert(each.end(), c.begin(), c.end());
  }
  ASSERT_EQ(many.size(), each.size());
  EXPECT_EQ(std::memcmp(many.data(), each.data(), each.size() * sizeof(float)), 0);
  double worst = 0;  // and the products themselves, at a few elements
  for (const int64_t i : {int64_t{0}, m / 2, m - 1})
    for (const int64_t j : {int64_t{0}, int64_t{700}, int64_t{1099}}) {
      double ref = 0;
      for (int64_t p = 0; p < k; ++p) ref += double(a[i * k + p]) * b[0][j * k + p];
      worst = std::max(worst, std::abs(ref - many[static_cast<size_t>(i * widths[0] + j)]));
    }
  EXPECT_LT(worst, 1e-3);
}

TEST(Blas, SgemvTilesEqualReference) {
  const int64_t m = 700, n = 900;
  for (CBLAS_ORDER o : kOrders)
    for (CBLAS_TRANSPOSE t : kTrans) {
      const int64_t lda = o == CblasRowMajor ? n : m;
      const auto a = random_matrix(m * n, 8);
      const int64_t nx = t == CblasNoTrans ? n : m, ny = t == CblasNoTrans ? m : n;
      const auto x = random_matrix(nx, 9), y0 = random_matrix(ny, 10);
      const auto y = same_for_every_thread_count([&] {
        auto out = y0;
        blas::sgemv(o, t, m, n, 1.0f, a.data(), lda, x.data(), 0.5f, out.data());
        return out;
      });
      double worst = 0;
      for (int64_t i = 0; i < ny; ++i) {
        double ref = 0.5 * y0[i];
        for (int64_t p = 0; p < nx; ++p) ref += op(a, o, t, i, p, lda) * x[p];
        worst = std::max(worst, std::abs(ref - y[i]));
      }
      EXPECT_LT(worst, 1e-3) << o << " " << t;
    }
}

TEST(ThreadPool, ScopesNestAndOneThreadStaysOnTheCaller) {
  const int outer = compute_threads();
  {
    const ComputeThreadsScope a(3);
    EXPECT_EQ(compute_threads(), 3);
    {
      const ComputeThreadsScope b(0);  // keeps the current count
      EXPECT_EQ(compute_threads(), 3);
      const ComputeThreadsScope c(1);
      EXPECT_EQ(compute_threads(), 1);
      const auto caller = std::this_thread::get_id();
      int others = 0;
      parallel_for(64, [&](int64_t) { others += std::this_thread::get_id() != caller; });
      EXPECT_EQ(others, 0);
    }
    EXPECT_EQ(compute_threads(), 3);
    // Another thread does not see this thread's scope.
    int seen = 0;
    std::thread([&] { seen = compute_threads(); }).join();
    EXPECT_EQ(seen, outer);
  }
  EXPECT_EQ(compute_threads(), outer);
}

// OpenBLAS runs the best kernels this CPU supports, even where its own detection falls back (Debian
// 12's 0.3.21 picks the SSE3 "Prescott" kernels on CPUs newer than its table).
TEST(BlasKernels, BestSetForThisCpu) {
  const blas::KernelChoice& k = blas::select_blas_kernels();
  std::printf("[ OpenBLAS kernels: detected %s, running %s: %s ]\n", k.detected.c_str(),
              k.running.c_str(), k.why.c_str());
  EXPECT_EQ(k.running, openblas_get_corename());
  EXPECT_FALSE(k.why.empty());
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr &&
      k.why.find("set by the user") != std::string::npos)
    return;
#if defined(__x86_64__)
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string prescott_class[] = {"Prescott", "Core2", "Penryn",     "Dunnington",
                                        "Nehalem",  "Atom",  "Sandybridge"};
  if (avx2) {
    for (const auto& old : prescott_class)
      EXPECT_NE(k.running, old) << "this CPU supports AVX2/FMA";
  }
  if (avx512 && k.detected != k.running) {
    EXPECT_EQ(k.running, "SkylakeX");
  }
#endif
  // The kernels compute: a 64 x 64 x 64 product equals its definition.
  const int64_t n = 64;
  const std::vector<float> a = random_matrix(n * n, 7), b = random_matrix(n * n, 8);
  std::vector<float> c(static_cast<size_t>(n * n));
  blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
              0.0f, c.data(), n);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0;
      for (int64_t p = 0; p < n; ++p)
        ref += double{a[static_cast<size_t>(i * n + p)]} * b[static_cast<size_t>(p * n + j)];
      worst = std::max(worst, std::abs(ref - c[static_cast<size_t>(i * n + j)]));
    }
  EXPECT_LT(worst, 1e-4);
}

// Every transpose kernel this CPU runs moves each element to its place, on shapes with full
// register blocks, edges on both sides and leading dimensions wider than the matrix; the elements
// of dst outside the matrix keep their value.
TEST(Transpose, EveryKernelMovesEveryElementAndNothingElse) {
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{1, 1}, {7, 9}, {8, 8}, {16, 16}, {17, 33}, {37, 70}, {64, 128}, {48, 5}};
  for (const auto kernel : {TransposeKernel::kAuto, TransposeKernel::kAvx512,
                            TransposeKernel::kAvx2, TransposeKernel::kPlain}) {
    if (!transpose_kernel_supported(kernel)) continue;
    for (const auto [rows, cols] : shapes) {
      const int64_t lds = cols + 3, ldd = rows + 5;
      std::vector<float> src(static_cast<size_t>(rows * lds));
      for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) + 0.25f;
      std::vector<float> dst(static_cast<size_t>(cols * ldd), -1.0f);
      transpose_f32(src.data(), lds, dst.data(), ldd, rows, cols, kernel);
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t r = 0; r < ldd; ++r) {
          const float want = r < rows ? src[r * lds + c] : -1.0f;
          ASSERT_EQ(dst[c * ldd + r], want) << "kernel " << static_cast<int>(kernel) << " shape "
                                            << rows << "x" << cols << " at r " << r << " c " << c;
        }
    }
  }
}

}  // namespace
}  // namespace gptq
