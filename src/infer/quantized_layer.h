// Reading one quantized layer of a GPTQ checkpoint (ours, AutoGPTQ's, GPTQModel's, Optimum's),
// with the checks of spec 3.9: every tensor present, int32 packing, shapes consistent with the
// layer's in/out features, bits and group size, g_idx values in range.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/quantization_config.h"
#include "nn/block_forward.h"
#include "quant/pack.h"

namespace gptq {

class TensorStore;

struct QuantizedLayerData {
  PackedLinear packed;        // qweight, qzeros, g_idx (scales below, as float)
  std::vector<float> scales;  // [G, N] (fp16 / bf16 / fp32 in the file)
  std::vector<float> bias;    // [N] or empty
  // Set by read_quantized_layer(..., map_qweight = true) where the checkpoint's qweight can be
  // used in place ([ceil(K * bits / 32), N], 4-byte aligned): packed.qweight is then empty and
  // the words are read from the mapping (valid while the TensorStore lives).
  const int32_t* qweight_mapped = nullptr;
};

// `name` is the module path ("model.layers.0.self_attn.q_proj"); n/k are the layer's out/in
// features as the architecture defines them.
// map_qweight: leave qweight in the mapping where possible (qweight_mapped) instead of copying it
// (a loader that repacks it into kernel tiles at once).
QuantizedLayerData read_quantized_layer(const TensorStore& store, const std::string& name,
                                        int64_t n, int64_t k, const QuantizationConfig& q,
                                        bool map_qweight = false);

// W [N, K] = scales[g_idx[k], n] * (code[k, n] - zero[g_idx[k], n]) in fp32 (spec 3.6).
std::vector<float> dequantize_layer(const QuantizedLayerData& layer);

// The reference QuantLinear: the dequantized weight in a dense fp32 linear.
std::unique_ptr<LinearOp> make_dequantized_linear(const QuantizedLayerData& layer);

}  // namespace gptq
