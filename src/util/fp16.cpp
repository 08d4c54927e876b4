// Half-precision conversions. The scalar functions define the semantics bit for bit (they match
// the x86 F16C instructions, NaN payloads included); the array versions are Highway kernels
// compiled for every target and chosen at run time. Targets with F16C use the hardware
// conversions, the others an exact integer emulation; tails go through the scalar functions.

#include "util/fp16.h"

#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "util/fp16.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace gptq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#include "util/hwy_native_f16.h"  // NOLINT(build/include): per target

using DF = hn::ScalableTag<float>;
using DU32 = hn::RebindToUnsigned<DF>;
using DI32 = hn::RebindToSigned<DF>;
using DU16 = hn::Rebind<uint16_t, DF>;  // half-width: as many u16 lanes as float lanes
using DF16 = hn::Rebind<hwy::float16_t, DF>;

// binary16 bits (zero-extended to 32) -> float bits. Exponent re-biased by adding 112 << 23;
// inf/NaN get another 112 << 23 (exponent 255) and NaNs the quiet bit; subnormals are
// renormalised exactly by a float subtraction of 2^-14.
template <class V>
HWY_INLINE V HalfBitsToFloatBits(DU32 du, V h) {
  const DF df;
  const V sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const V o = hn::ShiftLeft<13>(hn::And(h, hn::Set(du, 0x7fffu)));
  const V exp = hn::And(o, hn::Set(du, 0x0f800000u));
  const V rebiased = hn::Add(o, hn::Set(du, 112u << 23));
  const V mant = hn::And(o, hn::Set(du, 0x007fe000u));
  const V quiet = hn::IfThenZeroElse(hn::Eq(mant, hn::Zero(du)), hn::Set(du, 0x00400000u));
  const V infnan = hn::Or(hn::Add(rebiased, hn::Set(du, 112u << 23)), quiet);
  const auto magic = hn::BitCast(df, hn::Set(du, 113u << 23));  // 2^-14
  const V sub =
      hn::BitCast(du, hn::Sub(hn::BitCast(df, hn::Add(rebiased, hn::Set(du, 1u << 23))), magic));
  V r = hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x0f800000u)), infnan, rebiased);
  r = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), sub, r);
  return hn::Or(r, sign);
}

// float bits -> binary16 bits (in the low 16 bits of each lane), round-to-nearest-even.
// Subnormal results: adding 0.5 (exponent 126) puts the rounded half mantissa in the low bits.
template <class V>
HWY_INLINE V FloatBitsToHalfBits(DU32 du, V x) {
  const DF df;
  const DI32 di;
  const V sign = hn::And(x, hn::Set(du, 0x80000000u));
  const V abs = hn::Xor(x, sign);
  const auto abs_i = hn::BitCast(di, abs);  // < 2^31: signed compares are exact
  const auto is_nan = hn::Gt(abs_i, hn::Set(di, 0x7f800000));
  const auto is_big = hn::Gt(abs_i, hn::Set(di, 0x477fffff));  // >= 65536 (or inf/NaN)
  const auto is_sub = hn::Lt(abs_i, hn::Set(di, 113 << 23));   // < 2^-14
  const V nan =
      hn::Or(hn::Set(du, 0x7e00u), hn::ShiftRight<13>(hn::And(abs, hn::Set(du, 0x7fffffu))));
  const V big = hn::IfThenElse(hn::RebindMask(du, is_nan), nan, hn::Set(du, 0x7c00u));
  const V magic = hn::Set(du, 126u << 23);
  const V sub =
      hn::Sub(hn::BitCast(du, hn::Add(hn::BitCast(df, abs), hn::BitCast(df, magic))), magic);
  const V odd = hn::And(hn::ShiftRight<13>(abs), hn::Set(du, 1u));
  const V bias = hn::Set(du, static_cast<uint32_t>(15 - 127) * (1u << 23) + 0xfffu);
  const V normal = hn::ShiftRight<13>(hn::Add(hn::Add(abs, bias), odd));
  V r = hn::IfThenElse(hn::RebindMask(du, is_sub), sub, normal);
  r = hn::IfThenElse(hn::RebindMask(du, is_big), big, r);
  return hn::Or(r, hn::ShiftRight<16>(sign));
}

