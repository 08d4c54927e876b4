// gptq quantize MODEL OUT: GPTQ (or RTN) quantization into a GPTQ checkpoint.
#include <fmt/core.h>

#include <fstream>
#include <map>

#include "cli/command.h"
#include "model/loader_compat.h"
#include "model/model_config.h"
#include "model/plan_report.h"
#include "model/json_util.h"
#include "pipeline/quantize.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

namespace {

uint64_t parse_size(const std::string& s) {
  if (s.empty() || s == "0") return 0;
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    fail_code(ExitCode::kUsage, "--max-shard-size '{}': expected a size like 5GB, 500MB or 2GiB", s);
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(c));
  const std::map<std::string, double> units{{"", 1},         {"B", 1},          {"KB", 1e3},
                                            {"MB", 1e6},     {"GB", 1e9},       {"TB", 1e12},
                                            {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  const auto it = units.find(unit);
  if (it == units.end() || v <= 0)
    fail_code(ExitCode::kUsage, "--max-shard-size '{}': expected a size like 5GB, 500MB or 2GiB", s);
  return static_cast<uint64_t>(v * it->second);
}

// Asymmetric v1 output: how many zero points of 0 it holds, and what readers make of them.
void print_zero_point_summary(const QuantizeOptions& q, const nlohmann::json& totals) {
  if (q.quant.sym || q.effective_format() != CheckpointFormat::kGptq) return;
  const int64_t groups = totals["zero_point_0_groups"].get<int64_t>();
  if (groups == 0) {
    fmt::print(stderr, "zero points of 0: none (every v1 reader gets the same zero points)\n");
    return;
  }
  fmt::print(stderr, "warning: {} zero points of 0 (output row x group) in {} layers: {}\n", groups,
             totals["layers_with_zero_point_0"].get<int64_t>(), v1_zero_point_0_note());
}

}  // namespace

Command add_quantize(CLI::App& root) {
  struct Opts {
    std::string model, out, format, method = "gptq", max_shard = "0", calib, moe_calibration = "routed", dynamic;
    std::vector<std::string> modules;
    QuantizeOptions q;
    bool sym = false, asym = false;  // explicit flags; symmetric unless --asym
  };
  auto o = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand("quantize", "Quantize a Hugging Face checkpoint into a GPTQ checkpoint");
  app->add_option("model", o->model, "Model directory or Hugging Face id (org/name, from the local cache)")->required();
  app->add_option("out", o->out, "Output directory (must not exist; appears when the run completes)")->required();
  app->add_option("--bits", o->q.quant.bits, "Bits per weight: 2, 3, 4 or 8")->capture_default_str();
  app->add_option("--group-size", o->q.quant.group_size, "Columns per quantization group (-1: whole row)")
      ->capture_default_str();
  app->add_option("--damp", o->q.quant.damp_percent, "Dampening as a fraction of mean(diag H), in (0, 1)")
      ->capture_default_str();
  app->add_option("--damp-auto-increment", o->q.quant.damp_auto_increment,
                  "If Cholesky fails, raise the damping by this step until it succeeds (0: fail)")
      ->capture_default_str();
  app->add_flag("--desc-act", o->q.quant.desc_act, "Act-order: quantize columns by decreasing Hessian diagonal");
  app->add_flag("--static-groups", o->q.quant.static_groups, "Group parameters from the original weights");
  app->add_flag("--act-group-aware", o->q.quant.act_group_aware,
                "GPTQModel's group-aware reordering (needs --group-size > 0, no --desc-act)");
  app->add_flag("--sym", o->sym, "Symmetric quantization (default)");
  app->add_flag("--asym", o->asym, "Asymmetric quantization (saved as gptq v1 unless --format gptq_v2)");
  app->add_option("--mse", o->q.quant.mse_norm, "MSE search of the clipping range with this norm (e.g. 2.4; 0: off)");
  app->add_flag("--true-sequential,!--no-true-sequential", o->q.true_sequential,
                "Quantize the layers of a block one group after the other (default on)");
  app->add_option("--calib", o->calib, "Calibration data: text file, .jsonl (\"text\" field) or pre-tokenized .json");
  app->add_option("--nsamples", o->q.calib.nsamples, "Calibration sequences")->capture_default_str();
  app->add_option("--seqlen", o->q.calib.seqlen, "Tokens per calibration sequence (default: min(4028, max positions))");
  app->add_option("--seed", o->q.calib.seed, "Seed of the calibration sampling")->capture_default_str();
  app->add_option("--batch-size", o->q.batch_size, "Accepted for Optimum parity (sequences are never padded)")
      ->capture_default_str();
  app->add_option("--format", o->format, "Checkpoint format: gptq (v1, default, read by every loader) or gptq_v2")
      ->check(CLI::IsMember({"gptq", "gptq_v2"}));
  app->add_option("--method", o->method, "gptq, or rtn (round-to-nearest baseline, no calibration)")
      ->check(CLI::IsMember({"gptq", "rtn"}))
      ->capture_default_str();
  app->add_option("--modules-in-block", o->modules,
                  "Quantize only layers ending with these names; each occurrence is one sequential group of "
                  "comma-separated names (or one JSON list of lists)");
  app->add_option("--block-name", o->q.block_name, "Path of the block list (default: Optimum's patterns)");
  app->add_flag("--allow-unaligned", o->q.allow_unaligned,
                "Also quantize layers whose in/out features are not multiples of 32 (GPTQModel-only checkpoints)");
  app->add_flag("--zero-bias,!--no-zero-bias", o->q.zero_bias,
                "All-zero fp16 biases for bias-free quantized layers (default on: optimum < 1.20 and auto-gptq "
                "need them)");
  app->add_option("--max-shard-size", o->max_shard, "Shard the output (e.g. 5GB; 0: one file)")->capture_default_str();
  app->add_option("--threads", o->q.threads, "Threads (0: all cores); the output does not depend on it");
  app->add_flag("--resume", o->q.resume, "Continue an interrupted run into the same OUT");
  app->add_option("--report", o->q.report, "Write a JSON report (options, every layer, totals) to this file");
  app->add_flag("--quiet", o->q.quiet, "No per-layer lines");
  app->add_flag("--lm-head", o->q.lm_head,
                "Also quantize the output head (GPTQ from the final-norm activations); refused for tied heads");
  app->add_option("--dynamic", o->dynamic,
                  "JSON file of per-module overrides, GPTQModel's `dynamic` (\"+:regex\": {bits, group_size, "
                  "desc_act, sym, damp_percent}, \"-:regex\": {} leaves modules float)");
  app->add_option("--moe-calibration", o->moe_calibration,
                  "MoE experts' Hessians from the tokens routed to them (routed) or from every token (all)")
      ->check(CLI::IsMember({"routed", "all"}))
      ->capture_default_str();
  app->add_option("--moe-min-tokens", o->q.moe_min_tokens,
                  "Experts routed fewer calibration tokens are rounded to nearest (-1: 0.1% of the tokens)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->capture_default_str();
  app->add_option("--moe-experts-per-chunk", o->q.moe_experts_per_chunk,
                  "Experts held in fp32 at once (memory bound; does not change the output)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  return {app, [o] {
            QuantizeOptions q = o->q;
            if (o->asym && o->sym) fail_code(ExitCode::kUsage, "--sym and --asym contradict each other");
            q.quant.sym = !o->asym;
            q.method = o->method == "rtn" ? QuantMethod::kRtn : QuantMethod::kGptq;
            q.moe_calibration = o->moe_calibration == "all" ? MoeCalibration::kAll : MoeCalibration::kRouted;
            if (!o->dynamic.empty()) q.dynamic = read_json_file(o->dynamic);
            if (!o->format.empty()) q.format = o->format == "gptq" ? CheckpointFormat::kGptq : CheckpointFormat::kGptqV2;
            q.modules_in_block = parse_modules_in_block(o->modules);
            q.max_shard_bytes = parse_size(o->max_shard);
            q.calib.file = o->calib;
            if (q.effective_format() == CheckpointFormat::kGptqV2)
              fmt::print(stderr, "warning: {}\n", gptq_v2_readers_note());
            const auto dir = resolve_model_path(o->model);
            const auto log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
            const QuantizeSummary s = quantize_model(dir, o->out, q, log);
            const auto& t = s.report["totals"];
            fmt::print(stderr, "done: {} layers in {}, peak memory {}, {:.1f} GFLOP/s; output {}\n",
                       t["layers_quantized"].get<int64_t>(), human_seconds(s.seconds), human_bytes(double(s.peak_rss)),
                       t["gflops_per_second"].get<double>(), o->out);
            print_zero_point_summary(q, t);
            if (!q.report.empty()) write_file_atomic(q.report, s.report.dump(2) + "\n");
            return 0;
          }};
}

}  // namespace gptq::cli
