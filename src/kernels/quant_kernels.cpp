// Highway implementations of the QuantLinear kernels (layout and math: quant_kernels.h). This
// file is compiled once per SIMD target (foreach_target.h); the exported wrappers at the bottom
// pick the best target of the CPU at run time (one dispatch point per entry).
//
// Vectors are at most 16 float lanes (CappedTag): a 16-row tile is kNV = 16 / L vectors (1 on
// AVX-512, 2 on AVX2, 4 on SSE4/EMU128, 16 on SCALAR), processed one after the other.
#include "kernels/quant_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

// Also compile the AVX3_DL target (AVX-512 VNNI/VBMI: Ice Lake, Zen 4) for its vpdpbusd int8 GEMV
// (AVX2 runs the int8 paths with vpmaddubsw).
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#ifndef GPTQ_KERNELS_QUANT_KERNELS_ONCE
#define GPTQ_KERNELS_QUANT_KERNELS_ONCE
namespace gptq::kernels {
namespace {

// GEMV scratch (gemv_prepare -> gemv_tiles), every part 64-byte aligned:
//   header   int64 target (HWY_TARGET that prepared it), int64 has_int8
//   x        float [kp]       activations in the kernel order (padding 0)
//   xsum     float [groups]   X_g = sum of x over group g
//   segscale float [blocks][4] per segment: s * 2^-b * {1, 2^-7, 2^-14} (int8 path only)
//   xq       int8 [3][kp]     the three planes x0, x1, x2, bytes in the kernel's order
//                             (xq_slot) so that 4 consecutive bytes feed one vpdpbusd
// A segment is a run of at most kSegBlocks blocks of one group (the int8 path's scale unit).
[[maybe_unused]] constexpr int64_t kSegBlocks = 4;

constexpr size_t align64(size_t v) {
  return (v + 63) / 64 * 64;
}

struct ScratchLayout {
  size_t x, xsum, segscale, xq, bytes;
  explicit ScratchLayout(const TileStream& w) {
    const int64_t blocks = w.group_blocks[w.groups];
    x = 64;
    xsum = x + align64(static_cast<size_t>(w.kp) * sizeof(float));
    segscale = xsum + align64(static_cast<size_t>(w.groups) * sizeof(float));
    xq = segscale + align64(static_cast<size_t>(blocks) * 4 * sizeof(float));
    bytes = xq + align64(3 * static_cast<size_t>(w.kp));
  }
};

struct ScratchHeader {
  int64_t target;
  int64_t has_int8;
};

// Int8 GEMM scratch (gemm_int8_prepare -> gemm_int8_tiles), rows padded to kInt8Rows (padding
// rows are zeros), every part 64-byte aligned:
//   xsum     float [rows][groups]  X_g of each row (float, as the GEMV)
//   segscale float [rows][segs]    s * 2^-b per row and segment (s = max|x| / 127 of the segment)
//   xq       int8 [rows][kp]       round(x / s), bytes in the xq_slot order
constexpr int64_t kInt8Rows = 8;  // activation rows per pass of the int8 GEMM

inline int64_t segments_of(const TileStream& w) {
  int64_t segs = 0;
  for (int64_t g = 0; g < w.groups; ++g)
    segs += (w.group_blocks[g + 1] - w.group_blocks[g] + kSegBlocks - 1) / kSegBlocks;
  return segs;
}

struct Int8GemmLayout {
  int64_t rows, segs;
  size_t xsum, segscale, xq, bytes;
  Int8GemmLayout(const TileStream& w, int64_t nrows)
      : rows((nrows + kInt8Rows - 1) / kInt8Rows * kInt8Rows), segs(segments_of(w)) {
    xsum = 0;
    segscale = xsum + align64(static_cast<size_t>(rows * w.groups) * sizeof(float));
    xq = segscale + align64(static_cast<size_t>(rows * segs) * sizeof(float));
    bytes = xq + align64(static_cast<size_t>(rows * w.kp));
  }
};

// Byte slot of block position pos in an int8 plane (the order the int8 kernels consume):
//   b = 8:    natural (a word holds 4 positions, one per byte)
//   b = 4:    per 8-position word: even positions (low nibbles) then odd ones (high nibbles)
//   b = 2, 3: per 16-position word: variant v = pos % 4 (bits [2v, 2v+2) of every byte), then
//             byte i = (pos % 16) / 4
// Whether the GEMV prefetches with the T0 hint far ahead rather than non-temporally near: the
// non-temporal setting was measured best on Zen 4 only (AMD with AVX-512); T0 wins on Intel and on
// Zen 3 (see PrefetchNta / PrefetchT0).
inline bool prefer_t0_prefetch() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool t0 = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return true;
    char vendor[13] = {};
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &c, 4);
    const bool amd = std::strcmp(vendor, "AuthenticAMD") == 0;
    const bool avx512f = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 16)) != 0;
    return !(amd && avx512f);
  }();
  return t0;
#else
  return false;
#endif
}

[[maybe_unused]] inline int xq_slot(int bits, int pos) {
  if (bits == 8) return pos;
  if (bits == 4) return (pos / 8) * 8 + (pos % 2) * 4 + (pos % 8) / 2;
  return (pos / 16) * 16 + (pos % 4) * 4 + (pos % 16) / 4;
}

}  // namespace
}  // namespace gptq::kernels
#endif  // GPTQ_KERNELS_QUANT_KERNELS_ONCE

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_kernels.cpp"
#include <hwy/cache_control.h>
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

