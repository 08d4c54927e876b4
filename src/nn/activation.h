// Activation functions (transformers ACT2FN semantics, fp32).
#pragma once

#include <cmath>
#include <cstdint>

#include "model/arch.h"

namespace gptq::nn {

// silu(x) = x * sigmoid(x)
inline float silu(float x) {
  return x / (1.0f + std::exp(-x));
}
// Exact GELU ("gelu"): x/2 * (1 + erf(x / sqrt(2))).
inline float gelu_erf(float x) {
  return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752440f));
}
// tanh approximation ("gelu_new", "gelu_pytorch_tanh"):
// x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
inline float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * (x * x * x))));
}
inline float relu(float x) {
  return x > 0.0f ? x : 0.0f;
}

// x[i] = act(x[i]).
void activation_inplace(Activation act, float* x, int64_t n);
// Gated MLP: gate[i] = act(gate[i]) * up[i].
void gated_activation_inplace(Activation act, float* gate, const float* up, int64_t n);

}  // namespace gptq::nn
