// gptq::quantize: QuantizeParams -> the pipeline's QuantizeOptions, at the library boundary.
#include <fmt/core.h>

#include "api/boundary.h"
#include "gptq/quantize.h"
#include "io/json_reader.h"
#include "model/loader_compat.h"
#include "model/model_config.h"
#include "pipeline/quantize.h"
#include "util/error.h"

namespace gptq {

QuantizeOptions to_quantize_options(const QuantizeParams& p) {
  QuantizeOptions o;
  o.quant.bits = p.bits;
  o.quant.group_size = p.group_size;
  o.quant.damp_percent = p.damp_percent;
  o.quant.damp_auto_increment = p.damp_auto_increment;
  o.quant.desc_act = p.desc_act;
  o.quant.static_groups = p.static_groups;
  o.quant.sym = p.sym;
  o.quant.act_group_aware = p.act_group_aware;
  o.quant.mse_norm = p.mse;
  if (p.method == "gptq")
    o.method = QuantMethod::kGptq;
  else if (p.method == "rtn")
    o.method = QuantMethod::kRtn;
  else
    fail_code(ExitCode::kUsage, "method '{}': expected gptq or rtn", p.method);
  o.true_sequential = p.true_sequential;
  if (p.checkpoint_format == "gptq")
    o.format = CheckpointFormat::kGptq;
  else if (p.checkpoint_format == "gptq_v2")
    o.format = CheckpointFormat::kGptqV2;
  else if (!p.checkpoint_format.empty())
    fail_code(ExitCode::kUsage, "checkpoint format '{}': expected gptq or gptq_v2",
              p.checkpoint_format);
  o.modules_in_block = p.modules_in_block_to_quantize;
  o.block_name = p.block_name_to_quantize;
  o.allow_unaligned = p.allow_unaligned;
  o.zero_bias = p.zero_bias;
  o.calib.file = p.dataset.path;
  o.calib.texts = p.dataset.texts;
  o.calib.sequences = p.dataset.token_ids;
  o.calib.nsamples = p.nsamples;
  if (p.model_seqlen && *p.model_seqlen < 1)
    fail_code(ExitCode::kUsage, "--seqlen {}: must be at least 1 (leave it out for the default)",
              *p.model_seqlen);
  o.calib.seqlen = p.model_seqlen.value_or(0);
  o.calib.seed = p.seed;
  o.batch_size = p.batch_size;
  o.max_shard_bytes = p.max_shard_size;
  if (p.threads < 0)
    fail_code(ExitCode::kUsage, "--threads {}: must be >= 0 (0: all cores)", p.threads);
  o.threads = p.threads;
  o.resume = p.resume;
  if (!p.dynamic.empty()) {
    try {
      o.dynamic = parse_json_input(p.dynamic, "dynamic", "give a JSON object of rules");
    } catch (const Error& e) {  // a parameter, not a file: a usage error
      throw Error(e.what(), ExitCode::kUsage);
    }
  }
  o.lm_head = p.lm_head;
  if (p.hessian_chunk < 0)
    fail_code(ExitCode::kUsage, "hessian_chunk {}: expected 0 (one chunk) or a number of sequences",
              p.hessian_chunk);
  o.hessian_chunk = p.hessian_chunk;
  if (p.batch_rows < 0)
    fail_code(ExitCode::kUsage,
              "batch_rows {}: expected 0 (one sequence at a time) or a number of tokens",
              p.batch_rows);
  o.batch_rows = p.batch_rows;
  o.activation_dtype = parse_activation_dtype(p.activation_dtype);
  if (p.moe_calibration == "routed")
    o.moe_calibration = MoeCalibration::kRouted;
  else if (p.moe_calibration == "all")
    o.moe_calibration = MoeCalibration::kAll;
  else
    fail_code(ExitCode::kUsage, "moe_calibration '{}': expected routed or all", p.moe_calibration);
  if (p.moe_min_tokens < -1)
    fail_code(ExitCode::kUsage,
              "moe_min_tokens {}: expected -1 (0.1% of the tokens) or a count >= 0",
              p.moe_min_tokens);
  o.moe_min_tokens = p.moe_min_tokens;
  if (p.moe_experts_per_chunk < 1)
    fail_code(ExitCode::kUsage, "moe_experts_per_chunk {}: must be at least 1",
              p.moe_experts_per_chunk);
  o.moe_experts_per_chunk = p.moe_experts_per_chunk;
  return o;
}

QuantizeResult quantize(const std::string& model, const std::string& out,
                        const QuantizeParams& params, const Callbacks& callbacks) {
  return api::guarded([&] {
    const QuantizeOptions o = to_quantize_options(params);
    if (o.effective_format() == CheckpointFormat::kGptqV2 && callbacks.log)
      callbacks.log("warning: " + gptq_v2_readers_note());
    return quantize_model(resolve_model_path(model), out, o, callbacks).result;
  });
}

}  // namespace gptq
