#include "model/runtime_targets.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "gguf/gguf_arch.h"
#include "io/safetensors.h"
#include "model/convert.h"
#include "model/loader_compat.h"
#include "model/model_config.h"
#include "model/quantization_config.h"
#include "util/error.h"

namespace gptq {

namespace {
// At most a few layer names per shape reason, then a count.
void add_layer_reason(std::vector<std::string>* reasons, std::set<std::string>* seen,
                      const std::string& what, const std::string& layer) {
  if (seen->insert(what).second) reasons->push_back(what + " (" + layer + ")");
}

void vllm_rules(const TargetSettings& s, const std::vector<TargetLayer>& layers,
                RuntimeVerdict* v) {
  std::set<int> bits{s.bits};
  std::set<int> groups{s.group_size};
  for (const auto& l : layers) bits.insert(l.bits), groups.insert(l.group_size);
  for (const int b : bits)
    if (b != 4 && b != 8)
      v->reasons.push_back(
          fmt::format("--bits {}: vLLM's gptq_marlin loads only 4- or 8-bit symmetric weights", b));
  if (!s.sym)
    v->reasons.push_back("--asym: vLLM's gptq_marlin loads only symmetric weights (4- or 8-bit)");
  for (const int g : groups)
    if (g != -1 && g != 32 && g != 64 && g != 128)
      v->reasons.push_back(
          fmt::format("--group-size {}: vLLM's gptq_marlin takes group sizes -1, 32, 64, 128", g));
  std::set<std::string> seen;
  for (const auto& l : layers) {
    if (s.desc_act && !s.static_groups) {
      if (l.in_features % 128 != 0)
        add_layer_reason(
            &v->reasons, &seen,
            fmt::format(
                "act-order needs in_features % 128 == 0 (tensor-parallel 1), in_features {}",
                l.in_features),
            l.name);
      if (l.out_features % 64 != 0)
        add_layer_reason(
            &v->reasons, &seen,
            fmt::format("act-order needs out_features % 64 == 0, out_features {}", l.out_features),
            l.name);
    }
    for (const auto& i : loader_shape_issues(l.in_features, l.out_features, l.bits, l.group_size))
      if (i.loader == "vllm")
        add_layer_reason(&v->reasons, &seen, i.condition + ": vLLM " + i.effect, l.name);
  }
  v->note = s.bits == 8 ? "gptq_marlin, uint8b128" : "gptq_marlin, uint4b8";
}

void transformers_rules(const TargetSettings& s, const std::vector<TargetLayer>& layers,
                        RuntimeVerdict* v) {
  std::set<std::string> seen;
  for (const auto& l : layers) {
    if (l.in_features % 32 != 0)
      add_layer_reason(&v->reasons, &seen,
                       fmt::format("in_features {} is not a multiple of 32 (QuantLinear buffers)",
                                   l.in_features),
                       l.name);
    if (l.out_features % 32 != 0)
      add_layer_reason(&v->reasons, &seen,
                       fmt::format("out_features {} is not a multiple of 32 (QuantLinear buffers)",
                                   l.out_features),
                       l.name);
    for (const auto& i : loader_shape_issues(l.in_features, l.out_features, l.bits, l.group_size))
      if (i.loader == "auto-gptq" && i.condition.find("group_size") != std::string::npos)
        add_layer_reason(&v->reasons, &seen, i.condition + ": transformers' torch path " + i.effect,
                         l.name);
  }
  v->note = s.sym ? "optimum / GPTQModel kernels" : "GPTQModel kernels (asymmetric: gptq_v2 zeros)";
}

void gguf_rules(const TargetSettings& s, const std::vector<TargetLayer>& layers,
                RuntimeVerdict* v) {
  const auto families = gguf::gguf_families();
  if (std::find(families.begin(), families.end(), s.family) == families.end())
    v->reasons.push_back(fmt::format("family {}: export-gguf writes {}",
                                     s.family.empty() ? "?" : s.family, fmt::join(families, ", ")));
  if (s.desc_act && !s.static_groups)
    v->reasons.push_back(
        "--desc-act: act-order g_idx mixes groups inside ggml's 32-value blocks, so export-gguf "
        "re-fits (use "
        "--static-groups for an exact export)");
  std::set<std::string> seen;
  for (const auto& l : layers) {
    if (l.in_features % 32 != 0)
      add_layer_reason(
          &v->reasons, &seen,
          fmt::format("in_features {} is not a multiple of ggml's 32-value block", l.in_features),
          l.name);
    if (l.group_size != -1 && l.group_size % 32 != 0)
      add_layer_reason(
          &v->reasons, &seen,
          fmt::format(
              "--group-size {}: not a multiple of ggml's 32-value block, export-gguf re-fits",
              l.group_size),
          l.name);
    if (l.bits == 8 && !s.sym)
      add_layer_reason(&v->reasons, &seen,
                       "8-bit asymmetric: code - zero spans [-255, 255], beyond Q8_0's int8; "
                       "export-gguf re-fits",
                       l.name);
  }
  if (s.bits == 8)
    v->note = "Q8_0, exact";
  else if (s.bits == 4 && !s.sym)
    v->note = "Q8_0 exact (--type q8_0), or Q4_1 with the offset rounded to fp16";
  else
    v->note = "Q4_0, exact";
}
}  // namespace

const std::vector<Runtime>& all_runtimes() {
  static const std::vector<Runtime> r{Runtime::kVllm, Runtime::kTransformers, Runtime::kGguf};
  return r;
}

std::string runtime_name(Runtime r) {
  switch (r) {
    case Runtime::kVllm:
      return "vllm";
    case Runtime::kTransformers:
      return "transformers";
    case Runtime::kGguf:
      return "gguf";
  }
  return "?";
}

std::optional<Runtime> parse_runtime(const std::string& name) {
  if (name == "any") return std::nullopt;
  for (const Runtime r : all_runtimes())
    if (runtime_name(r) == name) return r;
  fail_code(ExitCode::kUsage, "--target {}: unknown runtime (vllm, transformers, gguf or any)",
            name);
}

RuntimeVerdict check_runtime(Runtime r, const TargetSettings& s,
                             const std::vector<TargetLayer>& layers) {
  RuntimeVerdict v;
  v.runtime = r;
  switch (r) {
    case Runtime::kVllm:
      vllm_rules(s, layers, &v);
      break;
    case Runtime::kTransformers:
      transformers_rules(s, layers, &v);
      break;
    case Runtime::kGguf:
      gguf_rules(s, layers, &v);
      break;
  }
  return v;
}

std::vector<TargetLayer> plan_target_layers(const ModelPlan& plan) {
  std::vector<TargetLayer> out;
  for (const auto& l : plan.layers)
    if (l.quantize) out.push_back({l.name, l.in_features, l.out_features, l.bits, l.group_size});
  return out;
}

std::pair<TargetSettings, std::vector<TargetLayer>> checkpoint_targets(
    const std::filesystem::path& dir) {
  const auto q = QuantizationConfig::find_in_model_dir(dir);
  if (!q) fail("{} has no quantization_config: not a GPTQ checkpoint", dir.string());
  const ModelConfig cfg = ModelConfig::load(dir);
  TargetSettings s{q->bits,     q->group_size,    q->sym,
                   q->desc_act, q->static_groups, cfg.arch ? cfg.arch->name : ""};
  const TensorStore store = TensorStore::open(dir);
  std::vector<TargetLayer> layers;
  const std::string suffix = ".qweight";
  for (const auto& name : store.names()) {
    if (!name.ends_with(suffix)) continue;
    const std::string module = name.substr(0, name.size() - suffix.size());
    const QuantizationConfig m = q->for_module(module);
    const TensorInfo& qw = store.get(name);
    if (qw.shape.size() != 2) continue;
    int64_t k = qw.shape[0] * 32 / m.bits;
    if (const TensorInfo* gi = store.find(module + ".g_idx"); gi && gi->shape.size() == 1)
      k = gi->shape[0];
    layers.push_back({module, k, qw.shape[1], m.bits, m.group_size});
  }
  return {s, layers};
}

std::string describe_verdict(const RuntimeVerdict& v) {
  if (v.loads()) return fmt::format("{:<13} yes ({})", runtime_name(v.runtime), v.note);
  return fmt::format("{:<13} no: {}", runtime_name(v.runtime), fmt::join(v.reasons, "; "));
}

}  // namespace gptq
