// gptq::load: a float or GPTQ checkpoint (ours, AutoGPTQ's, GPTQModel's, Optimum's) ready to run
// on the CPU, as Optimum's load_quantized_model. Quantized layers run on the QuantLinear kernels
// (fused dequantize-and-multiply), the others as dense fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gptq {

struct LoadParams {
  bool dequantized = false;  // dequantize to fp32 once and use dense BLAS (the reference path)
  // Batches of rows (prefill, eval windows) through the quantized layers with int8 activations
  // (per 128 channels, as llama.cpp's q8 activations; x86 with AVX2 for codes of at most 4 bits or
  // AVX-512 VNNI, elsewhere no effect): about
  // 2x the fp32 kernel, outputs within 8-bit rounding instead of fp32-exact. Decode (one row)
  // is unchanged.
  bool int8_activations = false;
  int threads = 0;           // compute threads of this model's calls; 0: all cores
};

struct ModelInfo {
  std::string path;         // the model directory
  std::string model_type;   // config.json "model_type"
  std::string description;  // "float", or e.g. "GPTQ 4-bit g128 sym gptq (28 quantized layers)"
  bool quantized = false;
  int bits = 0;  // quantized checkpoints: bits, group size, act-order, grid, format
  int group_size = 0;
  bool desc_act = false;
  bool sym = true;
  std::string checkpoint_format;  // "gptq" or "gptq_v2"; "" when float
  int64_t quantized_layers = 0;
  int64_t float_layers = 0;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_blocks = 0;
  int64_t context_length = 0;  // longest sequence (prompt + generation) the model takes
};

class Model {
 public:
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelInfo& info() const;
  int threads() const;  // LoadParams::threads

  // The checkpoint's tokenizer, as transformers' tokenizer(text) / decode(ids).
  std::vector<int32_t> tokenize(const std::string& text, bool add_special_tokens = true) const;
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  // Logits of one sequence at positions 0..T-1: [T, vocab_size], row-major. The same numbers as
  // `gptq eval` computes for a window of these ids.
  std::vector<float> logits(const std::vector<int32_t>& ids) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  friend Model load(const std::string& model, const LoadParams& params);
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// `model`: a model directory, or a Hugging Face id "org/name" found in the local cache.
// Throws gptq::Error.
Model load(const std::string& model, const LoadParams& params = {});

}  // namespace gptq
