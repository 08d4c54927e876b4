#include "model/quantization_config.h"

#include "model/dynamic_overrides.h"

#include <fstream>

#include "model/json_util.h"

namespace gptq {

namespace fs = std::filesystem;

std::string format_name(CheckpointFormat f) { return f == CheckpointFormat::kGptq ? "gptq" : "gptq_v2"; }

nlohmann::json QuantizationConfig::to_json() const {
  nlohmann::json j{{"quant_method", "gptq"},
                   {"bits", bits},
                   {"group_size", group_size},
                   {"desc_act", desc_act},
                   {"sym", sym},
                   {"damp_percent", damp_percent},
                   {"true_sequential", true_sequential},
                   {"static_groups", static_groups},
                   {"act_group_aware", act_group_aware},
                   {"checkpoint_format", format_name(format)},
                   {"format", format_name(format)},
                   {"pack_dtype", "int32"},
                   {"lm_head", false},
                   {"modules_in_block_to_quantize", nullptr},
                   {"meta", meta}};
  if (!modules_in_block_to_quantize.empty()) j["modules_in_block_to_quantize"] = modules_in_block_to_quantize;
  if (!dynamic.is_null()) j["dynamic"] = dynamic;
  if (lm_head) j["lm_head"] = true;
  if (!block_name_to_quantize.empty()) j["block_name_to_quantize"] = block_name_to_quantize;
  if (model_seqlen > 0) j["model_seqlen"] = model_seqlen;
  return j;
}

QuantizationConfig QuantizationConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: the quantization config must be a JSON object", source);
  JsonObject o(j, source);
  QuantizationConfig q;
  std::string method = o.string_or("quant_method", o.string_or("method", "gptq"));
  for (auto& c : method) c = static_cast<char>(std::tolower(c));
  if (method != "gptq")
    fail("{}: quant_method '{}' is not GPTQ; only GPTQ checkpoints (quant_method \"gptq\") are supported", source,
         method);
  const int64_t bits = o.has("bits") ? o.integer("bits") : o.integer_or("w_bit", 4);
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    fail("{}: bits {} is not supported (2, 3, 4 or 8)", source, bits);
  q.bits = static_cast<int>(bits);
  const int64_t group_size = o.has("group_size") ? o.integer("group_size") : o.integer_or("q_group_size", -1);
  if (group_size == 0 || group_size < -1 || group_size > (int64_t{1} << 30))
    fail("{}: group_size {} is invalid (-1 or a positive number)", source, group_size);
  q.group_size = static_cast<int>(group_size);
  q.desc_act = o.boolean_or("desc_act", false);
  q.sym = o.boolean_or("sym", true);
  q.static_groups = o.boolean_or("static_groups", false);
  q.true_sequential = o.boolean_or("true_sequential", true);
  q.act_group_aware = o.boolean_or("act_group_aware", false);
  q.damp_percent = o.number_or("damp_percent", 0.01);
  std::string fmt = o.string_or("checkpoint_format", o.string_or("format", "gptq"));
  for (auto& c : fmt) c = static_cast<char>(std::tolower(c));
  if (o.boolean_or("is_marlin_format", false)) fmt = "marlin";
  if (fmt == "gptq") {
    q.format = CheckpointFormat::kGptq;
  } else if (fmt == "gptq_v2") {
    q.format = CheckpointFormat::kGptqV2;
  } else {
    fail("{}: checkpoint_format '{}' is not supported (gptq or gptq_v2); repack the model in the GPTQ format",
         source, fmt);
  }
  if (o.has("modules_in_block_to_quantize")) {
    const auto& m = j["modules_in_block_to_quantize"];
    auto bad = [&] {
      fail("{}: modules_in_block_to_quantize must be a list of lists of module names (e.g. "
           "[[\"self_attn.q_proj\"], [\"mlp.up_proj\"]]), got {}; fix the quantization config",
           source, m.dump().substr(0, 80));
    };
    if (!m.is_array()) bad();
    for (const auto& g : m) {
      std::vector<std::string> group;
      if (g.is_string()) {
        group.push_back(g.get<std::string>());
      } else if (g.is_array()) {
        for (const auto& s : g) {
          if (!s.is_string()) bad();
          group.push_back(s.get<std::string>());
        }
      } else {
        bad();
      }
      q.modules_in_block_to_quantize.push_back(std::move(group));
    }
  }
  q.block_name_to_quantize = o.string_or("block_name_to_quantize", "");
  q.model_seqlen = o.integer_or("model_seqlen", 0);
  if (o.has("meta") && j["meta"].is_object()) q.meta = j["meta"];
  q.lm_head = o.boolean_or("lm_head", false);
  if (o.has("dynamic")) {
    (void)DynamicOverrides(j["dynamic"], source);  // validated here, applied by for_module
    q.dynamic = j["dynamic"];
  }
  return q;
}

std::optional<QuantizationConfig> QuantizationConfig::find_in_model_dir(const fs::path& dir) {
  const fs::path config = dir / "config.json";
  if (fs::exists(config)) {
    const auto j = read_json_file(config);
    if (j.contains("quantization_config") && !j["quantization_config"].is_null())
      return from_json(j["quantization_config"], config.string() + " quantization_config");
  }
  for (const char* name : {"quantize_config.json", "quant_config.json"}) {
    const fs::path p = dir / name;
    if (fs::exists(p)) return from_json(read_json_file(p), p.string());
  }
  return std::nullopt;
}

QuantizationConfig QuantizationConfig::for_module(const std::string& name) const {
  if (dynamic.is_null()) return *this;
  QuantConfig base;
  base.bits = bits;
  base.group_size = group_size;
  base.desc_act = desc_act;
  base.sym = sym;
  base.damp_percent = damp_percent;
  const QuantConfig r = DynamicOverrides(dynamic, "quantization_config").resolve(name, base);
  QuantizationConfig q = *this;
  q.bits = r.bits;
  q.group_size = r.group_size;
  q.desc_act = r.desc_act;
  q.sym = r.sym;
  q.damp_percent = r.damp_percent;
  return q;
}

}  // namespace gptq