constexpr size_t kL = hn::MaxLanes(DF());                    // float lanes per vector
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
    constexpr int kHiBit = 8 * (kJ / 4) + 4 * kWord + kJ % 4;
    const VU lo = ShiftBy<20 - 2 * kJ>(words[kWord]);  // bits [2j, 2j+2) -> [20, 22)
    const VU hi = ShiftBy<22 - kHiBit>(words[2]);      // plane bit -> bit 22
    return hn::BitCast(
        df, hn::OrAnd(hn::OrAnd(one, lo, hn::Set(du, 3u << 20)), hi, hn::Set(du, 1u << 22)));
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

// The GEMVs stream each tile once: software prefetch a fixed distance ahead of every part of the
// stream being read (a group's parameters, each block: 64 * bits bytes, so PrefetchAhead<2, Pf>
// covers the 128 parameter bytes). The best distance and hint depend on the core:
//   Zen 4 (one core, 11008 x 4096 4-bit, cold): 1024 bytes non-temporal is 20% faster than the
//     hardware prefetchers alone; T0/T1 hints and other distances do worse.
//   Sapphire Rapids (2 cores, the same layer cold, bench_kernels BM_QuantGemv): non-temporal at
//     1024-8192 bytes 12-15 GB/s, none 12-14 GB/s; T0 4096 bytes ahead 19-24 GB/s (memory
//     roofline 34 GB/s).
//   Zen 3 (2 cores, AVX2 int8 path, 5 alternating runs of 5): 11008 x 4096 median 13.2 GB/s
//     non-temporal, 15.6 GB/s T0; 4096 x 11008 12.2 / 12.9 GB/s.
// PrefetchNta on AMD cores with AVX-512 (Zen 4, 5), PrefetchT0 elsewhere (prefer_t0_prefetch()).
struct PrefetchNta {
  static constexpr int64_t kBytes = 1024;
  static constexpr int kLocality = 0;
};
struct PrefetchT0 {
  static constexpr int64_t kBytes = 4096;
  static constexpr int kLocality = 3;
};

