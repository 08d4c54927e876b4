#include "nn/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace gptq {

int32_t argmax_token(const float* logits, int64_t vocab) {
  int32_t best = -1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!std::isnan(logits[i]) && (best < 0 || logits[i] > logits[best]))
      best = static_cast<int32_t>(i);
  return best < 0 && vocab > 0 ? 0 : best;
}

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  if (!std::isfinite(options.temperature) || options.temperature < 0)
    fail_code(ExitCode::kUsage, "temperature {}: must be >= 0 (0 = greedy)", options.temperature);
  if (options.top_k < 0)
    fail_code(ExitCode::kUsage, "top-k {}: must be >= 0 (0 = no top-k filter)", options.top_k);
  if (!(options.top_p > 0 && options.top_p <= 1))
    fail_code(ExitCode::kUsage, "top-p {}: must be in (0, 1] (1 = no nucleus filter)",
              options.top_p);
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (vocab <= 0) fail_code(ExitCode::kInternal, "sampler: no logits (vocabulary of {})", vocab);
  if (greedy()) return argmax_token(logits, vocab);

  // Candidates: the top_k ids by logit (ties: lower id first); NaN logits are never drawn.
  order_.resize(static_cast<size_t>(vocab));
  std::iota(order_.begin(), order_.end(), 0);
  const auto before = [logits](int32_t a, int32_t b) {
    const float x = std::isnan(logits[a]) ? -INFINITY : logits[a];
    const float y = std::isnan(logits[b]) ? -INFINITY : logits[b];
    return x > y || (x == y && a < b);
  };
  const int64_t k = options_.top_k == 0 ? vocab : std::min(options_.top_k, vocab);
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), before);
  order_.resize(static_cast<size_t>(k));

  // softmax(logits / T) over the candidates, in double.
  const double inv_t = 1.0 / options_.temperature;
  const double top = static_cast<double>(logits[order_[0]]) * inv_t;
  probs_.resize(order_.size());
  double sum = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    const float l = logits[order_[i]];
    const double p = std::isnan(l) ? 0.0 : std::exp(static_cast<double>(l) * inv_t - top);
    probs_[i] = p;
    sum += p;
  }
  if (!(sum > 0) || !std::isfinite(sum))  // all -inf / NaN: nothing to draw from
    return argmax_token(logits, vocab);
  size_t kept = probs_.size();
  if (options_.top_p < 1) {  // nucleus: keep token i while the mass before it is below top_p
    double mass = 0;
    for (size_t i = 0; i < probs_.size(); ++i) {
      if (mass >= options_.top_p * sum) {
        kept = i;
        break;
      }
      mass += probs_[i];
    }
    sum = std::accumulate(probs_.begin(), probs_.begin() + static_cast<std::ptrdiff_t>(kept), 0.0);
  }
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * sum;
  double acc = 0;
  for (size_t i = 0; i < kept; ++i) {
    acc += probs_[i];
    if (u < acc) return order_[i];
  }
  return order_[kept - 1];  // rounding at the very top of the range
}

}  // namespace gptq
