// A Hugging Face tokenizer.json with a BPE model: added tokens -> normalizer -> pre-tokenizer
// -> BPE -> post-processor, as the tokenizers crate runs them, plus transformers' handling of
// tokenizer_config.json (LlamaTokenizerFast's add_bos_token / add_eos_token).
#pragma once

#include <filesystem>
#include <memory>

#include "calib/tokenizer.h"

namespace gptq::tok {

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& file);

}  // namespace gptq::tok
