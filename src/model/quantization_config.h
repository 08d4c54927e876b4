// The quantization_config of a GPTQ checkpoint (spec 3.8): written into config.json and
// quantize_config.json by `gptq quantize`, read back (with the key synonyms of AutoGPTQ,
// GPTQModel, Optimum and transformers) by the loader.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "quant/quant_config.h"

namespace gptq {

struct QuantizationConfig {
  int bits = 4;
  int group_size = 128;
  bool desc_act = false;
  bool sym = true;
  bool static_groups = false;
  bool true_sequential = true;
  bool act_group_aware = false;
  double damp_percent = 0.1;
  CheckpointFormat format = CheckpointFormat::kGptq;
  std::vector<std::vector<std::string>> modules_in_block_to_quantize;  // empty: all
  std::string block_name_to_quantize;
  int64_t model_seqlen = 0;
  nlohmann::json meta = nlohmann::json::object();
  // GPTQModel's per-module overrides ("+:regex" / "-:regex"), null if none (model/dynamic_overrides.h).
  nlohmann::json dynamic;
  bool lm_head = false;  // the output head is quantized too (GPTQModel, vLLM read this key)

  // The settings of module `name` (full path) after the dynamic overrides.
  QuantizationConfig for_module(const std::string& name) const;

  nlohmann::json to_json() const;
  // Parses a quantization config; `source` names the file in messages. Rejects non-GPTQ methods,
  // bits outside {2,3,4,8}, bad group sizes, unknown checkpoint formats (marlin, gptq_p...).
  static QuantizationConfig from_json(const nlohmann::json& j, const std::string& source);
  // config.json "quantization_config", else quantize_config.json, else quant_config.json.
  // nullopt if none is present (a float checkpoint).
  static std::optional<QuantizationConfig> find_in_model_dir(const std::filesystem::path& dir);
};

std::string format_name(CheckpointFormat f);

}  // namespace gptq
