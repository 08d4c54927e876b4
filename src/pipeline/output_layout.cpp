#include "pipeline/output_layout.h"

#include <algorithm>
#include <set>

#include "io/safetensors.h"

namespace gptq {

namespace {
int64_t block_of(const std::string& name, const std::string& block_name) {
  const std::string prefix = block_name + ".";
  if (!name.starts_with(prefix)) return -1;
  const auto end = name.find('.', prefix.size());
  const std::string part = name.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
  if (part.empty() || part.size() > 9 || !std::all_of(part.begin(), part.end(), ::isdigit)) return -1;
  return std::stoll(part);
}
}  // namespace

OutputLayout make_output_layout(const TensorStore& store, const ModelPlan& plan, bool zero_bias) {
  OutputLayout out;
  std::set<std::string> replaced;
  for (const auto& l : plan.layers) {
    if (!l.quantize) continue;
    replaced.insert(l.name + ".weight");
    replaced.insert(l.name + ".bias");
    out.specs.push_back({l.name + ".qweight", DType::I32, l.qweight_shape()});
    out.specs.push_back({l.name + ".qzeros", DType::I32, l.qzeros_shape()});
    out.specs.push_back({l.name + ".scales", DType::F16, l.scales_shape()});
    out.specs.push_back({l.name + ".g_idx", DType::I32, {l.in_features}});
    if (l.has_bias || zero_bias) out.specs.push_back({l.name + ".bias", DType::F16, {l.out_features}});
  }
  for (const auto& n : store.names()) {
    if (replaced.count(n)) continue;
    const auto& t = store.get(n);
    out.specs.push_back({n, t.dtype, t.shape});
    out.copied.push_back(n);
  }
  std::stable_sort(out.specs.begin(), out.specs.end(), [&](const TensorSpec& a, const TensorSpec& b) {
    const int64_t ba = block_of(a.name, plan.block_name), bb = block_of(b.name, plan.block_name);
    if (ba != bb) return ba < bb;
    return a.name < b.name;
  });
  return out;
}

}  // namespace gptq
