// gptq inspect MODEL: what convert_model would do (block list, layers, packed shapes, totals) and
// which runtimes would load the result; for a GPTQ checkpoint, which runtimes load it and why not;
// for a .gguf file, its metadata and tensor table.
#include <fmt/core.h>

#include "io/json_reader.h"
#include "cli/command.h"
#include "cli/strict_integer.h"
#include "io/safetensors.h"
#include "gguf/gguf_inspect.h"
#include "gguf/gguf_reader.h"
#include "model/convert.h"
#include "model/quantization_config.h"
#include "model/runtime_targets.h"
#include "model/plan_report.h"
#include "util/error.h"
#include "util/progress.h"

namespace gptq::cli {

namespace {

// "yes": the layer's own bias; "zero": a zero bias is written; "no".
const char* bias_str(const QuantLayer& l) {
  if (l.has_bias) return "yes";
  return l.quantize && l.writes_bias ? "zero" : "no";
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void print_plan(const ModelConfig& cfg, const ModelPlan& plan) {
  fmt::print("model       {} ({}, model_type {})\n", cfg.dir.string(),
             cfg.architecture.empty() ? "?" : cfg.architecture, cfg.model_type);
  if (!cfg.arch) fmt::print("note        architecture not registered: generic layer discovery (inspect only)\n");
  fmt::print("blocks      {} x '{}' ({})\n", plan.num_blocks, plan.block_name,
             plan.block_name_detected ? "detected with Optimum's block patterns" : "given by --block-name");
  fmt::print("quantizer   {}-bit, group size {}\n\n", plan.bits, plan.group_size);
  fmt::print("{:<44} {:<7} {:>6} {:>6} {:<5} {:<16} {:<12} {:<12}\n", "layer", "kind", "in", "out",
             "bias", "qweight", "qzeros", "scales");
  for (const auto& l : plan.layers) {
    if (l.quantize) {
      fmt::print("{:<44} {:<7} {:>6} {:>6} {:<5} {:<16} {:<12} {:<12}\n", l.name, linear_kind_name(l.kind),
                 l.in_features, l.out_features, bias_str(l), shape_str(l.qweight_shape()),
                 shape_str(l.qzeros_shape()), shape_str(l.scales_shape()));
    } else {
      fmt::print("{:<44} {:<7} {:>6} {:>6} {:<5} float: {}\n", l.name, linear_kind_name(l.kind), l.in_features,
                 l.out_features, l.has_bias ? "yes" : "no", l.skip_reason);
    }
  }
  int64_t nq = 0;
  for (const auto& l : plan.layers) nq += l.quantize;
  fmt::print("\ntotals      {} layers quantized, {} left float; {:.2f}M of {:.2f}M parameters quantized\n", nq,
             plan.layers.size() - nq, plan.params_quantized / 1e6, plan.params_total / 1e6);
  fmt::print("size        input {}, estimated output {}\n", human_bytes(double(plan.input_bytes)),
             human_bytes(double(plan.estimated_output_bytes)));
  if (plan.loader_warnings.empty())
    fmt::print("loaders     no shape issue (in_features % group_size, in/out % 32) for auto-gptq, exllama or vLLM\n");
  for (const auto& w : plan.loader_warnings) fmt::print("loaders     {}\n", w);
  for (const auto& w : plan.warnings) fmt::print(stderr, "warning: {}\n", w);
}

nlohmann::json verdicts_json(const std::vector<RuntimeVerdict>& vs) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& v : vs) j[runtime_name(v.runtime)] = {{"loads", v.loads()}, {"reasons", v.reasons}, {"note", v.note}};
  return j;
}

std::vector<RuntimeVerdict> verdicts(const TargetSettings& s, const std::vector<TargetLayer>& layers) {
  std::vector<RuntimeVerdict> out;
  for (const Runtime r : all_runtimes()) out.push_back(check_runtime(r, s, layers));
  return out;
}

// A GPTQ checkpoint: its settings and the runtimes that load it.
int inspect_checkpoint(const std::filesystem::path& dir, const QuantizationConfig& q, bool json) {
  const auto [settings, layers] = checkpoint_targets(dir);
  const auto vs = verdicts(settings, layers);
  if (json) {
    fmt::print("{}\n", json_output({{"model", dir.string()},
                                     {"quantization_config", q.to_json()},
                                     {"quantized_layers", layers.size()},
                                     {"runtimes", verdicts_json(vs)}},
                                    2));
    return 0;
  }
  fmt::print("checkpoint  {} (GPTQ {}-bit, group size {}, {}{}, {} quantized layers)\n", dir.string(), q.bits,
             q.group_size, q.sym ? "sym" : "asym", q.desc_act ? ", act-order" : "", layers.size());
  for (const auto& v : vs) fmt::print("runtime     {}\n", describe_verdict(v));
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& root) {
  struct Opts {
    std::string model;
    int bits = 4;
    int group_size = 128;
    std::vector<std::string> modules;
    std::string block_name;
    bool json = false;
    bool allow_unaligned = false;
    bool zero_bias = true;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* app = root.add_subcommand("inspect", "Show the transformer blocks and the layers GPTQ would quantize");
  app->add_option("model", opts->model, "Model directory or Hugging Face id (org/name, from the local cache)")
      ->required();
  app->add_option("--bits", opts->bits, "Bits per weight: 2, 3, 4 or 8")->capture_default_str();
  app->add_option("--group-size", opts->group_size, "Group size (-1: one group per row)")->capture_default_str();
  app->add_option("--modules-in-block", opts->modules,
                  "Quantize only layers ending with these names; each occurrence is one sequential group "
                  "of comma-separated names (or one JSON list of lists)");
  app->add_option("--block-name", opts->block_name, "Path of the block list (default: Optimum's patterns)");
  app->add_flag("--allow-unaligned", opts->allow_unaligned,
                "Also quantize layers whose in/out features are not multiples of 32");
  app->add_flag("--zero-bias,!--no-zero-bias", opts->zero_bias,
                "Count the zero fp16 biases of bias-free quantized layers (as gptq quantize writes by default)");
  app->add_flag("--json", opts->json, "Print JSON instead of a table");
  for (const char* name : {"--bits", "--group-size"})
    app->get_option(name)->check(strict_integer());
  return {app, [opts] {
            if (std::filesystem::is_regular_file(opts->model) && gguf::is_gguf_file(opts->model)) {
              fmt::print("{}", gguf::describe_gguf(opts->model, opts->json));
              return 0;
            }
            const auto dir = resolve_model_path(opts->model);
            if (const auto q = QuantizationConfig::find_in_model_dir(dir)) return inspect_checkpoint(dir, *q, opts->json);
            const ModelConfig cfg = ModelConfig::load(dir);
            const TensorStore store = TensorStore::open(dir);
            ConvertOptions co;
            co.bits = opts->bits;
            co.group_size = opts->group_size;
            co.block_name = opts->block_name;
            co.modules_in_block = parse_modules_in_block(opts->modules);
            co.allow_unaligned = opts->allow_unaligned;
            co.zero_bias = opts->zero_bias;
            const ModelPlan plan = convert_model(cfg, store, co);
            // The runtimes of the planned checkpoint (symmetric, no act-order: inspect's options).
            const TargetSettings ts{opts->bits, opts->group_size, true, false, false, cfg.arch ? cfg.arch->name : ""};
            const auto vs = verdicts(ts, plan_target_layers(plan));
            if (opts->json) {
              nlohmann::json j = plan_to_json(cfg, plan);
              j["runtimes"] = verdicts_json(vs);
              fmt::print("{}\n", json_output(j, 2));
            } else {
              print_plan(cfg, plan);
              for (const auto& v : vs) fmt::print("runtime     {}\n", describe_verdict(v));
            }
            return 0;
          }};
}

}  // namespace gptq::cli
