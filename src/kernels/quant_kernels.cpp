// Highway implementations of the QuantLinear kernels (layout and math: quant_kernels.h). This
// file is compiled once per SIMD target (foreach_target.h); the exported wrappers at the bottom
// pick the best target of the CPU at run time (one dispatch point per entry).
//
// Vectors are at most 16 float lanes (CappedTag): a 16-row tile is kNV = 16 / L vectors (1 on
// AVX-512, 2 on AVX2, 4 on SSE4/EMU128, 16 on SCALAR), processed one after the other.
#include "kernels/quant_kernels.h"

#include <algorithm>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace gptq {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::CappedTag<float, 16>;
using DU = hn::RebindToUnsigned<DF>;
using VF = hn::Vec<DF>;
using VU = hn::Vec<DU>;

constexpr size_t kL = hn::MaxLanes(DF());                  // float lanes per vector
constexpr size_t kNV = static_cast<size_t>(kTileRows) / kL;  // vectors per row tile
static_assert(kNV * kL == static_cast<size_t>(kTileRows), "16 rows must be whole vectors");
constexpr int64_t kParamBytes = 2 * kTileRows * sizeof(float);  // S[16], ZF[16] per group
constexpr int64_t kWordBytes = kTileRows * sizeof(uint32_t);    // one word for 16 rows
// Independent accumulation chains of the GEMV (hides the FMA latency).
constexpr int kGemvChains = 4;
// Activation rows per GEMM pass: kR accumulators stay in registers (32 on AVX-512, 16 else).
#if HWY_TARGET <= HWY_AVX3
constexpr int kGemmMaxR = 16;
#else
constexpr int kGemmMaxR = 8;
#endif

template <int kShift>
HWY_INLINE VU ShiftBy(VU v) {
  if constexpr (kShift > 0) {
    return hn::ShiftLeft<kShift>(v);
  } else if constexpr (kShift < 0) {
    return hn::ShiftRight<-kShift>(v);
  } else {
    return v;
  }
}

// Code of block position kPos (0..31) of the 16-lane words of one block (layout in the header),
// returned as m = 1 + q / 2^b: the code is OR-ed into the mantissa bits [23 - b, 23) of 1.0f.
template <int kBits, int kPos>
HWY_INLINE VF Decode(const VU* words) {
  const DF df;
  const DU du;
  const VU one = hn::Set(du, 0x3F800000u);
  if constexpr (kBits == 3) {
    constexpr int kWord = kPos / 16, kJ = kPos % 16;
    const VU lo = ShiftBy<20 - 2 * kJ>(words[kWord]);  // bits [2j, 2j+2) -> [20, 22)
    const VU hi = ShiftBy<22 - kPos>(words[2]);        // bit p -> bit 22
    return hn::BitCast(df, hn::OrAnd(hn::OrAnd(one, lo, hn::Set(du, 3u << 20)), hi,
                                     hn::Set(du, 1u << 22)));
  } else {
    constexpr int kPer = 32 / kBits, kWord = kPos / kPer, kJ = kPos % kPer;
    constexpr uint32_t kMask = ((1u << kBits) - 1u) << (23 - kBits);
    return hn::BitCast(
        df, hn::OrAnd(one, ShiftBy<(23 - kBits) - kBits * kJ>(words[kWord]), hn::Set(du, kMask)));
  }
}

template <int kBits>
HWY_INLINE void LoadWords(const uint8_t* block, size_t v, VU* words) {
  const DU du;
  const uint32_t* w = reinterpret_cast<const uint32_t*>(block) + v * kL;
  for (int i = 0; i < kBits; ++i) words[i] = hn::Load(du, w + i * kTileRows);
}

// ----------------------------------------------------------------------------------- GEMV

// d[chain] += m_k * x_k over the 32 positions of one block.
template <int kBits, int kPos>
HWY_INLINE void GemvBlock(const VU* words, const float* HWY_RESTRICT x, VF* d) {
  if constexpr (kPos < kBlock) {
    const DF df;
    constexpr int c = kPos % kGemvChains;
    d[c] = hn::MulAdd(Decode<kBits, kPos>(words), hn::Set(df, x[kPos]), d[c]);
    GemvBlock<kBits, kPos + 1>(words, x, d);
  }
}

