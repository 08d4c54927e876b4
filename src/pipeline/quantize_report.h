// JSON forms of the quantize results: the report document (`gptq quantize --report`,
// QuantizeResult::to_json) and the layer records kept in the run state for a resume.
#pragma once

#include <nlohmann/json.hpp>

#include "gptq/quantize.h"

namespace gptq {

nlohmann::json layer_record_json(const LayerRecord& r);
LayerRecord layer_record_from_json(const nlohmann::json& j);
nlohmann::json quantize_report_json(const QuantizeResult& r);

}  // namespace gptq
