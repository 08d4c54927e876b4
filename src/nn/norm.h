// Normalisation layers of the supported blocks, fp32 as transformers computes them.
#pragma once

#include <cstdint>
#include <vector>

#include "model/arch.h"

namespace gptq::nn {

// Llama RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w (the normalised value is rounded to fp32
// before the weight multiply, as LlamaRMSNorm does).
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* y);

// nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b, biased variance.
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b,
                float eps, float* y);

// One norm module: its kind, parameters and epsilon.
struct Norm {
  NormType type = NormType::kRmsNorm;
  int64_t dim = 0;
  float eps = 1e-5f;
  std::vector<float> weight;  // [dim]
  std::vector<float> bias;    // [dim] (LayerNorm) or empty

  // x [rows, dim] -> y [rows, dim]; x == y is allowed.
  void apply(const float* x, int64_t rows, float* y) const;
};

}  // namespace gptq::nn