// Vector v of one tile: sum over groups of S * (D_g - ZF * X_g).
template <int kBits>
HWY_INLINE VF GemvTileVector(const TileStream& w, const uint8_t* HWY_RESTRICT tile, size_t v,
                             const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum) {
  const DF df;
  VF acc = hn::Zero(df);
  const uint8_t* p = tile;
  for (int64_t g = 0; g < w.groups; ++g) {
    const float* params = reinterpret_cast<const float*>(p);
    p += kParamBytes;
    const int64_t b0 = w.group_blocks[g], b1 = w.group_blocks[g + 1];
    if (b0 == b1) continue;
    VF d[kGemvChains];
    for (auto& e : d) e = hn::Zero(df);
    const float* xb = x + b0 * kBlock;
    for (int64_t b = b0; b < b1; ++b) {
      VU words[kBits];
      LoadWords<kBits>(p, v, words);
      GemvBlock<kBits, 0>(words, xb, d);
      p += kBits * kWordBytes;
      xb += kBlock;
    }
    VF dsum = d[0];
    for (int c = 1; c < kGemvChains; ++c) dsum = hn::Add(dsum, d[c]);
    const VF s = hn::Load(df, params + v * kL);
    const VF zf = hn::Load(df, params + kTileRows + v * kL);
    acc = hn::MulAdd(s, hn::NegMulAdd(zf, hn::Set(df, xsum[g]), dsum), acc);
  }
  return acc;
}

// Stores the L outputs of rows [n0, n0 + L) (+ bias), only those below n.
HWY_INLINE void StoreRows(VF out, const float* HWY_RESTRICT bias, int64_t n0, int64_t n,
                          float* HWY_RESTRICT y) {
  const DF df;
  if (n0 + static_cast<int64_t>(kL) <= n) {
    if (bias) out = hn::Add(out, hn::LoadU(df, bias + n0));
    hn::StoreU(out, df, y + n0);
  } else {
    HWY_ALIGN float tmp[kL];
    hn::Store(out, df, tmp);
    for (int64_t i = 0; n0 + i < n; ++i) y[n0 + i] = tmp[i] + (bias ? bias[n0 + i] : 0.0f);
  }
}

template <int kBits>
void GemvTilesT(const TileStream& w, const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum,
                const float* HWY_RESTRICT bias, int64_t t0, int64_t t1, float* HWY_RESTRICT y) {
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tile = w.data + t * w.tile_bytes;
    for (size_t v = 0; v < kNV; ++v) {
      const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
      if (n0 >= w.n) break;
      StoreRows(GemvTileVector<kBits>(w, tile, v, x, xsum), bias, n0, w.n, y);
    }
  }
}

void GemvTiles(const TileStream& w, const float* x, const float* xsum, const float* bias,
               int64_t t0, int64_t t1, float* y) {
  switch (w.bits) {
    case 2: return GemvTilesT<2>(w, x, xsum, bias, t0, t1, y);
    case 3: return GemvTilesT<3>(w, x, xsum, bias, t0, t1, y);
    case 4: return GemvTilesT<4>(w, x, xsum, bias, t0, t1, y);
    default: return GemvTilesT<8>(w, x, xsum, bias, t0, t1, y);
  }
}

// ----------------------------------------------------------------------------------- GEMM

// acc[r] += W_k * x[k][r] over the 32 positions of one block; x is the block's [32][kGemmChunk]
// slice of the transposed chunk, offset to the first row of this pass.
template <int kBits, int kR, int kPos>
HWY_INLINE void GemmBlock(const VU* words, VF s, VF zf, const float* HWY_RESTRICT x, VF* acc) {
  if constexpr (kPos < kBlock) {
    const DF df;
    const VF wv = hn::Mul(hn::Sub(Decode<kBits, kPos>(words), zf), s);  // = scale * (q - z)
    const float* xk = x + kPos * kGemmChunk;
    HWY_UNROLL(16)
    for (int r = 0; r < kR; ++r) acc[r] = hn::MulAdd(wv, hn::Set(df, xk[r]), acc[r]);
    GemmBlock<kBits, kR, kPos + 1>(words, s, zf, x, acc);
  }
}

