// llama.cpp for the GGUF tests: node-llama-cpp's prebuilt CPU build (scripts/setup_llama_cpp.sh).
//   * libggml-base.so loaded with dlopen: ggml's own to_float / from_float_ref of a type
//     (ggml_get_type_traits, ggml.h of the bundled llama.cpp);
//   * tests/llama_cpp/eval_gguf.mjs run with node: perplexity, KL divergence and next-token
//     probabilities computed by libllama.
// available() is false (with the reason in why_unavailable()) only when the package cannot be
// installed; the tests then GTEST_SKIP with that reason.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace gptq::testing {

class LlamaCpp {
 public:
  static const LlamaCpp& get();
  bool available() const { return !prefix_.empty(); }
  const std::string& why_unavailable() const { return why_; }

  // ggml's dequantization of `rows` rows of `n` values of ggml type `type`.
  std::vector<float> to_float(int type, const void* data, int64_t rows, int64_t n) const;
  // ggml's reference quantization (from_float_ref) of x [n]; returns the row's bytes.
  std::vector<uint8_t> from_float_ref(int type, const float* x, int64_t n) const;

  // eval_gguf.mjs with `args` ("--model F --ids F ..."): its JSON result. Throws on failure.
  nlohmann::json eval(const std::string& args) const;

 private:
  LlamaCpp();
  std::string prefix_, why_;
  void* lib_ = nullptr;
  void* traits_ = nullptr;  // ggml_get_type_traits
};

// A byte-level BPE tokenizer.json of `vocab` single-character tokens (no merges) for tiny random
// checkpoints, written into `dir`.
void write_tiny_tokenizer(const std::filesystem::path& dir, int64_t vocab);

}  // namespace gptq::testing

// In a test: skips it, saying why, when llama.cpp is not installed (scripts/setup_llama_cpp.sh).
#define REQUIRE_LLAMA_CPP()                                               \
  do {                                                                    \
    if (!::gptq::testing::LlamaCpp::get().available())                    \
      GTEST_SKIP() << ::gptq::testing::LlamaCpp::get().why_unavailable(); \
  } while (0)
