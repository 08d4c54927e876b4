// quantize_model end to end: calibration -> block-by-block sequential GPTQ -> packing ->
// streaming, resumable, atomic output of a GPTQ checkpoint (behind gptq::quantize).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "gptq/callbacks.h"
#include "gptq/quantize.h"
#include "model/convert.h"
#include "model/dynamic_overrides.h"
#include "pipeline/quantize_options.h"

namespace gptq {

struct QuantizeSummary {
  QuantizeResult result;
  nlohmann::json report;  // the result as JSON (quantize_report_json)
};

// Quantizes the checkpoint in `model_dir` into `out_dir` (which must not exist; it appears
// atomically at the end). Reports to `callbacks` (warnings, one progress event per block, each
// layer's record); a callback returning false stops the run at that point (ExitCode::kInterrupted)
// with the finished blocks kept for a resume.
QuantizeSummary quantize_model(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                               const QuantizeOptions& options, const Callbacks& callbacks);
// The API's parameters as the pipeline's options (checked: a bad value is a usage error).
QuantizeOptions to_quantize_options(const QuantizeParams& params);
// What convert_model is asked for a run with these options (`dynamic`: the parsed overrides).
ConvertOptions convert_options(const QuantizeOptions& options, const DynamicOverrides* dynamic);
// The same with only a log sink.
QuantizeSummary quantize_model(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                               const QuantizeOptions& options, const std::function<void(const std::string&)>& log);

}  // namespace gptq
