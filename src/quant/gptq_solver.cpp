// The GPTQ solver (AutoGPTQ fasterquant, spec 2.4, with GPTQModel's GAR and damping escalation).
//
// Per layer, with W [N, K] and the inverse Cholesky factor U (H^-1 = U^T U, upper):
//   for each block [i1, i2) of B = cfg.block_size columns (processing order):
//     W1 = W[:, i1:i2]
//     for c in block:  q = Q(W1[:, c]);  e = (W1[:, c] - q) / U[c, c]
//                      W1[:, j] -= e * U[c, j]  for j in (c, i2)          (rank-1, in block)
//     W[:, i2:] -= E @ U[i1:i2, i2:]                                        (lazy batch, one sgemm)
// Group grids are computed when a group's first column is reached, from W (not W1: the
// "staleness" rule of the reference when a group starts inside a block).
//
// U and the column order depend on H and the damping/order settings only (gptq_factor), so the
// linears that read the same inputs share them.
//
// Rows are independent given U and their grids, so the in-block work runs on row tiles in
// parallel. A tile keeps its block transposed (W1T[j][r], in and out through register-block
// transposes) so that a column is a contiguous vector over rows: quantization and the updates
// are straight vector loops. The in-block updates are
// applied P columns at a time (panel): the errors of P columns hit every later column of the block
// in one pass, subtracting in column order, so every element sees exactly the same sequence of
// float operations as the one-column-at-a-time reference while W1T is read and written P times
// less often. The lazy update is one sgemm over all rows (util/blas.h: tiled on the thread pool).
// Row tiles, the lazy update's tiles and the loss sum (per tile, then in tile order) do not depend
// on the thread count, so neither does the result.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "quant/gptq.h"
#include "util/blas.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"
#include "util/transpose.h"

namespace gptq {
namespace {

constexpr int64_t kTileRows = 64;  // rows per in-block work item
constexpr int64_t kPanel = 8;      // columns whose updates are applied together

// Index of the first non-finite value, or -1. Chunks are scanned in parallel with a branch-free
// (vectorisable) test; only a flagged chunk is searched element by element.
int64_t first_non_finite(const float* x, int64_t count) {
  constexpr int64_t kChunk = 1 << 16;
  std::atomic<int64_t> first{count};
  parallel_for((count + kChunk - 1) / kChunk, [&](int64_t chunk) {
    const int64_t c0 = chunk * kChunk, c1 = std::min(c0 + kChunk, count);
    uint32_t bad = 0;
    for (int64_t i = c0; i < c1; ++i) {
      uint32_t b;
      std::memcpy(&b, x + i, 4);
      bad |= static_cast<uint32_t>((b & 0x7f800000u) == 0x7f800000u);
    }
    if (!bad) return;
    for (int64_t i = c0; i < c1; ++i) {
      if (!std::isfinite(x[i])) {
        int64_t cur = first.load();
        while (i < cur && !first.compare_exchange_weak(cur, i)) {
        }
        return;
      }
    }
  });
  return first.load() < count ? first.load() : -1;
}

// W1T[j][:] -= sum_p E[p][:] * u[p] for the P panel columns p, subtracting in p order (the same
// rounding sequence as P successive rank-1 updates).
template <int P>
[[gnu::always_inline]] inline void panel_update(float* __restrict wj, const float* __restrict e,
                                                int64_t lde, const float* __restrict u,
                                                int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    float acc = wj[r];
    for (int p = 0; p < P; ++p) acc -= e[p * lde + r] * u[p];
    wj[r] = acc;
  }
}

[[gnu::always_inline]] inline void panel_update_n(int np, float* wj, const float* e, int64_t lde,
                                                  const float* u, int64_t rows) {
  switch (np) {
    case 8:
      return panel_update<8>(wj, e, lde, u, rows);
    case 7:
      return panel_update<7>(wj, e, lde, u, rows);
    case 6:
      return panel_update<6>(wj, e, lde, u, rows);
    case 5:
      return panel_update<5>(wj, e, lde, u, rows);
    case 4:
      return panel_update<4>(wj, e, lde, u, rows);
    case 3:
      return panel_update<3>(wj, e, lde, u, rows);
    case 2:
      return panel_update<2>(wj, e, lde, u, rows);
    default:
      return panel_update<1>(wj, e, lde, u, rows);
  }
}

// One column of the tile: codes (as floats), dequantized values and the scaled errors (w - q) / d.
// Restrict pointers and selects only on the clamps let the loop vectorise on every target. The
// rounding adds and subtracts 1.5 * 2^23 without round_half_even's |v| < 2^22 test: beyond that
// bound the result is still beyond +-2^21, and with 0 <= zero <= maxq < 2^21 the clamp gives the
// same code (infinities and NaN too: NaN lands on 0 either way).
[[gnu::always_inline]] inline void quantize_column(const float* __restrict w,
                                                   const float* __restrict scale,
                                                   const float* __restrict zero, float maxq,
                                                   float d, float* __restrict code,
                                                   float* __restrict deq, float* __restrict err,
                                                   int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const float x = w[r];
    constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
    float q = ((x / scale[r] + kMagic) - kMagic) + zero[r];
    q = q >= 0.f ? q : 0.f;
    q = q <= maxq ? q : maxq;
    code[r] = q;
    const float dq = scale[r] * (q - zero[r]);
    deq[r] = dq;
    err[r] = (x - dq) / d;
  }
}

