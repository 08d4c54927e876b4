// gptq::evaluate: perplexity of a model on a text (non-overlapping windows, no BOS, as
// `gptq eval`), and with a base model the mean KL divergence of the next-token distribution to it
// and the top-1 agreement.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gptq/callbacks.h"

namespace gptq {

class Model;

struct EvalParams {
  int64_t seqlen = 256;     // tokens per window (>= 2)
  int64_t max_windows = 0;  // evaluate only the first windows; 0: all
  // Optional: the model's logits of each window, [seqlen, vocab] row-major (window index first).
  std::function<void(int64_t window, const float* logits, int64_t rows, int64_t vocab)> on_logits;
};

struct EvalResult {
  int64_t tokens = 0;  // ids evaluated from (the whole text)
  int64_t windows = 0;
  int64_t predictions = 0;  // windows * (seqlen - 1)
  double ppl = 0;           // exp(mean_nll)
  double mean_nll = 0;      // nats per prediction
  std::vector<double> window_nll;
  bool compared = false;  // a base model was given:
  double base_ppl = 0;
  double kld = 0;             // mean KL(base || model), nats per prediction
  double top1_agreement = 0;  // fraction of predictions whose argmax agrees
};

// On token ids, or on a text (tokenized whole, without special tokens). `base`: optional.
EvalResult evaluate(const Model& model, const std::vector<int32_t>& ids,
                    const EvalParams& params = {}, const Model* base = nullptr,
                    const Callbacks& callbacks = {});
EvalResult evaluate(const Model& model, const std::string& text, const EvalParams& params = {},
                    const Model* base = nullptr, const Callbacks& callbacks = {});

}  // namespace gptq
