// Everything `gptq quantize` takes (defaults as Optimum's GPTQQuantizer).
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
  std::optional<CheckpointFormat> format;  // default: gptq (v1), as GPTQModel; readers in README
  std::vector<std::vector<std::string>> modules_in_block;
  std::string block_name;
  bool allow_unaligned = false;        // quantize layers with in/out % 32 != 0 (GPTQModel-only)
  // All-zero fp16 biases for bias-free quantized layers (AutoGPTQ <= 0.7.1 writes them; optimum <
  // 1.20 leaves the bias buffer uninitialised without one; newer loaders accept or ignore them).
  bool zero_bias = true;
  CalibOptions calib;                  // file, nsamples, seqlen (0 = model default), seed
  int64_t batch_size = 1;              // accepted for Optimum parity; sequences are never padded
  uint64_t max_shard_bytes = 0;        // 0: one file
  int threads = 0;                     // 0: all cores
  bool resume = false;
  std::filesystem::path report;        // JSON report file ("" = none)
  bool quiet = false;                  // no per-layer lines
  // Test hook: stop (as if killed) after this many blocks are durable; -1 = never.
  int64_t stop_after_blocks = -1;

  // v1 also for asymmetric weights: the loaders that misread gptq_v2 are the common ones (README).
  CheckpointFormat effective_format() const { return format.value_or(CheckpointFormat::kGptq); }
};

}  // namespace gptq
