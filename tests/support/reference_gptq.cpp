#include "reference_gptq.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gptq::testing {
namespace {

struct Grid {
  std::vector<float> scale, zero;
};

// Quantizer.find_params on columns [c0, c1) of W [N, K], literally.
Grid ref_find_params(const std::vector<float>& w, int64_t n, int64_t k, int64_t c0, int64_t c1,
                     int bits, bool sym) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  Grid g;
  g.scale.resize(n);
  g.zero.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    float mn = w[r * k + c0], mx = w[r * k + c0];
    for (int64_t c = c0; c < c1; ++c) {
      mn = std::min(mn, w[r * k + c]);
      mx = std::max(mx, w[r * k + c]);
    }
    float xmin = std::min(mn, 0.0f), xmax = std::max(mx, 0.0f);
    if (sym) {
      xmax = std::max(std::fabs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
      xmin = -1;
      xmax = 1;
    }
    g.scale[r] = (xmax - xmin) / maxq;
    g.zero[r] = sym ? (maxq + 1) / 2 : std::nearbyint(-xmin / g.scale[r]);
  }
  return g;
}

// Stable descending argsort by insertion (independent of std::stable_sort).
std::vector<int32_t> argsort_desc(const std::vector<float>& v, int64_t begin, int64_t end) {
  std::vector<int32_t> idx;
  for (int64_t i = begin; i < end; ++i) {
    size_t pos = idx.size();
    while (pos > 0 && v[idx[pos - 1]] < v[i]) --pos;
    idx.insert(idx.begin() + static_cast<int64_t>(pos), static_cast<int32_t>(i));
  }
  return idx;
}

// L L^T = A (double, lower). Throws if not positive definite.
std::vector<double> cholesky_lower(std::vector<double> a, int64_t k) {
  for (int64_t j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (int64_t p = 0; p < j; ++p) d -= a[j * k + p] * a[j * k + p];
    // Rows below: s_i = a[i, j] - <row i, row j> over the first j entries (4 partial sums).
    if (!(d > 0)) throw std::runtime_error("reference Cholesky: not positive definite");
    d = std::sqrt(d);
    a[j * k + j] = d;
    for (int64_t i = j + 1; i < k; ++i) {
      double s[4] = {a[i * k + j], 0, 0, 0};
      int64_t p = 0;
      for (; p + 4 <= j; p += 4) {
        for (int u = 0; u < 4; ++u) s[u] -= a[i * k + p + u] * a[j * k + p + u];
      }
      for (; p < j; ++p) s[0] -= a[i * k + p] * a[j * k + p];
      a[i * k + j] = (s[0] + s[1] + s[2] + s[3]) / d;
    }
    for (int64_t i = 0; i < j; ++i) a[i * k + j] = 0;
  }
  return a;
}

}  // namespace

