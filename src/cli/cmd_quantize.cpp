// gptq quantize MODEL OUT: GPTQ (or RTN) quantization into a GPTQ checkpoint, through
// gptq::quantize; the progress bar, the per-layer lines, Ctrl-C and the tests' kill hook are here.
#include <fmt/core.h>

#include "cli/command.h"
#include "cli/interrupt.h"
#include "cli/progress_bar.h"
#include "cli/report_path.h"
#include "cli/strict_integer.h"
#include "cli/target_check.h"
#include "cli/test_hooks.h"
#include "dist/communicator.h"
#include "gptq/quantize.h"
#include "model/json_util.h"
#include "model/loader_compat.h"
#include "model/model_config.h"
#include "model/plan_report.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/progress.h"

namespace gptq::cli {

namespace {

// Asymmetric v1 output: how many zero points of 0 it holds, and what readers make of them.
void print_zero_point_summary(const QuantizeParams& q, const QuantizeResult& r) {
  if (q.sym || q.checkpoint_format == "gptq_v2") return;
  if (r.zero_point_0_groups == 0) {
    fmt::print(stderr, "zero points of 0: none (every v1 reader gets the same zero points)\n");
    return;
  }
  fmt::print(stderr, "warning: {} zero points of 0 (output row x group) in {} layers: {}\n",
             r.zero_point_0_groups, r.layers_with_zero_point_0, v1_zero_point_0_note());
}

// One line per quantized layer.
std::string layer_line(const LayerRecord& l, bool v1_asym) {
  std::string line =
      fmt::format("{:<40} {:>5}x{:<5} loss {:10.4e}  damp {:.4f}{}  {:6.2f}s", l.name,
                  l.out_features, l.in_features, l.loss, l.damp,
                  l.damp_retries ? fmt::format(" ({} raises)", l.damp_retries) : "", l.seconds);
  if (v1_asym && l.zero_point_0_groups > 0)
    line += fmt::format("  zero-point-0 groups {}", l.zero_point_0_groups);
  if (l.expert >= 0)
    line += fmt::format("  tokens {}{}", l.tokens, l.rtn_fallback ? " (too few: RTN)" : "");
  return line;
}

}  // namespace

Command add_quantize(CLI::App& root) {
  struct Opts {
    std::string model, out, format, method = "gptq", max_shard = "0", calib, report, dynamic,
                                    target = "any";
    std::vector<std::string> modules;
    QuantizeParams q;
    std::optional<int64_t> seqlen;
    bool sym = false, asym = false;  // explicit flags; symmetric unless --asym
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app =
      root.add_subcommand("quantize", "Quantize a Hugging Face checkpoint into a GPTQ checkpoint");
  app->add_option("model", o->model,
                  "Model directory or Hugging Face id (org/name, from the local cache)")
      ->required();
  app->add_option("out", o->out,
                  "Output directory (must not exist; appears when the run completes)")
      ->required();
  app->add_option("--bits", o->q.bits, "Bits per weight: 2, 3, 4 or 8")->capture_default_str();
  app->add_option("--group-size", o->q.group_size, "Columns per quantization group (-1: whole row)")
      ->capture_default_str();
  app->add_option("--damp", o->q.damp_percent, "Dampening as a fraction of mean(diag H), in (0, 1)")
      ->capture_default_str();
  app->add_option("--damp-auto-increment", o->q.damp_auto_increment,
                  "If Cholesky fails, raise the damping by this step until it succeeds (0: fail)")
      ->capture_default_str();
  app->add_flag("--desc-act", o->q.desc_act,
                "Act-order: quantize columns by decreasing Hessian diagonal");
  app->add_flag("--static-groups", o->q.static_groups,
                "Group parameters from the original weights");
  app->add_flag("--act-group-aware", o->q.act_group_aware,
                "GPTQModel's group-aware reordering (needs --group-size > 0, no --desc-act)");
  app->add_flag("--sym", o->sym, "Symmetric quantization (default)");
  app->add_flag("--asym", o->asym,
                "Asymmetric quantization (saved as gptq v1 unless --format gptq_v2)");
  app->add_option("--mse", o->q.mse,
                  "MSE search of the clipping range with this norm (e.g. 2.4; 0: off)");
  app->add_flag("--true-sequential,!--no-true-sequential", o->q.true_sequential,
                "Quantize the layers of a block one group after the other (default on)");
  app->add_option("--calib", o->calib,
                  "Calibration data: text file, .jsonl (\"text\" field) or pre-tokenized .json");
  app->add_option("--nsamples", o->q.nsamples, "Calibration sequences")->capture_default_str();
  app->add_option("--seqlen", o->seqlen,
                  "Tokens per calibration sequence (default: min(4028, max positions))");
  app->add_option("--seed", o->q.seed, "Seed of the calibration sampling")->capture_default_str();
  app->add_option("--batch-size", o->q.batch_size,
                  "Accepted for Optimum parity (sequences are never padded)")
      ->capture_default_str();
  app->add_option("--format", o->format,
                  "Checkpoint format: gptq (v1, default, read by every loader) or gptq_v2")
      ->check(CLI::IsMember({"gptq", "gptq_v2"}));
  app->add_option("--method", o->method, "gptq, or rtn (round-to-nearest baseline, no calibration)")
      ->check(CLI::IsMember({"gptq", "rtn"}))
      ->capture_default_str();
  app->add_option(
      "--modules-in-block", o->modules,
      "Quantize only layers ending with these names; each occurrence is one sequential group of "
      "comma-separated names (or one JSON list of lists)");
  app->add_option("--block-name", o->q.block_name_to_quantize,
                  "Path of the block list (default: Optimum's patterns)");
  app->add_flag("--allow-unaligned", o->q.allow_unaligned,
                "Also quantize layers whose in/out features are not multiples of 32 "
                "(GPTQModel-only checkpoints)");
  app->add_flag("--zero-bias,!--no-zero-bias", o->q.zero_bias,
                "All-zero fp16 biases for bias-free quantized layers (default on: optimum < 1.20 "
                "and auto-gptq "
                "need them)");
  app->add_option("--max-shard-size", o->max_shard, "Shard the output (e.g. 5GB; 0: one file)")
      ->capture_default_str();
  app->add_option("--threads", o->q.threads,
                  "Threads (0: all cores); the output does not depend on it");
  app->add_flag("--resume", o->q.resume, "Continue an interrupted run into the same OUT");
  app->add_option("--report", o->report,
                  "Write a JSON report (options, every layer, totals) to this file");
  app->add_flag("--quiet", o->quiet, "No per-layer lines");
  app->add_flag("--lm-head", o->q.lm_head,
                "Also quantize the output head (GPTQ from the final-norm activations); refused for "
                "tied heads");
  app->add_option(
      "--dynamic", o->dynamic,
      "JSON file of per-module overrides, GPTQModel's `dynamic` (\"+:regex\": {bits, group_size, "
      "desc_act, sym, damp_percent}, \"-:regex\": {} leaves modules float)");
  app->add_option(
         "--moe-calibration", o->q.moe_calibration,
         "MoE experts' Hessians from the tokens routed to them (routed) or from every token (all)")
      ->check(CLI::IsMember({"routed", "all"}))
      ->capture_default_str();
  app->add_option(
         "--moe-min-tokens", o->q.moe_min_tokens,
         "Experts routed fewer calibration tokens are rounded to nearest (-1: 0.1% of the tokens)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->capture_default_str();
  app->add_option("--moe-experts-per-chunk", o->q.moe_experts_per_chunk,
                  "Experts held in fp32 at once (memory bound; does not change the output)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  app->add_option(
         "--target", o->target,
         "Runtime that must load the result: vllm, transformers, gguf (llama.cpp via export-gguf, "
         "exact) or any; checked before any work")
      ->check(CLI::IsMember({"any", "vllm", "transformers", "gguf"}))
      ->capture_default_str();
  app->add_option(
         "--hessian-chunk", o->q.hessian_chunk,
         "Calibration sequences per Hessian chunk (chunks summed in order: the same output for any "
         "number of MPI processes, which own whole chunks; 0: one chunk)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app->add_option("--batch-rows", o->q.batch_rows,
                  "Calibration tokens per forward batch: whole sequences concatenated (one GEMM "
                  "per linear, one "
                  "SYRK per Hessian), within a Hessian chunk; 0: one sequence at a time")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app->add_option("--activation-dtype", o->q.activation_dtype,
                  "Storage of the activations between blocks: fp32, or fp16/bf16 (half the memory)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16"}))
      ->capture_default_str();
  for (const char* name :
       {"--bits", "--group-size", "--nsamples", "--seqlen", "--seed", "--batch-size", "--threads",
        "--moe-min-tokens", "--moe-experts-per-chunk", "--hessian-chunk", "--batch-rows"})
    app->get_option(name)->check(strict_integer());
  return {app, [o] {
            // Peak RSS: freed stage buffers leave the process, except those kept for the next
            // block's buffers within the peak so far (huge_pages.h).
            prefer_mapped_large_allocations();
            QuantizeParams q = o->q;
            if (o->asym && o->sym)
              fail_code(ExitCode::kUsage, "--sym and --asym contradict each other");
            q.sym = !o->asym;
            q.method = o->method;
            q.checkpoint_format = o->format;
            q.modules_in_block_to_quantize = parse_modules_in_block(o->modules);
            q.max_shard_size = parse_byte_size(o->max_shard);
            q.dataset.path = o->calib;
            q.model_seqlen = o->seqlen;
            if (!o->dynamic.empty()) q.dynamic = read_json_file(o->dynamic).dump();
            // Before any work: what the target runtime cannot load, a report path inside the model
            // or the output.
            check_quantize_target(o->target, resolve_model_path(o->model), q);
            const std::filesystem::path report =
                o->report.empty()
                    ? std::filesystem::path()
                    : checked_report_path(o->report, resolve_model_path(o->model), o->out);
            const bool v1_asym = !q.sym && q.checkpoint_format != "gptq_v2";
            // Under mpirun only the first process prints (the others compute and keep quiet).
            const bool speaks = dist::world().rank() == 0;
            std::unique_ptr<ProgressBar> shown;
            Callbacks cb;
            cb.log = [&](const std::string& line) {
              if (!speaks) return;
              if (shown) shown->clear();
              fmt::print(stderr, "{}\n", line);
            };
            cb.progress = [&](const Progress& p) {
              kill_hook_after_block(p.done);
              truncate_hook_after_block(p.done);
              if (!speaks) return !interrupted();
              if (!shown) shown = std::make_unique<ProgressBar>("quantizing", p.total);
              shown->update(p.done, p.note);
              return !interrupted();
            };
            cb.layer = [&](const LayerRecord& l) {
              if (!o->quiet && speaks) {
                if (shown) shown->clear();
                fmt::print(stderr, "{}\n", layer_line(l, v1_asym));
              }
              return !interrupted();
            };
            const QuantizeResult r = quantize(o->model, o->out, q, cb);
            shown.reset();
            if (interrupted()) {  // too late to stop: the output is complete
              fmt::print(
                  stderr,
                  "note: {} arrived while the output was being saved; the output is complete\n",
                  interrupt_name());
              clear_interrupt();
            }
            if (!speaks) return 0;
            fmt::print(stderr, "done: {} layers in {}, peak memory {}, {:.1f} GFLOP/s; output {}\n",
                       r.layers_quantized, human_seconds(r.seconds),
                       human_bytes(double(r.peak_rss_bytes)), r.gflops_per_second, o->out);
            print_zero_point_summary(q, r);
            if (!report.empty())
              write_file_atomic(report, r.to_json() + "\n");  // through a link: its target
            return 0;
          }};
}

}  // namespace gptq::cli
