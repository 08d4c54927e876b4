#include "pipeline/calibration_inputs.h"

#include <cstring>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {

void tensor_row_to_f32(const TensorInfo& t, int64_t row, float* out) {
  if (t.shape.size() != 2 || row < 0 || row >= t.shape[0])
    fail("{}: row {} out of range for shape {}", t.name, row, t.shape_str());
  const int64_t n = t.shape[1];
  const std::byte* p = t.data + static_cast<size_t>(row * n) * dtype_size(t.dtype);
  switch (t.dtype) {
    case DType::F32: std::memcpy(out, p, static_cast<size_t>(n) * 4); return;
    case DType::F16: f16_to_f32(reinterpret_cast<const uint16_t*>(p), out, static_cast<size_t>(n)); return;
    case DType::BF16: bf16_to_f32(reinterpret_cast<const uint16_t*>(p), out, static_cast<size_t>(n)); return;
    default: fail("{}: dtype {} is not a float type (F32/F16/BF16 expected)", t.name, dtype_name(t.dtype));
  }
}

std::vector<std::vector<float>> embed_sequences(const ModelConfig& config, const TensorStore& store,
                                                const std::vector<TokenSequence>& seqs) {
  config.require_arch();
  const int64_t hidden = config.hp.hidden;
  const ModelLayout names = model_layout(config, [&](const std::string& n) { return store.find(n) != nullptr; });
  const TensorInfo& tok = store.get(names.embed + ".weight");
  if (tok.shape.size() != 2 || tok.shape[1] != hidden)
    fail("{}: expected [vocab, {}], got {}", tok.name, hidden, tok.shape_str());
  const TensorInfo* pos = names.pos_embed.empty() ? nullptr : &store.get(names.pos_embed + ".weight");
  const auto scale = static_cast<float>(config.hp.embed_scale);
  std::vector<std::vector<float>> out;
  std::vector<float> row(static_cast<size_t>(hidden));
  for (const auto& ids : seqs) {
    const auto T = static_cast<int64_t>(ids.size());
    std::vector<float> x(static_cast<size_t>(T * hidden));
    for (int64_t t = 0; t < T; ++t) {
      float* xt = x.data() + t * hidden;
      tensor_row_to_f32(tok, ids[static_cast<size_t>(t)], xt);
      if (scale > 0)  // Gemma: inputs_embeds * normalizer
        for (int64_t i = 0; i < hidden; ++i) xt[i] *= scale;
      if (pos) {
        const int64_t p = t + config.hp.pos_offset;
        if (p >= pos->shape[0])
          fail("sequence of {} tokens is longer than the model's {} learned positions; use a smaller --seqlen", T,
               pos->shape[0] - config.hp.pos_offset);
        tensor_row_to_f32(*pos, p, row.data());
        for (int64_t i = 0; i < hidden; ++i) xt[i] += row[static_cast<size_t>(i)];
      }
    }
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace gptq