ReferenceResult reference_gptq(const float* w0, int64_t n, int64_t k, const float* h0,
                               int64_t nsamples, const QuantConfig& cfg) {
  const int bits = cfg.bits;
  const float maxq = static_cast<float>((1 << bits) - 1);
  const int64_t gs = cfg.group_size;
  const int64_t gse = gs == -1 ? k : gs;
  std::vector<float> W(w0, w0 + n * k);
  std::vector<float> H(h0, h0 + k * k);

  Grid whole = ref_find_params(W, n, k, 0, k, bits, cfg.sym);  // before the dead columns
  for (int64_t c = 0; c < k; ++c) {
    if (H[c * k + c] == 0) {
      H[c * k + c] = 1;
      for (int64_t r = 0; r < n; ++r) W[r * k + c] = 0;
    }
  }
  std::vector<Grid> groups;
  if (cfg.static_groups && gs != -1) {
    for (int64_t c0 = 0; c0 < k; c0 += gs) {
      groups.push_back(ref_find_params(W, n, k, c0, std::min(k, c0 + gs), bits, cfg.sym));
    }
  }
  std::vector<int32_t> perm(k);
  for (int64_t c = 0; c < k; ++c) perm[c] = static_cast<int32_t>(c);
  std::vector<float> diag(k);
  for (int64_t c = 0; c < k; ++c) diag[c] = H[c * k + c];
  if (cfg.desc_act) {
    perm = argsort_desc(diag, 0, k);
  } else if (cfg.act_group_aware) {
    const int64_t full = k / gs;
    std::vector<std::vector<int32_t>> local;
    std::vector<float> score;
    for (int64_t g = 0; g < full; ++g) {
      local.push_back(argsort_desc(diag, g * gs, (g + 1) * gs));
      score.push_back(diag[local.back()[0]]);
    }
    std::vector<int32_t> order = argsort_desc(score, 0, full);
    perm.clear();
    for (int32_t g : order) perm.insert(perm.end(), local[g].begin(), local[g].end());
    for (int64_t c = full * gs; c < k; ++c) perm.push_back(static_cast<int32_t>(c));
  }
  {
    std::vector<float> Wp(n * k), Hp(k * k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) Wp[r * k + c] = W[r * k + perm[c]];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) Hp[i * k + j] = H[perm[i] * k + perm[j]];
    W.swap(Wp);
    H.swap(Hp);
  }

  // damp, L = chol(H), Hi = cholesky_inverse(L), U = chol(Hi, upper).
  double mean = 0;
  for (int64_t c = 0; c < k; ++c) mean += H[c * k + c];
  mean /= static_cast<double>(k);
  const float damp = static_cast<float>(cfg.damp_percent * mean);
  std::vector<double> A(k * k);
  for (int64_t i = 0; i < k * k; ++i) A[i] = H[i];
  for (int64_t c = 0; c < k; ++c) A[c * k + c] = static_cast<double>(H[c * k + c] + damp);
  std::vector<double> L = cholesky_lower(A, k);
  std::vector<double> Li(k * k, 0.0);  // L^-1: forward substitution L x = e_j per column j
  std::vector<double> col(k);
  for (int64_t j = 0; j < k; ++j) {
    for (int64_t i = 0; i < k; ++i) {
      double s = i == j ? 1.0 : 0.0;
      for (int64_t p = j; p < i; ++p) s -= L[i * k + p] * col[p];
      col[i] = i < j ? 0.0 : s / L[i * k + i];
      Li[i * k + j] = col[i];
    }
  }
  std::vector<double> Hi(k * k, 0.0);  // H^-1 = L^-T L^-1 = sum_p (row p of L^-1)^T (row p)
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t i = 0; i <= p; ++i) {
      const double a = Li[p * k + i];
      for (int64_t j = 0; j <= p; ++j) Hi[i * k + j] += a * Li[p * k + j];
    }
  }
  std::vector<double> L2 = cholesky_lower(Hi, k);
  std::vector<float> U(k * k, 0.0f);  // U = L2^T
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) U[i * k + j] = static_cast<float>(L2[j * k + i]);

  ReferenceResult res;
  std::vector<float> Q(n * k, 0.0f);
  std::vector<uint8_t> C(n * k, 0);
  double losses = 0;
  Grid cur = whole;
  int64_t now_idx = 1;
  std::vector<float> sc, zr;  // pushed grids, [G][N]
  const int64_t B = cfg.block_size;
  for (int64_t i1 = 0; i1 < k; i1 += B) {
    const int64_t i2 = std::min(i1 + B, k), count = i2 - i1;
    std::vector<float> W1(n * count), Err1(n * count, 0.0f);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < count; ++i) W1[r * count + i] = W[r * k + i1 + i];
    for (int64_t i = 0; i < count; ++i) {
      const int64_t c = i1 + i;
      const float d = U[c * k + c];
      if (gs != -1) {
        if (!cfg.static_groups) {
          if (c % gs == 0) cur = ref_find_params(W, n, k, c, std::min(k, c + gs), bits, cfg.sym);
          if (c / gs == now_idx - 1) {
            sc.insert(sc.end(), cur.scale.begin(), cur.scale.end());
            zr.insert(zr.end(), cur.zero.begin(), cur.zero.end());
            ++now_idx;
          }
        } else {
          cur = groups[(cfg.desc_act || cfg.act_group_aware ? perm[c] : c) / gs];
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        const float x = W1[r * count + i];
        float q = std::nearbyint(x / cur.scale[r]) + cur.zero[r];
        q = std::min(std::max(q, 0.0f), maxq);
        const float deq = cur.scale[r] * (q - cur.zero[r]);
        C[r * k + c] = static_cast<uint8_t>(q);
        Q[r * k + c] = deq;
        losses += static_cast<double>((x - deq) * (x - deq) / (d * d) / 2);
        const float e = (x - deq) / d;
        for (int64_t j = i; j < count; ++j) W1[r * count + j] -= e * U[c * k + i1 + j];
        Err1[r * count + i] = e;
      }
    }
    // W[:, i2:] -= Err1 @ U[i1:i2, i2:]  (float sums, accumulated row of U by row of U)
    std::vector<float> s(k);
    for (int64_t r = 0; r < n; ++r) {
      std::fill(s.begin(), s.end(), 0.0f);
      for (int64_t i = 0; i < count; ++i) {
        const float e = Err1[r * count + i];
        for (int64_t j = i2; j < k; ++j) s[j] += e * U[(i1 + i) * k + j];
      }
      for (int64_t j = i2; j < k; ++j) W[r * k + j] -= s[j];
    }
  }

  res.codes.resize(n * k);
  res.dequant.resize(n * k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      res.codes[r * k + perm[c]] = C[r * k + c];
      res.dequant[r * k + perm[c]] = Q[r * k + c];
    }
  }
  res.g_idx.resize(k);
  for (int64_t j = 0; j < k; ++j) {
    const int32_t g = static_cast<int32_t>(
        ((cfg.static_groups && cfg.desc_act) || cfg.act_group_aware ? perm[j] : j) / gse);
    res.g_idx[perm[j]] = g;
  }
  if (gs == -1) {
    res.scales = whole.scale;
    res.zeros = whole.zero;
  } else if (cfg.static_groups) {
    for (const Grid& g : groups) {
      res.scales.insert(res.scales.end(), g.scale.begin(), g.scale.end());
      res.zeros.insert(res.zeros.end(), g.zero.begin(), g.zero.end());
    }
  } else if (cfg.act_group_aware) {
    res.scales.resize(sc.size());
    res.zeros.resize(zr.size());
    for (int64_t g = 0; g * gs < k; ++g) {
      const int64_t orig = perm[g * gs] / gs;
      for (int64_t r = 0; r < n; ++r) {
        res.scales[orig * n + r] = sc[g * n + r];
        res.zeros[orig * n + r] = zr[g * n + r];
      }
    }
  } else {
    res.scales = sc;
    res.zeros = zr;
  }
  res.loss = losses / static_cast<double>(nsamples);
  return res;
}

double hessian_weighted_error(const float* w, const float* q, int64_t n, int64_t k,
                              const float* h) {
  double total = 0;
  std::vector<double> d(k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) d[c] = static_cast<double>(w[r * k + c]) - q[r * k + c];
    for (int64_t i = 0; i < k; ++i) {
      double s[4] = {0, 0, 0, 0};  // independent partial sums (latency, not accuracy)
      int64_t j = 0;
      for (; j + 4 <= k; j += 4) {
        for (int u = 0; u < 4; ++u) s[u] += static_cast<double>(h[i * k + j + u]) * d[j + u];
      }
      for (; j < k; ++j) s[0] += static_cast<double>(h[i * k + j]) * d[j];
      total += d[i] * (s[0] + s[1] + s[2] + s[3]);
    }
  }
  return total;
}

}  // namespace gptq::testing
