// Optimum's convert_model on a checkpoint: find the list of transformer blocks (BLOCK_PATTERNS,
// spec 1.10), collect the linear layers inside them (Linear, GPT-2 Conv1D, 1x1 Conv2d; spec 1.5),
// apply modules_in_block_to_quantize (suffix match, spec 1.6) and describe each selected layer
// as a QuantLinear placeholder with the packed tensor shapes it will get.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "model/arch.h"
#include "model/loader_compat.h"
#include "model/model_config.h"

namespace gptq {

class TensorStore;

// Optimum's BLOCK_PATTERNS, in order (OPT-HEAD).
const std::vector<std::string>& block_patterns();

// Every module path implied by parameter names: "a.b.c.weight" -> "a", "a.b", "a.b.c".
std::vector<std::string> module_names_from_tensors(const std::vector<std::string>& tensor_names);

// Optimum's get_block_name_with_pattern: the first pattern p (in order) such that some module
// name starts with p (a plain prefix test: "h" also matches "head"). Empty if none matches.
std::string detect_block_pattern(const std::vector<std::string>& module_names);

// The block indices n present as "<block_name>.<n>.*" tensors, ascending.
std::vector<int64_t> find_block_indices(const std::vector<std::string>& tensor_names,
                                        const std::string& block_name);

// True if `name` ends with any of the entries (Optimum's filter, spec 1.6).
bool matches_modules_in_block(const std::string& name,
                              const std::vector<std::vector<std::string>>& modules_in_block);

class DynamicOverrides;

struct ConvertOptions {
  std::string block_name;  // --block-name; "" = detect
  std::vector<std::vector<std::string>> modules_in_block;  // empty = every layer
  int bits = 4;
  int group_size = 128;
  // Quantize layers whose in/out features are not multiples of 32 (loadable by GPTQModel only).
  bool allow_unaligned = false;
  bool true_sequential = true;
  // Write an all-zero fp16 bias for quantized layers without one (sizes only; see README).
  bool zero_bias = true;
  // Per-module overrides (GPTQModel `dynamic`): bits / group size per layer, "-:" rules stay float.
  const DynamicOverrides* dynamic = nullptr;
  // Quantize the output head too (block = num_blocks in the plan); refused when it is tied.
  bool lm_head = false;
};

struct QuantLayer {
  std::string name;        // full module path, e.g. "model.layers.0.self_attn.q_proj"
  std::string local_name;  // inside the block, e.g. "self_attn.q_proj"
  int64_t block = 0;
  LinearKind kind = LinearKind::kLinear;
  int64_t in_features = 0, out_features = 0;
  bool has_bias = false;
  DType weight_dtype = DType::F32;
  std::string input_group;  // layers of a block with the same group read the same input
  bool quantize = true;     // false: stays float (reason in skip_reason)
  std::string skip_reason;
  int64_t groups = 0;       // G = ceil(K / group_size_eff)
  bool writes_bias = false;  // the checkpoint gets <name>.bias (its own, or a zero bias)
  std::vector<LoaderIssue> loader_issues;  // quantized shapes a major loader cannot take

  std::vector<int64_t> qweight_shape() const;  // [ceil(K*b/32), N] int32
  std::vector<int64_t> qzeros_shape() const;   // [G, ceil(N*b/32)] int32
  std::vector<int64_t> scales_shape() const;   // [G, N] fp16
  int bits = 4;
  int group_size = 128;     // -1: one group per row (after the dynamic overrides)
};

struct ModelPlan {
  std::string block_name;     // e.g. "model.layers"
  bool block_name_detected = true;
  int64_t num_blocks = 0;
  std::vector<QuantLayer> layers;  // block-major; registration order inside a block
  // Sequential groups of local layer names (Optimum's true_sequential / modules_in_block).
  std::vector<std::vector<std::string>> sequential_groups;
  int bits = 4, group_size = 128;
  int64_t params_total = 0, params_quantized = 0;
  uint64_t input_bytes = 0, estimated_output_bytes = 0;
  std::vector<std::string> warnings;
  // Quantized layer shapes that a major loader cannot take, one line per layer name of a block.
  std::vector<std::string> loader_warnings;

  std::vector<const QuantLayer*> block_layers(int64_t block) const;
};

ModelPlan convert_model(const ModelConfig& config, const TensorStore& tensors,
                        const ConvertOptions& options);

}  // namespace gptq
