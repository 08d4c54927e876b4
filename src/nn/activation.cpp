#include "nn/activation.h"

#include "nn/vec_math.h"
#include "util/thread_pool.h"

namespace gptq::nn {

namespace {
template <typename F>
void map_inplace(float* x, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) x[i] = f(x[i]);
}
template <typename F>
void map_gated(float* g, const float* u, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) g[i] = f(g[i]) * u[i];
}

void activation_range(Activation act, float* x, int64_t n) {
  switch (act) {
    case Activation::kSilu:
      return map_inplace(x, n, silu);
    case Activation::kGelu:
      return map_inplace(x, n, gelu_erf);
    case Activation::kGeluTanh:
      return gelu_tanh_inplace(x, n);  // vectorised
    case Activation::kRelu:
      return map_inplace(x, n, relu);
  }
}

void gated_activation_range(Activation act, float* gate, const float* up, int64_t n) {
  switch (act) {
    case Activation::kSilu:
      return silu_mul_inplace(gate, up, n);  // vectorised
    case Activation::kGelu:
      return map_gated(gate, up, n, gelu_erf);
    case Activation::kGeluTanh:
      return map_gated(gate, up, n, gelu_tanh);
    case Activation::kRelu:
      return map_gated(gate, up, n, relu);
  }
}

}  // namespace

void activation_inplace(Activation act, float* x, int64_t n) {
  parallel_ranges(n, kElementwiseGrain,
                  [&](int64_t i0, int64_t i1) { activation_range(act, x + i0, i1 - i0); });
}

void gated_activation_inplace(Activation act, float* gate, const float* up, int64_t n) {
  parallel_ranges(n, kElementwiseGrain, [&](int64_t i0, int64_t i1) {
    gated_activation_range(act, gate + i0, up + i0, i1 - i0);
  });
}

}  // namespace gptq::nn
