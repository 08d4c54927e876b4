// tensor_to_f32: floating tensors of a mapping to float32. Large tensors are split into ranges
// converted on the thread pool (the conversion is memory bound; one core does not saturate it).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"

namespace gptq {

namespace {

constexpr size_t kChunk = size_t{1} << 18;  // elements per work item

// Runs fn(begin, end) over [0, n) split into fixed ranges on the thread pool.
template <class Fn>
void parallel_ranges(size_t n, Fn fn) {
  if (n <= kChunk) {
    fn(size_t{0}, n);
    return;
  }
  parallel_for(static_cast<int64_t>((n + kChunk - 1) / kChunk), [&](int64_t i) {
    const size_t b = static_cast<size_t>(i) * kChunk;
    fn(b, std::min(n, b + kChunk));
  });
}

// Half-precision data may sit at an odd address inside the mapping (after an odd-sized tensor):
// such ranges go through an aligned bounce buffer.
template <void (*Convert)(const uint16_t*, float*, size_t)>
void halves_to_f32(const std::byte* src, float* out, size_t n) {
  if (reinterpret_cast<uintptr_t>(src) % alignof(uint16_t) == 0) {
    Convert(reinterpret_cast<const uint16_t*>(src), out, n);
    return;
  }
  uint16_t buf[4096];
  for (size_t i = 0; i < n; i += 4096) {
    const size_t m = std::min<size_t>(4096, n - i);
    std::memcpy(buf, src + 2 * i, 2 * m);
    Convert(buf, out + i, m);
  }
}

// Elements [b, e) of a tensor's data to float32; out[i - b] for element i.
void convert_range(const TensorInfo& t, size_t b, size_t e, float* out) {
  const std::byte* src = t.data;
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, src + 4 * b, 4 * (e - b));
      return;
    case DType::F16:
      halves_to_f32<static_cast<void (*)(const uint16_t*, float*, size_t)>(f16_to_f32)>(src + 2 * b,
                                                                                        out, e - b);
      return;
    case DType::BF16:
      halves_to_f32<static_cast<void (*)(const uint16_t*, float*, size_t)>(bf16_to_f32)>(
          src + 2 * b, out, e - b);
      return;
    case DType::F64:
      for (size_t i = b; i < e; ++i) {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        out[i - b] = static_cast<float>(d);
      }
      return;
    default:
      fail_code(ExitCode::kInternal, "convert_range: tensor '{}' is not a float tensor", t.name);
  }
}

void check_float_tensor(const TensorInfo& t) {
  const size_t n = static_cast<size_t>(t.numel());
  if (n * dtype_size(t.dtype) != t.nbytes) {
    fail("tensor '{}': {} bytes do not match its shape {} x {}", t.name, t.nbytes, t.shape_str(),
         dtype_name(t.dtype));
  }
  switch (t.dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::F64:
      return;
    default:
      fail(
          "tensor '{}' ({}, in '{}') has dtype {}; expected a floating-point tensor (F32, F16, "
          "BF16 or F64)",
          t.name, t.shape_str(), t.file ? t.file->string() : std::string("?"), dtype_name(t.dtype));
  }
}

}  // namespace

void tensor_to_f32(const TensorInfo& t, float* out) {
  check_float_tensor(t);
  parallel_ranges(static_cast<size_t>(t.numel()),
                  [&](size_t b, size_t e) { convert_range(t, b, e, out + b); });
}

void tensor_range_to_f32(const TensorInfo& t, int64_t begin, int64_t count, float* out) {
  check_float_tensor(t);
  if (begin < 0 || count < 0 || begin + count > t.numel())
    fail_code(ExitCode::kInternal, "tensor '{}': elements [{}, {}) outside its {}", t.name, begin,
              begin + count, t.numel());
  convert_range(t, static_cast<size_t>(begin), static_cast<size_t>(begin + count), out);
}

std::vector<float> tensor_to_f32(const TensorInfo& t) {
  std::vector<float> out;
  resize_first_touched(out, static_cast<size_t>(t.numel()));
  tensor_to_f32(t, out.data());
  return out;
}

}  // namespace gptq