// Sum of x[r]^2 in kLanes interleaved partial sums, added in lane order: a fixed order that any
// vector width computes alike (a single running sum would keep the loop scalar).
[[gnu::always_inline]] inline float sum_of_squares(const float* __restrict x, int64_t rows) {
  constexpr int64_t kLanes = 16;
  float part[kLanes] = {};
  int64_t r = 0;
  for (; r + kLanes <= rows; r += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) part[l] += x[r + l] * x[r + l];
  }
  for (int64_t l = 0; r + l < rows; ++l) part[l] += x[r + l] * x[r + l];
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}

// Everything the in-block work of one row tile needs (shared, read-only except the outputs that
// belong to the tile's rows).
struct Problem {
  int64_t n = 0, k = 0, gs = 0;  // gs: effective group size (k when group_size == -1)
  int maxq = 0;
  const QuantConfig* cfg = nullptr;
  float* w = nullptr;                // [N, K] working weights, processing order
  const float* u = nullptr;          // [K, K] upper factor, processing order
  const int32_t* perm = nullptr;     // processing position -> original column
  bool permuted = false;             // perm is not the identity
  const float* row_scale = nullptr;  // [N] whole-row grid (group_size == -1)
  const float* row_zero = nullptr;
  const float* static_scale = nullptr;  // [G, N] static groups, original group order
  const float* static_zero = nullptr;
  float* dyn_scale = nullptr;  // [G, N] dynamic groups, creation order
  float* dyn_zero = nullptr;
  uint8_t* codes = nullptr;  // [N, K] original column order
  float* deq = nullptr;      // [N, K] original column order
  float* errt = nullptr;     // [B, N] block errors (transposed) for the lazy sgemm
};

struct Scratch {
  std::vector<float> w1t, et, qt, ct;  // [B, R] each; ct holds the codes as floats
  std::vector<float> rows_out;         // [R, B]: a transposed output
};

// The calling thread's scratch, with room for `tile` elements per buffer.
Scratch& thread_scratch(size_t tile) {
  thread_local Scratch s;
  if (s.w1t.size() < tile) {
    s.w1t.resize(tile);
    s.et.resize(tile);
    s.qt.resize(tile);
    s.ct.resize(tile);
    s.rows_out.resize(tile);
  }
  return s;
}

