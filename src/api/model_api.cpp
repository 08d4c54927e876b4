// gptq::load and gptq::Model at the library boundary.
#include <fmt/core.h>

#include "api/boundary.h"
#include "api/model_impl.h"
#include "infer/generate.h"
#include "model/model_config.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq {

namespace {

ModelInfo describe(const LoadedModel& m) {
  ModelInfo i;
  i.path = m.dir.string();
  i.model_type = m.config.model_type;
  i.quantized = m.quant.has_value();
  i.quantized_layers = m.quantized_layers;
  i.float_layers = m.float_layers;
  i.vocab_size = m.model->vocab();
  i.hidden_size = m.model->hidden();
  i.num_blocks = m.model->num_blocks();
  i.context_length = context_length(*m.model);
  if (!m.quant) {
    i.description = "float";
    return i;
  }
  const QuantizationConfig& q = *m.quant;
  i.bits = q.bits;
  i.group_size = q.group_size;
  i.desc_act = q.desc_act;
  i.sym = q.sym;
  i.checkpoint_format = format_name(q.format);
  i.description = fmt::format("GPTQ {}-bit g{}{}{} {} ({} quantized layers)", q.bits, q.group_size,
                              q.desc_act ? " act-order" : "", q.sym ? " sym" : " asym",
                              format_name(q.format), m.quantized_layers);
  return i;
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelInfo& Model::info() const {
  return impl_->info;
}

int Model::threads() const {
  return impl_->threads;
}

Model load(const std::string& model, const LoadParams& params) {
  return api::guarded([&] {
    if (params.threads < 0)
      fail_code(ExitCode::kUsage, "--threads {}: must be >= 0 (0: all cores)", params.threads);
    const ComputeThreadsScope threads(params.threads);
    auto impl = std::make_unique<Model::Impl>();
    impl->threads = params.threads;
    if (params.dequantized && params.int8_activations)
      fail_code(ExitCode::kUsage,
                "--dequantized and --int8-activations exclude each other: choose --dequantized for "
                "the fp32 reference weights or --int8-activations for the faster approximate "
                "kernels");
    const LinearBackend backend = params.dequantized        ? LinearBackend::kDequantized
                                  : params.int8_activations ? LinearBackend::kKernelInt8
                                                            : LinearBackend::kKernel;
    impl->loaded = load_model(resolve_model_path(model), backend);
    impl->info = describe(*impl->loaded);
    return Model(std::move(impl));
  });
}

std::vector<int32_t> Model::tokenize(const std::string& text, bool add_special_tokens) const {
  return api::guarded([&] { return impl_->tokenizer().encode(text, add_special_tokens); });
}

std::string Model::detokenize(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return api::guarded([&] { return impl_->tokenizer().decode(ids, skip_special_tokens); });
}

std::vector<float> Model::logits(const std::vector<int32_t>& ids) const {
  return api::guarded([&] {
    if (ids.empty()) fail_code(ExitCode::kUsage, "logits: give at least one token id");
    const ComputeThreadsScope threads(impl_->threads);
    return impl_->forward().logits(ids);
  });
}

}  // namespace gptq
