// gptq quantize MODEL OUT: GPTQ (or RTN) quantization into a GPTQ checkpoint, through
// gptq::quantize; the progress bar, the per-layer lines, Ctrl-C and the tests' kill hook are here.
#include <fmt/core.h>

#include "cli/command.h"
#include "cli/interrupt.h"
#include "cli/progress_bar.h"
#include "cli/test_hooks.h"
#include "gptq/quantize.h"
#include "model/plan_report.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

Command add_quantize(CLI::App& root) {
  struct Opts {
    std::string model, out, format, method = "gptq", max_shard = "0", calib, report;
    std::vector<std::string> modules;
    QuantizeParams q;
    int64_t seqlen = 0;
    bool sym = false, asym = false;  // explicit flags; symmetric unless --asym
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand("quantize", "Quantize a Hugging Face checkpoint into a GPTQ checkpoint");
  app->add_option("model", o->model, "Model directory or Hugging Face id (org/name, from the local cache)")->required();
  app->add_option("out", o->out, "Output directory (must not exist; appears when the run completes)")->required();
  app->add_option("--bits", o->q.bits, "Bits per weight: 2, 3, 4 or 8")->capture_default_str();
  app->add_option("--group-size", o->q.group_size, "Columns per quantization group (-1: whole row)")
      ->capture_default_str();
  app->add_option("--damp", o->q.damp_percent, "Dampening as a fraction of mean(diag H), in (0, 1)")
      ->capture_default_str();
  app->add_option("--damp-auto-increment", o->q.damp_auto_increment,
                  "If Cholesky fails, raise the damping by this step until it succeeds (0: fail)")
      ->capture_default_str();
  app->add_flag("--desc-act", o->q.desc_act, "Act-order: quantize columns by decreasing Hessian diagonal");
  app->add_flag("--static-groups", o->q.static_groups, "Group parameters from the original weights");
  app->add_flag("--act-group-aware", o->q.act_group_aware,
                "GPTQModel's group-aware reordering (needs --group-size > 0, no --desc-act)");
  app->add_flag("--sym", o->sym, "Symmetric quantization (default)");
  app->add_flag("--asym", o->asym, "Asymmetric quantization (saved as gptq_v2 by default)");
  app->add_option("--mse", o->q.mse, "MSE search of the clipping range with this norm (e.g. 2.4; 0: off)");
  app->add_flag("--true-sequential,!--no-true-sequential", o->q.true_sequential,
                "Quantize the layers of a block one group after the other (default on)");
  app->add_option("--calib", o->calib, "Calibration data: text file, .jsonl (\"text\" field) or pre-tokenized .json");
  app->add_option("--nsamples", o->q.nsamples, "Calibration sequences")->capture_default_str();
  app->add_option("--seqlen", o->seqlen, "Tokens per calibration sequence (default: min(4028, max positions))");
  app->add_option("--seed", o->q.seed, "Seed of the calibration sampling")->capture_default_str();
  app->add_option("--batch-size", o->q.batch_size, "Accepted for Optimum parity (sequences are never padded)")
      ->capture_default_str();
  app->add_option("--format", o->format, "Checkpoint format: gptq (v1) or gptq_v2 (default: gptq if sym, else gptq_v2)")
      ->check(CLI::IsMember({"gptq", "gptq_v2"}));
  app->add_option("--method", o->method, "gptq, or rtn (round-to-nearest baseline, no calibration)")
      ->check(CLI::IsMember({"gptq", "rtn"}))
      ->capture_default_str();
  app->add_option("--modules-in-block", o->modules,
                  "Quantize only layers ending with these names; each occurrence is one sequential group of "
                  "comma-separated names (or one JSON list of lists)");
  app->add_option("--block-name", o->q.block_name_to_quantize, "Path of the block list (default: Optimum's patterns)");
  app->add_flag("--allow-unaligned", o->q.allow_unaligned,
                "Also quantize layers whose in/out features are not multiples of 32 (GPTQModel-only checkpoints)");
  app->add_flag("--zero-bias", o->q.zero_bias, "Write all-zero fp16 biases for bias-free layers (optimum < 1.20)");
  app->add_option("--max-shard-size", o->max_shard, "Shard the output (e.g. 5GB; 0: one file)")->capture_default_str();
  app->add_option("--threads", o->q.threads, "Threads (0: all cores); the output does not depend on it");
  app->add_flag("--resume", o->q.resume, "Continue an interrupted run into the same OUT");
  app->add_option("--report", o->report, "Write a JSON report (options, every layer, totals) to this file");
  app->add_flag("--quiet", o->quiet, "No per-layer lines");
  return {app, [o] {
            QuantizeParams q = o->q;
            if (o->asym && o->sym) fail_code(ExitCode::kUsage, "--sym and --asym contradict each other");
            q.sym = !o->asym;
            q.method = o->method;
            q.checkpoint_format = o->format;
            q.modules_in_block_to_quantize = parse_modules_in_block(o->modules);
            q.max_shard_size = parse_byte_size(o->max_shard);
            q.dataset.path = o->calib;
            if (o->seqlen != 0) q.model_seqlen = o->seqlen;
            std::unique_ptr<ProgressBar> shown;
            Callbacks cb;
            cb.log = [&](const std::string& line) {
              if (shown) shown->clear();
              fmt::print(stderr, "{}\n", line);
            };
            cb.progress = [&](const Progress& p) {
              kill_hook_after_block(p.done);
              if (!shown) shown = std::make_unique<ProgressBar>("quantizing", p.total);
              shown->update(p.done, p.note);
              return !interrupted();
            };
            cb.layer = [&](const LayerRecord& l) {
              if (!o->quiet) {
                if (shown) shown->clear();
                fmt::print(stderr, "{:<40} {:>5}x{:<5} loss {:10.4e}  damp {:.4f}{}  {:6.2f}s\n", l.name, l.out_features,
                           l.in_features, l.loss, l.damp,
                           l.damp_retries ? fmt::format(" ({} raises)", l.damp_retries) : "", l.seconds);
              }
              return !interrupted();
            };
            catch_interrupts();
            const QuantizeResult r = quantize(o->model, o->out, q, cb);
            shown.reset();
            fmt::print(stderr, "done: {} layers in {}, peak memory {}, {:.1f} GFLOP/s; output {}\n", r.layers_quantized,
                       human_seconds(r.seconds), human_bytes(double(r.peak_rss_bytes)), r.gflops_per_second, o->out);
            if (!o->report.empty()) write_file_atomic(o->report, r.to_json() + "\n");
            return 0;
          }};
}

}  // namespace gptq::cli