template <int kBits, class Pf>
HWY_INLINE void PrefetchAhead(const uint8_t* block) {
  for (int64_t o = 0; o < kBits * kWordBytes; o += 64) {
#if HWY_COMPILER_GCC || HWY_COMPILER_CLANG
    __builtin_prefetch(block + Pf::kBytes + o, 0, Pf::kLocality);
#else
    hwy::Prefetch(block + Pf::kBytes + o);
#endif
  }
}

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
template <int kBits, class Pf>
HWY_INLINE VF GemvTileVector(const TileStream& w, const uint8_t* HWY_RESTRICT tile, size_t v,
                             const float* HWY_RESTRICT x, const float* HWY_RESTRICT xsum) {
  const DF df;
  VF acc = hn::Zero(df);
  const uint8_t* p = tile;
  for (int64_t g = 0; g < w.groups; ++g) {
    const float* params = reinterpret_cast<const float*>(p);
    if (v == 0) PrefetchAhead<2, Pf>(p);  // the group's 128 parameter bytes
    p += kParamBytes;
    const int64_t b0 = w.group_blocks[g], b1 = w.group_blocks[g + 1];
    if (b0 == b1) continue;
    VF d[kGemvChains];
    for (auto& e : d) e = hn::Zero(df);
    const float* xb = x + b0 * kBlock;
    for (int64_t b = b0; b < b1; ++b) {
      VU words[kBits];
      if (v == 0) PrefetchAhead<kBits, Pf>(p);
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

#undef GPTQ_INT8_GEMV  // this file is compiled once per target
#undef GPTQ_INT8_VNNI
#if HWY_TARGET == HWY_AVX3_DL && HWY_COMPILER_GCC_ACTUAL
#define GPTQ_INT8_GEMV 1
#define GPTQ_INT8_VNNI 1
// Highway 1.0.3's AVX3_DL target string names "avxvnni" (VEX) instead of "avx512vnni" (its
// run-time check does test AVX512_VNNI): add it for the rest of this target's pass (popped by
// HWY_AFTER_NAMESPACE).
#pragma GCC target("avx512vnni")
#elif HWY_TARGET == HWY_AVX2
// vpmaddubsw + vpmaddwd instead of vpdpbusd. (AVX3 without VNNI, Skylake-X, could do the same
// with the 512-bit forms; it keeps the float path: no such machine to measure it on.)
#define GPTQ_INT8_GEMV 1
#endif

#ifdef GPTQ_INT8_GEMV
// ------------------------------------------------------------- int8 GEMV (VNNI / vpmaddubsw)
using DI = hn::RebindToSigned<DF>;
using VI = hn::Vec<DI>;

#ifdef GPTQ_INT8_VNNI
constexpr int kInt8MaxBits = 8;
#else
// vpmaddubsw saturates its pair sums at int16. With codes of at most 4 bits and |x| <= 127 a
// pair is at most 2 * 15 * 127 = 3810, and the 8 code vectors of one block sum to at most
// 30480 < 2^15 in int16 before vpmaddwd widens them; 8-bit codes would saturate.
constexpr int kInt8MaxBits = 4;
using DI16 = hn::Repartition<int16_t, DF>;
using VI16 = hn::Vec<DI16>;

// The same 4 bytes of x in every 32-bit lane.
HWY_INLINE VU Broadcast4(const int8_t* HWY_RESTRICT x4) {
  uint32_t xv;
  std::memcpy(&xv, x4, 4);
  return hn::Set(DU(), xv);
}

// Lane halves c0 x0 + c1 x1 and c2 x2 + c3 x3 (codes u8, x s8) as int16 (vpmaddubsw).
HWY_INLINE VI16 MulPairs(VU codes, VU x) {
  return VI16{_mm256_maddubs_epi16(codes.raw, x.raw)};
}

// The two int16 halves of each lane summed into int32 (vpmaddwd by ones).
HWY_INLINE VI SumPairs(VI16 v) {
  return VI{_mm256_madd_epi16(v.raw, _mm256_set1_epi16(1))};
}
#endif  // GPTQ_INT8_VNNI

#ifdef GPTQ_INT8_VNNI
// acc += sum over the 4 bytes of each lane of codes (u8) * x (s8, the same 4 bytes broadcast).
HWY_INLINE VI Dot4(VI acc, VU codes, const int8_t* HWY_RESTRICT x4) {
  int32_t xv;
  std::memcpy(&xv, x4, 4);
  return VI{_mm512_dpbusd_epi32(acc.raw, codes.raw, _mm512_set1_epi32(xv))};
}

HWY_INLINE void Dot3(VI* a, int bank, VU codes, const int8_t* HWY_RESTRICT xq, int64_t plane,
                     int slot) {
  a[bank * 3 + 0] = Dot4(a[bank * 3 + 0], codes, xq + slot);
  a[bank * 3 + 1] = Dot4(a[bank * 3 + 1], codes, xq + plane + slot);
  a[bank * 3 + 2] = Dot4(a[bank * 3 + 2], codes, xq + 2 * plane + slot);
}
#endif

template <int I, int N, class F>
HWY_INLINE void StaticFor(F&& f) {
  if constexpr (I < N) {
    f(std::integral_constant<int, I>{});
    StaticFor<I + 1, N>(f);
  }
}

// The codes of one block (32 positions) as bytes, four positions per 32-bit lane, for kV
// consecutive vectors of the tile's rows (lanes [0, kV L) of each word): f(codes, slot, bank) with
// codes[kV] for each group of 4 positions, slot = its first byte in the xq_slot order, bank = 0 / 1
// alternating (two accumulator banks hide the vpdpbusd latency).
template <int kBits, int kV, class F>
HWY_INLINE void ForEachCodeBytes(const uint8_t* HWY_RESTRICT block, F&& f) {
  const DU du;
  const uint32_t* wp = reinterpret_cast<const uint32_t*>(block);
  const auto load = [&](int w, VU* words) {
    for (int i = 0; i < kV; ++i) words[i] = hn::Load(du, wp + w * kTileRows + i * kL);
  };
  VU word[kV], codes[kV];
  if constexpr (kBits == 8) {
    StaticFor<0, 8>([&](auto w) {
      load(w, word);
      f(word, w * 4, w % 2);
    });
  } else if constexpr (kBits == 4) {
    const VU m = hn::Set(du, 0x0F0F0F0Fu);
    StaticFor<0, 4>([&](auto w) {
      load(w, word);
      for (int i = 0; i < kV; ++i) codes[i] = hn::And(word[i], m);
      f(codes, w * 8, 0);
      for (int i = 0; i < kV; ++i) codes[i] = hn::And(hn::ShiftRight<4>(word[i]), m);
      f(codes, w * 8 + 4, 1);
    });
  } else if constexpr (kBits == 2) {
    const VU m = hn::Set(du, 0x03030303u);
    StaticFor<0, 2>([&](auto w) {
      load(w, word);
      StaticFor<0, 4>([&](auto v) {
        for (int i = 0; i < kV; ++i) codes[i] = hn::And(ShiftBy<-2 * v>(word[i]), m);
        f(codes, w * 16 + v * 4, v % 2);
      });
    });
  } else {  // 3: low 2 bits as b = 2, bit 2 from the plane word shifted into bit 2 of each byte
    const VU m = hn::Set(du, 0x03030303u), m2 = hn::Set(du, 0x04040404u);
    VU hi[kV];
    load(2, hi);
    StaticFor<0, 2>([&](auto w) {
      load(w, word);
      StaticFor<0, 4>([&](auto v) {
        for (int i = 0; i < kV; ++i)
          codes[i] =
              hn::OrAnd(hn::And(ShiftBy<-2 * v>(word[i]), m), ShiftBy<2 - 4 * w - v>(hi[i]), m2);
        f(codes, w * 16 + v * 4, v % 2);
      });
    });
  }
}

#ifdef GPTQ_INT8_VNNI
// One block of 16 rows for the GEMV: three vpdpbusd per 4 positions (one per x plane), the
// plane p's sums in a[p] + a[3 + p].
template <int kBits>
HWY_INLINE void GemvBlockInt8(const uint8_t* HWY_RESTRICT block, const int8_t* HWY_RESTRICT xq,
                              int64_t plane, VI* a) {
  ForEachCodeBytes<kBits, 1>(block, [&](const VU* codes, int slot, int bank) {
    Dot3(a, bank, codes[0], xq, plane, slot);
  });
}
#else
// a[i kR + r] += sum over one block of codes_i * x_r, for the kV vectors i of the tile from
// `block` on and kR int8 rows x_r = x + r * stride (the GEMV's three planes, or the int8 GEMM's
// activation rows): vpmaddubsw per 4 positions, vector and row, the block's int16 pair sums
// widened once (bound at kInt8MaxBits). The int16 sums use the saturating add, which never
// saturates here (the bound) but, unlike the wrapping one, is not reassociated by the compiler into
// a tree that keeps every product live (and spills them).
template <int kBits, int kV, int kR>
HWY_INLINE void BlockDotRows(const uint8_t* HWY_RESTRICT block, const int8_t* HWY_RESTRICT x,
                             int64_t stride, VI* a) {
  const DI16 d16;
  VI16 s[kV * kR];
  for (auto& e : s) e = hn::Zero(d16);
  ForEachCodeBytes<kBits, kV>(block, [&](const VU* codes, int slot, int) {
    HWY_UNROLL(8)
    for (int r = 0; r < kR; ++r) {
      const VU xr = Broadcast4(x + r * stride + slot);
      for (int i = 0; i < kV; ++i)
        s[i * kR + r] = hn::SaturatedAdd(s[i * kR + r], MulPairs(codes[i], xr));
    }
  });
  for (int j = 0; j < kV * kR; ++j) a[j] = hn::Add(a[j], SumPairs(s[j]));
}

// One block of 16 rows for the GEMV (all kNV vectors at once: the x bytes are broadcast once),
// the plane p's sums of vector i in a[3 i + p].
template <int kBits>
HWY_INLINE void GemvBlockInt8(const uint8_t* HWY_RESTRICT block, const int8_t* HWY_RESTRICT xq,
                              int64_t plane, VI* a) {
  BlockDotRows<kBits, static_cast<int>(kNV), 3>(block, xq, plane, a);
}
#endif

// Accumulators of GemvBlockInt8 and the sum of plane p for vector i of the tile.
#ifdef GPTQ_INT8_VNNI
constexpr int kGemvInt8Acc = 6;
HWY_INLINE VI PlaneSum(const VI* a, size_t, int p) {
  return hn::Add(a[p], a[3 + p]);
}
#else
constexpr int kGemvInt8Acc = 3 * static_cast<int>(kNV);
HWY_INLINE VI PlaneSum(const VI* a, size_t i, int p) {
  return a[3 * i + static_cast<size_t>(p)];
}
#endif

// One tile: out[i] = the rows [i L, i L + L) of the tile.
template <int kBits, class Pf>
HWY_INLINE void GemvTileInt8(const TileStream& w, const uint8_t* HWY_RESTRICT tile,
                             const float* HWY_RESTRICT xsum, const float* HWY_RESTRICT segscale,
                             const int8_t* HWY_RESTRICT xq, VF* out) {
  const DF df;
  const DI di;
  for (size_t i = 0; i < kNV; ++i) out[i] = hn::Zero(df);
  const uint8_t* p = tile;
  int64_t seg = 0;
  for (int64_t g = 0; g < w.groups; ++g) {
    const float* params = reinterpret_cast<const float*>(p);
    PrefetchAhead<2, Pf>(p);  // the group's 128 parameter bytes
    p += kParamBytes;
    const int64_t b0 = w.group_blocks[g], b1 = w.group_blocks[g + 1];
    if (b0 == b1) continue;
    VF dq[kNV];  // 2^-b sum_k q_k x_k over the group
    for (auto& e : dq) e = hn::Zero(df);
    for (int64_t sb = b0; sb < b1; sb += kSegBlocks, ++seg) {
      const int64_t se = std::min(sb + kSegBlocks, b1);
      VI a[kGemvInt8Acc];
      for (auto& e : a) e = hn::Zero(di);
      for (int64_t b = sb; b < se; ++b) {
        PrefetchAhead<kBits, Pf>(p);
        GemvBlockInt8<kBits>(p, xq + b * kBlock, w.kp, a);
        p += kBits * kWordBytes;
      }
      const float* sc = segscale + seg * 4;
      for (size_t i = 0; i < kNV; ++i) {
        dq[i] = hn::MulAdd(hn::ConvertTo(df, PlaneSum(a, i, 0)), hn::Set(df, sc[0]), dq[i]);
        dq[i] = hn::MulAdd(hn::ConvertTo(df, PlaneSum(a, i, 1)), hn::Set(df, sc[1]), dq[i]);
        dq[i] = hn::MulAdd(hn::ConvertTo(df, PlaneSum(a, i, 2)), hn::Set(df, sc[2]), dq[i]);
      }
    }
    for (size_t i = 0; i < kNV; ++i) {
      const VF sg = hn::Load(df, params + i * kL);
      const VF zq = hn::Sub(hn::Load(df, params + kTileRows + i * kL), hn::Set(df, 1.0f));  // z/2^b
      out[i] = hn::MulAdd(sg, hn::NegMulAdd(zq, hn::Set(df, xsum[g]), dq[i]), out[i]);
    }
  }
}

// Int8 GEMM: kInt8Rows activation rows x one 16-row tile, one vpdpbusd (AVX2: vpmaddubsw) per 4
// positions and row
// (x as one int8 plane per segment: llama.cpp's q8 activations, not the GEMV's exact planes).
// Vector v of the tile as in the GEMV. The first pass over a tile (r0 = 0, v = 0) prefetches it
// as the GEMV does (the weights stream from memory once; later passes find them in cache).
template <int kBits, class Pf>
HWY_INLINE void GemmPassInt8(const TileStream& w, const uint8_t* HWY_RESTRICT tile, size_t v,
                             const Int8GemmLayout& lay, const uint8_t* HWY_RESTRICT scratch,
                             int64_t r0, VF* acc) {
  const bool prefetch = r0 == 0 && v == 0;
  const DF df;
  const DI di;
  const int8_t* xq = reinterpret_cast<const int8_t*>(scratch + lay.xq) + r0 * w.kp;
  const float* segscale = reinterpret_cast<const float*>(scratch + lay.segscale) + r0 * lay.segs;
  const float* xsum = reinterpret_cast<const float*>(scratch + lay.xsum) + r0 * w.groups;
  for (int r = 0; r < kInt8Rows; ++r) acc[r] = hn::Zero(df);
  const uint8_t* p = tile;
  int64_t seg = 0;
  for (int64_t g = 0; g < w.groups; ++g) {
    const float* params = reinterpret_cast<const float*>(p) + v * kL;
    if (prefetch) PrefetchAhead<2, Pf>(p);
    p += kParamBytes;
    const int64_t b0 = w.group_blocks[g], b1 = w.group_blocks[g + 1];
    if (b0 == b1) continue;
    VF dq[kInt8Rows];  // 2^-b sum_k q_k x_k over the group, per row
    for (auto& e : dq) e = hn::Zero(df);
    for (int64_t sb = b0; sb < b1; sb += kSegBlocks, ++seg) {
      const int64_t se = std::min(sb + kSegBlocks, b1);
      VI a[kInt8Rows];
      for (auto& e : a) e = hn::Zero(di);
      for (int64_t b = sb; b < se; ++b) {
        const int8_t* xb = xq + b * kBlock;
        const uint8_t* codes_v = p + v * kL * sizeof(uint32_t);
        if (prefetch) PrefetchAhead<kBits, Pf>(p);
#ifdef GPTQ_INT8_VNNI
        ForEachCodeBytes<kBits, 1>(codes_v, [&](const VU* codes, int slot, int) {
          HWY_UNROLL(8)
          for (int r = 0; r < kInt8Rows; ++r) a[r] = Dot4(a[r], codes[0], xb + r * w.kp + slot);
        });
#else
        BlockDotRows<kBits, 1, kInt8Rows>(codes_v, xb, w.kp, a);
#endif
        p += kBits * kWordBytes;
      }
      for (int r = 0; r < kInt8Rows; ++r)
        dq[r] =
            hn::MulAdd(hn::ConvertTo(df, a[r]), hn::Set(df, segscale[r * lay.segs + seg]), dq[r]);
    }
    const VF sc = hn::Load(df, params);
    const VF zq = hn::Sub(hn::Load(df, params + kTileRows), hn::Set(df, 1.0f));  // z / 2^b
    for (int r = 0; r < kInt8Rows; ++r)
      acc[r] =
          hn::MulAdd(sc, hn::NegMulAdd(zq, hn::Set(df, xsum[r * w.groups + g]), dq[r]), acc[r]);
  }
}

template <int kBits, class Pf>
void GemmInt8TilesT(const TileStream& w, const uint8_t* HWY_RESTRICT scratch, int64_t rows,
                    const float* HWY_RESTRICT bias, int64_t t0, int64_t t1, float* HWY_RESTRICT y,
                    int64_t ldy) {
  const Int8GemmLayout lay(w, rows);
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tile = w.data + t * w.tile_bytes;
    for (int64_t r0 = 0; r0 < rows; r0 += kInt8Rows) {
      for (size_t v = 0; v < kNV; ++v) {
        const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
        if (n0 >= w.n) break;
        VF acc[kInt8Rows];
        GemmPassInt8<kBits, Pf>(w, tile, v, lay, scratch, r0, acc);
        const int64_t m = std::min(kInt8Rows, rows - r0);
        for (int64_t r = 0; r < m; ++r) StoreRows(acc[r], bias, n0, w.n, y + (r0 + r) * ldy);
      }
    }
  }
}
#endif  // GPTQ_INT8_GEMV

// Int8 GEMM over the tiles [t0, t1) from a scratch of gemm_int8_prepare (usable on this target).
#ifdef GPTQ_INT8_GEMV
template <class Pf>
void GemmInt8TilesWith(const TileStream& w, const uint8_t* scratch, int64_t rows, const float* bias,
                       int64_t t0, int64_t t1, float* y, int64_t ldy) {
  switch (w.bits) {
    case 2:
      return GemmInt8TilesT<2, Pf>(w, scratch, rows, bias, t0, t1, y, ldy);
    case 3:
      return GemmInt8TilesT<3, Pf>(w, scratch, rows, bias, t0, t1, y, ldy);
    case 4:
      return GemmInt8TilesT<4, Pf>(w, scratch, rows, bias, t0, t1, y, ldy);
    default:  // 8 (where kInt8MaxBits allows it: prepare refused the scratch otherwise)
      if constexpr (kInt8MaxBits >= 8)
        GemmInt8TilesT<8, Pf>(w, scratch, rows, bias, t0, t1, y, ldy);
      return;
  }
}
#endif

void GemmInt8Tiles(const TileStream& w, const uint8_t* scratch, int64_t rows, const float* bias,
                   int64_t t0, int64_t t1, float* y, int64_t ldy) {
#ifdef GPTQ_INT8_GEMV
  if (prefer_t0_prefetch())
    return GemmInt8TilesWith<PrefetchT0>(w, scratch, rows, bias, t0, t1, y, ldy);
  GemmInt8TilesWith<PrefetchNta>(w, scratch, rows, bias, t0, t1, y, ldy);
#else
  (void)w, (void)scratch, (void)rows, (void)bias, (void)t0, (void)t1, (void)y, (void)ldy;
#endif
}

// Rows [r0, r1) of x [rows, ldx] (input order) quantized per segment for the int8 GEMM; the call
// that ends at `rows` also zeroes the padding rows. Returns whether the int8 GEMM can run: on the
// int8 targets (AVX2, AVX3_DL) only, codes of at most kInt8MaxBits bits, with finite
// activations in these rows.
bool GemmInt8Prepare(const TileStream& w, const int32_t* HWY_RESTRICT perm,
                     const float* HWY_RESTRICT x, int64_t rows, int64_t ldx, int64_t r0, int64_t r1,
                     uint8_t* HWY_RESTRICT scratch) {
#ifdef GPTQ_INT8_GEMV
  if (w.bits > kInt8MaxBits) return false;
  const Int8GemmLayout lay(w, rows);
  float* xsum = reinterpret_cast<float*>(scratch + lay.xsum);
  float* segscale = reinterpret_cast<float*>(scratch + lay.segscale);
  int8_t* xq = reinterpret_cast<int8_t*>(scratch + lay.xq);
  const int64_t r_end = r1 == rows ? lay.rows : r1;  // padding rows: all zero
  std::fill(xsum + r0 * w.groups, xsum + r_end * w.groups, 0.0f);
  std::fill(segscale + r0 * lay.segs, segscale + r_end * lay.segs, 0.0f);
  std::fill(xq + r0 * w.kp, xq + r_end * w.kp, int8_t{0});
  const float inv_two_b = 1.0f / static_cast<float>(1 << w.bits);
  std::vector<float> xk(static_cast<size_t>(w.kp));
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * ldx;
    for (int64_t i = 0; i < w.kp; ++i) {
      xk[i] = perm ? (perm[i] >= 0 ? xr[perm[i]] : 0.0f) : xr[i];
      if (!std::isfinite(xk[i])) return false;  // inf/NaN: the float GEMM propagates them
    }
    int64_t seg = 0;
    for (int64_t g = 0; g < w.groups; ++g) {
      double sum = 0.0;
      const int64_t gb1 = w.group_blocks[g + 1];
      for (int64_t sb = w.group_blocks[g]; sb < gb1; sb += kSegBlocks, ++seg) {
        const int64_t se = std::min(sb + kSegBlocks, gb1);
        float amax = 0.0f;
        for (int64_t i = sb * kBlock; i < se * kBlock; ++i) {
          amax = std::max(amax, std::abs(xk[i]));
          sum += xk[i];
        }
        // A segment whose max is below kTiny is taken as 0 (error < kTiny |W|; 1 / s stays finite).
        constexpr float kTiny = 1e-30f;
        const float s = amax >= kTiny ? amax / 127.0f : 1.0f;
        const float inv = amax >= kTiny ? 1.0f / s : 0.0f;
        segscale[r * lay.segs + seg] = s * inv_two_b;
        for (int64_t b = sb; b < se; ++b)
          for (int pos = 0; pos < kBlock; ++pos)
            xq[r * w.kp + b * kBlock + xq_slot(w.bits, pos)] = static_cast<int8_t>(
                std::nearbyint(std::clamp(xk[b * kBlock + pos] * inv, -127.0f, 127.0f)));
      }
      xsum[r * w.groups + g] = static_cast<float>(sum);
    }
  }
  return true;
#else
  (void)w, (void)perm, (void)x, (void)rows, (void)ldx, (void)r0, (void)r1, (void)scratch;
  return false;
#endif
}

template <int kBits, class Pf>
void GemvTilesT(const TileStream& w, const uint8_t* HWY_RESTRICT scratch,
                const float* HWY_RESTRICT bias, int64_t t0, int64_t t1, float* HWY_RESTRICT y) {
  const ScratchLayout lay(w);
  const float* x = reinterpret_cast<const float*>(scratch + lay.x);
  const float* xsum = reinterpret_cast<const float*>(scratch + lay.xsum);
#ifdef GPTQ_INT8_GEMV
  ScratchHeader h;
  std::memcpy(&h, scratch, sizeof(h));
  // (has_int8 is never set for wider codes than kInt8MaxBits: no such instantiation.)
  if constexpr (kBits <= kInt8MaxBits) {
    if (h.target == HWY_TARGET && h.has_int8) {
      const float* segscale = reinterpret_cast<const float*>(scratch + lay.segscale);
      const int8_t* xq = reinterpret_cast<const int8_t*>(scratch + lay.xq);
      for (int64_t t = t0; t < t1; ++t) {
        VF out[kNV];
        GemvTileInt8<kBits, Pf>(w, w.data + t * w.tile_bytes, xsum, segscale, xq, out);
        for (size_t v = 0; v < kNV; ++v) {
          const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
          if (n0 >= w.n) break;
          StoreRows(out[v], bias, n0, w.n, y);
        }
      }
      return;
    }
  }
#endif
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tile = w.data + t * w.tile_bytes;
    for (size_t v = 0; v < kNV; ++v) {
      const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
      if (n0 >= w.n) break;
      StoreRows(GemvTileVector<kBits, Pf>(w, tile, v, x, xsum), bias, n0, w.n, y);
    }
  }
}

