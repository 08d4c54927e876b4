// Highway implementation of half_gemv (accumulation order: half_gemv.h). This file is compiled
// once per SIMD target (foreach_target.h); the wrappers at the bottom dispatch at run time.
//
// Loads: bfloat16 is the top half of a float (shift left by 16: exact); binary16 is promoted with
// the F16C instruction (vcvtph2ps, exact) on x86 AVX2 and better. Targets without an exact vector
// conversion, and data at an odd address, convert each row first (util/fp16.h, the same exact
// values) into a float buffer and run the same accumulation over it: the results are identical.
#include "kernels/half_gemv.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/fp16.h"
#include "util/thread_pool.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/half_gemv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace gptq {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#include "util/hwy_native_f16.h"  // NOLINT(build/include): per target

using DF = hn::ScalableTag<float>;
using DU32 = hn::RebindToUnsigned<DF>;
using DU16 = hn::Rebind<uint16_t, DF>;  // as many u16 lanes as float lanes
using DF16 = hn::Rebind<hwy::float16_t, DF>;
using VF = hn::Vec<DF>;

// Element loaders: L floats from element i of a row.
struct LoadF16 {  // used only where kNativeF16
  using T = uint16_t;
  HWY_INLINE VF operator()(const T* HWY_RESTRICT row, size_t i) const {
    return hn::PromoteTo(DF(), hn::BitCast(DF16(), hn::LoadU(DU16(), row + i)));
  }
};
struct LoadBF16 {
  using T = uint16_t;
  HWY_INLINE VF operator()(const T* HWY_RESTRICT row, size_t i) const {
    return hn::BitCast(DF(), hn::ShiftLeft<16>(hn::PromoteTo(DU32(), hn::LoadU(DU16(), row + i))));
  }
};
struct LoadF32 {
  using T = float;
  HWY_INLINE VF operator()(const T* HWY_RESTRICT row, size_t i) const {
    return hn::LoadU(DF(), row + i);
  }
};

// y[r] = row r . x for the R rows rows[r] (k elements each); order: half_gemv.h.
template <size_t R, class Load>
HWY_INLINE void DotRows(const Load& load, const typename Load::T* const* rows,
                        const float* HWY_RESTRICT x, size_t k, float* HWY_RESTRICT y) {
  using T = typename Load::T;
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF a0[R], a1[R];
  for (size_t r = 0; r < R; ++r) a0[r] = a1[r] = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * lanes <= k; i += 2 * lanes) {
    const VF x0 = hn::LoadU(df, x + i);
    const VF x1 = hn::LoadU(df, x + i + lanes);
    for (size_t r = 0; r < R; ++r) {
      a0[r] = hn::MulAdd(load(rows[r], i), x0, a0[r]);
      a1[r] = hn::MulAdd(load(rows[r], i + lanes), x1, a1[r]);
    }
  }
  bool odd = false;  // the next slice goes into a1
  if (i + lanes <= k) {
    const VF x0 = hn::LoadU(df, x + i);
    for (size_t r = 0; r < R; ++r) a0[r] = hn::MulAdd(load(rows[r], i), x0, a0[r]);
    i += lanes;
    odd = true;
  }
  if (i < k) {  // the last, partial slice: zero-padded copies (its loads must not pass the end)
    const size_t m = k - i;
    HWY_ALIGN float xt[hn::MaxLanes(df)] = {};
    HWY_ALIGN T wt[hn::MaxLanes(df)] = {};
    std::memcpy(xt, x + i, m * sizeof(float));
    const VF x0 = hn::Load(df, xt);
    for (size_t r = 0; r < R; ++r) {
      std::memcpy(wt, rows[r] + i, m * sizeof(T));
      VF& a = odd ? a1[r] : a0[r];
      a = hn::MulAdd(load(wt, 0), x0, a);
    }
  }
  for (size_t r = 0; r < R; ++r) y[r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0[r], a1[r])));
}

// Rows at a time (sharing the loads of x): 2 accumulators each stay in registers (32 vector
// registers on AVX-512, 16 on AVX2).
#if HWY_TARGET <= HWY_AVX3
constexpr int64_t kRows = 8;
#else
constexpr int64_t kRows = 4;
#endif

// Rows [r0, r1) of W, kRows at a time.
template <class Load>
HWY_INLINE void DotRange(const Load& load, const typename Load::T* HWY_RESTRICT w, size_t k,
                         const float* HWY_RESTRICT x, int64_t r0, int64_t r1,
                         float* HWY_RESTRICT y) {
  using T = typename Load::T;
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    const T* rows[kRows];
    for (int64_t j = 0; j < kRows; ++j) rows[j] = w + static_cast<size_t>(r + j) * k;
    DotRows<kRows>(load, rows, x, k, y + (r - r0));
  }
  for (; r < r1; ++r) {
    const T* rows[1] = {w + static_cast<size_t>(r) * k};
    DotRows<1>(load, rows, x, k, y + (r - r0));
  }
}

// One row at a time through a float copy (no exact vector load for this target or alignment).
void DotRangeConverted(HalfType type, const uint8_t* w, size_t k, const float* HWY_RESTRICT x,
                       int64_t r0, int64_t r1, float* HWY_RESTRICT y) {
  thread_local std::vector<uint16_t> bits;
  thread_local std::vector<float> row;
  bits.resize(k);
  row.resize(k);
  for (int64_t r = r0; r < r1; ++r) {
    std::memcpy(bits.data(), w + static_cast<size_t>(r) * k * 2, k * 2);
    if (type == HalfType::kF16)
      f16_to_f32(bits.data(), row.data(), k);
    else
      bf16_to_f32(bits.data(), row.data(), k);
    const float* rows[1] = {row.data()};
    DotRows<1>(LoadF32(), rows, x, k, y + (r - r0));
  }
}

void HalfGemvRows(HalfType type, const void* w, int64_t k, const float* HWY_RESTRICT x, int64_t r0,
                  int64_t r1, float* HWY_RESTRICT y) {
  const size_t kk = static_cast<size_t>(k);
  const bool aligned = reinterpret_cast<uintptr_t>(w) % alignof(uint16_t) == 0;
  if (aligned && type == HalfType::kBF16) {
    DotRange(LoadBF16(), static_cast<const uint16_t*>(w), kk, x, r0, r1, y);
    return;
  }
  if constexpr (kNativeF16) {
    if (aligned) {
      DotRange(LoadF16(), static_cast<const uint16_t*>(w), kk, x, r0, r1, y);
      return;
    }
  }
  DotRangeConverted(type, static_cast<const uint8_t*>(w), kk, x, r0, r1, y);
}

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace gptq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptq::kernels {

HWY_EXPORT(HalfGemvRows);

void half_gemv_rows(HalfType type, const void* w, int64_t k, const float* x, int64_t r0, int64_t r1,
                    float* y) {
  if (r1 <= r0) return;
  HWY_DYNAMIC_DISPATCH(HalfGemvRows)(type, w, k, x, r0, r1, y);
}

void half_gemv(HalfType type, const void* w, int64_t n, int64_t k, const float* x, float* y,
               int threads) {
  const int64_t tasks = (n + kHalfGemvTaskRows - 1) / kHalfGemvTaskRows;
  parallel_for(
      tasks,
      [&](int64_t t) {
        const int64_t r0 = t * kHalfGemvTaskRows, r1 = std::min(n, r0 + kHalfGemvTaskRows);
        half_gemv_rows(type, w, k, x, r0, r1, y + r0);
      },
      threads);
}

}  // namespace gptq::kernels
#endif  // HWY_ONCE
