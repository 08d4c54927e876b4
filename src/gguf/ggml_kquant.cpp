#include "gguf/ggml_kquant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace gptq::gguf {

namespace {
constexpr int kN = static_cast<int>(kQkK);

// A super-block's layout: sub-blocks, code range (the integer multiplied by the sub-block scale,
// already unbiased), integer sub-block scale range, integer min range (0: no min).
struct Spec {
  int nsub, sub;
  int qlo, qhi;
  int slo, shi;
  int mhi;
};

const Spec& spec_of(GgmlType t) {
  static constexpr Spec kQ2{16, 16, 0, 3, 0, 15, 15};
  static constexpr Spec kQ3{16, 16, -4, 3, -32, 31, 0};
  static constexpr Spec kQ4{8, 32, 0, 15, 0, 63, 63};
  static constexpr Spec kQ5{8, 32, 0, 31, 0, 63, 63};
  static constexpr Spec kQ6{16, 16, -32, 31, -128, 127, 0};
  switch (t) {
    case GgmlType::kQ2_K:
      return kQ2;
    case GgmlType::kQ3_K:
      return kQ3;
    case GgmlType::kQ4_K:
      return kQ4;
    case GgmlType::kQ5_K:
      return kQ5;
    case GgmlType::kQ6_K:
      return kQ6;
    default:
      break;
  }
  fail("{} is not a k-quant type", type_name(t));
}

// One super-block, unpacked: x[i] = (d * sc[i / sub]) * q[i] - (dmin * m[i / sub]).
struct Block {
  uint16_t d = 0, dmin = 0;  // fp16 bits
  std::array<int, 16> sc{}, m{};
  std::array<int, kN> q{};
};

uint16_t get_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void put_u16(std::byte* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
uint8_t u8(std::byte b) {
  return static_cast<uint8_t>(b);
}
std::byte b8(int v) {
  return static_cast<std::byte>(static_cast<uint8_t>(v));
}

// ---- Packing ----

// 2-bit fields of 256 values in 64 bytes: value 128*h + 32*s + l in byte 32*h + l at bits 2*s.
void pack_2bit(const int* v, std::byte* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int* p = v + 128 * h + l;
      qs[32 * h + l] =
          b8((p[0] & 3) | ((p[32] & 3) << 2) | ((p[64] & 3) << 4) | ((p[96] & 3) << 6));
    }
}
int get_2bit(const std::byte* qs, int i) {
  return (u8(qs[32 * (i / 128) + i % 32]) >> (2 * ((i % 128) / 32))) & 3;
}

// Q4_K / Q5_K: 8 six-bit scales and mins in 12 bytes.
void pack_scale_min_k4(const Block& b, std::byte* s) {
  for (int j = 0; j < 12; ++j) s[j] = std::byte{0};
  for (int j = 0; j < 8; ++j) {
    const int sc = b.sc[j], m = b.m[j];
    if (j < 4) {
      s[j] = b8(u8(s[j]) | sc);
      s[j + 4] = b8(u8(s[j + 4]) | m);
    } else {
      s[j + 4] = b8((sc & 0xF) | ((m & 0xF) << 4));
      s[j - 4] = b8(u8(s[j - 4]) | ((sc >> 4) << 6));
      s[j] = b8(u8(s[j]) | ((m >> 4) << 6));
    }
  }
}
void unpack_scale_min_k4(const std::byte* s, Block* b) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      b->sc[j] = u8(s[j]) & 63;
      b->m[j] = u8(s[j + 4]) & 63;
    } else {
      b->sc[j] = (u8(s[j + 4]) & 0xF) | ((u8(s[j - 4]) >> 6) << 4);
      b->m[j] = (u8(s[j + 4]) >> 4) | ((u8(s[j]) >> 6) << 4);
    }
  }
}

