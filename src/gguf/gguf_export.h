// `gptq export-gguf`: a GPTQ checkpoint (or, with from_float, a float checkpoint) as a GGUF file
// llama.cpp loads. Each quantized layer is written in the ggml type that holds the GPTQ solution
// exactly when there is one (see choose_layer_type), else re-fitted from the dequantized weight
// with ggml's reference quantizer; the report gives each layer's type, whether it is exact, and
// its relative error. Other tensors follow convert_hf_to_gguf.py: 1-D tensors and norms F32,
// embeddings and head F16 (or `float_type`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gguf/ggml_quant.h"
#include "model/quantization_config.h"

namespace gptq::gguf {

struct ExportOptions {
  std::string type = "auto";  // auto | q4_0 | q4_1 | q8_0 | q2_k..q6_k | f16 | bf16 | f32
  bool from_float = false;  // MODEL is a float checkpoint: quantize it with ggml's reference (RTN)
  GgmlType float_type = GgmlType::kF16;  // embeddings / head / unquantized 2-D weights
  std::string tokenizer_pre;             // "" = detect from tokenizer.json
};

enum class LayerMode {
  kExact,   // the GGUF blocks hold the GPTQ codes and scales: dequantization equal bit for bit
  kMapped,  // Q4_1 with m = fp16(-scale * zero): exact codes and scales, the offset rounded
  kRefit,   // dequantized, then quantized again with ggml's reference quantizer
  kFloat,   // written as F32/F16 (from a float tensor, or a dequantized layer)
};
std::string mode_name(LayerMode m);

struct LayerReport {
  std::string hf_name, gguf_name;
  GgmlType type = GgmlType::kF32;
  LayerMode mode = LayerMode::kFloat;
  int bits = 0;          // GPTQ bits (0: a float source)
  double rel_error = 0;  // ||W_gguf - W|| / ||W|| (W: the GPTQ dequantized or the float weight)
  double max_abs_error = 0;
  std::string why;  // why this type/mode
};

struct ExportReport {
  std::filesystem::path out;
  std::string architecture;
  uint64_t bytes = 0;
  int64_t tensors = 0;
  std::vector<LayerReport> layers;  // block linears (and a quantized head)
  std::vector<std::string> warnings;
};

ExportReport export_gguf(const std::filesystem::path& model_dir, const std::filesystem::path& out,
                         const ExportOptions& options);

// What one GPTQ layer becomes for a requested type ("auto" or a type name):
// facts about the layer (from its codes, zeros, scales and g_idx) -> type and mode.
struct LayerFacts {
  int bits = 4;
  bool blocks_uniform = false;  // K % 32 == 0 and every 32 consecutive columns share one group
  bool scales_fp16 = false;     // every scale is an fp16 value
  int min_offset = 0, max_offset = 0;  // range of code - zero
};
struct LayerChoice {
  GgmlType type = GgmlType::kQ4_0;
  LayerMode mode = LayerMode::kRefit;
  std::string why;
};
LayerChoice choose_layer_type(const LayerFacts& f, const std::string& requested);

}  // namespace gptq::gguf
