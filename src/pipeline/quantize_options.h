// Everything the quantize pipeline takes (defaults as Optimum's GPTQQuantizer); the API's
// QuantizeParams (include/gptq/quantize.h) map onto it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "calib/dataset.h"
#include "quant/quant_config.h"

namespace gptq {

enum class QuantMethod { kGptq, kRtn };

struct QuantizeOptions {
  QuantConfig quant;                   // bits, group size, damp, desc_act, static_groups, sym, ...
  QuantMethod method = QuantMethod::kGptq;
  bool true_sequential = true;
  std::optional<CheckpointFormat> format;  // default: gptq for sym, gptq_v2 for asym
  std::vector<std::vector<std::string>> modules_in_block;
  std::string block_name;
  bool allow_unaligned = false;        // quantize layers with in/out % 32 != 0 (GPTQModel-only)
  bool zero_bias = false;              // write all-zero fp16 biases for bias-free layers
  CalibOptions calib;                  // file, nsamples, seqlen (0 = model default), seed
  int64_t batch_size = 1;              // accepted for Optimum parity; sequences are never padded
  uint64_t max_shard_bytes = 0;        // 0: one file
  int threads = 0;                     // 0: all cores
  bool resume = false;

  CheckpointFormat effective_format() const {
    return format.value_or(quant.sym ? CheckpointFormat::kGptq : CheckpointFormat::kGptqV2);
  }
};

}  // namespace gptq
