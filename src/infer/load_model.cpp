#include "infer/load_model.h"

#include "infer/quantized_layer.h"
#include "kernels/quant_linear.h"
#include "nn/weight_loader.h"
#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<LinearOp> make_quant_linear(const QuantizedLayerData& d, LinearBackend backend) {
  if (backend == LinearBackend::kDequantized) return make_dequantized_linear(d);
  kernels::QuantLinearDesc desc =
      kernels::describe_packed(d.packed, d.scales.data(), d.bias.empty() ? nullptr : d.bias.data());
  if (d.qweight_mapped)
    desc.qweight = d.qweight_mapped;  // repacked into tiles straight from the mapping
  kernels::QuantLinearOptions options;
  if (backend == LinearBackend::kKernelInt8) options.gemm_path = kernels::GemmPath::kInt8;
  return std::make_unique<kernels::QuantLinear>(desc, options);
}

}  // namespace

std::unique_ptr<LoadedModel> load_model(const fs::path& dir, LinearBackend backend) {
  auto m = std::make_unique<LoadedModel>();
  m->dir = dir;
  m->config = ModelConfig::load(dir);
  const ArchSpec& arch = m->config.require_arch();
  m->store = TensorStore::open(dir);
  m->quant = QuantizationConfig::find_in_model_dir(dir);
  ModelForwardOptions mo;
  mo.load_blocks = !m->quant.has_value();
  if (m->quant && !m->quant->block_name_to_quantize.empty())
    mo.block_name = m->quant->block_name_to_quantize;
  m->model = std::make_unique<ModelForward>(m->config, m->store, mo);
  if (!m->quant) {
    for (int64_t b = 0; b < m->model->num_blocks(); ++b)
      m->float_layers += static_cast<int64_t>(arch.block_linears(m->config.hp, b).size());
    return m;
  }
  const QuantizationConfig& q = *m->quant;
  const bool map =
      backend != LinearBackend::kDequantized;  // QuantLinear copies qweight into its tiles
  for (int64_t b = 0; b < m->model->num_blocks(); ++b) {
    BlockOptions bo;
    bo.load_linears = false;
    bo.block_name = mo.block_name;
    auto block = std::make_unique<BlockForward>(m->config, m->store, b, bo);
    for (const auto& local : block->linears()) {
      const std::string full = block->prefix() + local;
      const auto [n, k] = block->linear_dims(local);
      if (m->store.find(full + ".qweight")) {
        block->set_linear(local, make_quant_linear(read_quantized_layer(m->store, full, n, k,
                                                                        q.for_module(full), map),
                                                   backend));
        ++m->quantized_layers;
      } else if (m->store.find(full + ".weight")) {
        block->set_weight(local, nn::load_linear_weight(m->store, full + ".weight",
                                                        arch.linear_kind(local), n, k));
        ++m->float_layers;
      } else {
        fail("{}: neither {}.qweight nor {}.weight is in the checkpoint", dir.string(), full, full);
      }
    }
    m->model->set_block(b, std::move(block));
  }
  // A quantized output head (GPTQModel lm_head=True).
  const ModelLayout names =
      model_layout(m->config, [&](const std::string& n) { return m->store.find(n) != nullptr; });
  if (!names.lm_head.empty() && m->store.find(names.lm_head + ".qweight")) {
    if (m->config.hp.tie_word_embeddings)
      fail(
          "{}: {}.qweight is present but config.json ties the head to the embedding "
          "(tie_word_embeddings); the "
          "checkpoint is inconsistent",
          dir.string(), names.lm_head);
    m->model->set_head(make_quant_linear(
        read_quantized_layer(m->store, names.lm_head, m->model->vocab(), m->model->hidden(),
                             q.for_module(names.lm_head), map),
        backend));
    ++m->quantized_layers;
  }
  if (m->quantized_layers == 0)
    fail("{}: quantization_config says GPTQ but no layer has a .qweight tensor (block list '{}')",
         dir.string(), m->model->num_blocks() ? mo.block_name : "");
  return m;
}

}  // namespace gptq
