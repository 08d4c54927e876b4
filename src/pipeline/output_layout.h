// The tensors of the GPTQ checkpoint that `gptq quantize` writes: every input tensor copied as
// is, except the weights (and biases) of quantized layers, which become
//   <layer>.qweight I32, <layer>.qzeros I32, <layer>.scales F16, <layer>.g_idx I32, [<layer>.bias F16].
// Order: tensors outside the blocks first, then block by block (each block's tensors are
// contiguous in the shards), names sorted inside.
#pragma once

#include <string>
#include <vector>

#include "io/safetensors_writer.h"
#include "model/convert.h"

namespace gptq {

class TensorStore;

struct OutputLayout {
  std::vector<TensorSpec> specs;
  std::vector<std::string> copied;  // input tensors copied unchanged
};

OutputLayout make_output_layout(const TensorStore& store, const ModelPlan& plan, bool zero_bias);

}  // namespace gptq
