#include "infer/generate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "io/json_reader.h"
#include "model/model_config.h"
#include "nn/model_forward.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq {

namespace {

// eos_token_id as an int or a list of ints; appends to `out`.
void add_ids(const nlohmann::json& j, const std::string& where, std::vector<int32_t>& out) {
  const auto add = [&](const nlohmann::json& v) {
    if (!v.is_number_integer())
      fail("{}: eos_token_id must be an integer or a list of integers, got {}", where, v.dump());
    out.push_back(v.get<int32_t>());
  };
  if (j.is_array()) {
    for (const auto& v : j) add(v);
  } else if (!j.is_null()) {
    add(j);
  }
}

}  // namespace

double Generation::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
}

double Generation::decode_tokens_per_second() const {
  return decode_seconds > 0 ? static_cast<double>(decode_steps) / decode_seconds : 0.0;
}

int64_t context_length(const ModelForward& model) {
  const int64_t positions = model.hparams().max_positions;
  return positions > 0 ? std::min(positions, model.max_tokens()) : model.max_tokens();
}

void check_generation_fits(const ModelForward& model, int64_t prompt_tokens,
                           int64_t max_new_tokens) {
  if (prompt_tokens <= 0)
    fail_code(ExitCode::kUsage, "the prompt has no tokens; give a non-empty prompt");
  if (max_new_tokens < 0)
    fail_code(ExitCode::kUsage, "max new tokens {}: must be >= 0", max_new_tokens);
  const int64_t context = context_length(model);
  if (max_new_tokens > context - prompt_tokens)
    fail_code(ExitCode::kUsage,
              "the prompt ({} tokens) + {} new tokens exceed the model's context of {} positions "
              "(max_position_embeddings); shorten the prompt or lower --max-new-tokens to at "
              "most {}",
              prompt_tokens, max_new_tokens, context,
              std::max<int64_t>(0, context - prompt_tokens));
}

Generation generate(const ModelForward& model, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token) {
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  check_generation_fits(model, n_prompt, options.max_new_tokens);
  Sampler sampler(options.sampling);
  Generation r;
  r.prompt_tokens = n_prompt;
  if (options.max_new_tokens == 0) return r;

  const int64_t vocab = model.vocab(), hidden = model.hidden();
  // The last sampled token needs no forward: room for prompt + max_new_tokens - 1 positions.
  nn::KvCache cache = model.make_kv_cache(n_prompt + options.max_new_tokens - 1);
  std::vector<float> x(static_cast<size_t>(n_prompt * hidden)), logits(static_cast<size_t>(vocab));
  const auto is_eos = [&](int32_t id) {
    return std::find(options.eos_ids.begin(), options.eos_ids.end(), id) != options.eos_ids.end();
  };

  Stopwatch prefill;
  model.forward_cached(prompt.data(), n_prompt, cache, x.data());
  model.head(x.data() + (n_prompt - 1) * hidden, 1, logits.data());
  int32_t next = sampler.sample(logits.data(), vocab);
  r.prefill_seconds = prefill.seconds();

  Stopwatch decode;
  while (true) {
    if (is_eos(next)) {
      r.stopped_at_eos = true;
      break;
    }
    r.tokens.push_back(next);
    if (on_token) on_token(next);
    if (static_cast<int64_t>(r.tokens.size()) == options.max_new_tokens) break;
    model.forward_cached(&next, 1, cache, x.data());
    model.head(x.data(), 1, logits.data());
    next = sampler.sample(logits.data(), vocab);
    ++r.decode_steps;
  }
  r.decode_seconds = decode.seconds();
  return r;
}

std::vector<int32_t> eos_token_ids(const ModelConfig& config, int32_t tokenizer_eos) {
  std::vector<int32_t> ids;
  const std::filesystem::path gen = config.dir / "generation_config.json";
  bool from_generation_config = false;
  if (std::filesystem::exists(gen)) {
    const nlohmann::json j = read_json_input(gen, "fix or remove the file");
    if (!j.is_object())
      fail("{}: not a JSON object; fix or remove the file", gen.string());
    if (j.contains("eos_token_id")) {
      add_ids(j["eos_token_id"], gen.string(), ids);
      from_generation_config = true;
    }
  }
  if (!from_generation_config && config.raw.contains("eos_token_id"))
    add_ids(config.raw["eos_token_id"], (config.dir / "config.json").string(), ids);
  if (tokenizer_eos >= 0) ids.push_back(tokenizer_eos);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace gptq
