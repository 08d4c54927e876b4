// The architecture registry: add a line here for a new src/arch/<name>.cpp.
#include "arch/archs.h"

namespace gptq {

const std::vector<const ArchSpec*>& all_archs() {
  static const std::vector<const ArchSpec*> archs{
      &arch_llama(), &arch_mistral(), &arch_qwen2(),  &arch_gpt2(),  &arch_opt(),
      &arch_gpt_neox(), &arch_qwen3(), &arch_gemma(), &arch_gemma2(), &arch_gemma3(),
      &arch_phi3(), &arch_starcoder2(),
  };
  return archs;
}

const ArchSpec* find_arch(const std::string& model_type) {
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->model_types)
      if (t == model_type) return a;
  return nullptr;
}

const ArchSpec* find_wrapper_arch(const std::string& model_type) {
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->wrapper_types)
      if (t == model_type) return a;
  return nullptr;
}

}  // namespace gptq
