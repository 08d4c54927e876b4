// Evaluation math: perplexity by the fixtures' protocol (reference/expected.json) and the
// divergence of a model from a base model over the same predictions.
//
// Protocol: the token ids are cut into non-overlapping windows ids[i*T:(i+1)*T] (the last partial
// window dropped); each window is an independent sequence (positions 0..T-1, causal). Window w
// predicts token t+1 from tokens 0..t for t < T-1 (T-1 predictions). NLL = logsumexp(logits) -
// logit[target] (natural log), mean over all predictions of all windows; ppl = exp(mean NLL).
// Comparison: per prediction KL(P_base || P_model) = sum_v p_base(v) (log p_base(v) -
// log p_model(v)) and whether the argmaxes agree, averaged over the predictions. Log-softmax is
// computed in double.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace gptq {

class ModelForward;

struct EvalOptions {
  int64_t seqlen = 256;
  int64_t max_windows = 0;  // 0 = all complete windows
  // Windows per forward pass: 0 = 1 when the blocks are resident, else all windows at once (each
  // on-demand block is then built once). Memory: windows_per_pass * seqlen * hidden floats.
  int64_t windows_per_pass = 0;
  std::function<void(int64_t done, int64_t total)> progress;  // windows done so far
  // The model's logits of each window [seqlen, vocab] (all positions: the numbers
  // ModelForward::logits gives for the window's ids).
  std::function<void(int64_t window, const float* logits, int64_t rows, int64_t vocab)> logits;
};

struct PerplexityResult {
  int64_t windows = 0;
  int64_t predictions = 0;  // windows * (seqlen - 1)
  double mean_nll = 0;
  double ppl = 0;                  // exp(mean_nll)
  std::vector<double> window_nll;  // mean NLL of each window

  // The result over the first `n` windows only.
  PerplexityResult first_windows(int64_t n) const;
};

struct ComparisonResult {
  PerplexityResult base, model;
  int64_t predictions = 0;
  double mean_kl = 0;         // mean KL(P_base || P_model) in nats
  double top1_agreement = 0;  // fraction of predictions with the same argmax
};

// Number of windows evaluated for `num_tokens` ids.
int64_t eval_window_count(int64_t num_tokens, const EvalOptions& options);

PerplexityResult evaluate_perplexity(const ModelForward& model, const std::vector<int32_t>& ids,
                                     const EvalOptions& options = {});

// Runs both models on each window (no logits are stored beyond one window).
ComparisonResult compare_models(const ModelForward& base, const ModelForward& model,
                                const std::vector<int32_t>& ids, const EvalOptions& options = {});

// ---- Per-prediction math (one row of logits), in double ----

// log(sum_v exp(logits[v])).
double log_sum_exp(const float* logits, int64_t vocab);
// -log softmax(logits)[target].
double token_nll(const float* logits, int64_t vocab, int32_t target);
// KL(softmax(base) || softmax(model)).
double kl_divergence(const float* base, const float* model, int64_t vocab);
// Index of the first maximum (torch.argmax).
int64_t argmax(const float* logits, int64_t vocab);

}  // namespace gptq