void pack(GgmlType t, const Block& b, std::byte* out) {
  std::array<int, kN> v{};
  switch (t) {
    case GgmlType::kQ2_K:
      for (int j = 0; j < 16; ++j) out[j] = b8(b.sc[j] | (b.m[j] << 4));
      pack_2bit(b.q.data(), out + 16);
      put_u16(out + 80, b.d);
      put_u16(out + 82, b.dmin);
      return;
    case GgmlType::kQ3_K: {
      for (int i = 0; i < kN; ++i) v[i] = b.q[i] + 4;  // 0..7
      for (int i = 0; i < 32; ++i) out[i] = std::byte{0};
      for (int i = 0; i < kN; ++i)
        if (v[i] > 3) out[i % 32] = b8(u8(out[i % 32]) | (1 << (i / 32)));
      pack_2bit(v.data(), out + 32);
      std::byte* s = out + 96;
      for (int j = 0; j < 12; ++j) s[j] = std::byte{0};
      for (int j = 0; j < 16; ++j) {
        const int l = b.sc[j] + 32;  // 0..63
        if (j < 8)
          s[j] = b8(u8(s[j]) | (l & 0xF));
        else
          s[j - 8] = b8(u8(s[j - 8]) | ((l & 0xF) << 4));
        s[8 + j % 4] = b8(u8(s[8 + j % 4]) | ((l >> 4) << (2 * (j / 4))));
      }
      put_u16(out + 108, b.d);
      return;
    }
    case GgmlType::kQ4_K:
      put_u16(out, b.d);
      put_u16(out + 2, b.dmin);
      pack_scale_min_k4(b, out + 4);
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
          out[16 + 32 * c + l] = b8(b.q[64 * c + l] | (b.q[64 * c + 32 + l] << 4));
      return;
    case GgmlType::kQ5_K: {
      put_u16(out, b.d);
      put_u16(out + 2, b.dmin);
      pack_scale_min_k4(b, out + 4);
      std::byte* qh = out + 16;
      std::byte* ql = out + 48;
      for (int l = 0; l < 32; ++l) qh[l] = std::byte{0};
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          const int lo = b.q[64 * c + l], hi = b.q[64 * c + 32 + l];
          ql[32 * c + l] = b8((lo & 0xF) | ((hi & 0xF) << 4));
          qh[l] = b8(u8(qh[l]) | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
      return;
    }
    case GgmlType::kQ6_K: {
      for (int i = 0; i < kN; ++i) v[i] = b.q[i] + 32;  // 0..63
      std::byte* ql = out;
      std::byte* qh = out + 128;
      for (int h = 0; h < 2; ++h) {
        const int* p = v.data() + 128 * h;
        for (int l = 0; l < 32; ++l) {
          ql[64 * h + l] = b8((p[l] & 0xF) | ((p[l + 64] & 0xF) << 4));
          ql[64 * h + 32 + l] = b8((p[l + 32] & 0xF) | ((p[l + 96] & 0xF) << 4));
          qh[32 * h + l] = b8((p[l] >> 4) | ((p[l + 32] >> 4) << 2) | ((p[l + 64] >> 4) << 4) |
                              ((p[l + 96] >> 4) << 6));
        }
      }
      for (int j = 0; j < 16; ++j) out[192 + j] = b8(b.sc[j]);
      put_u16(out + 208, b.d);
      return;
    }
    default:
      break;
  }
  fail("{} is not a k-quant type", type_name(t));
}

Block unpack(GgmlType t, const std::byte* in) {
  Block b;
  switch (t) {
    case GgmlType::kQ2_K:
      for (int j = 0; j < 16; ++j) {
        b.sc[j] = u8(in[j]) & 0xF;
        b.m[j] = u8(in[j]) >> 4;
      }
      for (int i = 0; i < kN; ++i) b.q[i] = get_2bit(in + 16, i);
      b.d = get_u16(in + 80);
      b.dmin = get_u16(in + 82);
      return b;
    case GgmlType::kQ3_K: {
      const std::byte* s = in + 96;
      for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? u8(s[j]) & 0xF : u8(s[j - 8]) >> 4;
        const int hi = (u8(s[8 + j % 4]) >> (2 * (j / 4))) & 3;
        b.sc[j] = (lo | (hi << 4)) - 32;
      }
      for (int i = 0; i < kN; ++i)
        b.q[i] = get_2bit(in + 32, i) - ((u8(in[i % 32]) >> (i / 32)) & 1 ? 0 : 4);
      b.d = get_u16(in + 108);
      return b;
    }
    case GgmlType::kQ4_K:
      b.d = get_u16(in);
      b.dmin = get_u16(in + 2);
      unpack_scale_min_k4(in + 4, &b);
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          b.q[64 * c + l] = u8(in[16 + 32 * c + l]) & 0xF;
          b.q[64 * c + 32 + l] = u8(in[16 + 32 * c + l]) >> 4;
        }
      return b;
    case GgmlType::kQ5_K:
      b.d = get_u16(in);
      b.dmin = get_u16(in + 2);
      unpack_scale_min_k4(in + 4, &b);
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          const int lq = u8(in[48 + 32 * c + l]), h = u8(in[16 + l]);
          b.q[64 * c + l] = (lq & 0xF) | (((h >> (2 * c)) & 1) << 4);
          b.q[64 * c + 32 + l] = (lq >> 4) | (((h >> (2 * c + 1)) & 1) << 4);
        }
      return b;
    case GgmlType::kQ6_K:
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 32; ++l) {
          const int a = u8(in[64 * h + l]), c = u8(in[64 * h + 32 + l]);
          const int hb = u8(in[128 + 32 * h + l]);
          int* q = b.q.data() + 128 * h;
          q[l] = ((a & 0xF) | ((hb & 3) << 4)) - 32;
          q[l + 32] = ((c & 0xF) | (((hb >> 2) & 3) << 4)) - 32;
          q[l + 64] = ((a >> 4) | (((hb >> 4) & 3) << 4)) - 32;
          q[l + 96] = ((c >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        }
      for (int j = 0; j < 16; ++j) b.sc[j] = static_cast<int8_t>(u8(in[192 + j]));
      b.d = get_u16(in + 208);
      return b;
    default:
      break;
  }
  fail("{} is not a k-quant type", type_name(t));
}

