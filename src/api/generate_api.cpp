// gptq::generate at the library boundary: prompt text in, continuation text out (streamed).
#include "api/boundary.h"
#include "api/model_impl.h"
#include "gptq/generate.h"
#include "infer/generate.h"
#include "infer/text_stream.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq {

GenerateResult generate(const Model& model, const std::string& prompt, const GenerateParams& params,
                        const std::function<bool(const std::string& text)>& on_text) {
  return api::guarded([&] {
    const ComputeThreadsScope threads(model.threads());
    GenerateOptions o;
    o.max_new_tokens = params.max_new_tokens;
    o.sampling.temperature = params.temperature;
    o.sampling.top_k = params.top_k;
    o.sampling.top_p = params.top_p;
    o.sampling.seed = params.seed;
    const Sampler check(o.sampling);  // option errors name the option
    if (o.max_new_tokens < 0)
      fail_code(ExitCode::kUsage, "--max-new-tokens {}: must be >= 0", o.max_new_tokens);
    const Model::Impl& m = model.impl();
    GenerateResult r;
    r.prompt_ids = m.tokenizer().encode(prompt, true);
    if (r.prompt_ids.empty())
      fail_code(ExitCode::kUsage, "--prompt encodes to no tokens; give a non-empty text");
    check_generation_fits(m.forward(), static_cast<int64_t>(r.prompt_ids.size()), o.max_new_tokens);
    o.eos_ids = eos_token_ids(m.loaded->config, m.tokenizer().eos_id());
    TextStream stream(m.tokenizer(), r.prompt_ids);
    auto emit = [&](const std::string& piece) {
      if (on_text && !piece.empty() && !on_text(piece))
        fail_code(ExitCode::kInterrupted, "generation cancelled");
    };
    const Generation g =
        gptq::generate(m.forward(), r.prompt_ids, o, [&](int32_t id) { emit(stream.push(id)); });
    emit(stream.finish());
    r.text = stream.text();
    r.tokens = g.tokens;
    r.stopped_at_eos = g.stopped_at_eos;
    r.prefill_seconds = g.prefill_seconds;
    r.decode_steps = g.decode_steps;
    r.decode_seconds = g.decode_seconds;
    r.prefill_tokens_per_second = g.prefill_tokens_per_second();
    r.decode_tokens_per_second = g.decode_tokens_per_second();
    return r;
  });
}

}  // namespace gptq
