#include "pipeline/quantize_report.h"

#include "io/json_reader.h"

namespace gptq {

nlohmann::json layer_record_json(const LayerRecord& r) {
  nlohmann::json j = {{"name", r.name},
                      {"block", r.block},
                      {"out_features", r.out_features},
                      {"in_features", r.in_features},
                      {"loss", r.loss},
                      {"damp", r.damp},
                      {"damp_retries", r.damp_retries},
                      {"dead_columns", r.dead_columns},
                      {"zero_point_0_groups", r.zero_point_0_groups},
                      {"seconds", r.seconds}};
  if (r.expert >= 0) {
    j["expert"] = r.expert;
    j["tokens"] = r.tokens;
    if (r.rtn_fallback) j["fallback"] = "rtn";
  }
  return j;
}

LayerRecord layer_record_from_json(const nlohmann::json& j) {
  LayerRecord r;
  r.name = j.at("name").get<std::string>();
  r.block = j.at("block").get<int64_t>();
  r.out_features = j.at("out_features").get<int64_t>();
  r.in_features = j.at("in_features").get<int64_t>();
  r.loss = j.at("loss").get<double>();
  r.damp = j.at("damp").get<double>();
  r.damp_retries = j.at("damp_retries").get<int>();
  r.dead_columns = j.at("dead_columns").get<int>();
  r.zero_point_0_groups = j.value("zero_point_0_groups", int64_t{0});
  r.expert = j.value("expert", int64_t{-1});
  r.tokens = j.value("tokens", int64_t{-1});
  r.rtn_fallback = j.contains("fallback");
  r.seconds = j.at("seconds").get<double>();
  return r;
}

nlohmann::json quantize_report_json(const QuantizeResult& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : r.layers) layers.push_back(layer_record_json(l));
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : r.stages)
    stages.push_back(
        {{"name", s.name}, {"wall_seconds", s.wall_seconds}, {"cpu_seconds", s.cpu_seconds}});
  return {{"tool", "gptq.cpp " GPTQ_VERSION},
          {"model", r.model},
          {"output", r.output},
          {"options", nlohmann::json::parse(r.options_json.empty() ? "{}" : r.options_json)},
          {"block_name", r.block_name},
          {"num_blocks", r.num_blocks},
          {"layers", layers},
          {"totals",
           {{"layers_quantized", r.layers_quantized},
            {"seconds", r.seconds},
            {"peak_rss_bytes", r.peak_rss_bytes},
            {"gflop", r.gflop},
            {"gflops_per_second", r.gflops_per_second},
            {"calibration_sequences", r.calibration_sequences},
            {"calibration_seqlen", r.calibration_seqlen},
            {"output_files", r.output_files},
            {"threads", r.threads},
            {"stages", stages},
            {"zero_point_0_groups", r.zero_point_0_groups},
            {"layers_with_zero_point_0", r.layers_with_zero_point_0}}},
          {"loader_warnings", r.loader_warnings},
          {"quantization_config",
           nlohmann::json::parse(r.quantization_config_json.empty() ? "{}"
                                                                    : r.quantization_config_json)}};
}

std::string QuantizeResult::to_json() const {
  return json_output(quantize_report_json(*this), 2);
}

}  // namespace gptq
