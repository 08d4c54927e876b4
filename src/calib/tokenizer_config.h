// The parts of tokenizer_config.json (beside tokenizer.json / tokenizer.model) that change
// encoding: tokenizer_class, add_bos_token / add_eos_token and the bos / eos token strings.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace gptq::tok {

struct TokenizerConfig {
  bool present = false;
  std::string tokenizer_class;
  std::optional<bool> add_bos_token, add_eos_token;
  std::optional<std::string> bos_token, eos_token;
};

// Reads dir/tokenizer_config.json if it exists (an absent file gives present == false);
// bos / eos tokens missing there are taken from dir/special_tokens_map.json if present.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

// transformers classes whose fast tokenizer rebuilds the post-processor from add_bos_token
// (default true) / add_eos_token (default false): LlamaTokenizer(Fast), CodeLlama, Gemma.
bool rebuilds_post_processor(const std::string& tokenizer_class);

}  // namespace gptq::tok
