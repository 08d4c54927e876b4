// Reading the parameters the forward pass needs from a checkpoint, converted exactly to fp32,
// with shape checks whose errors name the tensor and the expected shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/arch.h"

namespace gptq {
class TensorStore;
struct TensorInfo;
}  // namespace gptq

namespace gptq::nn {

// The tensor `name`, or, for checkpoints saved from the base model (e.g. GPT-2 "wte.weight" for
// "transformer.wte.weight"), the name without its first component. nullptr if neither exists.
const TensorInfo* find_param(const TensorStore& store, const std::string& name);

// fp32 copy of a parameter of exactly `shape`; throws gptq::Error naming the tensor if it is
// missing, not a float tensor, or of another shape. `what` says what it is used for.
std::vector<float> load_param(const TensorStore& store, const std::string& name,
                              const std::vector<int64_t>& shape, const std::string& what);
// The same checks, without the copy: the tensor as mapped (convert it with tensor_to_f32 or
// tensor_range_to_f32).
const TensorInfo& check_param(const TensorStore& store, const std::string& name,
                              const std::vector<int64_t>& shape, const std::string& what);

// A norm module `module` (".weight", and ".bias" for LayerNorm) over `dim` features. Gemma's
// (1 + w) RMSNorm keeps 1 + w, computed in fp32 as transformers does.
struct Norm;
Norm load_norm(const TensorStore& store, const std::string& module, NormType type, int64_t dim,
               float eps);

// The header of a linear module's weight, checked without reading it: present, floating point,
// and stored as `kind` stores W [n, k] (Linear [n, k], Conv1D [k, n], 1x1 Conv2d [n, k, 1, 1]).
// Throws gptq::Error naming the tensor and the shape config.json implies.
const TensorInfo& check_linear_weight(const TensorStore& store, const std::string& name,
                                      LinearKind kind, int64_t n, int64_t k);

// Weight of a linear module as the math matrix W [n, k]: nn.Linear [n, k] as stored, Conv1D
// (stored [k, n]) transposed, 1x1 Conv2d [n, k, 1, 1] reshaped.
std::vector<float> load_linear_weight(const TensorStore& store, const std::string& name,
                                      LinearKind kind, int64_t n, int64_t k);

// The prefix of block `index` ("model.layers.3."): Optimum's block pattern detected from the
// tensor names unless `block_name` is given.
std::string block_prefix(const TensorStore& store, int64_t index,
                         const std::string& block_name = "");
// The detected block list name ("model.layers", "transformer.h", ...); throws if none.
std::string detect_block_name(const TensorStore& store);

}  // namespace gptq::nn
