// gptq generate MODEL --prompt TEXT: text generation from a float or GPTQ checkpoint with a KV
// cache (prefill the prompt, then one token per step), streamed to stdout as it is produced;
// statistics (tokens, prefill and decode speed) go to stderr, or everything as JSON with --json.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "io/json_reader.h"
#include "cli/command.h"
#include "cli/strict_integer.h"
#include "cli/interrupt.h"
#include "cli/stdout_check.h"
#include "gptq/generate.h"
#include "gptq/model.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

Command add_generate(CLI::App& root) {
  struct Opts {
    std::string model, prompt;
    GenerateParams gen;
    bool json = false, dequantized = false, int8_activations = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand(
      "generate", "Generate text from a float or GPTQ checkpoint (KV cache, streamed to stdout)");
  app->add_option("model", o->model, "Model directory (float or GPTQ) or Hugging Face id")
      ->required();
  app->add_option("--prompt", o->prompt, "Text to continue (encoded with special tokens)")
      ->required();
  app->add_option("--max-new-tokens", o->gen.max_new_tokens, "Tokens to generate at most")
      ->capture_default_str();
  app->add_option("--temperature", o->gen.temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  app->add_option("--top-k", o->gen.top_k, "Sample among the K most likely; 0 = all")
      ->capture_default_str();
  app->add_option("--top-p", o->gen.top_p,
                  "Nucleus sampling: the most likely tokens up to this probability mass")
      ->capture_default_str();
  app->add_option("--seed", o->gen.seed, "Sampling seed (std::mt19937_64)")
      ->capture_default_str();
  app->add_flag("--dequantized", o->dequantized,
                "Use dequantized fp32 weights instead of the QuantLinear kernels");
  app->add_flag(
      "--int8-activations", o->int8_activations,
      "Batches of rows (prefill, eval windows) with int8 activations through the quantized "
      "layers, as llama.cpp: ~2x faster, not fp32-exact (x86 with AVX2, codes of at most 4 bits, "
      "or AVX-512 VNNI; else no effect)");
  app->add_option("--threads", o->threads, "Threads of the kernels and BLAS (0: all cores)")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Print one JSON object at the end instead of streaming");
  for (const char* name : {"--max-new-tokens", "--top-k", "--seed", "--threads"})
    app->get_option(name)->check(strict_integer());
  return {
      app, [o] {
        LoadParams lp;
        lp.dequantized = o->dequantized;
        lp.int8_activations = o->int8_activations;
        lp.threads = o->threads;
        Stopwatch load_clock;
        const Model model = load(o->model, lp);
        const double load_seconds = load_clock.seconds();
        std::function<bool(const std::string&)> on_text = [](const std::string&) { return !interrupted(); };
        if (!o->json) {
          fmt::print("{}", o->prompt);
          check_stdout();
          on_text = [](const std::string& s) {
            fmt::print("{}", s);
            check_stdout();  // a failed write stops the generation (I/O error)
            return !interrupted();
          };
        }
        catch_interrupts();
        const GenerateResult r = generate(model, o->prompt, o->gen, on_text);
        const char* stop = r.stopped_at_eos ? "eos" : "max_new_tokens";
        if (o->json) {
          const nlohmann::json out{{"model", o->model},
                                   {"model_kind", model.info().description},
                                   {"prompt", o->prompt},
                                   {"prompt_tokens", r.prompt_ids.size()},
                                   {"generated_tokens", r.tokens.size()},
                                   {"generated_ids", r.tokens},
                                   {"text", r.text},
                                   {"stop", stop},
                                   {"temperature", o->gen.temperature},
                                   {"top_k", o->gen.top_k},
                                   {"top_p", o->gen.top_p},
                                   {"seed", o->gen.seed},
                                   {"load_seconds", load_seconds},
                                   {"prefill_seconds", r.prefill_seconds},
                                   {"prefill_tokens_per_s", r.prefill_tokens_per_second},
                                   {"decode_steps", r.decode_steps},
                                   {"decode_seconds", r.decode_seconds},
                                   {"decode_tokens_per_s", r.decode_tokens_per_second}};
          fmt::print("{}\n", json_output(out, 2));
          return 0;
        }
        fmt::print("\n");
        check_stdout();
        fmt::print(stderr, "model             {} [{}], loaded in {}\n", o->model, model.info().description,
                   human_seconds(load_seconds));
        fmt::print(stderr, "prompt tokens     {}\n", r.prompt_ids.size());
        fmt::print(stderr, "generated tokens  {} (stopped at {})\n", r.tokens.size(),
                   r.stopped_at_eos ? "EOS" : "--max-new-tokens");
        fmt::print(stderr, "prefill           {:.2f} ms, {:.1f} tokens/s\n",
                   1e3 * r.prefill_seconds, r.prefill_tokens_per_second);
        fmt::print(stderr, "decode            {} steps in {:.2f} ms, {:.1f} tokens/s\n",
                   r.decode_steps, 1e3 * r.decode_seconds, r.decode_tokens_per_second);
        return 0;
      }};
}

}  // namespace gptq::cli
