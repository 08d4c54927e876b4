// The tokenizer of a Hugging Face checkpoint as llama.cpp's GGUF vocabulary. In the converter's
// order of preference (convert_hf_to_gguf.py's LlamaModel.set_vocab):
//   * tokenizer.model (SentencePiece; Llama 2, Mistral v0.1-v0.3, Gemma 1-3, Phi-3): _set_vocab_
//     sentencepiece: tokenizer.ggml.model "llama", pre "default", the pieces with their scores and
//     types (normal / unknown / control / unused / byte), added tokens of added_tokens.json and
//     tokenizer_config.json's added_tokens_decoder, padded to vocab_size with "[PAD<i>]" unused;
//   * a tokenizer.json BPE model with byte_fallback (Llama 2 / Mistral fast tokenizers):
//     _set_vocab_llama_hf (gguf-py's LlamaHfVocab): "llama", byte tokens "<0xNN>" typed byte;
//   * a byte-level BPE tokenizer.json: _set_vocab_gpt2: tokenizer.ggml.model "gpt2", the
// tokens in id order (ids absent from the vocabulary become "[PAD<i>]", unused), token types
// (added special tokens: control; other added tokens: user-defined), merges "a b", and the special
// token ids of tokenizer_config.json / config.json (gguf-py's SpecialVocab).
//
// tokenizer.ggml.pre names llama.cpp's pre-tokenizer (llama-vocab.cpp). convert_hf_to_gguf.py finds
// it from a hash of the tokens of a check text; here it is the name whose regex is the
// tokenizer.json's: a plain ByteLevel pre-tokenizer with use_regex is GPT-2's ("gpt-2"); a Split
// with Llama 3's regex is "llama-bpe", with Qwen 2's "qwen2". Other pre-tokenizers are refused
// unless a name is given (--tokenizer-pre).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/gguf_writer.h"

namespace gptq::gguf {

struct GgufVocab {
  std::string model = "gpt2";
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // "gpt2" only
  std::vector<float> scores;        // "llama" only
  std::optional<uint32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::vector<std::string> warnings;  // what llama.cpp will not reproduce (for the export report)
};

// Reads <dir>/tokenizer.json (+ tokenizer_config.json, config.json). `vocab_size` is config.json's
// (the token list is padded to it). `pre_override` (non-empty) replaces the detected name.
// `arch` is general.architecture (Gemma's SPM vocabularies get add_space_prefix false).
GgufVocab read_vocab(const std::filesystem::path& dir, int64_t vocab_size,
                     const std::string& pre_override = "", const std::string& arch = "");

// The llama.cpp pre-tokenizer name for a tokenizer.json "pre_tokenizer" object ("" if unknown).
std::string detect_pre_tokenizer(const nlohmann::json& pre_tokenizer);

void write_vocab(GgufWriter& w, const GgufVocab& v);

}  // namespace gptq::gguf