// ggml's arithmetic: dl = d * sc, ml = dmin * m (floats), x = dl * q - ml (x = dl * q without min).
void decode(const Spec& s, const Block& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < s.nsub; ++j) {
    const float dl = d * static_cast<float>(b.sc[j]);
    const float ml = dmin * static_cast<float>(b.m[j]);
    for (int i = j * s.sub; i < (j + 1) * s.sub; ++i) {
      const float v = dl * static_cast<float>(b.q[i]);
      y[i] = s.mhi ? v - ml : v;
    }
  }
}

// ---- Quantizer ----

// Round to nearest (ties to even) of |v| < 2^22, branch-free so that the loops below vectorise.
inline int round_small(float v) {
  const float t = v + 12582912.0f;  // 1.5 * 2^23
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007FFFFF) - 0x00400000;
}

double block_error(const Spec& s, const Block& b, const float* x) {
  float y[kN];
  decode(s, b, y);
  double e = 0;
  for (int i = 0; i < kN; ++i) {
    const double r = static_cast<double>(y[i]) - x[i];
    e += r * r;
  }
  return e;
}

// The best code of every value for the block's scales: the nearest of ggml's reconstructions.
void assign_codes(const Spec& s, Block* b, const float* x) {
  const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
  for (int j = 0; j < s.nsub; ++j) {
    const float dl = d * static_cast<float>(b->sc[j]);
    const float ml = s.mhi ? dmin * static_cast<float>(b->m[j]) : 0.0f;
    const float inv = 1.0f / dl;
    for (int i = j * s.sub; i < (j + 1) * s.sub; ++i) {
      if (dl == 0.0f || !std::isfinite(dl) || !std::isfinite(inv)) {
        b->q[i] = 0;
        continue;
      }
      const int q0 = std::clamp(round_small(std::clamp((x[i] + ml) * inv, static_cast<float>(s.qlo),
                                                       static_cast<float>(s.qhi))),
                                s.qlo, s.qhi);  // (a NaN passes the float clamp)
      int best = q0;
      float best_err = std::fabs(dl * static_cast<float>(q0) - ml - x[i]);
      for (const int q : {q0 - 1, q0 + 1}) {
        if (q < s.qlo || q > s.qhi) continue;
        const float e = std::fabs(dl * static_cast<float>(q) - ml - x[i]);
        if (e < best_err) best_err = e, best = q;
      }
      b->q[i] = best;
    }
  }
}

// A sub-block's continuous fit x ~ scale * q - mn (mn >= 0; mn = 0 for the symmetric types).
struct SubFit {
  float scale = 0, mn = 0;
};

