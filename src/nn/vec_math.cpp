#include "nn/vec_math.h"

#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "nn/vec_math.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace gptq::nn {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

float MaxValue(const float* x, int64_t n) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  float m = x[0];
  if (n >= lanes) {
    auto vm = hn::LoadU(d, x);
    for (i = lanes; i + lanes <= n; i += lanes) vm = hn::Max(vm, hn::LoadU(d, x + i));
    m = hn::GetLane(hn::MaxOfLanes(d, vm));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

double ExpShifted(const float* x, int64_t n, float shift, float* out) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vs = hn::Set(d, shift);
  double total = 0;
  int64_t i = 0;
  // Chunks of up to 16 vectors summed in float, chunk sums added in double.
  const int64_t chunk = 16 * lanes;
  while (i + lanes <= n) {
    auto acc = hn::Zero(d);
    const int64_t end = std::min(n - (n - i) % lanes, i + chunk);
    for (; i < end; i += lanes) {
      const auto e = hn::CallExp(d, hn::Sub(hn::LoadU(d, x + i), vs));
      if (out) hn::StoreU(e, d, out + i);
      acc = hn::Add(acc, e);
    }
    total += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, acc)));
  }
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - shift);
    if (out) out[i] = e;
    total += static_cast<double>(e);
  }
  return total;
}

void SiluMulInplace(float* g, const float* u, int64_t n) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  const auto cap = hn::Set(d, 88.0f);  // exp(-x) stays finite; x / (1 + e^88) is ~0 anyway
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto x = hn::LoadU(d, g + i);
    const auto e = hn::CallExp(d, hn::Min(hn::Neg(x), cap));
    hn::StoreU(hn::Mul(hn::Div(x, hn::Add(one, e)), hn::LoadU(d, u + i)), d, g + i);
  }
  for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void GeluTanhInplace(float* x, int64_t n) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  const auto c = hn::Set(d, 0.79788456080286535588f), k = hn::Set(d, 0.044715f);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::LoadU(d, x + i);
    const auto inner = hn::Mul(c, hn::Add(v, hn::Mul(k, hn::Mul(hn::Mul(v, v), v))));
    hn::StoreU(hn::Mul(hn::Mul(half, v), hn::Add(one, hn::CallTanh(d, inner))), d, x + i);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(0.79788456080286535588f * (v + 0.044715f * (v * v * v))));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace gptq::nn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gptq::nn {

HWY_EXPORT(MaxValue);
HWY_EXPORT(ExpShifted);
HWY_EXPORT(SiluMulInplace);
HWY_EXPORT(GeluTanhInplace);

float max_value(const float* x, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(MaxValue)(x, n);
}
double exp_shifted(const float* x, int64_t n, float shift, float* out) {
  return HWY_DYNAMIC_DISPATCH(ExpShifted)(x, n, shift, out);
}
void silu_mul_inplace(float* g, const float* u, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SiluMulInplace)(g, u, n);
}
void gelu_tanh_inplace(float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluTanhInplace)(x, n);
}

}  // namespace gptq::nn
#endif  // HWY_ONCE
