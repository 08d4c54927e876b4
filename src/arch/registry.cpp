// The architecture registry: add a line here for a new src/arch/<name>.cpp.
#include "arch/archs.h"

namespace gptq {

const std::vector<const ArchSpec*>& all_archs() {
  static const std::vector<const ArchSpec*> archs{
      &arch_llama(), &arch_mistral(), &arch_qwen2(), &arch_gpt2(), &arch_opt(), &arch_gpt_neox(),
  };
  return archs;
}

const ArchSpec* find_arch(const std::string& model_type) {
  for (const ArchSpec* a : all_archs())
    for (const auto& t : a->model_types)
      if (t == model_type) return a;
  return nullptr;
}

}  // namespace gptq
