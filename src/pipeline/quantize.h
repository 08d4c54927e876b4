// quantize_model end to end: calibration -> block-by-block sequential GPTQ -> packing ->
// streaming, resumable, atomic output of a GPTQ checkpoint (pipeline of `gptq quantize`).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "pipeline/quantize_options.h"

namespace gptq {

struct QuantizeSummary {
  nlohmann::json report;  // everything: options, per-layer results, totals
  double seconds = 0;
  uint64_t peak_rss = 0;
};

// Quantizes the checkpoint in `model_dir` into `out_dir` (which must not exist; it appears
// atomically at the end). Progress lines go to `log` (one per layer, totals).
QuantizeSummary quantize_model(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                               const QuantizeOptions& options,
                               const std::function<void(const std::string&)>& log);

}  // namespace gptq