// Least squares of x ~ a * q + c (weights w), c <= 0 when with_min, c = 0 otherwise.
void fit_ls(const float* x, const float* w, const int* q, int n, bool with_min, float* a,
            float* c) {
  double sw = 0, sx = 0, sq = 0, sq2 = 0, sxq = 0;
  for (int i = 0; i < n; ++i) {
    sw += w[i];
    sx += w[i] * x[i];
    sq += w[i] * q[i];
    sq2 += w[i] * q[i] * q[i];
    sxq += w[i] * x[i] * q[i];
  }
  *a = 0;
  *c = 0;
  if (with_min) {
    const double det = sw * sq2 - sq * sq;
    if (det > 0) {
      const double aa = (sw * sxq - sx * sq) / det, cc = (sq2 * sx - sq * sxq) / det;
      if (cc <= 0) {
        *a = static_cast<float>(aa);
        *c = static_cast<float>(cc);
        return;
      }
    }
    if (sq2 > 0) *a = static_cast<float>(sxq / sq2);
    if (*a <= 0 && sw > 0) {  // no positive scale: the (non-positive) mean alone
      *a = 0;
      *c = static_cast<float>(std::min(0.0, sx / sw));
    }
    return;
  }
  if (sq2 > 0) *a = static_cast<float>(sxq / sq2);
}

// Searches the sub-block's scale (and min): codes rounded from a grid of trial scales, each
// followed by a least-squares fit, judged by the weighted squared error.
SubFit fit_sub(const Spec& s, const float* x, const float* w, int n) {
  SubFit best;
  double best_err = 0;
  for (int i = 0; i < n; ++i) best_err += w[i] * x[i] * x[i];  // all codes zero
  int q[32];
  auto consider = [&](float iscale, float offset) {
    for (int i = 0; i < n; ++i)
      q[i] = round_small(std::clamp(iscale * (x[i] - offset), static_cast<float>(s.qlo),
                                    static_cast<float>(s.qhi)));
    float a, c;
    fit_ls(x, w, q, n, s.mhi > 0, &a, &c);
    double e = 0;
    for (int i = 0; i < n; ++i) {
      const double r = static_cast<double>(a) * q[i] + c - x[i];
      e += w[i] * r * r;
    }
    if (e < best_err) {
      best_err = e;
      best.scale = a;
      best.mn = -c;
    }
  };
  if (s.mhi) {
    float lo = 0, hi = x[0];
    for (int i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    if (hi <= lo) {  // constant and <= 0: the min alone
      best.mn = -lo;
      return best;
    }
    for (int k = -12; k <= 12; k += 2)
      consider((static_cast<float>(s.qhi) + 0.1f * static_cast<float>(k)) / (hi - lo), lo);
    return best;
  }
  float amax = 0, mx = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), mx = x[i];
  if (amax < 1e-15f) return best;
  for (int k = -10; k <= 10; k += 2) {
    consider(-(static_cast<float>(-s.qlo) + 0.1f * static_cast<float>(k)) / mx, 0.0f);
    consider((static_cast<float>(s.qhi) + 0.1f * static_cast<float>(k)) / mx, 0.0f);
  }
  return best;
}

// The sub-block fit of ggml's reference for the min types (make_qkx2_quants: codes rounded from
// nstep + 1 trial scales (nmax + rmin + rdelta * k) / (max - min), a weighted least-squares scale
// and min for each, judged by the weighted squared or absolute error), in float arithmetic as
// there.
SubFit fit_sub_ggml(const float* x, const float* w, int n, int nmax, float rmin, float rdelta,
                    int nstep, bool use_mad) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  lo = std::min(lo, 0.0f);
  if (hi == lo) return {0.0f, -lo};
  auto nearest = [](float v) { return static_cast<int>(std::nearbyint(v)); };
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float scale = 1 / iscale, mn = lo;
  float best = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax);
    float diff = scale * static_cast<float>(l) + lo - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best += w[i] * diff;
  }
  int laux[32];
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (hi - lo);
    float sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax);
      laux[i] = l;
      const float fl = static_cast<float>(l);
      sl += w[i] * fl;
      sl2 += w[i] * fl * fl;
      sxl += w[i] * fl * x[i];
    }
    const float det = sum_w * sl2 - sl * sl;
    if (det > 0) {
      float this_scale = (sum_w * sxl - sum_x * sl) / det;
      float this_min = (sl2 * sum_x - sl * sxl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sxl / sl2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        err += w[i] * diff;
      }
      if (err < best) best = err, scale = this_scale, mn = this_min;
    }
  }
  return {scale, -mn};
}

int round_clamp(double v, int lo, int hi) {
  if (!std::isfinite(v)) return 0;
  return std::clamp(static_cast<int>(std::nearbyint(std::clamp(v, -1e6, 1e6))), lo, hi);
}