// In-block GPTQ for rows [r0, r0 + rows) and block [i1, i1 + bw). Returns the tile's loss sum.
// Compiled for AVX-512, AVX2 and baseline x86-64, picked at load time. None of these targets
// enables FMA contraction and every loop is element-wise over rows, so all clones produce
// bit-identical results.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GPTQ_TARGET_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off")))
#else
#define GPTQ_TARGET_CLONES
#endif
GPTQ_TARGET_CLONES double solve_block_tile(const Problem& pb, int64_t i1, int64_t bw, int64_t r0,
                                           int64_t rows, Scratch& s) {
  const int64_t k = pb.k, n = pb.n, ld = kTileRows;
  const QuantConfig& cfg = *pb.cfg;
  const bool grouped = cfg.group_size > 0;
  float* w1t = s.w1t.data();
  float* et = s.et.data();
  float* qt = s.qt.data();
  float* ct = s.ct.data();

  // W1T[j][r] = W[r0 + r, i1 + j]
  transpose_f32(pb.w + r0 * k + i1, k, w1t, ld, rows, bw);

  double loss = 0.0;
  const float maxqf = static_cast<float>(pb.maxq);
  for (int64_t p0 = 0; p0 < bw; p0 += kPanel) {
    const int64_t p1 = std::min(p0 + kPanel, bw);
    for (int64_t i = p0; i < p1; ++i) {
      const int64_t c = i1 + i;
      // Grid of this column's group for the tile's rows.
      const float *scale, *zero;
      if (!grouped) {
        scale = pb.row_scale + r0;
        zero = pb.row_zero + r0;
      } else if (cfg.static_groups) {
        const int64_t g = pb.perm[c] / pb.gs;
        scale = pb.static_scale + g * n + r0;
        zero = pb.static_zero + g * n + r0;
      } else {
        const int64_t g = c / pb.gs;
        float* gscale = pb.dyn_scale + g * n + r0;
        float* gzero = pb.dyn_zero + g * n + r0;
        if (c % pb.gs == 0) {
          // Reads W (all lazy updates of earlier blocks applied), not W1T: the reference's
          // stale view of a group that starts inside a block.
          find_grid_into(pb.w + r0 * k + c, rows, std::min(pb.gs, k - c), k, cfg, gscale, gzero);
        }
        scale = gscale;
        zero = gzero;
      }
      const float d = pb.u[c * k + c];
      float* wi = w1t + i * ld;
      float* ei = et + i * ld;
      float* qi = qt + i * ld;
      float* ci = ct + i * ld;
      quantize_column(wi, scale, zero, maxqf, d, ci, qi, ei, rows);
      loss += 0.5 * static_cast<double>(sum_of_squares(ei, rows));  // (w - q)^2 / d^2, halved
      // Rank-1 update of the remaining columns of the panel.
      for (int64_t j = i + 1; j < p1; ++j) {
        const float uij = pb.u[c * k + i1 + j];
        float* wj = w1t + j * ld;
        for (int64_t r = 0; r < rows; ++r) wj[r] -= ei[r] * uij;
      }
    }
    // The panel's errors applied to the rest of the block.
    const int np = static_cast<int>(p1 - p0);
    float u[kPanel];
    for (int64_t j = p1; j < bw; ++j) {
      for (int p = 0; p < np; ++p) u[p] = pb.u[(i1 + p0 + p) * k + i1 + j];
      panel_update_n(np, w1t + j * ld, et + p0 * ld, ld, u, rows);
    }
  }

  // Outputs in original column order, each through a row-major tile; errors for the lazy update.
  auto put_rows = [&](const float* tile_t, auto* dst) {  // dst [N, K] as float or uint8 codes
    using T = std::remove_pointer_t<decltype(dst)>;
    float* out = s.rows_out.data();  // out[r * bw + i] = tile_t[i * ld + r]
    transpose_f32(tile_t, ld, out, bw, bw, rows);
    for (int64_t r = 0; r < rows; ++r) {
      T* row = dst + (r0 + r) * k;
      const float* src = out + r * bw;
      if (pb.permuted) {
        for (int64_t i = 0; i < bw; ++i) row[pb.perm[i1 + i]] = static_cast<T>(src[i]);
      } else {
        for (int64_t i = 0; i < bw; ++i) row[i1 + i] = static_cast<T>(src[i]);
      }
    }
  };
  put_rows(qt, pb.deq);
  put_rows(ct, pb.codes);
  for (int64_t i = 0; i < bw; ++i) {
    std::memcpy(pb.errt + i * n + r0, et + i * ld, static_cast<size_t>(rows) * sizeof(float));
  }
  return loss;
}