template <int kBits, int kR>
HWY_INLINE void GemmTileVector(const TileStream& w, const uint8_t* HWY_RESTRICT tile, size_t v,
                               const float* HWY_RESTRICT xt, VF* acc) {
  const DF df;
  for (int r = 0; r < kR; ++r) acc[r] = hn::Zero(df);
  const uint8_t* p = tile;
  for (int64_t g = 0; g < w.groups; ++g) {
    const float* params = reinterpret_cast<const float*>(p);
    p += kParamBytes;
    const int64_t b0 = w.group_blocks[g], b1 = w.group_blocks[g + 1];
    if (b0 == b1) continue;
    const VF s = hn::Load(df, params + v * kL);
    const VF zf = hn::Load(df, params + kTileRows + v * kL);
    const float* xb = xt + b0 * kBlock * kGemmChunk;
    for (int64_t b = b0; b < b1; ++b) {
      VU words[kBits];
      LoadWords<kBits>(p, v, words);
      GemmBlock<kBits, kR, 0>(words, s, zf, xb, acc);
      p += kBits * kWordBytes;
      xb += kBlock * kGemmChunk;
    }
  }
}

template <int kBits, int kR>
HWY_INLINE void GemmPass(const TileStream& w, const uint8_t* tile, size_t v, const float* xt,
                         int64_t r0, int64_t nrows, const float* bias, int64_t n0, float* y,
                         int64_t ldy) {
  VF acc[kR];
  GemmTileVector<kBits, kR>(w, tile, v, xt + r0, acc);
  const int64_t m = std::min<int64_t>(kR, nrows - r0);
  for (int64_t r = 0; r < m; ++r) StoreRows(acc[r], bias, n0, w.n, y + (r0 + r) * ldy);
}

template <int kBits>
void GemmTilesT(const TileStream& w, const float* HWY_RESTRICT xt, int64_t rows,
                const float* HWY_RESTRICT bias, int64_t t0, int64_t t1, float* HWY_RESTRICT y,
                int64_t ldy) {
  const int64_t chunks = (rows + kGemmChunk - 1) / kGemmChunk;
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tile = w.data + t * w.tile_bytes;
    for (size_t v = 0; v < kNV; ++v) {
      const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
      if (n0 >= w.n) break;
      for (int64_t c = 0; c < chunks; ++c) {
        const float* xc = xt + c * w.kp * kGemmChunk;
        const int64_t m = std::min(kGemmChunk, rows - c * kGemmChunk);
        float* yc = y + c * kGemmChunk * ldy;
        for (int64_t r0 = 0; r0 < m;) {
          const int64_t left = m - r0;
          if (kGemmMaxR >= 16 && left > 8) {
            GemmPass<kBits, (kGemmMaxR >= 16 ? 16 : 8)>(w, tile, v, xc, r0, m, bias, n0, yc, ldy);
            r0 += kGemmMaxR >= 16 ? 16 : 8;
          } else if (left > 4) {
            GemmPass<kBits, 8>(w, tile, v, xc, r0, m, bias, n0, yc, ldy);
            r0 += 8;
          } else {
            GemmPass<kBits, 4>(w, tile, v, xc, r0, m, bias, n0, yc, ldy);
            r0 += 4;
          }
        }
      }
    }
  }
}

void GemmTiles(const TileStream& w, const float* xt, int64_t rows, const float* bias, int64_t t0,
               int64_t t1, float* y, int64_t ldy) {
  switch (w.bits) {
    case 2: return GemmTilesT<2>(w, xt, rows, bias, t0, t1, y, ldy);
    case 3: return GemmTilesT<3>(w, xt, rows, bias, t0, t1, y, ldy);
    case 4: return GemmTilesT<4>(w, xt, rows, bias, t0, t1, y, ldy);
    default: return GemmTilesT<8>(w, xt, rows, bias, t0, t1, y, ldy);
  }
}

