#include "nn/weight_loader.h"

#include "nn/norm.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "io/safetensors.h"
#include "io/safetensors_header.h"
#include "model/convert.h"
#include "util/error.h"

namespace gptq::nn {

namespace {
const TensorInfo& require(const TensorStore& store, const std::string& name,
                          const std::string& what) {
  const TensorInfo* t = find_param(store, name);
  if (!t)
    fail(
        "tensor '{}' ({}) is missing from the checkpoint {}; the checkpoint is incomplete or does "
        "not match config.json",
        name, what, store.root().string());
  if (!is_float(t->dtype))
    fail("tensor '{}' ({}) has dtype {}; expected a floating-point tensor (F32, F16, BF16)", name,
         what, dtype_name(t->dtype));
  return *t;
}
}  // namespace

const TensorInfo* find_param(const TensorStore& store, const std::string& name) {
  if (const TensorInfo* t = store.find(name)) return t;
  const auto dot = name.find('.');
  if (dot != std::string::npos) return store.find(std::string_view(name).substr(dot + 1));
  return nullptr;
}

const TensorInfo& check_param(const TensorStore& store, const std::string& name,
                              const std::vector<int64_t>& shape, const std::string& what) {
  const TensorInfo& t = require(store, name, what);
  if (t.shape != shape)
    fail(
        "tensor '{}' ({}) has shape {}; expected {}: the checkpoint is damaged or does not match "
        "config.json",
        name, what, t.shape_str(), format_shape(shape));
  return t;
}

std::vector<float> load_param(const TensorStore& store, const std::string& name,
                              const std::vector<int64_t>& shape, const std::string& what) {
  return tensor_to_f32(check_param(store, name, shape, what));
}

const TensorInfo& check_linear_weight(const TensorStore& store, const std::string& name,
                                      LinearKind kind, int64_t n, int64_t k) {
  const TensorInfo& t = require(store, name, fmt::format("linear weight, {} -> {} features", k, n));
  struct Layout {
    std::vector<int64_t> shape;
    const char* module;
    std::string labelled;
  };
  const Layout want =
      kind == LinearKind::kConv1D
          ? Layout{{k, n}, "Conv1D weight", fmt::format("[in={}, out={}]", k, n)}
      : kind == LinearKind::kConv2d
          ? Layout{{n, k, 1, 1}, "1x1 Conv2d weight", fmt::format("[out={}, in={}, 1, 1]", n, k)}
          : Layout{{n, k}, "nn.Linear weight", fmt::format("[out={}, in={}]", n, k)};
  if (t.shape != want.shape)
    fail(
        "tensor '{}' ({}) has shape {}; config.json implies {} = {}: the checkpoint is damaged or "
        "does "
        "not match config.json",
        name, want.module, t.shape_str(), format_shape(want.shape), want.labelled);
  return t;
}

std::vector<float> load_linear_weight(const TensorStore& store, const std::string& name,
                                      LinearKind kind, int64_t n, int64_t k) {
  const TensorInfo& t = check_linear_weight(store, name, kind, n, k);
  if (kind != LinearKind::kConv1D) return tensor_to_f32(t);  // [n, k] or [n, k, 1, 1]: W as stored
  const std::vector<float> kn = tensor_to_f32(t);
  std::vector<float> nk(kn.size());
  // W[n][k] = stored[k][n]; blocked transpose for cache friendliness.
  constexpr int64_t kB = 32;
  for (int64_t k0 = 0; k0 < k; k0 += kB)
    for (int64_t n0 = 0; n0 < n; n0 += kB)
      for (int64_t kk = k0; kk < std::min(k, k0 + kB); ++kk)
        for (int64_t nn = n0; nn < std::min(n, n0 + kB); ++nn) nk[nn * k + kk] = kn[kk * n + nn];
  return nk;
}

std::string detect_block_name(const TensorStore& store) {
  const std::string p = detect_block_pattern(module_names_from_tensors(store.names()));
  if (p.empty())
    fail(
        "checkpoint {}: no list of transformer blocks found (none of the tensor names starts "
        "with {})",
        store.root().string(), fmt::join(block_patterns(), ", "));
  return p;
}

std::string block_prefix(const TensorStore& store, int64_t index, const std::string& block_name) {
  return fmt::format("{}.{}.", block_name.empty() ? detect_block_name(store) : block_name, index);
}

Norm load_norm(const TensorStore& store, const std::string& module, NormType type, int64_t dim,
               float eps) {
  Norm n;
  n.type = type;
  n.dim = dim;
  n.eps = eps;
  const char* what = type == NormType::kLayerNorm ? "LayerNorm weight" : "RMSNorm weight";
  n.weight = load_param(store, module + ".weight", {dim}, what);
  if (type == NormType::kRmsNormUnitOffset)
    for (float& w : n.weight) w = 1.0f + w;  // Gemma: output * (1.0 + self.weight.float())
  if (type == NormType::kLayerNorm)
    n.bias = load_param(store, module + ".bias", {dim}, "LayerNorm bias");
  return n;
}

}  // namespace gptq::nn
