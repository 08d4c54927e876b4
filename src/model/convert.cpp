#include "model/convert.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "io/safetensors.h"
#include "model/dynamic_overrides.h"
#include "util/error.h"

namespace gptq {

const std::vector<std::string>& block_patterns() {
  static const std::vector<std::string> patterns{
      "transformer.h", "model.decoder.layers", "gpt_neox.layers", "model.layers",
      "model.language_model.layers", "language_model.model.layers", "h", "decoder.layers", "layers"};
  return patterns;
}

std::vector<std::string> module_names_from_tensors(const std::vector<std::string>& tensor_names) {
  std::set<std::string> mods;
  for (const auto& t : tensor_names) {
    for (size_t pos = t.find('.'); pos != std::string::npos; pos = t.find('.', pos + 1))
      mods.insert(t.substr(0, pos));
  }
  return {mods.begin(), mods.end()};
}

std::string detect_block_pattern(const std::vector<std::string>& module_names) {
  for (const auto& p : block_patterns())
    for (const auto& m : module_names)
      if (m.starts_with(p)) return p;
  return {};
}

bool matches_modules_in_block(const std::string& name,
                              const std::vector<std::vector<std::string>>& modules_in_block) {
  for (const auto& group : modules_in_block)
    for (const auto& suffix : group)
      if (name.ends_with(suffix)) return true;
  return false;
}

std::vector<int64_t> QuantLayer::qweight_shape() const {
  return {(in_features * bits + 31) / 32, out_features};
}
std::vector<int64_t> QuantLayer::qzeros_shape() const {
  return {groups, (out_features * bits + 31) / 32};
}
std::vector<int64_t> QuantLayer::scales_shape() const { return {groups, out_features}; }

std::vector<const QuantLayer*> ModelPlan::block_layers(int64_t block) const {
  std::vector<const QuantLayer*> out;
  for (const auto& l : layers)
    if (l.block == block) out.push_back(&l);
  return out;
}

namespace {

bool is_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::vector<int64_t> find_block_indices(const std::vector<std::string>& tensor_names,
                                        const std::string& block_name) {
  std::set<int64_t> idx;
  const std::string prefix = block_name + ".";
  for (const auto& t : tensor_names) {
    if (!t.starts_with(prefix)) continue;
    const auto end = t.find('.', prefix.size());
    if (end == std::string::npos) continue;
    const std::string part = t.substr(prefix.size(), end - prefix.size());
    if (is_digits(part) && part.size() < 10) idx.insert(std::stoll(part));
  }
  return {idx.begin(), idx.end()};
}

namespace {

// The weight parameters of a block that are layers Optimum would replace, as local module names
// in registration order: the architecture's list first, then (generic / unknown extras) 2-D and
// 4-D weights in name order.
struct FoundLayer {
  std::string local;
  LinearKind kind;
  std::string input_group;
  bool stays_float = false;  // a router or shared-expert gate
};

std::vector<FoundLayer> layers_of_block(const ModelConfig& config, int64_t block, const TensorStore& store,
                                        const std::string& block_prefix, std::vector<std::string>* warnings) {
  const ArchSpec* arch = config.arch;
  std::vector<FoundLayer> out;
  std::set<std::string> seen;
  if (arch) {
    for (const auto& l : arch->block_linears(config.hp, block)) {
      if (store.find(block_prefix + l.name + ".weight")) {
        out.push_back({l.name, l.kind, l.input_group});
        seen.insert(l.name);
      }
    }
    for (const auto& f : arch->float_modules)
      if (!seen.count(f) && store.find(block_prefix + f + ".weight")) {
        out.push_back({f, LinearKind::kLinear, "float:" + f, true});
        seen.insert(f);
      }
  }
  for (const auto& n : store.names()) {
    if (!n.starts_with(block_prefix) || !n.ends_with(".weight")) continue;
    const std::string local = n.substr(block_prefix.size(), n.size() - block_prefix.size() - 7);
    if (seen.count(local)) continue;
    const auto& t = store.get(n);
    if (t.shape.size() != 2 && t.shape.size() != 4) continue;  // norms, biases, scalars
    if (local.find("embed") != std::string::npos) continue;     // embeddings are not replaced
    const LinearKind kind = t.shape.size() == 4 ? LinearKind::kConv2d : LinearKind::kLinear;
    out.push_back({local, kind, "own:" + local});
    seen.insert(local);
    if (arch && warnings)
      warnings->push_back(fmt::format("{}{}: not in the '{}' architecture description; treated as a "
                                      "Linear layer of its own",
                                      block_prefix, local, arch->name));
  }
  return out;
}

// A group size that divides `in` (the largest power of two below `group_size`, at least 16), or -1.
int dividing_group_size(int64_t in, int group_size) {
  for (int g = 1 << 20; g >= 16; g /= 2)
    if (g < group_size && in % g == 0) return g;
  return -1;
}

// Loader shape issues of every quantized layer, and one warning per layer name and shape.
void note_loader_issues(ModelPlan& plan, const ConvertOptions& opt) {
  struct Seen {
    const QuantLayer* first;
    int64_t blocks;
  };
  std::map<std::string, Seen> seen;  // key: local name + shape
  std::vector<std::string> order;
  for (auto& l : plan.layers) {
    if (!l.quantize) continue;
    l.loader_issues = loader_shape_issues(l.in_features, l.out_features, opt.bits, opt.group_size);
    if (l.loader_issues.empty()) continue;
    const std::string key = fmt::format("{} {}x{}", l.local_name, l.out_features, l.in_features);
    auto [it, added] = seen.try_emplace(key, Seen{&l, 0});
    ++it->second.blocks;
    if (added) order.push_back(key);
  }
  for (const auto& key : order) {
    const Seen& s = seen.at(key);
    const QuantLayer& l = *s.first;
    std::string fix;
    if (opt.group_size > 0 && l.in_features % opt.group_size != 0)
      fix = fmt::format("; --group-size {} avoids it", dividing_group_size(l.in_features, opt.group_size));
    if (l.in_features % 32 != 0 || l.out_features % 32 != 0)
      fix += "; without --allow-unaligned the layer stays float";
    plan.loader_warnings.push_back(fmt::format("{} ({}x{}, {} block{}): {}{}", l.local_name, l.out_features,
                                               l.in_features, s.blocks, s.blocks == 1 ? "" : "s",
                                               describe_loader_issues(l.loader_issues), fix));
  }
}

// Bits and group size of a layer: the options', after the dynamic overrides of its name.
void set_bits_and_groups(QuantLayer& q, const ConvertOptions& opt) {
  QuantConfig base;
  base.bits = opt.bits;
  base.group_size = opt.group_size;
  const QuantConfig r = opt.dynamic ? opt.dynamic->resolve(q.name, base) : base;
  q.bits = r.bits;
  q.group_size = r.group_size;
}

// G = ceil(K / group size); one group per row with group size -1.
int64_t groups_of(const QuantLayer& q) {
  const int64_t gs = q.group_size == -1 ? q.in_features : q.group_size;
  return (q.in_features + gs - 1) / gs;
}

// The output head as a layer of its own after the blocks (GPTQModel's lm_head=True).
QuantLayer plan_lm_head(const ModelConfig& config, const TensorStore& store, int64_t num_blocks,
                        const ConvertOptions& opt) {
  const ArchSpec& arch = config.require_arch();
  const ModelLayout names = model_layout(config, [&](const std::string& n) { return store.find(n) != nullptr; });
  const TensorInfo* w = names.lm_head.empty() ? nullptr : store.find(names.lm_head + ".weight");
  if (config.hp.tie_word_embeddings || !w)
    fail_code(ExitCode::kUsage,
              "--lm-head: this {} checkpoint ties its output head to the token embedding ({}), so quantizing the "
              "head would also change the embedding; quantize without --lm-head",
              arch.name, w ? "tie_word_embeddings is true" : "there is no " + names.lm_head + ".weight");
  QuantLayer q;
  q.name = q.local_name = names.lm_head;
  q.block = num_blocks;
  q.kind = LinearKind::kLinear;
  q.input_group = "lm_head";
  if (w->shape.size() != 2 || w->shape[1] != config.hp.hidden)
    fail("{}.weight has shape {}; the head needs [vocab, {}]", q.name, w->shape_str(), config.hp.hidden);
  q.out_features = w->shape[0];
  q.in_features = w->shape[1];
  q.weight_dtype = w->dtype;
  set_bits_and_groups(q, opt);
  q.groups = groups_of(q);
  q.has_bias = store.find(q.name + ".bias") != nullptr;
  q.writes_bias = q.has_bias || opt.zero_bias;
  if (!opt.allow_unaligned && (q.in_features % 32 != 0 || q.out_features % 32 != 0))
    fail_code(ExitCode::kUsage, "--lm-head: the head is {}x{}, not multiples of 32; add --allow-unaligned",
              q.out_features, q.in_features);
  return q;
}

}  // namespace

ModelPlan convert_model(const ModelConfig& config, const TensorStore& store, const ConvertOptions& opt) {
  if (opt.bits != 2 && opt.bits != 3 && opt.bits != 4 && opt.bits != 8)
    fail_code(ExitCode::kUsage, "--bits {}: must be one of 2, 3, 4, 8", opt.bits);
  if (opt.group_size == 0 || opt.group_size < -1)
    fail_code(ExitCode::kUsage, "--group-size {}: must be -1 (one group per row) or a positive number",
              opt.group_size);

  ModelPlan plan;
  plan.bits = opt.bits;
  plan.group_size = opt.group_size;
  const std::vector<std::string> names = store.names();

  if (!opt.block_name.empty()) {
    plan.block_name = opt.block_name;
    plan.block_name_detected = false;
  } else {
    plan.block_name = detect_block_pattern(module_names_from_tensors(names));
    if (plan.block_name.empty())
      fail("{}: no transformer block list found (tried Optimum's patterns transformer.h, "
           "model.decoder.layers, gpt_neox.layers, model.layers, model.language_model.layers, h, "
           "decoder.layers, layers); pass --block-name with the path of the block list",
           store.root().string());
  }
  const std::vector<int64_t> blocks = find_block_indices(names, plan.block_name);
  if (blocks.empty()) {
    std::string hint;
    for (const auto& m : module_names_from_tensors(names))
      if (m.starts_with(plan.block_name)) {
        hint = m;
        break;
      }
    fail("block list '{}' {}has no numbered blocks ('{}.0.*'){}; pass --block-name with the path of "
         "the list of transformer blocks",
         plan.block_name, plan.block_name_detected ? "(detected by Optimum's prefix patterns) " : "",
         plan.block_name,
         hint.empty() ? "" : fmt::format(": the pattern matched module '{}' by prefix", hint));
  }
  for (size_t i = 0; i < blocks.size(); ++i)
    if (blocks[i] != static_cast<int64_t>(i))
      fail("block list '{}': block {} is missing (blocks must be numbered 0..n-1)", plan.block_name, i);
  plan.num_blocks = static_cast<int64_t>(blocks.size());
  if (config.arch && config.hp.layers != plan.num_blocks)
    plan.warnings.push_back(fmt::format("config.json says {} layers but the checkpoint has {} blocks",
                                        config.hp.layers, plan.num_blocks));

  for (int64_t b = 0; b < plan.num_blocks; ++b) {
    const std::string prefix = fmt::format("{}.{}.", plan.block_name, b);
    for (const auto& found : layers_of_block(config, b, store, prefix, b == 0 ? &plan.warnings : nullptr)) {
      QuantLayer q;
      q.name = prefix + found.local;
      q.local_name = found.local;
      q.block = b;
      q.kind = found.kind;
      q.input_group = found.input_group;
      set_bits_and_groups(q, opt);
      const TensorInfo& w = store.get(q.name + ".weight");
      q.weight_dtype = w.dtype;
      if (!is_float(w.dtype))
        fail("{}.weight has dtype {}: a float (F32/F16/BF16) weight is needed; is this checkpoint "
             "already quantized?",
             q.name, dtype_name(w.dtype));
      if (q.kind == LinearKind::kConv1D) {
        if (w.shape.size() != 2) fail("{}.weight: Conv1D weight must be 2-D, got {}", q.name, w.shape_str());
        q.in_features = w.shape[0];
        q.out_features = w.shape[1];
      } else if (q.kind == LinearKind::kConv2d) {
        q.in_features = w.shape[1];
        q.out_features = w.shape[0];
        if (w.shape[2] != 1 || w.shape[3] != 1) {
          q.quantize = false;
          q.skip_reason = "Conv2d with a kernel larger than 1x1 (QuantLinear cannot represent it)";
        }
      } else {
        if (w.shape.size() != 2) fail("{}.weight: Linear weight must be 2-D, got {}", q.name, w.shape_str());
        q.in_features = w.shape[1];
        q.out_features = w.shape[0];
      }
      q.has_bias = store.find(q.name + ".bias") != nullptr;
      q.writes_bias = q.has_bias || opt.zero_bias;
      q.groups = groups_of(q);
      if (opt.dynamic && opt.dynamic->excluded(q.name)) {
        q.quantize = false;
        q.skip_reason = "excluded by a \"-:\" dynamic rule";
      }
      if (found.stays_float) {
        q.quantize = false;
        q.skip_reason = "MoE router / shared-expert gate: stays float (as GPTQModel)";
      }
      if (q.quantize && !opt.modules_in_block.empty() && !matches_modules_in_block(q.name, opt.modules_in_block)) {
        q.quantize = false;
        q.skip_reason = "not in modules_in_block_to_quantize";
      }
      if (q.quantize && !opt.allow_unaligned && (q.in_features % 32 != 0 || q.out_features % 32 != 0)) {
        q.quantize = false;
        q.skip_reason = "in/out features not multiples of 32 (AutoGPTQ/exllama/vLLM cannot load it)";
        plan.warnings.push_back(fmt::format("{}: {}x{} stays float: {}; --allow-unaligned packs it "
                                            "anyway (GPTQModel-only checkpoint)",
                                            q.name, q.out_features, q.in_features, q.skip_reason));
      }
      plan.layers.push_back(std::move(q));
    }
  }
  if (opt.lm_head) plan.layers.push_back(plan_lm_head(config, store, plan.num_blocks, opt));
  // A --modules-in-block name that selects nothing is a typo, not a request to quantize nothing.
  for (const auto& group : opt.modules_in_block)
    for (const auto& suffix : group)
      if (std::none_of(plan.layers.begin(), plan.layers.end(),
                       [&](const QuantLayer& l) { return l.name.ends_with(suffix); })) {
        std::vector<std::string> local;
        for (const auto* l : plan.block_layers(0)) local.push_back(l->local_name);
        fail_code(ExitCode::kUsage,
                  "--modules-in-block: '{}' matches no linear layer of the blocks; use the layer names "
                  "of a block (block 0 has: {})",
                  suffix, fmt::join(local, ", "));
      }
  if (std::none_of(plan.layers.begin(), plan.layers.end(), [](const QuantLayer& l) { return l.quantize; }))
    plan.warnings.push_back("no layer is selected for quantization");
  note_loader_issues(plan, opt);

  // Sequential groups (Optimum quantize_model step 3), over the layer names of every block in
  // registration order (blocks may differ: dense and sparse layers of Qwen-MoE).
  std::vector<std::string> block0;
  std::set<std::string> named;
  for (const auto& l : plan.layers)
    if (l.quantize && l.block < plan.num_blocks && named.insert(l.local_name).second) block0.push_back(l.local_name);
  if (!opt.modules_in_block.empty()) {
    if (opt.true_sequential) {
      plan.sequential_groups = opt.modules_in_block;
    } else {
      std::vector<std::string> all;
      for (const auto& g : opt.modules_in_block) all.insert(all.end(), g.begin(), g.end());
      plan.sequential_groups = {all};
    }
  } else if (opt.true_sequential) {
    for (const auto& n : block0) plan.sequential_groups.push_back({n});
  } else {
    plan.sequential_groups = {block0};
  }

  // Sizes: parameters, input bytes and the estimated output.
  std::set<std::string> quantized_weights;
  for (const auto& l : plan.layers) {
    if (!l.quantize) continue;
    quantized_weights.insert(l.name + ".weight");
    plan.params_quantized += l.in_features * l.out_features;
    const auto qw = l.qweight_shape(), qz = l.qzeros_shape();
    plan.estimated_output_bytes += 4 * (qw[0] * qw[1] + qz[0] * qz[1] + l.in_features) + 2 * l.groups * l.out_features;
    if (l.writes_bias) plan.estimated_output_bytes += 2 * l.out_features;  // fp16 bias replaces the stored one
    quantized_weights.insert(l.name + ".bias");
  }
  for (const auto& n : names) {
    const auto& t = store.get(n);
    plan.params_total += t.numel();
    plan.input_bytes += t.nbytes;
    if (!quantized_weights.count(n)) plan.estimated_output_bytes += t.nbytes;
  }
  return plan;
}

}  // namespace gptq
