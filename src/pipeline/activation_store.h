// The calibration activations between blocks (each sequence's [tokens, hidden] block input), held
// in fp32 (the default: the bytes of earlier releases) or rounded to fp16 / bf16 to halve the host
// memory they take (`--activation-dtype`; the next block computes in fp32 from the rounded values).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {

enum class ActivationDtype { kF32, kF16, kBF16 };

// "fp32", "fp16", "bf16" (a usage error otherwise).
ActivationDtype parse_activation_dtype(const std::string& name);
const char* activation_dtype_name(ActivationDtype d);

class ActivationStore {
 public:
  explicit ActivationStore(ActivationDtype d = ActivationDtype::kF32) : dtype_(d) {}
  ActivationDtype dtype() const { return dtype_; }
  size_t size() const { return dtype_ == ActivationDtype::kF32 ? f32_.size() : h16_.size(); }
  void resize(size_t n);
  // Values (tokens x hidden) of sequence s.
  int64_t values(size_t s) const;
  // Stores sequence s (rounded to the dtype; fp32 is kept as is).
  void set(size_t s, std::vector<float>&& v);
  // Sequence s in fp32.
  std::vector<float> get(size_t s) const;
  void get(size_t s, float* out) const;
  // Sequence s in fp32, its slot left empty (values(s) == 0): a block that reads its input once
  // moves it out instead of holding two copies.
  std::vector<float> take(size_t s);
  // Sequence s as stored (4 or 2 bytes a value), and back: for moving sequences between processes.
  std::string encode(size_t s) const;
  void decode(size_t s, const char* bytes, size_t n);
  size_t bytes_per_value() const { return dtype_ == ActivationDtype::kF32 ? 4 : 2; }
  uint64_t bytes() const;  // held in memory

 private:
  ActivationDtype dtype_;
  std::vector<std::vector<float>> f32_;
  std::vector<std::vector<uint16_t>> h16_;
};

}  // namespace gptq
