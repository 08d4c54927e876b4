#include "infer/quantized_layer.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "io/safetensors.h"
#include "nn/dense_linear.h"
#include "util/error.h"

namespace gptq {

namespace {

const TensorInfo& need(const TensorStore& store, const std::string& name, DType dtype,
                       const char* role) {
  const TensorInfo* t = store.find(name);
  if (!t)
    fail(
        "{} is missing: a GPTQ layer needs qweight, qzeros, scales and g_idx (is "
        "quantization_config's "
        "modules_in_block_to_quantize right for this checkpoint?)",
        name);
  if (t->dtype != dtype)
    fail("{}: {} must be {}, got {}", name, role, dtype_name(dtype), dtype_name(t->dtype));
  if (t->shape.size() != 2 && dtype == DType::I32 && std::string(role) != "g_idx")
    fail("{}: {} must be 2-D, got {}", name, role, t->shape_str());
  return *t;
}

std::vector<int32_t> copy_i32(const TensorInfo& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

}  // namespace

QuantizedLayerData read_quantized_layer(const TensorStore& store, const std::string& name,
                                        int64_t n, int64_t k, const QuantizationConfig& q,
                                        bool map_qweight) {
  const int b = q.bits;
  const int64_t gs = q.group_size == -1 ? k : q.group_size;
  const int64_t groups = (k + gs - 1) / gs;
  const TensorInfo& qw = need(store, name + ".qweight", DType::I32, "qweight");
  const TensorInfo& qz = need(store, name + ".qzeros", DType::I32, "qzeros");
  const TensorInfo* sc = store.find(name + ".scales");
  if (!sc) fail("{}.scales is missing: a GPTQ layer needs qweight, qzeros, scales and g_idx", name);
  const int64_t rows_ceil = (k * b + 31) / 32, rows_floor = k / 32 * b;
  if (qw.shape[1] != n || (qw.shape[0] != rows_ceil && qw.shape[0] != rows_floor))
    fail(
        "{}.qweight has shape {}; a {}-bit layer with in_features {} and out_features {} needs "
        "[{}, {}]",
        name, qw.shape_str(), b, k, n, rows_ceil, n);
  if (rows_ceil != rows_floor && qw.shape[0] == rows_floor)
    fail(
        "{}.qweight: in_features {} is not a multiple of 32; the checkpoint's floor-sized packing "
        "lost the last "
        "channels",
        name, k);
  const int64_t zcols = (n * b + 31) / 32;
  if (qz.shape[0] != groups || (qz.shape[1] != zcols && qz.shape[1] != n / 32 * b))
    fail("{}.qzeros has shape {}; expected [{}, {}] for {} groups of {} columns at {} bits", name,
         qz.shape_str(), groups, zcols, groups, gs, b);
  if (sc->shape.size() != 2 || sc->shape[0] != groups || sc->shape[1] != n)
    fail("{}.scales has shape {}; expected [{}, {}]", name, sc->shape_str(), groups, n);
  if (!is_float(sc->dtype))
    fail("{}.scales must be F16, BF16 or F32, got {}", name, dtype_name(sc->dtype));

  QuantizedLayerData d;
  PackedLinear& p = d.packed;
  p.bits = b;
  p.group_size = q.group_size;
  p.in_features = k;
  p.out_features = n;
  p.groups = groups;
  p.format = q.format;
  if (map_qweight && qw.shape[0] == rows_ceil &&
      reinterpret_cast<uintptr_t>(qw.data) % alignof(int32_t) == 0 &&
      qw.nbytes == static_cast<size_t>(rows_ceil * n) * sizeof(int32_t)) {
    d.qweight_mapped = reinterpret_cast<const int32_t*>(qw.data);
  } else {
    p.qweight = copy_i32(qw);
    p.qweight.resize(static_cast<size_t>(rows_ceil * n), 0);
  }
  p.qzeros = copy_i32(qz);
  p.qzeros.resize(static_cast<size_t>(groups * zcols), 0);
  d.scales = tensor_to_f32(*sc);
  for (size_t i = 0; i < d.scales.size(); ++i)
    if (!std::isfinite(d.scales[i]))
      fail(
          "{}.scales holds a non-finite value (NaN or Inf) at element {}: the checkpoint is "
          "damaged; "
          "re-download or re-quantize it",
          name, i);
  p.scales.assign(d.scales.size(), 0);  // float scales are kept in d.scales
  if (const TensorInfo* gi = store.find(name + ".g_idx")) {
    if (gi->dtype != DType::I32 || gi->shape.size() != 1 || gi->shape[0] != k)
      fail("{}.g_idx must be I32 [{}], got {} {}", name, k, dtype_name(gi->dtype), gi->shape_str());
    p.g_idx = copy_i32(*gi);
    for (int64_t i = 0; i < k; ++i)
      if (p.g_idx[i] < 0 || p.g_idx[i] >= groups)
        fail("{}.g_idx[{}] = {} is outside [0, {})", name, i, p.g_idx[i], groups);
  } else {
    p.g_idx.resize(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) p.g_idx[i] = static_cast<int32_t>(i / gs);
  }
  if (const TensorInfo* bias = store.find(name + ".bias")) {
    if (bias->shape.size() != 1 || bias->shape[0] != n)
      fail("{}.bias has shape {}; expected [{}]", name, bias->shape_str(), n);
    d.bias = tensor_to_f32(*bias);
    for (size_t i = 0; i < d.bias.size(); ++i)
      if (!std::isfinite(d.bias[i]))
        fail(
            "{}.bias holds a non-finite value (NaN or Inf) at element {}: the checkpoint is "
            "damaged; "
            "re-download or re-quantize it",
            name, i);
  }
  return d;
}

std::vector<float> dequantize_layer(const QuantizedLayerData& layer) {
  const PackedLinear& p = layer.packed;
  std::vector<uint8_t> codes;
  std::vector<int32_t> zeros;
  unpack_linear(p, &codes, &zeros);
  const int64_t n = p.out_features, k = p.in_features;
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = p.g_idx[c];
      w[r * k + c] = layer.scales[g * n + r] *
                     static_cast<float>(static_cast<int>(codes[r * k + c]) - zeros[g * n + r]);
    }
  return w;
}

std::unique_ptr<LinearOp> make_dequantized_linear(const QuantizedLayerData& layer) {
  return std::make_unique<nn::DenseLinear>(dequantize_layer(layer), layer.bias,
                                           layer.packed.out_features, layer.packed.in_features);
}

}  // namespace gptq
