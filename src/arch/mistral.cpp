// MistralForCausalLM: the Llama block (sliding-window attention is irrelevant for calibration
// windows shorter than the window).
#include "arch/archs.h"
#include "arch/hparams_util.h"

namespace gptq {

const ArchSpec& arch_mistral() {
  static const ArchSpec spec = [] {
    ArchSpec s = arch_llama();
    s.name = "mistral";
    s.model_types = {"mistral"};
    return s;
  }();
  return spec;
}

}  // namespace gptq