template <class Pf>
void GemvTilesWith(const TileStream& w, const uint8_t* scratch, const float* bias, int64_t t0,
                   int64_t t1, float* y) {
  switch (w.bits) {
    case 2:
      return GemvTilesT<2, Pf>(w, scratch, bias, t0, t1, y);
    case 3:
      return GemvTilesT<3, Pf>(w, scratch, bias, t0, t1, y);
    case 4:
      return GemvTilesT<4, Pf>(w, scratch, bias, t0, t1, y);
    default:
      return GemvTilesT<8, Pf>(w, scratch, bias, t0, t1, y);
  }
}

void GemvTiles(const TileStream& w, const uint8_t* scratch, const float* bias, int64_t t0,
               int64_t t1, float* y) {
  if (prefer_t0_prefetch()) return GemvTilesWith<PrefetchT0>(w, scratch, bias, t0, t1, y);
  GemvTilesWith<PrefetchNta>(w, scratch, bias, t0, t1, y);
}

// x in the kernel order, group sums (double accumulation: they are subtracted from the dot
// products), and on the int8 target the three int8 planes with their segment scales.
void GemvPrepare(const TileStream& w, const int32_t* HWY_RESTRICT perm,
                 const float* HWY_RESTRICT x_in, uint8_t* HWY_RESTRICT scratch) {
  const ScratchLayout lay(w);
  float* x = reinterpret_cast<float*>(scratch + lay.x);
  float* xsum = reinterpret_cast<float*>(scratch + lay.xsum);
  if (perm) {
    for (int64_t i = 0; i < w.kp; ++i) x[i] = perm[i] >= 0 ? x_in[perm[i]] : 0.0f;
  } else {
    std::memcpy(x, x_in, static_cast<size_t>(w.kp) * sizeof(float));
  }
  for (int64_t g = 0; g < w.groups; ++g) {
    double s = 0.0;
    for (int64_t i = w.group_blocks[g] * kBlock; i < w.group_blocks[g + 1] * kBlock; ++i) s += x[i];
    xsum[g] = static_cast<float>(s);
  }
  ScratchHeader h{HWY_TARGET, 0};
#ifdef GPTQ_INT8_GEMV
  // Non-finite or vanishing activations take the float path (it propagates inf/NaN as the
  // reference does; a segment whose max is below kTiny is taken as 0, error < 2^7 kTiny |W|).
  constexpr float kTiny = 1e-30f;
  bool finite = true;
  float gmax = 0.0f;
  for (int64_t i = 0; i < w.kp; ++i) {
    finite = finite && std::isfinite(x[i]);
    gmax = std::max(gmax, std::abs(x[i]));
  }
  h.has_int8 = finite && gmax >= kTiny && w.bits <= kInt8MaxBits;
  float* segscale = reinterpret_cast<float*>(scratch + lay.segscale);
  int8_t* xq = reinterpret_cast<int8_t*>(scratch + lay.xq);
  const float inv_two_b = 1.0f / static_cast<float>(1 << w.bits);
  int64_t seg = 0;
  for (int64_t g = 0; h.has_int8 && g < w.groups; ++g) {
    for (int64_t sb = w.group_blocks[g]; sb < w.group_blocks[g + 1]; sb += kSegBlocks, ++seg) {
      const int64_t se = std::min(sb + kSegBlocks, static_cast<int64_t>(w.group_blocks[g + 1]));
      float amax = 0.0f;
      for (int64_t i = sb * kBlock; i < se * kBlock; ++i) amax = std::max(amax, std::abs(x[i]));
      const float s = amax >= kTiny ? amax / 127.0f : 1.0f;
      const float inv = 1.0f / s;
      segscale[seg * 4 + 0] = s * inv_two_b;
      segscale[seg * 4 + 1] = s * inv_two_b * (1.0f / 128.0f);
      segscale[seg * 4 + 2] = s * inv_two_b * (1.0f / 16384.0f);
      segscale[seg * 4 + 3] = 0.0f;
      for (int64_t b = sb; b < se; ++b) {
        for (int pos = 0; pos < kBlock; ++pos) {
          // x / s in [-127, 127] (|x| <= amax; the product may round just past 127).
          const float t = std::clamp(x[b * kBlock + pos] * inv, -127.0f, 127.0f);
          const float x0 = std::nearbyint(t);
          const float r1 = (t - x0) * 128.0f;  // exact, in [-64, 64]
          const float x1 = std::nearbyint(r1);
          const float x2 = std::nearbyint((r1 - x1) * 128.0f);
          const int64_t o = b * kBlock + xq_slot(w.bits, pos);
          xq[o] = static_cast<int8_t>(x0);
          xq[w.kp + o] = static_cast<int8_t>(x1);
          xq[2 * w.kp + o] = static_cast<int8_t>(x2);
        }
      }
    }
  }
#endif
  std::memcpy(scratch, &h, sizeof(h));
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
  // Chunks of 16 activation rows outermost: the chunk's transposed x (64 B per position) stays
  // in L2 while the tiles of this range stream by (re-read per chunk, from L2/L3).
  const int64_t chunks = (rows + kGemmChunk - 1) / kGemmChunk;
  for (int64_t c = 0; c < chunks; ++c) {
    const float* xc = xt + c * w.kp * kGemmChunk;
    const int64_t m = std::min(kGemmChunk, rows - c * kGemmChunk);
    float* yc = y + c * kGemmChunk * ldy;
    for (int64_t t = t0; t < t1; ++t) {
      const uint8_t* tile = w.data + t * w.tile_bytes;
      for (size_t v = 0; v < kNV; ++v) {
        const int64_t n0 = t * kTileRows + static_cast<int64_t>(v * kL);
        if (n0 >= w.n) break;
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
    case 2:
      return GemmTilesT<2>(w, xt, rows, bias, t0, t1, y, ldy);
    case 3:
      return GemmTilesT<3>(w, xt, rows, bias, t0, t1, y, ldy);
    case 4:
      return GemmTilesT<4>(w, xt, rows, bias, t0, t1, y, ldy);
    default:
      return GemmTilesT<8>(w, xt, rows, bias, t0, t1, y, ldy);
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
    case 2:
      return DequantTilesT<2>(w, t0, t1, wt, ldw);
    case 3:
      return DequantTilesT<3>(w, t0, t1, wt, ldw);
    case 4:
      return DequantTilesT<4>(w, t0, t1, wt, ldw);
    default:
      return DequantTilesT<8>(w, t0, t1, wt, ldw);
  }
}

// ------------------------------------------------------------------------------------ misc

// Sum of p[0, n) read as `streams` (1 or 4) concurrent sequential streams (more streams: more
// memory-level parallelism for the hardware prefetchers).
float SumFloats(const float* HWY_RESTRICT p, size_t n, int streams) {
  const hn::ScalableTag<float> d;
  const size_t lanes = hn::Lanes(d);
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  float s = 0.0f;
  if (streams >= 4) {
    const size_t q = n / 4 / lanes * lanes;  // each stream: q floats
    const float* p1 = p + q;
    const float* p2 = p + 2 * q;
    const float* p3 = p + 3 * q;
    for (size_t i = 0; i < q; i += lanes) {
      a0 = hn::Add(a0, hn::LoadU(d, p + i));
      a1 = hn::Add(a1, hn::LoadU(d, p1 + i));
      a2 = hn::Add(a2, hn::LoadU(d, p2 + i));
      a3 = hn::Add(a3, hn::LoadU(d, p3 + i));
    }
    for (size_t i = 4 * q; i < n; ++i) s += p[i];
  } else {
    size_t i = 0;
    for (; i + 4 * lanes <= n; i += 4 * lanes) {
      a0 = hn::Add(a0, hn::LoadU(d, p + i));
      a1 = hn::Add(a1, hn::LoadU(d, p + i + lanes));
      a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * lanes));
      a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * lanes));
    }
    for (; i < n; ++i) s += p[i];
  }
  return s + hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

