// gptq::generate: text generation with a KV cache (the prompt in one pass, then one token per
// step), sampling as transformers' generate(do_sample=...) does; the same seed gives the same text
// on every platform and thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gptq {

class Model;

struct GenerateParams {
  int64_t max_new_tokens = 64;
  double temperature = 0.8;  // 0: greedy
  int64_t top_k = 40;        // 0: no top-k filter
  double top_p = 1.0;        // nucleus sampling mass, (0, 1]
  uint64_t seed = 0;
};

struct GenerateResult {
  std::string text;                 // the continuation (without the prompt)
  std::vector<int32_t> prompt_ids;  // the prompt, encoded with special tokens
  std::vector<int32_t> tokens;      // generated ids (without a final end-of-sequence id)
  bool stopped_at_eos = false;      // else max_new_tokens was reached
  double prefill_seconds = 0;
  int64_t decode_steps = 0;
  double decode_seconds = 0;
  double prefill_tokens_per_second = 0;
  double decode_tokens_per_second = 0;
};

// `on_text` receives the continuation as it is produced (whole UTF-8 characters); returning false
// cancels (gptq::Error, ExitCode::kInterrupted). Throws gptq::Error.
GenerateResult generate(const Model& model, const std::string& prompt,
                        const GenerateParams& params = {},
                        const std::function<bool(const std::string& text)>& on_text = {});

}  // namespace gptq
