#include "model/dynamic_overrides.h"

#include "calib/tokenizer_regex.h"
#include "util/error.h"

namespace gptq {

struct DynamicOverrides::Rule {
  bool exclude = false;
  std::unique_ptr<tok::Regex> regex;
  nlohmann::json overrides;
};

DynamicOverrides::DynamicOverrides() = default;
DynamicOverrides::~DynamicOverrides() = default;
DynamicOverrides::DynamicOverrides(DynamicOverrides&&) noexcept = default;
DynamicOverrides& DynamicOverrides::operator=(DynamicOverrides&&) noexcept = default;

DynamicOverrides::DynamicOverrides(const nlohmann::json& j, const std::string& source) {
  if (j.is_null()) return;
  if (!j.is_object())
    fail("{}: dynamic must be an object of \"+:regex\" / \"-:regex\" rules, got {}", source, j.dump().substr(0, 60));
  json_ = j;
  for (const auto& [key, value] : j.items()) {
    auto r = std::make_unique<Rule>();
    std::string pattern = key;
    if (key.starts_with("-:")) {
      r->exclude = true;
      pattern = key.substr(2);
    } else if (key.starts_with("+:")) {
      pattern = key.substr(2);
    }
    if (!value.is_object()) fail("{}: dynamic rule '{}' must map to an object of settings", source, key);
    r->regex = std::make_unique<tok::Regex>(pattern, source + " dynamic rule '" + key + "'");
    r->overrides = value;
    // Validate the overridden settings now, not at the layer that uses them.
    QuantConfig probe;
    try {
      if (value.contains("bits")) probe.bits = value.at("bits").get<int>();
      if (value.contains("group_size")) probe.group_size = value.at("group_size").get<int>();
      if (value.contains("damp_percent")) probe.damp_percent = value.at("damp_percent").get<double>();
      if (value.contains("desc_act")) probe.desc_act = value.at("desc_act").get<bool>();
      if (value.contains("sym")) probe.sym = value.at("sym").get<bool>();
    } catch (const nlohmann::json::exception&) {
      fail("{}: dynamic rule '{}': bits / group_size must be integers, damp_percent a number, desc_act and sym "
           "booleans",
           source, key);
    }
    try {
      probe.validate();
    } catch (const Error& e) {
      fail("{}: dynamic rule '{}': {}", source, key, e.what());
    }
    rules_.push_back(std::move(r));
  }
}

const DynamicOverrides::Rule* DynamicOverrides::match(const std::string& module) const {
  for (const auto& r : rules_) {
    const auto m = r->regex->find_all(module);
    if (!m.empty() && m.front().first == 0) return r.get();  // re.match: anchored at the start
  }
  return nullptr;
}

bool DynamicOverrides::excluded(const std::string& module) const {
  const Rule* r = match(module);
  return r && r->exclude;
}

QuantConfig DynamicOverrides::resolve(const std::string& module, const QuantConfig& base) const {
  QuantConfig q = base;
  const Rule* r = match(module);
  if (!r || r->exclude) return q;
  const nlohmann::json& o = r->overrides;
  if (o.contains("bits")) q.bits = o.at("bits").get<int>();
  if (o.contains("group_size")) q.group_size = o.at("group_size").get<int>();
  if (o.contains("damp_percent")) q.damp_percent = o.at("damp_percent").get<double>();
  if (o.contains("desc_act")) q.desc_act = o.at("desc_act").get<bool>();
  if (o.contains("sym")) q.sym = o.at("sym").get<bool>();
  if (q.desc_act || q.group_size <= 0) q.act_group_aware = false;
  return q;
}

}  // namespace gptq
