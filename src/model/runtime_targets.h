// Which runtimes load a GPTQ checkpoint, and why not (README "Runtime targets"). One place for the
// rules, on top of loader_compat's per-shape loader issues:
//   vllm          gptq_marlin: 4- or 8-bit symmetric only, group size -1/32/64/128; act-order needs
//                 in_features % 128 and out_features % 64 (tensor-parallel size 1); plus the shape
//                 rules vLLM applies to every GPTQ layer (loader_compat "vllm").
//   transformers  (optimum / GPTQModel / auto-gptq kernels): in/out features multiples of 32 and
//   whole
//                 groups (loader_compat "auto-gptq").
//   gguf          llama.cpp through `gptq export-gguf`, written exactly: a family the exporter
//   knows,
//                 in_features % 32, groups aligned to ggml's 32-value blocks (group size -1 or a
//                 multiple of 32, no act-order g_idx), and code - zero inside Q4_0's [-8, 7] or
//                 Q8_0's int8 (not 8-bit asymmetric). Otherwise the export re-fits (with its
//                 error).
// `gptq quantize --target R` refuses before any work when R cannot load the result; `gptq inspect
// GPTQ_DIR` prints the table for all of them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gptq {

enum class Runtime { kVllm, kTransformers, kGguf };

const std::vector<Runtime>& all_runtimes();
std::string runtime_name(Runtime r);
// "vllm", "transformers", "gguf"; "any" -> nullopt. Throws a usage error naming the value
// otherwise.
std::optional<Runtime> parse_runtime(const std::string& name);

struct TargetSettings {
  int bits = 4;
  int group_size = 128;
  bool sym = true;
  bool desc_act = false;
  bool static_groups = false;  // with desc_act: groups stay contiguous (trivial g_idx)
  std::string family;          // gptq.cpp's architecture name ("" = unknown)
};

struct TargetLayer {
  std::string name;
  int64_t in_features = 0, out_features = 0;
  int bits = 4, group_size = 128;  // after per-module overrides
};

struct RuntimeVerdict {
  Runtime runtime = Runtime::kVllm;
  std::vector<std::string> reasons;  // empty: it loads
  std::string note;                  // how it loads (kernel / ggml type)
  bool loads() const { return reasons.empty(); }
};

RuntimeVerdict check_runtime(Runtime r, const TargetSettings& s,
                             const std::vector<TargetLayer>& layers);

struct ModelConfig;
struct ModelPlan;

// The layers a quantization plan will quantize (per-module bits / group size included).
std::vector<TargetLayer> plan_target_layers(const ModelPlan& plan);
// Settings and quantized layers of an existing GPTQ checkpoint (quantization_config + qweight
// shapes). Throws if `dir` holds no quantization_config.
std::pair<TargetSettings, std::vector<TargetLayer>> checkpoint_targets(
    const std::filesystem::path& dir);

// "vllm: no (--bits 3: vLLM's gptq_marlin loads only 4- or 8-bit symmetric weights)" lines.
std::string describe_verdict(const RuntimeVerdict& v);

}  // namespace gptq
