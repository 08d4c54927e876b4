// Everything the quantize pipeline takes (defaults as Optimum's GPTQQuantizer); the API's
// QuantizeParams (include/gptq/quantize.h) map onto it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "calib/dataset.h"
#include "pipeline/activation_store.h"
#include "quant/quant_config.h"

namespace gptq {

enum class QuantMethod { kGptq, kRtn };

// How the experts of MoE layers get their Hessians: from the tokens routed to them (GPTQModel's
// default), or from every token (llm-compressor's calibrate-all-experts; the block output still
// uses the real routing).
enum class MoeCalibration { kRouted, kAll };

struct QuantizeOptions {
  QuantConfig quant;  // bits, group size, damp, desc_act, static_groups, sym, ...
  QuantMethod method = QuantMethod::kGptq;
  bool true_sequential = true;
  std::optional<CheckpointFormat> format;  // default: gptq (v1), as GPTQModel; readers in README
  std::vector<std::vector<std::string>> modules_in_block;
  std::string block_name;
  bool allow_unaligned = false;  // quantize layers with in/out % 32 != 0 (GPTQModel-only)
  // All-zero fp16 biases for bias-free quantized layers (AutoGPTQ <= 0.7.1 writes them; optimum <
  // 1.20 leaves the bias buffer uninitialised without one; newer loaders accept or ignore them).
  bool zero_bias = true;
  CalibOptions calib;            // file, nsamples, seqlen (0 = model default), seed
  int64_t batch_size = 1;        // accepted for Optimum parity; sequences are never padded
  uint64_t max_shard_bytes = 0;  // 0: one file
  int threads = 0;               // 0: all cores
  MoeCalibration moe_calibration = MoeCalibration::kRouted;
  // Experts routed fewer calibration tokens than this are rounded to nearest (RTN) instead of
  // solved; -1: 0.1% of the calibration tokens (at least 1).
  int64_t moe_min_tokens = -1;
  int64_t moe_experts_per_chunk = 8;  // experts whose fp32 weights and Hessians are held at once
  // Also quantize the output head (GPTQ from the final-norm activations), GPTQModel's lm_head.
  bool lm_head = false;
  // GPTQModel `dynamic` per-module overrides (model/dynamic_overrides.h); null = none.
  nlohmann::json dynamic;
  bool resume = false;
  // Calibration sequences per Hessian chunk: each chunk's X^T X is summed on its own and the chunks
  // are added in order, so that processes owning whole chunks (mpirun) give the same bytes for any
  // number of processes. <= 0: one chunk of all sequences (the single-process sums of earlier
  // releases).
  int64_t hessian_chunk = 0;
  // Calibration tokens per forward batch (whole sequences concatenated, within a Hessian chunk; MoE
  // blocks one sequence at a time); 0: one sequence at a time.
  int64_t batch_rows = 2048;
  // Storage of the activations between blocks: fp32 (default), fp16 or bf16 (half the memory).
  ActivationDtype activation_dtype = ActivationDtype::kF32;

  // v1 also for asymmetric weights: the loaders that misread gptq_v2 are the common ones (README).
  CheckpointFormat effective_format() const { return format.value_or(CheckpointFormat::kGptq); }
};

}  // namespace gptq