// ------------------------------------------------------------------------------ dequantize

template <int kBits, int kPos>
HWY_INLINE void DequantBlock(const VU* words, VF s, VF zf, float* HWY_RESTRICT out, int64_t ldw) {
  if constexpr (kPos < kBlock) {
    const DF df;
    hn::StoreU(hn::Mul(hn::Sub(Decode<kBits, kPos>(words), zf), s), df, out + kPos * ldw);
    DequantBlock<kBits, kPos + 1>(words, s, zf, out, ldw);
  }
}

template <int kBits>
void DequantTilesT(const TileStream& w, int64_t t0, int64_t t1, float* HWY_RESTRICT wt,
                   int64_t ldw) {
  const DF df;
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tile = w.data + t * w.tile_bytes;
    for (size_t v = 0; v < kNV; ++v) {
      float* col = wt + (t - t0) * kTileRows + static_cast<int64_t>(v * kL);
      const uint8_t* p = tile;
      for (int64_t g = 0; g < w.groups; ++g) {
        const float* params = reinterpret_cast<const float*>(p);
        p += kParamBytes;
        const VF s = hn::Load(df, params + v * kL);
        const VF zf = hn::Load(df, params + kTileRows + v * kL);
        for (int64_t b = w.group_blocks[g]; b < w.group_blocks[g + 1]; ++b) {
          VU words[kBits];
          LoadWords<kBits>(p, v, words);
          DequantBlock<kBits, 0>(words, s, zf, col + b * kBlock * ldw, ldw);
          p += kBits * kWordBytes;
        }
      }
    }
  }
}

void DequantTiles(const TileStream& w, int64_t t0, int64_t t1, float* wt, int64_t ldw) {
  switch (w.bits) {
    case 2: return DequantTilesT<2>(w, t0, t1, wt, ldw);
    case 3: return DequantTilesT<3>(w, t0, t1, wt, ldw);
    case 4: return DequantTilesT<4>(w, t0, t1, wt, ldw);
    default: return DequantTilesT<8>(w, t0, t1, wt, ldw);
  }
}

// ------------------------------------------------------------------------------------ misc

float SumFloats(const float* HWY_RESTRICT p, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    a0 = hn::Add(a0, hn::LoadU(d, p + i));
    a1 = hn::Add(a1, hn::LoadU(d, p + i + lanes));
    a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * lanes));
    a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * lanes));
  }
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += p[i];
  return s;
}

const char* TargetNameHere() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace gptq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptq::kernels {

HWY_EXPORT(GemvTiles);
HWY_EXPORT(GemmTiles);
HWY_EXPORT(DequantTiles);
HWY_EXPORT(SumFloats);
HWY_EXPORT(TargetNameHere);

void gemv_tiles(const TileStream& w, const float* x, const float* xsum, const float* bias,
                int64_t t0, int64_t t1, float* y) {
  HWY_DYNAMIC_DISPATCH(GemvTiles)(w, x, xsum, bias, t0, t1, y);
}

void gemm_tiles(const TileStream& w, const float* xt, int64_t rows, const float* bias,
                int64_t t0, int64_t t1, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmTiles)(w, xt, rows, bias, t0, t1, y, ldy);
}

void dequant_tiles(const TileStream& w, int64_t t0, int64_t t1, float* wt, int64_t ldw) {
  HWY_DYNAMIC_DISPATCH(DequantTiles)(w, t0, t1, wt, ldw);
}

float sum_floats(const float* p, size_t n) { return HWY_DYNAMIC_DISPATCH(SumFloats)(p, n); }

const char* dispatch_target_name() { return HWY_DYNAMIC_DISPATCH(TargetNameHere)(); }

}  // namespace gptq::kernels
#endif  // HWY_ONCE
