#include "nn/eval.h"

#include <algorithm>
#include <cmath>

#include "nn/model_forward.h"
#include "nn/vec_math.h"
#include "util/error.h"

namespace gptq {

namespace {

void check_options(const EvalOptions& o, int64_t num_tokens) {
  if (o.seqlen < 2) fail("evaluation: seqlen must be at least 2, got {}", o.seqlen);
  if (o.max_windows < 0) fail("evaluation: max_windows must be >= 0, got {}", o.max_windows);
  if (num_tokens / o.seqlen == 0)
    fail("evaluation: {} tokens do not fill one window of {} tokens", num_tokens, o.seqlen);
}

int64_t windows_per_pass(const ModelForward& m, const EvalOptions& o, int64_t windows) {
  if (o.windows_per_pass > 0) return std::min(o.windows_per_pass, windows);
  return m.blocks_resident() ? 1 : windows;
}

// Fills the per-window NLL sums into r and finalizes it.
void finalize(PerplexityResult& r, int64_t seqlen) {
  r.windows = static_cast<int64_t>(r.window_nll.size());
  r.predictions = r.windows * (seqlen - 1);
  double sum = 0;
  for (double w : r.window_nll) sum += w;
  r.mean_nll = r.windows ? sum / static_cast<double>(r.windows) : 0.0;
  r.ppl = std::exp(r.mean_nll);
}

// Mean NLL of one window from its logits [T-1, vocab].
double window_nll(const float* logits, int64_t vocab, const int32_t* ids, int64_t seqlen) {
  double s = 0;
  for (int64_t t = 0; t + 1 < seqlen; ++t) s += token_nll(logits + t * vocab, vocab, ids[t + 1]);
  return s / static_cast<double>(seqlen - 1);
}

}  // namespace

PerplexityResult PerplexityResult::first_windows(int64_t n) const {
  PerplexityResult r;
  const int64_t per = windows ? predictions / windows + 1 : 2;
  r.window_nll.assign(window_nll.begin(), window_nll.begin() + std::clamp<int64_t>(n, 0, windows));
  finalize(r, per);
  return r;
}

int64_t eval_window_count(int64_t num_tokens, const EvalOptions& o) {
  check_options(o, num_tokens);
  const int64_t all = num_tokens / o.seqlen;
  return o.max_windows > 0 ? std::min(all, o.max_windows) : all;
}

double log_sum_exp(const float* logits, int64_t vocab) {
  const float mx = nn::max_value(logits, vocab);
  return static_cast<double>(mx) + std::log(nn::exp_shifted(logits, vocab, mx, nullptr));
}

double token_nll(const float* logits, int64_t vocab, int32_t target) {
  if (target < 0 || target >= vocab)
    fail("evaluation: target token id {} is outside the vocabulary [0, {})", target, vocab);
  return log_sum_exp(logits, vocab) - static_cast<double>(logits[target]);
}

namespace {
// KL(P_b || P_m) = sum_v p_b(v) * ((l_b(v) - l_m(v)) - (lse_b - lse_m)), p_b = e_b / s_b with
// e_b = exp(l_b - max_b) and s_b its sum; lse_* are the log-sum-exps. The differences are taken in
// double, so identical rows give exactly 0.
double kl_from_parts(const float* base, const float* model, int64_t vocab, const float* e_b,
                     double s_b, double lse_b, double lse_m) {
  const double dl = lse_b - lse_m;
  double kl = 0;
  for (int64_t v = 0; v < vocab; ++v)
    kl += static_cast<double>(e_b[v]) *
          ((static_cast<double>(base[v]) - static_cast<double>(model[v])) - dl);
  return kl / s_b;
}
}  // namespace

double kl_divergence(const float* base, const float* model, int64_t vocab) {
  std::vector<float> e(static_cast<size_t>(vocab));
  const float mb = nn::max_value(base, vocab);
  const double s_b = nn::exp_shifted(base, vocab, mb, e.data());
  return kl_from_parts(base, model, vocab, e.data(), s_b, mb + std::log(s_b),
                       log_sum_exp(model, vocab));
}

int64_t argmax(const float* logits, int64_t vocab) {
  const float mx = nn::max_value(logits, vocab);
  return std::find(logits, logits + vocab, mx) - logits;  // first maximum
}

PerplexityResult evaluate_perplexity(const ModelForward& model, const std::vector<int32_t>& ids,
                                     const EvalOptions& o) {
  const int64_t windows = eval_window_count(static_cast<int64_t>(ids.size()), o);
  const int64_t t = o.seqlen, d = model.hidden(), vocab = model.vocab();
  const int64_t per_pass = windows_per_pass(model, o, windows);
  std::vector<float> x(static_cast<size_t>(per_pass * t * d));
  std::vector<float> logits(static_cast<size_t>(t * vocab));
  PerplexityResult r;
  for (int64_t w0 = 0; w0 < windows; w0 += per_pass) {
    const int64_t c = std::min(per_pass, windows - w0);
    const int32_t* wids = ids.data() + w0 * t;
    model.forward_windows(wids, c, t, x.data());
    for (int64_t w = 0; w < c; ++w) {
      // Every position, as ModelForward::logits (the last one predicts nothing here).
      model.head(x.data() + w * t * d, t, logits.data());
      if (o.logits) o.logits(w0 + w, logits.data(), t, vocab);
      r.window_nll.push_back(window_nll(logits.data(), vocab, wids + w * t, t));
    }
    if (o.progress) o.progress(w0 + c, windows);
  }
  finalize(r, t);
  return r;
}

ComparisonResult compare_models(const ModelForward& base, const ModelForward& model,
                                const std::vector<int32_t>& ids, const EvalOptions& o) {
  if (base.vocab() != model.vocab() || base.hidden() != model.hidden())
    fail("compare_models: the models differ in vocabulary ({} vs {}) or hidden size ({} vs {})",
         base.vocab(), model.vocab(), base.hidden(), model.hidden());
  const int64_t windows = eval_window_count(static_cast<int64_t>(ids.size()), o);
  const int64_t t = o.seqlen, d = model.hidden(), vocab = model.vocab();
  // A resident model does not care how many windows a pass holds; a streamed one wants them all.
  const int64_t per_pass =
      std::max(windows_per_pass(base, o, windows), windows_per_pass(model, o, windows));
  std::vector<float> xb(static_cast<size_t>(per_pass * t * d)), xm(xb.size());
  std::vector<float> lb(static_cast<size_t>(t * vocab)), lm(lb.size());
  std::vector<float> e_b(static_cast<size_t>(vocab));
  ComparisonResult r;
  double kl_sum = 0;
  int64_t agree = 0;
  for (int64_t w0 = 0; w0 < windows; w0 += per_pass) {
    const int64_t c = std::min(per_pass, windows - w0);
    const int32_t* wids = ids.data() + w0 * t;
    base.forward_windows(wids, c, t, xb.data());
    model.forward_windows(wids, c, t, xm.data());
    for (int64_t w = 0; w < c; ++w) {
      base.head(xb.data() + w * t * d, t, lb.data());
      model.head(xm.data() + w * t * d, t, lm.data());
      if (o.logits) o.logits(w0 + w, lm.data(), t, vocab);
      const int32_t* cur = wids + w * t;
      double nll_b = 0, nll_m = 0;
      for (int64_t p = 0; p + 1 < t; ++p) {
        const float* b = lb.data() + p * vocab;
        const float* m = lm.data() + p * vocab;
        const float mb = nn::max_value(b, vocab), mm = nn::max_value(m, vocab);
        const double s_b = nn::exp_shifted(b, vocab, mb, e_b.data());
        const double lse_b = mb + std::log(s_b);
        const double lse_m = mm + std::log(nn::exp_shifted(m, vocab, mm, nullptr));
        const int32_t target = cur[p + 1];
        if (target < 0 || target >= vocab)
          fail("evaluation: target token id {} is outside the vocabulary [0, {})", target, vocab);
        nll_b += lse_b - static_cast<double>(b[target]);
        nll_m += lse_m - static_cast<double>(m[target]);
        kl_sum += kl_from_parts(b, m, vocab, e_b.data(), s_b, lse_b, lse_m);
        agree += std::find(b, b + vocab, mb) - b == std::find(m, m + vocab, mm) - m;
      }
      r.base.window_nll.push_back(nll_b / static_cast<double>(t - 1));
      r.model.window_nll.push_back(nll_m / static_cast<double>(t - 1));
    }
    if (o.progress) o.progress(w0 + c, windows);
  }
  finalize(r.base, t);
  finalize(r.model, t);
  r.predictions = r.model.predictions;
  r.mean_kl = r.predictions ? kl_sum / static_cast<double>(r.predictions) : 0.0;
  r.top1_agreement =
      r.predictions ? static_cast<double>(agree) / static_cast<double>(r.predictions) : 0.0;
  return r;
}

}  // namespace gptq
