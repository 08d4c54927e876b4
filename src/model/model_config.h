// config.json of a Hugging Face checkpoint, resolved against the architecture registry.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include "model/arch.h"

namespace gptq {

struct ModelConfig {
  std::filesystem::path dir;
  nlohmann::json raw;
  std::string model_type;
  std::string architecture;        // architectures[0], or "" if absent
  const ArchSpec* arch = nullptr;  // nullptr: unknown family (inspect works generically)
  ModelHparams hp;                 // valid when arch != nullptr
  std::string torch_dtype;         // "float16", "bfloat16", "float32" or ""
  // Multimodal checkpoints (Llava, Mistral 3, Gemma 3, Qwen2.5-VL): the language model inside is
  // what is quantized. text_tower is set, arch is the language model's family and text_raw its
  // configuration (text_config, or the top level, over the family's defaults). Otherwise
  // text_raw == raw.
  bool text_tower = false;
  nlohmann::json text_raw;

  // Reads <dir>/config.json. An unknown model_type is not an error here (see require_arch).
  static ModelConfig load(const std::filesystem::path& dir);

  // Throws a clear error listing the supported model types if arch is unknown.
  const ArchSpec& require_arch() const;

  // Optimum's default calibration length: min(4028, first of max_position_embeddings,
  // seq_length, n_positions; else 2048).
  int64_t default_seqlen() const;
  bool is_quantized() const { return raw.contains("quantization_config"); }
};

// The model-level tensor names (embedding, final norm, head) of the checkpoint: the family's,
// or, for the language model of a multimodal checkpoint, under the prefix its tensors use
// (`model.language_model.` with `lm_head`, or the older `language_model.model.` with
// `language_model.lm_head`). `has_tensor` says whether the checkpoint holds a tensor name.
ModelLayout model_layout(const ModelConfig& config,
                         const std::function<bool(const std::string&)>& has_tensor);

// MODEL argument -> local directory. A path that exists is used as is; "org/name" is looked up
// in the local Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub:
// models--org--name/snapshots/<refs/main>), offline, as transformers does.
std::filesystem::path resolve_model_path(const std::string& model);

}  // namespace gptq
