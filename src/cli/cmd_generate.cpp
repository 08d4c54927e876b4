// gptq generate MODEL --prompt TEXT: text generation from a float or GPTQ checkpoint with a KV
// cache (prefill the prompt, then one token per step), streamed to stdout as it is produced;
// statistics (tokens, prefill and decode speed) go to stderr, or everything as JSON with --json.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "calib/tokenizer.h"
#include "cli/command.h"
#include "infer/generate.h"
#include "infer/load_model.h"
#include "infer/text_stream.h"
#include "kernels/thread_pool.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

namespace {

std::string model_kind(const LoadedModel& m) {
  if (!m.quant) return "float";
  const auto& q = *m.quant;
  return fmt::format("GPTQ {}-bit g{}{} ({} quantized layers)", q.bits, q.group_size,
                     q.desc_act ? " act-order" : "", m.quantized_layers);
}

}  // namespace

Command add_generate(CLI::App& root) {
  struct Opts {
    std::string model, prompt;
    GenerateOptions gen;
    bool json = false, dequantized = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  o->gen.sampling.temperature = 0.8;
  o->gen.sampling.top_k = 40;
  CLI::App* app = root.add_subcommand(
      "generate", "Generate text from a float or GPTQ checkpoint (KV cache, streamed to stdout)");
  app->add_option("model", o->model, "Model directory (float or GPTQ) or Hugging Face id")
      ->required();
  app->add_option("--prompt", o->prompt, "Text to continue (encoded with special tokens)")
      ->required();
  app->add_option("--max-new-tokens", o->gen.max_new_tokens, "Tokens to generate at most")
      ->capture_default_str();
  app->add_option("--temperature", o->gen.sampling.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  app->add_option("--top-k", o->gen.sampling.top_k, "Sample among the K most likely; 0 = all")
      ->capture_default_str();
  app->add_option("--top-p", o->gen.sampling.top_p,
                  "Nucleus sampling: the most likely tokens up to this probability mass")
      ->capture_default_str();
  app->add_option("--seed", o->gen.sampling.seed, "Sampling seed (std::mt19937_64)")
      ->capture_default_str();
  app->add_flag("--dequantized", o->dequantized,
                "Use dequantized fp32 weights instead of the QuantLinear kernels");
  app->add_option("--threads", o->threads, "Threads of the kernels and BLAS (0: all cores)")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Print one JSON object at the end instead of streaming");
  return {
      app, [o] {
        Sampler check(o->gen.sampling);  // option errors before the model is loaded
        if (o->gen.max_new_tokens < 0)
          fail_code(ExitCode::kUsage, "--max-new-tokens {}: must be >= 0", o->gen.max_new_tokens);
        if (o->threads < 0)
          fail_code(ExitCode::kUsage, "--threads {}: must be >= 0 (0: all cores)", o->threads);
        kernels::set_compute_threads(o->threads);
        const auto backend = o->dequantized ? LinearBackend::kDequantized : LinearBackend::kKernel;
        Stopwatch load_clock;
        const auto model = load_model(resolve_model_path(o->model), backend);
        const auto tok = Tokenizer::from_model_dir(model->dir);
        const double load_seconds = load_clock.seconds();
        const std::vector<int32_t> prompt = tok->encode(o->prompt, true);
        if (prompt.empty())
          fail_code(ExitCode::kUsage, "--prompt encodes to no tokens; give a non-empty text");
        check_generation_fits(*model->model, std::ssize(prompt), o->gen.max_new_tokens);
        o->gen.eos_ids = eos_token_ids(model->config, tok->eos_id());

        TextStream stream(*tok, prompt);
        std::function<void(int32_t)> on_token;
        if (!o->json) {
          fmt::print("{}", o->prompt);
          std::fflush(stdout);
          on_token = [&stream](int32_t id) {
            const std::string s = stream.push(id);
            if (!s.empty()) {
              fmt::print("{}", s);
              std::fflush(stdout);
            }
          };
        }
        const GenerateResult r = generate(*model->model, prompt, o->gen, on_token);
        const char* stop = r.stopped_at_eos ? "eos" : "max_new_tokens";
        if (o->json) {
          for (int32_t id : r.tokens) stream.push(id);
          const nlohmann::json out{{"model", o->model},
                                   {"model_kind", model_kind(*model)},
                                   {"prompt", o->prompt},
                                   {"prompt_tokens", r.prompt_tokens},
                                   {"generated_tokens", r.tokens.size()},
                                   {"generated_ids", r.tokens},
                                   {"text", stream.text()},
                                   {"stop", stop},
                                   {"temperature", o->gen.sampling.temperature},
                                   {"top_k", o->gen.sampling.top_k},
                                   {"top_p", o->gen.sampling.top_p},
                                   {"seed", o->gen.sampling.seed},
                                   {"load_seconds", load_seconds},
                                   {"prefill_seconds", r.prefill_seconds},
                                   {"prefill_tokens_per_s", r.prefill_tokens_per_second()},
                                   {"decode_steps", r.decode_steps},
                                   {"decode_seconds", r.decode_seconds},
                                   {"decode_tokens_per_s", r.decode_tokens_per_second()}};
          fmt::print("{}\n", out.dump(2));
          return 0;
        }
        fmt::print("{}\n", stream.finish());
        std::fflush(stdout);
        fmt::print(stderr, "model             {} [{}], loaded in {}\n", o->model,
                   model_kind(*model), human_seconds(load_seconds));
        fmt::print(stderr, "prompt tokens     {}\n", r.prompt_tokens);
        fmt::print(stderr, "generated tokens  {} (stopped at {})\n", r.tokens.size(),
                   r.stopped_at_eos ? "EOS" : "--max-new-tokens");
        fmt::print(stderr, "prefill           {:.2f} ms, {:.1f} tokens/s\n",
                   1e3 * r.prefill_seconds, r.prefill_tokens_per_second());
        fmt::print(stderr, "decode            {} steps in {:.2f} ms, {:.1f} tokens/s\n",
                   r.decode_steps, 1e3 * r.decode_seconds, r.decode_tokens_per_second());
        return 0;
      }};
}

}  // namespace gptq::cli
