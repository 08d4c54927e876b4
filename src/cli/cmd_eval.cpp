// gptq eval MODEL (--text FILE | --ids FILE.json) [--base FLOAT_MODEL]: perplexity by the fixtures'
// protocol (non-overlapping windows, no BOS), and with --base the KL divergence of the next-token
// distribution to the base model and the top-1 agreement (like llama-perplexity's KLD mode).
// --ids takes token ids made elsewhere (the same windows as --text on the ids of that text), so that
// another runtime can be compared on identical tokens.
#include <fmt/core.h>

#include <fstream>
#include <sstream>

#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "cli/command.h"
#include "infer/load_model.h"
#include "nn/eval.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

namespace {

std::string describe(const LoadedModel& m) {
  if (!m.quant) return "float";
  const auto& q = *m.quant;
  return fmt::format("GPTQ {}-bit g{}{}{} {} ({} quantized layers)", q.bits, q.group_size, q.desc_act ? " act-order" : "",
                     q.sym ? " sym" : " asym", format_name(q.format), m.quantized_layers);
}

// The evaluated token ids: the --text file through the model's tokenizer, or the --ids file as given.
std::vector<int32_t> eval_tokens(const LoadedModel& model, const std::string& text, const std::string& ids) {
  if (!ids.empty()) return load_token_ids(ids, model.model->vocab());
  const auto tok = Tokenizer::from_model_dir(model.dir);
  std::ifstream in(text, std::ios::binary);
  if (!in) fail_code(ExitCode::kIo, "cannot open --text file {}", text);
  std::stringstream ss;
  ss << in.rdbuf();
  return tok->encode(ss.str(), false);
}

}  // namespace

Command add_eval(CLI::App& root) {
  struct Opts {
    std::string model, base, text, ids;
    EvalOptions eval;
    bool json = false, dequantized = false;
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
  app->add_flag("--json", o->json, "Print JSON");
  return {app, [o] {
            if (o->eval.seqlen < 2) fail_code(ExitCode::kUsage, "--seqlen {}: must be at least 2", o->eval.seqlen);
            if (o->text.empty() && o->ids.empty())
              fail_code(ExitCode::kUsage, "give the evaluation data: --text FILE (tokenized with the model's "
                        "tokenizer) or --ids FILE.json (token ids)");
            const std::string source = o->ids.empty() ? o->text : o->ids;
            const auto backend = o->dequantized ? LinearBackend::kDequantized : LinearBackend::kKernel;
            Stopwatch clock;
            const auto model = load_model(resolve_model_path(o->model), backend);
            const std::vector<int32_t> ids = eval_tokens(*model, o->text, o->ids);
            if (static_cast<int64_t>(ids.size()) < o->eval.seqlen)
              fail("{} {} has {} tokens: not one window of --seqlen {}; give more data or a smaller --seqlen",
                   o->ids.empty() ? "--text" : "--ids", source, ids.size(), o->eval.seqlen);
            const int64_t windows = eval_window_count(static_cast<int64_t>(ids.size()), o->eval);
            ProgressBar bar("evaluating", windows);
            o->eval.progress = [&bar](int64_t done, int64_t) { bar.update(done); };
            nlohmann::json out{{"model", o->model},      {"model_kind", describe(*model)},
                               {o->ids.empty() ? "text" : "ids", source},
                               {"tokens", ids.size()},    {"seqlen", o->eval.seqlen},      {"windows", windows}};
            if (o->base.empty()) {
              const PerplexityResult r = evaluate_perplexity(*model->model, ids, o->eval);
              bar.clear();
              out["ppl"] = r.ppl;
              out["mean_nll"] = r.mean_nll;
              out["predictions"] = r.predictions;
            } else {
              const auto base = load_model(resolve_model_path(o->base), backend);
              if (base->model->vocab() != model->model->vocab())
                fail("--base {} has a vocabulary of {} tokens, the model {}", o->base, base->model->vocab(),
                     model->model->vocab());
              const ComparisonResult r = compare_models(*base->model, *model->model, ids, o->eval);
              bar.clear();
              out["ppl"] = r.model.ppl;
              out["mean_nll"] = r.model.mean_nll;
              out["base_ppl"] = r.base.ppl;
              out["kld"] = r.mean_kl;
              out["top1_agreement"] = r.top1_agreement;
              out["predictions"] = r.predictions;
              out["base"] = o->base;
            }
            out["seconds"] = clock.seconds();
            if (o->json) {
              fmt::print("{}\n", out.dump(2));
            } else {
              fmt::print("model        {} [{}]\n", o->model, out["model_kind"].get<std::string>());
              fmt::print("{}         {}: {} tokens, {} windows of {}\n", o->ids.empty() ? "text" : "ids ", source,
                         ids.size(), windows, o->eval.seqlen);
              fmt::print("perplexity   {:.4f}\n", out["ppl"].get<double>());
              if (!o->base.empty()) {
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
