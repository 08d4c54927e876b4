// Tokenizers of Hugging Face checkpoints: tokenizer.json with a BPE model (byte-level BPE as in
// GPT-2 / Llama-3 / Qwen2, pre-tokenizer regexes run with PCRE2; added and special tokens;
// the post-processor's BOS/EOS handling), and sentencepiece tokenizer.model (Llama-2, Mistral)
// through libsentencepiece. Unsupported tokenizer types are a clear gptq::Error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gptq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // tokenizer.json if present, else tokenizer.model; error naming the directory if neither.
  static std::unique_ptr<Tokenizer> from_model_dir(const std::filesystem::path& dir);
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::filesystem::path& file);
  static std::unique_ptr<Tokenizer> from_sentencepiece(const std::filesystem::path& file);

  // Encodes like transformers' tokenizer(text) (add_special_tokens=True adds what the
  // post-processor / tokenizer_config says, e.g. Llama's BOS).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
};

}  // namespace gptq
