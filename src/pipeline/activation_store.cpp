#include "pipeline/activation_store.h"

#include <cmath>
#include <cstring>
#include <utility>

#include "util/error.h"
#include "util/fp16.h"

namespace gptq {

ActivationDtype parse_activation_dtype(const std::string& name) {
  if (name == "fp32" || name.empty()) return ActivationDtype::kF32;
  if (name == "fp16") return ActivationDtype::kF16;
  if (name == "bf16") return ActivationDtype::kBF16;
  fail_code(ExitCode::kUsage, "activation dtype '{}': expected fp32, fp16 or bf16", name);
}

const char* activation_dtype_name(ActivationDtype d) {
  switch (d) {
    case ActivationDtype::kF16:
      return "fp16";
    case ActivationDtype::kBF16:
      return "bf16";
    default:
      return "fp32";
  }
}

void ActivationStore::resize(size_t n) {
  if (dtype_ == ActivationDtype::kF32)
    f32_.resize(n);
  else
    h16_.resize(n);
}

int64_t ActivationStore::values(size_t s) const {
  return static_cast<int64_t>(dtype_ == ActivationDtype::kF32 ? f32_.at(s).size()
                                                              : h16_.at(s).size());
}

void ActivationStore::set(size_t s, std::vector<float>&& v) {
  if (dtype_ == ActivationDtype::kF32) {
    f32_.at(s) = std::move(v);
    return;
  }
  std::vector<uint16_t>& h = h16_.at(s);
  h.assign(v.size(), 0);
  if (dtype_ == ActivationDtype::kF16) {
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(f16_to_f32(h[i] = f32_to_f16(v[i]))) && std::isfinite(v[i]))
        fail_code(ExitCode::kNumerical,
                  "--activation-dtype fp16: activation {} overflows fp16 (|x| > 65504); use "
                  "bf16 or fp32",
                  v[i]);
  } else {
    f32_to_bf16(v.data(), h.data(), v.size());
  }
  std::vector<float>().swap(v);
}

void ActivationStore::get(size_t s, float* out) const {
  if (dtype_ == ActivationDtype::kF32) {
    std::memcpy(out, f32_.at(s).data(), f32_[s].size() * sizeof(float));
  } else if (dtype_ == ActivationDtype::kF16) {
    f16_to_f32(h16_.at(s).data(), out, h16_[s].size());
  } else {
    bf16_to_f32(h16_.at(s).data(), out, h16_[s].size());
  }
}

std::vector<float> ActivationStore::get(size_t s) const {
  std::vector<float> v(static_cast<size_t>(values(s)));
  get(s, v.data());
  return v;
}

std::vector<float> ActivationStore::take(size_t s) {
  if (dtype_ == ActivationDtype::kF32) return std::exchange(f32_.at(s), {});
  std::vector<float> v = get(s);
  std::vector<uint16_t>().swap(h16_.at(s));
  return v;
}

std::string ActivationStore::encode(size_t s) const {
  if (dtype_ == ActivationDtype::kF32)
    return std::string(reinterpret_cast<const char*>(f32_.at(s).data()),
                       f32_[s].size() * sizeof(float));
  return std::string(reinterpret_cast<const char*>(h16_.at(s).data()),
                     h16_[s].size() * sizeof(uint16_t));
}

void ActivationStore::decode(size_t s, const char* bytes, size_t n) {
  if (n % bytes_per_value() != 0)
    fail_code(ExitCode::kInternal,
              "activations of sequence {}: {} bytes is not a whole number of values", s, n);
  if (dtype_ == ActivationDtype::kF32) {
    f32_.at(s).resize(n / 4);
    std::memcpy(f32_[s].data(), bytes, n);
  } else {
    h16_.at(s).resize(n / 2);
    std::memcpy(h16_[s].data(), bytes, n);
  }
}

uint64_t ActivationStore::bytes() const {
  uint64_t b = 0;
  for (size_t s = 0; s < size(); ++s) b += static_cast<uint64_t>(values(s)) * bytes_per_value();
  return b;
}

}  // namespace gptq
