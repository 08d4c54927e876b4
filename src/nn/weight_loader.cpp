#include "nn/weight_loader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "io/safetensors.h"
#include "model/convert.h"
#include "util/error.h"

namespace gptq::nn {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

const TensorInfo& require(const TensorStore& store, const std::string& name,
                          const std::string& what) {
  const TensorInfo* t = find_param(store, name);
  if (!t)
    fail("tensor '{}' ({}) is missing from the checkpoint {}", name, what, store.root().string());
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

std::vector<float> load_param(const TensorStore& store, const std::string& name,
                              const std::vector<int64_t>& shape, const std::string& what) {
  const TensorInfo& t = require(store, name, what);
  if (t.shape != shape)
    fail("tensor '{}' ({}) has shape {}; expected {}", name, what, t.shape_str(), shape_str(shape));
  return tensor_to_f32(t);
}

std::vector<float> load_linear_weight(const TensorStore& store, const std::string& name,
                                      LinearKind kind, int64_t n, int64_t k) {
  const std::string what = fmt::format("linear weight, {} -> {} features", k, n);
  const TensorInfo& t = require(store, name, what);
  switch (kind) {
    case LinearKind::kLinear:
      if (t.shape != std::vector<int64_t>{n, k})
        fail("tensor '{}' (nn.Linear weight) has shape {}; expected [out={}, in={}]", name,
             t.shape_str(), n, k);
      return tensor_to_f32(t);
    case LinearKind::kConv2d:
      if (t.shape != std::vector<int64_t>{n, k, 1, 1})
        fail("tensor '{}' (1x1 Conv2d weight) has shape {}; expected [{}, {}, 1, 1]", name,
             t.shape_str(), n, k);
      return tensor_to_f32(t);
    case LinearKind::kConv1D: {
      if (t.shape != std::vector<int64_t>{k, n})
        fail("tensor '{}' (Conv1D weight, stored [in, out]) has shape {}; expected [in={}, out={}]",
             name, t.shape_str(), k, n);
      const std::vector<float> kn = tensor_to_f32(t);
      std::vector<float> nk(kn.size());
      // W[n][k] = stored[k][n]; blocked transpose for cache friendliness.
      constexpr int64_t kB = 32;
      for (int64_t k0 = 0; k0 < k; k0 += kB)
        for (int64_t n0 = 0; n0 < n; n0 += kB)
          for (int64_t kk = k0; kk < std::min(k, k0 + kB); ++kk)
            for (int64_t nn = n0; nn < std::min(n, n0 + kB); ++nn)
              nk[nn * k + kk] = kn[kk * n + nn];
      return nk;
    }
  }
  fail("tensor '{}': unknown linear kind", name);
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

}  // namespace gptq::nn
