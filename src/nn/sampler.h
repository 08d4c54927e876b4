// Next-token sampling from one row of logits, as transformers' generate() with do_sample:
//   temperature == 0: greedy (argmax, the first maximum as torch.argmax);
//   else: logits / temperature, keep the top_k largest (0: all), then the smallest set of the
//   most likely tokens whose probability reaches top_p (1: all; always at least one), and draw
//   from softmax over what is kept.
// Draws use std::mt19937_64(seed): u = (next() >> 11) * 2^-53 in [0, 1) picks the token by
// inverse CDF over the kept tokens in decreasing probability (ties: lower id first), so a seed
// gives the same tokens on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace gptq {

struct SamplerOptions {
  double temperature = 0.8;  // >= 0; 0 = greedy
  int64_t top_k = 40;        // >= 0; 0 = no top-k filter
  double top_p = 1.0;        // (0, 1]
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws gptq::Error (kUsage) naming the option that is out of range.
  explicit Sampler(const SamplerOptions& options);

  const SamplerOptions& options() const { return options_; }
  bool greedy() const { return options_.temperature == 0.0; }
  // The next token id from logits [vocab].
  int32_t sample(const float* logits, int64_t vocab);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // candidate ids, most likely first
  std::vector<double> probs_;   // their probabilities
};

// The first index of the largest value (NaN never wins); -1 if n == 0.
int32_t argmax_token(const float* logits, int64_t vocab);

}  // namespace gptq