const char* TargetNameHere() {
  return hwy::TargetName(HWY_TARGET);
}

int Int8MaxBitsHere() {
#ifdef GPTQ_INT8_GEMV
  return kInt8MaxBits;
#else
  return 0;
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace gptq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptq::kernels {

HWY_EXPORT(GemvPrepare);
HWY_EXPORT(GemvTiles);
HWY_EXPORT(GemmTiles);
HWY_EXPORT(GemmInt8Prepare);
HWY_EXPORT(GemmInt8Tiles);
HWY_EXPORT(DequantTiles);
HWY_EXPORT(SumFloats);
HWY_EXPORT(TargetNameHere);
HWY_EXPORT(Int8MaxBitsHere);

size_t gemv_scratch_bytes(const TileStream& w) {
  return ScratchLayout(w).bytes;
}

void gemv_prepare(const TileStream& w, const int32_t* perm, const float* x, uint8_t* scratch) {
  HWY_DYNAMIC_DISPATCH(GemvPrepare)(w, perm, x, scratch);
}

void gemv_tiles(const TileStream& w, const uint8_t* scratch, const float* bias, int64_t t0,
                int64_t t1, float* y) {
  HWY_DYNAMIC_DISPATCH(GemvTiles)(w, scratch, bias, t0, t1, y);
}

void gemm_tiles(const TileStream& w, const float* xt, int64_t rows, const float* bias, int64_t t0,
                int64_t t1, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmTiles)(w, xt, rows, bias, t0, t1, y, ldy);
}

size_t gemm_int8_scratch_bytes(const TileStream& w, int64_t rows) {
  return Int8GemmLayout(w, rows).bytes;
}

bool gemm_int8_prepare(const TileStream& w, const int32_t* perm, const float* x, int64_t rows,
                       int64_t ldx, int64_t r0, int64_t r1, uint8_t* scratch) {
  return HWY_DYNAMIC_DISPATCH(GemmInt8Prepare)(w, perm, x, rows, ldx, r0, r1, scratch);
}

void gemm_int8_tiles(const TileStream& w, const uint8_t* scratch, int64_t rows, const float* bias,
                     int64_t t0, int64_t t1, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemmInt8Tiles)(w, scratch, rows, bias, t0, t1, y, ldy);
}

void dequant_tiles(const TileStream& w, int64_t t0, int64_t t1, float* wt, int64_t ldw) {
  HWY_DYNAMIC_DISPATCH(DequantTiles)(w, t0, t1, wt, ldw);
}

float sum_floats(const float* p, size_t n, int streams) {
  return HWY_DYNAMIC_DISPATCH(SumFloats)(p, n, streams);
}

int64_t compiled_targets() {
  return HWY_TARGETS;
}

const char* dispatch_target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetNameHere)();
}

bool int8_kernels(int bits) {
  return bits <= HWY_DYNAMIC_DISPATCH(Int8MaxBitsHere)();
}

}  // namespace gptq::kernels
#endif  // HWY_ONCE