void check_weight_finite(const float* w, int64_t n, int64_t k, const std::string& layer) {
  if (int64_t i = first_non_finite(w, n * k); i >= 0) {
    fail_code(ExitCode::kBadInput,
              "layer {}: weight holds a non-finite value ({}) at [{}, {}]; the checkpoint is "
              "damaged or was saved after a diverged run",
              layer, w[i], i / k, i % k);
  }
}

}  // namespace

GptqFactor gptq_factor(const float* h, int64_t k, const QuantConfig& cfg,
                       const std::string& layer) {
  cfg.validate();
  if (k <= 0) fail_code(ExitCode::kInternal, "layer {}: bad Hessian size {}", layer, k);
  if (int64_t i = first_non_finite(h, k * k); i >= 0) {
    fail_code(ExitCode::kNumerical,
              "layer {}: Hessian holds a non-finite value ({}) at [{}, {}]: the layer inputs "
              "overflowed; check the float model on the calibration data (or use fp32/bf16)",
              layer, h[i], i / k, i % k);
  }
  const int64_t gs = cfg.group_size > 0 ? cfg.group_size : k;
  GptqFactor f;
  f.k = k;

  // Dead columns (no calibration signal): H[d, d] = 1 (and W[:, d] = 0 in the solve).
  std::vector<float> diag(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) {
    diag[c] = h[c * k + c];
    if (diag[c] == 0.0f) {
      f.dead.push_back(static_cast<int32_t>(c));
      diag[c] = 1.0f;
    }
  }

  // Processing order.
  if (cfg.desc_act) {
    f.perm = act_order_permutation(diag.data(), k);
    f.permuted = true;
  } else if (cfg.act_group_aware) {
    f.perm = gar_permutation(diag.data(), k, gs);
    f.permuted = true;
  } else {
    f.perm.resize(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) f.perm[c] = static_cast<int32_t>(c);
  }
  const std::vector<int32_t>& perm = f.perm;

  // Damped Hessian in processing order -> U. On failure, optionally raise damping and retry.
  resize_first_touched(f.u, static_cast<size_t>(k * k));
  double diag_sum = 0.0;
  for (int64_t c = 0; c < k; ++c) diag_sum += diag[c];
  const double diag_mean = diag_sum / static_cast<double>(k);
  double damp_percent = cfg.damp_percent;
  for (int attempt = 0;; ++attempt) {
    const float damp = static_cast<float>(damp_percent * diag_mean);
    const int64_t kc = (k + kTileRows - 1) / kTileRows;
    parallel_for(kc, [&](int64_t t) {
      const int64_t i0 = t * kTileRows, i1 = std::min(k, i0 + kTileRows);
      for (int64_t i = i0; i < i1; ++i) {
        const float* src = h + static_cast<int64_t>(perm[i]) * k;
        float* dst = f.u.data() + i * k;
        if (f.permuted) {
          for (int64_t j = 0; j < k; ++j) dst[j] = src[perm[j]];
        } else {
          std::memcpy(dst, src, static_cast<size_t>(k) * sizeof(float));
        }
        dst[i] = diag[perm[i]] + damp;  // dead columns: 1 + damp
      }
    });
    const int64_t bad = inverse_cholesky_upper(f.u.data(), k);
    if (bad == 0) break;
    const double next = damp_percent + cfg.damp_auto_increment;
    if (cfg.damp_auto_increment <= 0.0 || !(next < 1.0)) {
      fail_code(ExitCode::kNumerical,
                "layer {}: Cholesky factorization of the damped Hessian failed (not positive "
                "definite at column {} of {}, damp {:.4g}{}). Use a larger --damp, enable "
                "--damp-auto-increment, or feed more (and more varied) calibration data",
                layer, bad, k, damp_percent,
                attempt > 0 ? fmt::format(" after {} increments", attempt) : std::string());
    }
    damp_percent = next;
    f.damp_retries = attempt + 1;
  }
  f.damp = damp_percent;
  return f;
}

