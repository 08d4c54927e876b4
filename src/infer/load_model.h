// Optimum's load_quantized_model for the CPU: a float or GPTQ checkpoint as a ModelForward.
// Quantization settings come from config.json "quantization_config", else quantize_config.json /
// quant_config.json (key synonyms of spec 3.8). A layer is quantized when its .qweight is in the
// checkpoint; the others (lm_head, layers left float) stay dense fp32.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "io/safetensors.h"
#include "model/model_config.h"
#include "model/quantization_config.h"
#include "nn/model_forward.h"

namespace gptq {

enum class LinearBackend {
  kKernel,       // QuantLinear CPU kernels (fused dequantize + multiply)
  kDequantized,  // dequantize to fp32 once and use dense sgemm (reference)
  kKernelInt8,   // QuantLinear with int8 activations for rows > 1 (kernels::GemmPath::kInt8)
};

struct LoadedModel {
  std::filesystem::path dir;
  ModelConfig config;
  TensorStore store;
  std::optional<QuantizationConfig> quant;
  std::unique_ptr<ModelForward> model;
  int64_t quantized_layers = 0;
  int64_t float_layers = 0;
};

std::unique_ptr<LoadedModel> load_model(const std::filesystem::path& dir,
                                        LinearBackend backend = LinearBackend::kKernel);

}  // namespace gptq