void F16ToF32(const uint16_t* HWY_RESTRICT in, float* HWY_RESTRICT out, size_t n) {
  const DF df;
  const DU32 du;
  const DU16 du16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto h = hn::LoadU(du16, in + i);
    if constexpr (kNativeF16) {
      hn::StoreU(hn::PromoteTo(df, hn::BitCast(DF16(), h)), df, out + i);
    } else {
      hn::StoreU(hn::BitCast(df, HalfBitsToFloatBits(du, hn::PromoteTo(du, h))), df, out + i);
    }
  }
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void BF16ToF32(const uint16_t* HWY_RESTRICT in, float* HWY_RESTRICT out, size_t n) {
  const DF df;
  const DU32 du;
  const DU16 du16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto bits = hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(du16, in + i)));
    hn::StoreU(hn::BitCast(df, bits), df, out + i);
  }
  for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

void F32ToF16(const float* HWY_RESTRICT in, uint16_t* HWY_RESTRICT out, size_t n) {
  const DF df;
  const DU32 du;
  const DI32 di;
  const DU16 du16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(df, in + i);
    if constexpr (kNativeF16) {
      hn::StoreU(hn::BitCast(du16, hn::DemoteTo(DF16(), v)), du16, out + i);
    } else {
      const auto bits = FloatBitsToHalfBits(du, hn::BitCast(du, v));
      hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, bits)), du16, out + i);
    }
  }
  for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

// Round-to-nearest-even on the upper 16 bits; NaNs are quieted (as torch does).
void F32ToBF16(const float* HWY_RESTRICT in, uint16_t* HWY_RESTRICT out, size_t n) {
  const DF df;
  const DU32 du;
  const DI32 di;
  const DU16 du16;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto x = hn::BitCast(du, hn::LoadU(df, in + i));
    const auto abs_i = hn::BitCast(di, hn::And(x, hn::Set(du, 0x7fffffffu)));
    const auto is_nan = hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7f800000)));
    const auto lsb = hn::And(hn::ShiftRight<16>(x), hn::Set(du, 1u));
    const auto rounded = hn::ShiftRight<16>(hn::Add(x, hn::Add(hn::Set(du, 0x7fffu), lsb)));
    const auto nan = hn::Or(hn::ShiftRight<16>(x), hn::Set(du, 0x40u));
    const auto bits = hn::IfThenElse(is_nan, nan, rounded);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, bits)), du16, out + i);
  }
  for (; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

}  // namespace HWY_NAMESPACE
}  // namespace gptq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptq {

HWY_EXPORT(F16ToF32);
HWY_EXPORT(BF16ToF32);
HWY_EXPORT(F32ToF16);
HWY_EXPORT(F32ToBF16);

void f16_to_f32(const uint16_t* in, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(F16ToF32)(in, out, n);
}
void bf16_to_f32(const uint16_t* in, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(BF16ToF32)(in, out, n);
}
void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(F32ToF16)(in, out, n);
}
void f32_to_bf16(const float* in, uint16_t* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(F32ToBF16)(in, out, n);
}

namespace {
float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // inf, or NaN (made quiet, payload kept)
    return float_from_bits(sign | 0x7f800000u | (mant << 13) | (mant != 0 ? 0x400000u : 0u));
  }
  if (exp != 0) return float_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
  if (mant == 0) return float_from_bits(sign);
  exp = 127 - 15 + 1;  // subnormal: normalise
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --exp;
  }
  return float_from_bits(sign | (exp << 23) | ((mant & 0x3ffu) << 13));
}

float bf16_to_f32(uint16_t h) {
  return float_from_bits(static_cast<uint32_t>(h) << 16);
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = bits_of(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN: quiet, top payload bits kept
    return static_cast<uint16_t>(sign | 0x7e00u | ((abs & 0x7fffffu) >> 13));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 (or inf)
  if (abs < 0x38800000u) {  // below 2^-14: subnormal or zero result
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25: rounds to zero
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // value = m * 2^(e-150); result unit 2^-24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (abs >> 13) - ((127 - 15) << 10);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry may reach the exponent
  return static_cast<uint16_t>(sign | r);
}

uint16_t f32_to_bf16(float f) {
  uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace gptq
#endif  // HWY_ONCE
