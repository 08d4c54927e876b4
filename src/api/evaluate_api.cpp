// gptq::evaluate at the library boundary: perplexity and, with a base model, the KL divergence.
#include "api/boundary.h"
#include "api/model_impl.h"
#include "gptq/evaluate.h"
#include "infer/generate.h"
#include "nn/eval.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq {

namespace {

EvalResult run(const Model& model, const std::vector<int32_t>& ids, const EvalParams& params,
               const Model* base, const Callbacks& callbacks) {
  const ComputeThreadsScope threads(model.threads());
  EvalOptions o;
  o.seqlen = params.seqlen;
  o.max_windows = params.max_windows;
  if (o.seqlen < 2) fail_code(ExitCode::kUsage, "--seqlen {}: must be at least 2", o.seqlen);
  if (o.max_windows < 0)
    fail_code(ExitCode::kUsage, "--max-windows {}: must be >= 0", o.max_windows);
  // transformers warns and runs past the trained positions; the results would mean nothing.
  for (const Model* m : {&model, base}) {
    if (!m) continue;
    const int64_t context = context_length(m->impl().forward());
    if (o.seqlen > context)
      fail_code(ExitCode::kUsage,
                "--seqlen {}: more than the {} positions of {} (max_position_embeddings in "
                "config.json); use --seqlen {} or less",
                o.seqlen, context, m->info().path, context);
  }
  const int64_t windows = eval_window_count(static_cast<int64_t>(ids.size()), o);
  if (callbacks.progress)
    o.progress = [&](int64_t done, int64_t total) {
      if (!callbacks.progress(Progress{"evaluate", done, total, ""}))
        fail_code(ExitCode::kInterrupted, "evaluation cancelled after {} of {} windows", done,
                  total);
    };
  if (callbacks.progress && !callbacks.progress(Progress{"evaluate", 0, windows, ""}))
    fail_code(ExitCode::kInterrupted, "evaluation cancelled before the first window");
  o.logits = params.on_logits;
  EvalResult r;
  r.tokens = static_cast<int64_t>(ids.size());
  const PerplexityResult* p = nullptr;
  PerplexityResult alone;
  ComparisonResult cmp;
  if (!base) {
    alone = evaluate_perplexity(model.impl().forward(), ids, o);
    p = &alone;
  } else {
    const ModelForward& b = base->impl().forward();
    if (b.vocab() != model.impl().forward().vocab())
      fail("the base model {} has a vocabulary of {} tokens, the model {}", base->info().path,
           b.vocab(), model.impl().forward().vocab());
    cmp = compare_models(b, model.impl().forward(), ids, o);
    p = &cmp.model;
    r.compared = true;
    r.base_ppl = cmp.base.ppl;
    r.kld = cmp.mean_kl;
    r.top1_agreement = cmp.top1_agreement;
  }
  r.windows = p->windows;
  r.predictions = p->predictions;
  r.ppl = p->ppl;
  r.mean_nll = p->mean_nll;
  r.window_nll = p->window_nll;
  return r;
}

}  // namespace

EvalResult evaluate(const Model& model, const std::vector<int32_t>& ids, const EvalParams& params,
                    const Model* base, const Callbacks& callbacks) {
  return api::guarded([&] { return run(model, ids, params, base, callbacks); });
}

EvalResult evaluate(const Model& model, const std::string& text, const EvalParams& params,
                    const Model* base, const Callbacks& callbacks) {
  return api::guarded([&] {
    const std::vector<int32_t> ids = model.impl().tokenizer().encode(text, false);
    return run(model, ids, params, base, callbacks);
  });
}

}  // namespace gptq