// Integer sub-block scales (and mins) for the fp16 super-block scales d, dmin; or, with inv
// (and inv_min) non-zero, rounded from the scales times those (as ggml's reference rounds them:
// with the inverse of the unrounded super-block scale).
void quantize_scales(const Spec& s, const SubFit* f, Block* b, float inv = 0, float inv_min = 0) {
  const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
  for (int j = 0; j < s.nsub; ++j) {
    if (inv != 0.0f)
      b->sc[j] = round_clamp(inv * f[j].scale, s.slo, s.shi);
    else
      b->sc[j] = d != 0.0f ? round_clamp(f[j].scale / d, s.slo, s.shi) : 0;
    if (inv_min != 0.0f)
      b->m[j] = round_clamp(inv_min * f[j].mn, 0, s.mhi);
    else
      b->m[j] = s.mhi && dmin != 0.0f ? round_clamp(f[j].mn / dmin, 0, s.mhi) : 0;
  }
}

// Alternating refinement; each step kept only when the block's error drops.
double refine(const Spec& s, Block* b, const float* x, double err) {
  const float ones[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                          1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  for (int round = 0; round < 4; ++round) {
    bool improved = false;
    // 1. Sub-block scales/mins refitted to the codes, rounded to the integer grid.
    {
      Block t = *b;
      SubFit f[16];
      for (int j = 0; j < s.nsub; ++j) {
        float a, c;
        fit_ls(x + j * s.sub, ones, t.q.data() + j * s.sub, s.sub, s.mhi > 0, &a, &c);
        f[j] = {a, -c};
      }
      quantize_scales(s, f, &t);
      assign_codes(s, &t, x);
      const double e = block_error(s, t, x);
      if (e < err) *b = t, err = e, improved = true;
    }
    // 2. d (and dmin) refitted jointly to the integer scales and codes.
    {
      double saa = 0, sab = 0, sbb = 0, sxa = 0, sxb = 0;
      for (int i = 0; i < kN; ++i) {
        const double a = static_cast<double>(b->sc[i / s.sub]) * b->q[i];
        const double bb = s.mhi ? -static_cast<double>(b->m[i / s.sub]) : 0.0;
        saa += a * a;
        sab += a * bb;
        sbb += bb * bb;
        sxa += x[i] * a;
        sxb += x[i] * bb;
      }
      double d = 0, dmin = 0;
      const double det = saa * sbb - sab * sab;
      if (s.mhi && det > 0) {
        d = (sxa * sbb - sxb * sab) / det;
        dmin = (saa * sxb - sab * sxa) / det;
      }
      if (!(s.mhi && det > 0 && dmin >= 0)) {
        dmin = s.mhi ? f16_to_f32(b->dmin) : 0.0;
        d = saa > 0 ? (sxa - dmin * sab) / saa : 0.0;
      }
      Block t = *b;
      t.d = f32_to_f16(static_cast<float>(d));
      t.dmin = f32_to_f16(static_cast<float>(dmin));
      if (std::isfinite(f16_to_f32(t.d)) && std::isfinite(f16_to_f32(t.dmin))) {
        assign_codes(s, &t, x);
        const double e = block_error(s, t, x);
        if (e < err) *b = t, err = e, improved = true;
      }
    }
    if (!improved) break;
  }
  return err;
}

// A sub-block's squared error for the scale dl and min ml, codes rounded (float sums: this only
// ranks scales; the block's error is recomputed exactly).
float sub_error(const Spec& s, const float* xs, float dl, float ml, float* mean_shift) {
  const float inv = dl != 0.0f ? 1.0f / dl : 0.0f;
  const float qlo = static_cast<float>(s.qlo), qhi = static_cast<float>(s.qhi);
  float e = 0, shift = 0;
  for (int i = 0; i < s.sub; ++i) {
    const float t = std::clamp((xs[i] + ml) * inv, qlo, qhi);
    const float v = dl * static_cast<float>(round_small(t)) - ml;
    const float r = v - xs[i];
    e += r * r;
    shift += r;
  }
  if (mean_shift) *mean_shift = shift / static_cast<float>(s.sub);
  return e;
}

// For the block's d and dmin, every integer scale of each sub-block (Q6_K: within 16 of the
// current one) with, for the min types, the min that best centres the codes (and its neighbours):
// the best per sub-block.
double search_sub_scales(const Spec& s, Block* b, const float* x, double err) {
  Block t = *b;
  const float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
  if (!std::isfinite(d) || !std::isfinite(dmin)) return err;
  const bool wide = s.shi - s.slo > 64;
  for (int j = 0; j < s.nsub; ++j) {
    const float* xs = x + j * s.sub;
    const int sc_lo = wide ? std::max(s.slo, t.sc[j] - 16) : s.slo;
    const int sc_hi = wide ? std::min(s.shi, t.sc[j] + 16) : s.shi;
    float best = -1;
    int best_sc = t.sc[j], best_m = t.m[j];
    for (int sc = sc_lo; sc <= sc_hi; ++sc) {
      const float dl = d * static_cast<float>(sc);
      if (!s.mhi) {
        const float e = sub_error(s, xs, dl, 0.0f, nullptr);
        if (best < 0 || e < best) best = e, best_sc = sc, best_m = 0;
        continue;
      }
      // The min that cancels the mean residual of the codes rounded with the current min.
      float shift = 0;
      const float ml0 = dmin * static_cast<float>(t.m[j]);
      float e = sub_error(s, xs, dl, ml0, &shift);
      if (best < 0 || e < best) best = e, best_sc = sc, best_m = t.m[j];
      if (dmin == 0.0f) continue;
      const int m0 = round_clamp((ml0 + shift) / dmin, 0, s.mhi);
      for (int m = std::max(0, m0 - 1); m <= std::min(s.mhi, m0 + 1); ++m) {
        if (m == t.m[j]) continue;
        e = sub_error(s, xs, dl, dmin * static_cast<float>(m), nullptr);
        if (e < best) best = e, best_sc = sc, best_m = m;
      }
    }
    t.sc[j] = best_sc;
    t.m[j] = best_m;
  }
  assign_codes(s, &t, x);
  const double e = block_error(s, t, x);
  if (e < err) {
    *b = t;
    return e;
  }
  return err;
}

void quantize_block(GgmlType type, const Spec& s, const float* x, std::byte* out) {
  // Sub-block fits under two weightings: plain squared error, and the importance ggml's reference
  // gives (|x| + rms for the min types, x^2 for the symmetric ones); for the min types also ggml's
  // own search (so that one candidate starts from ggml's sub-block fits).
  SubFit fits[3][16];
  float w[3][32];
  const int variants = s.mhi ? 3 : 2;
  for (int j = 0; j < s.nsub; ++j) {
    const float* xs = x + j * s.sub;
    float sum2 = 0;
    for (int i = 0; i < s.sub; ++i) sum2 += xs[i] * xs[i];
    const float rms = std::sqrt(sum2 / static_cast<float>(s.sub));
    for (int i = 0; i < s.sub; ++i) {
      w[0][i] = 1.0f;
      w[1][i] = s.mhi ? rms + std::fabs(xs[i]) : xs[i] * xs[i];
    }
    fits[0][j] = fit_sub(s, xs, w[0], s.sub);
    if (!s.mhi) fits[1][j] = fit_sub(s, xs, w[1], s.sub);
    if (type == GgmlType::kQ2_K) {
      for (int i = 0; i < s.sub; ++i) w[2][i] = std::fabs(xs[i]);
      fits[2][j] = fit_sub_ggml(xs, w[2], s.sub, s.qhi, -0.5f, 0.1f, 15, true);
    } else if (type == GgmlType::kQ4_K) {
      fits[2][j] = fit_sub_ggml(xs, w[1], s.sub, s.qhi, -1.0f, 0.1f, 20, false);
    } else if (type == GgmlType::kQ5_K) {
      fits[2][j] = fit_sub_ggml(xs, w[1], s.sub, s.qhi, -0.5f, 0.1f, 15, false);
    }
  }
  Block zero;
  double zero_err = block_error(s, zero, x);
  struct Candidate {
    Block b;
    double err;
  };
  std::vector<Candidate> cands;
  for (int v = 0; v < variants; ++v) {
    if (s.mhi && v == 1) continue;  // the min types: plain and ggml's search
    const SubFit* f = fits[v];
    float smax = 0, ssigned = 0, mmax = 0;
    for (int j = 0; j < s.nsub; ++j) {
      if (std::fabs(f[j].scale) > smax) smax = std::fabs(f[j].scale), ssigned = f[j].scale;
      mmax = std::max(mmax, f[j].mn);
    }
    if (smax == 0.0f && mmax == 0.0f) continue;
    {  // ggml's rounding of the sub-block scales
      Block b;
      float inv = 0, inv_min = 0;
      if (s.mhi) {
        inv = smax > 0 ? static_cast<float>(s.shi) / smax : 0.0f;
        inv_min = mmax > 0 ? static_cast<float>(s.mhi) / mmax : 0.0f;
        b.d = f32_to_f16(smax / static_cast<float>(s.shi));
        b.dmin = f32_to_f16(mmax / static_cast<float>(s.mhi));
      } else {
        inv = static_cast<float>(s.slo) / ssigned;
        b.d = f32_to_f16(1 / inv);
      }
      if (inv != 0.0f || inv_min != 0.0f) {
        quantize_scales(s, f, &b, inv != 0.0f ? inv : 1e-30f, s.mhi ? inv_min : 0.0f);
        if (inv == 0.0f) b.sc.fill(0);
        if (s.mhi && inv_min == 0.0f) b.m.fill(0);
        assign_codes(s, &b, x);
        cands.push_back({b, block_error(s, b, x)});
      }
    }
    // Super-block scales: the largest sub-block scale on the top (or, signed, the bottom) of the
    // integer range, and a few slightly smaller/larger steps.
    std::vector<float> ds;
    for (const float fct : {1.0f, 0.97f, 1.03f, 0.94f}) {
      if (s.mhi) {
        ds.push_back(smax / static_cast<float>(s.shi) * fct);
      } else {
        ds.push_back(ssigned / static_cast<float>(s.slo) * fct);
        ds.push_back(ssigned / static_cast<float>(s.shi) * fct);
      }
    }
    for (const float d : ds) {
      Block b;
      b.d = f32_to_f16(d);
      b.dmin = f32_to_f16(s.mhi ? mmax / static_cast<float>(s.mhi) : 0.0f);
      if (!std::isfinite(f16_to_f32(b.d)) || !std::isfinite(f16_to_f32(b.dmin))) continue;
      quantize_scales(s, f, &b);
      assign_codes(s, &b, x);
      cands.push_back({b, block_error(s, b, x)});
    }
  }
  Block best = zero;
  double best_err = zero_err;
  std::sort(cands.begin(), cands.end(),
            [](const Candidate& a, const Candidate& b) { return a.err < b.err; });
  for (size_t c = 0; c < cands.size() && c < 2; ++c) {
    Block b = cands[c].b;
    const double e = refine(s, &b, x, cands[c].err);
    if (e < best_err) best = b, best_err = e;
  }
  for (int round = 0; round < 3; ++round) {
    const double before = best_err;
    best_err = search_sub_scales(s, &best, x, best_err);
    best_err = refine(s, &best, x, best_err);
    if (!(best_err < before)) break;
  }
  pack(type, best, out);
}
}  // namespace

