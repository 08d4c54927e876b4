// The registered architectures (one file each in src/arch/).
#pragma once

#include "model/arch.h"

namespace gptq {

const ArchSpec& arch_llama();
const ArchSpec& arch_mistral();
const ArchSpec& arch_qwen2();
const ArchSpec& arch_gpt2();
const ArchSpec& arch_opt();
const ArchSpec& arch_gpt_neox();
const ArchSpec& arch_qwen3();
const ArchSpec& arch_gemma();
const ArchSpec& arch_gemma2();
const ArchSpec& arch_gemma3();
const ArchSpec& arch_phi3();
const ArchSpec& arch_starcoder2();
const ArchSpec& arch_mixtral();
const ArchSpec& arch_qwen2_moe();
const ArchSpec& arch_qwen3_moe();

}  // namespace gptq
