// Vectorised elementwise kernels of the forward pass and the evaluation (Highway, dispatched at
// run time). exp is Highway's Exp (max error 1 ULP, as the SLEEF kernels torch uses); sums are
// accumulated per chunk in float and across chunks in double.
#pragma once

#include <cstdint>

namespace gptq::nn {

// max_i x[i] (n > 0).
float max_value(const float* x, int64_t n);
// sum_i exp(x[i] - shift); out[i] = exp(x[i] - shift) if out is not null (out == x allowed).
double exp_shifted(const float* x, int64_t n, float shift, float* out);
// g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + exp(-x)).
void silu_mul_inplace(float* g, const float* u, int64_t n);
// x[i] = gelu_tanh(x[i]) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (Highway Tanh, 4 ULP).
void gelu_tanh_inplace(float* x, int64_t n);

}  // namespace gptq::nn