bool is_k_quant(GgmlType t) {
  return t == GgmlType::kQ2_K || t == GgmlType::kQ3_K || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

void quantize_row_k(GgmlType t, const float* x, int64_t n, std::byte* out) {
  const Spec& s = spec_of(t);
  if (n % kQkK != 0)
    fail("a row of {} values cannot be stored as {} (super-blocks of 256 values)", n, type_name(t));
  // Blocks are independent: the bytes do not depend on the thread count.
  parallel_for(n / kQkK, [&](int64_t b) {
    quantize_block(t, s, x + b * kQkK, out + static_cast<size_t>(b) * type_size(t));
  });
}

void dequantize_row_k(GgmlType t, const std::byte* in, int64_t n, float* y) {
  const Spec& s = spec_of(t);
  if (n % kQkK != 0)
    fail("a row of {} values cannot be stored as {} (super-blocks of 256 values)", n, type_name(t));
  for (int64_t b = 0; b < n / kQkK; ++b)
    decode(s, unpack(t, in + static_cast<size_t>(b) * type_size(t)), y + b * kQkK);
}

GgmlType k_quant_fallback(GgmlType t) {
  switch (t) {
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
      return GgmlType::kQ4_0;
    case GgmlType::kQ4_K:
      return GgmlType::kQ4_1;
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      return GgmlType::kQ8_0;
    default:
      return t;
  }
}

double bits_per_weight(GgmlType t) {
  return static_cast<double>(type_size(t)) * 8.0 / static_cast<double>(block_size(t));
}

}  // namespace gptq::gguf
