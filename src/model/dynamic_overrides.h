// Per-module overrides of the quantization settings, GPTQModel's `dynamic` syntax (it is also what
// vLLM reads from quantization_config.dynamic):
//   { "+:<regex>": {"bits": 8, "group_size": 32, "desc_act": true, "sym": false, "damp_percent": 0.05},
//     "-:<regex>": {} }
// Rules are tried in order against the full module name (re.match: anchored at the start, not at
// the end); the first match wins: "-:" leaves the module float, "+:" (or no prefix) overrides the
// listed keys. Other keys are kept in the config but change nothing here.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "quant/quant_config.h"

namespace gptq {

class DynamicOverrides {
 public:
  DynamicOverrides();
  // Parses and validates `j` (an object; null = no rule); `source` names it in errors.
  DynamicOverrides(const nlohmann::json& j, const std::string& source);
  ~DynamicOverrides();
  DynamicOverrides(DynamicOverrides&&) noexcept;
  DynamicOverrides& operator=(DynamicOverrides&&) noexcept;

  bool empty() const { return rules_.empty(); }
  const nlohmann::json& json() const { return json_; }
  // The module stays float ("-:" rule).
  bool excluded(const std::string& module) const;
  // `base` with the overrides of the first "+:" rule matching `module`.
  QuantConfig resolve(const std::string& module, const QuantConfig& base) const;

 private:
  struct Rule;
  const Rule* match(const std::string& module) const;
  nlohmann::json json_;
  std::vector<std::unique_ptr<Rule>> rules_;
};

}  // namespace gptq