bool same_factor(const QuantConfig& a, const QuantConfig& b) {
  if (a.damp_percent != b.damp_percent || a.damp_auto_increment != b.damp_auto_increment ||
      a.desc_act != b.desc_act)
    return false;
  if (a.desc_act) return true;
  if (a.act_group_aware != b.act_group_aware) return false;
  return !a.act_group_aware || a.group_size == b.group_size;
}

GptqResult gptq_quantize(const float* w, int64_t n, int64_t k, const float* h, int64_t nsamples,
                         const QuantConfig& cfg, const std::string& layer) {
  return gptq_quantize(w, n, k, gptq_factor(h, k, cfg, layer), nsamples, cfg, layer);
}

GptqResult gptq_quantize(const float* w, int64_t n, int64_t k, const GptqFactor& factor,
                         int64_t nsamples, const QuantConfig& cfg, const std::string& layer) {
  cfg.validate();
  if (n <= 0 || k <= 0 || factor.k != k) {
    fail_code(ExitCode::kInternal, "layer {}: bad weight shape [{}, {}] (factor of size {})", layer,
              n, k, factor.k);
  }
  check_weight_finite(w, n, k, layer);
  const bool grouped = cfg.group_size > 0;
  const int64_t gs = grouped ? cfg.group_size : k;
  const int64_t groups = (k + gs - 1) / gs;

  GptqResult res;
  res.n = n;
  res.k = k;
  res.groups = groups;
  res.damp = factor.damp;
  res.damp_retries = factor.damp_retries;
  res.dead_columns = static_cast<int>(factor.dead.size());

  const int64_t row_chunks = (n + kTileRows - 1) / kTileRows;
  auto rows_of = [&](int64_t chunk) {
    return std::make_pair(chunk * kTileRows, std::min(kTileRows, n - chunk * kTileRows));
  };
  std::vector<float> wk;  // working copy
  resize_first_touched(wk, static_cast<size_t>(n * k));
  parallel_for(row_chunks, [&](int64_t t) {
    auto [r0, rows] = rows_of(t);
    std::memcpy(wk.data() + r0 * k, w + r0 * k, static_cast<size_t>(rows * k) * sizeof(float));
  });

  // Whole-row grid, from the weights as given (before dead columns are zeroed, as the reference).
  std::vector<float> row_scale, row_zero;
  if (!grouped) {
    row_scale.resize(static_cast<size_t>(n));
    row_zero.resize(static_cast<size_t>(n));
    parallel_for(row_chunks, [&](int64_t t) {
      auto [r0, rows] = rows_of(t);
      find_grid_into(wk.data() + r0 * k, rows, k, k, cfg, row_scale.data() + r0,
                     row_zero.data() + r0);
    });
  }

  // Dead columns: W[:, d] = 0.
  if (!factor.dead.empty()) {
    for (int64_t r = 0; r < n; ++r) {
      for (int32_t c : factor.dead) wk[r * k + c] = 0.0f;
    }
  }

  // Static groups: grids of the original contiguous groups from the un-updated weights.
  std::vector<float> static_scale, static_zero;
  if (grouped && cfg.static_groups) {
    static_scale.resize(static_cast<size_t>(groups * n));
    static_zero.resize(static_cast<size_t>(groups * n));
    parallel_for(groups * row_chunks, [&](int64_t item) {
      const int64_t g = item / row_chunks;
      auto [r0, rows] = rows_of(item % row_chunks);
      const int64_t c0 = g * gs;
      find_grid_into(wk.data() + r0 * k + c0, rows, std::min(gs, k - c0), k, cfg,
                     static_scale.data() + g * n + r0, static_zero.data() + g * n + r0);
    });
  }

  // Processing order.
  const std::vector<int32_t>& perm = factor.perm;
  const bool permuted = factor.permuted;
  if (permuted) {
    std::vector<float> wp;
    resize_first_touched(wp, static_cast<size_t>(n * k));
    parallel_for(row_chunks, [&](int64_t t) {
      auto [r0, rows] = rows_of(t);
      for (int64_t r = r0; r < r0 + rows; ++r) {
        for (int64_t c = 0; c < k; ++c) wp[r * k + c] = wk[r * k + perm[c]];
      }
    });
    wk.swap(wp);
  }
  const std::vector<float>& u = factor.u;

  // Main loop.
  resize_first_touched(res.codes, static_cast<size_t>(n * k));
  resize_first_touched(res.dequant, static_cast<size_t>(n * k));
  const int64_t bsz = cfg.block_size;
  std::vector<float> dyn_scale, dyn_zero;
  if (grouped && !cfg.static_groups) {
    dyn_scale.resize(static_cast<size_t>(groups * n));
    dyn_zero.resize(static_cast<size_t>(groups * n));
  }
  std::vector<float> errt;
  resize_first_touched(errt, static_cast<size_t>(std::min(bsz, k) * n));
  Problem pb;
  pb.n = n;
  pb.k = k;
  pb.gs = gs;
  pb.maxq = cfg.maxq();
  pb.cfg = &cfg;
  pb.w = wk.data();
  pb.u = u.data();
  pb.perm = perm.data();
  pb.permuted = permuted;
  pb.row_scale = row_scale.data();
  pb.row_zero = row_zero.data();
  pb.static_scale = static_scale.data();
  pb.static_zero = static_zero.data();
  pb.dyn_scale = dyn_scale.data();
  pb.dyn_zero = dyn_zero.data();
  pb.codes = res.codes.data();
  pb.deq = res.dequant.data();
  pb.errt = errt.data();

  const size_t tile = static_cast<size_t>(std::min(bsz, k) * kTileRows);
  std::vector<double> tile_loss(static_cast<size_t>(row_chunks), 0.0);
  for (int64_t i1 = 0; i1 < k; i1 += bsz) {
    const int64_t bw = std::min(bsz, k - i1), i2 = i1 + bw;
    parallel_for(row_chunks, [&](int64_t t) {
      auto [r0, rows] = rows_of(t);
      tile_loss[t] += solve_block_tile(pb, i1, bw, r0, rows, thread_scratch(tile));
    });
    if (i2 < k) {
      // W[:, i2:] -= E1 @ U[i1:i2, i2:], with E1 = errt^T.
      blas::sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k - i2, bw, -1.0f, errt.data(), n,
                  u.data() + i1 * k + i2, k, 1.0f, wk.data() + i2, k);
    }
  }
  double loss = 0.0;
  for (double l : tile_loss) loss += l;
  res.loss = nsamples > 0 ? loss / static_cast<double>(nsamples) : loss;

  // Grids [G, N] and g_idx.
  res.g_idx.resize(static_cast<size_t>(k));
  if (!grouped) {
    res.scales = std::move(row_scale);
    res.zeros = std::move(row_zero);
  } else if (cfg.static_groups) {
    res.scales = std::move(static_scale);
    res.zeros = std::move(static_zero);
  } else if (cfg.act_group_aware) {
    // Processing group g is exactly one original group; put its grid back in that slot so that
    // g_idx stays k / gs.
    res.scales.resize(dyn_scale.size());
    res.zeros.resize(dyn_zero.size());
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t orig = perm[g * gs] / gs;
      std::copy_n(dyn_scale.data() + g * n, n, res.scales.data() + orig * n);
      std::copy_n(dyn_zero.data() + g * n, n, res.zeros.data() + orig * n);
    }
  } else {
    res.scales = std::move(dyn_scale);
    res.zeros = std::move(dyn_zero);
  }
  for (int64_t j = 0; j < k; ++j) {
    // Dynamic act-order groups follow the processing order (non-monotonic g_idx); every other
    // mode keeps contiguous original groups.
    const bool by_position = cfg.desc_act && !cfg.static_groups;
    res.g_idx[perm[j]] = static_cast<int32_t>((by_position ? j : perm[j]) / gs);
  }
  return res;
}

}  // namespace gptq
