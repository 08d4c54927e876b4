// gptq eval MODEL (--text FILE | --ids FILE.json) [--base FLOAT_MODEL]: perplexity by the fixtures'
// protocol (non-overlapping windows, no BOS), and with --base the KL divergence of the next-token
// distribution to the base model and the top-1 agreement (like llama-perplexity's KLD mode),
// through gptq::load and gptq::evaluate. --ids takes token ids made elsewhere (the same windows as
// --text on the ids of that text), so that another runtime can be compared on identical tokens.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "io/json_reader.h"
#include "calib/dataset.h"
#include "cli/command.h"
#include "cli/strict_integer.h"
#include "cli/interrupt.h"
#include "cli/npy_writer.h"
#include "cli/progress_bar.h"
#include "gptq/evaluate.h"
#include "gptq/model.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

Command add_eval(CLI::App& root) {
  struct Opts {
    std::string model, base, text, ids, logits;
    EvalParams eval;
    bool json = false, dequantized = false, int8_activations = false;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand("eval", "Perplexity of a float or GPTQ checkpoint; KL divergence to a base model");
  app->add_option("model", o->model, "Model directory (float or GPTQ) or Hugging Face id")->required();
  CLI::Option* text = app->add_option("--text", o->text, "Evaluation text file (tokenized whole, without BOS)");
  app->add_option("--ids", o->ids, "Pre-tokenized evaluation data: a JSON list of token ids or {\"input_ids\": [...]}")
      ->excludes(text);
  app->add_option("--seqlen", o->eval.seqlen, "Tokens per window")->capture_default_str();
  app->add_option("--max-windows", o->eval.max_windows, "Evaluate only the first N windows (0: all)")
      ->capture_default_str();
  app->add_option("--base", o->base, "Float model to compare with (KL divergence, top-1 agreement)");
  app->add_flag("--dequantized", o->dequantized, "Use dequantized fp32 weights instead of the QuantLinear kernels");
  app->add_flag(
      "--int8-activations", o->int8_activations,
      "Batches of rows (prefill, eval windows) with int8 activations through the quantized "
      "layers, as llama.cpp: ~2x faster, not fp32-exact (x86 with AVX2, codes of at most 4 bits, "
      "or AVX-512 VNNI; else no effect)");
  app->add_option("--logits", o->logits, "Also write the model's logits of every window to this .npy file "
                  "(float32 [windows, seqlen, vocab])");
  app->add_option("--threads", o->threads, "Threads (0: all cores); the results do not depend on it")
      ->capture_default_str();
  app->add_flag("--json", o->json, "Print JSON");
  for (const char* name : {"--seqlen", "--max-windows", "--threads"})
    app->get_option(name)->check(strict_integer());
  return {app, [o] {
            if (o->eval.seqlen < 2) fail_code(ExitCode::kUsage, "--seqlen {}: must be at least 2", o->eval.seqlen);
            if (o->text.empty() && o->ids.empty())
              fail_code(ExitCode::kUsage, "give the evaluation data: --text FILE (tokenized with the model's "
                        "tokenizer) or --ids FILE.json (token ids)");
            const std::string source = o->ids.empty() ? o->text : o->ids;
            Stopwatch clock;
            LoadParams lp;
            lp.dequantized = o->dequantized;
            lp.int8_activations = o->int8_activations;
            lp.threads = o->threads;
            const Model model = load(o->model, lp);
            std::vector<int32_t> ids;
            if (!o->ids.empty()) {
              ids = load_token_ids(o->ids, model.info().vocab_size);
            } else {
              std::ifstream in(o->text, std::ios::binary);
              if (!in) fail_code(ExitCode::kIo, "cannot open --text file {}", o->text);
              std::stringstream ss;
              ss << in.rdbuf();
              ids = model.tokenize(ss.str(), false);
            }
            int64_t windows = static_cast<int64_t>(ids.size()) / o->eval.seqlen;
            if (o->eval.max_windows > 0) windows = std::min(windows, o->eval.max_windows);
            if (windows == 0)
              fail("{} {} has {} tokens: not one window of --seqlen {}; give more data or a smaller --seqlen",
                   o->ids.empty() ? "--text" : "--ids", source, ids.size(), o->eval.seqlen);
            std::optional<Model> base;
            if (!o->base.empty()) {
              base.emplace(load(o->base, lp));
              if (base->info().vocab_size != model.info().vocab_size)
                fail("--base {} has a vocabulary of {} tokens, the model {}", o->base, base->info().vocab_size,
                     model.info().vocab_size);
            }
            std::unique_ptr<NpyWriter> npy;
            EvalParams ep = o->eval;
            if (!o->logits.empty()) {
              npy = std::make_unique<NpyWriter>(o->logits,
                                                std::vector<int64_t>{windows, ep.seqlen, model.info().vocab_size});
              ep.on_logits = [&](int64_t, const float* l, int64_t rows, int64_t vocab) { npy->write(l, rows * vocab); };
            }
            ProgressBar bar("evaluating", windows);
            Callbacks cb;
            cb.progress = [&](const Progress& p) {
              bar.update(p.done);
              return !interrupted();
            };
            catch_interrupts();
            const EvalResult r = evaluate(model, ids, ep, base ? &*base : nullptr, cb);
            bar.clear();
            if (npy) npy->finish();
            nlohmann::json out{{"model", o->model},      {"model_kind", model.info().description},
                               {o->ids.empty() ? "text" : "ids", source}, {"tokens", ids.size()},
                               {"seqlen", ep.seqlen},    {"windows", r.windows},
                               {"ppl", r.ppl},           {"mean_nll", r.mean_nll},
                               {"predictions", r.predictions}};
            if (r.compared) {
              out["base_ppl"] = r.base_ppl;
              out["kld"] = r.kld;
              out["top1_agreement"] = r.top1_agreement;
              out["base"] = o->base;
            }
            out["seconds"] = clock.seconds();
            if (o->json) {
              fmt::print("{}\n", json_output(out, 2));
            } else {
              fmt::print("model        {} [{}]\n", o->model, out["model_kind"].get<std::string>());
              fmt::print("{:<12} {}: {} tokens, {} windows of {}\n", o->ids.empty() ? "text" : "ids", source, ids.size(),
                         windows, ep.seqlen);
              fmt::print("perplexity   {:.4f}\n", out["ppl"].get<double>());
              if (r.compared) {
                fmt::print("base ppl     {:.4f} ({})\n", out["base_ppl"].get<double>(), o->base);
                fmt::print("KLD          {:.6f} (mean KL(base || model) per token, nats)\n", out["kld"].get<double>());
                fmt::print("top-1 agree  {:.2f}%\n", 100 * out["top1_agreement"].get<double>());
              }
              fmt::print("time         {}\n", human_seconds(clock.seconds()));
            }
            return 0;
          }};
}

}  // namespace gptq::cli
