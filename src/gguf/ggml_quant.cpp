#include "gguf/ggml_quant.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "gguf/ggml_kquant.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq::gguf {

namespace {
constexpr int kQk = 32;

struct TypeInfo {
  GgmlType type;
  const char* name;
  int64_t block;
  size_t size;
};

constexpr TypeInfo kTypes[] = {
    {GgmlType::kF32, "f32", 1, 4},       {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", kQk, 18},  {GgmlType::kQ4_1, "q4_1", kQk, 20},
    {GgmlType::kQ8_0, "q8_0", kQk, 34},  {GgmlType::kQ2_K, "q2_K", 256, 84},
    {GgmlType::kQ3_K, "q3_K", 256, 110}, {GgmlType::kQ4_K, "q4_K", 256, 144},
    {GgmlType::kQ5_K, "q5_K", 256, 176}, {GgmlType::kQ6_K, "q6_K", 256, 210},
    {GgmlType::kBF16, "bf16", 1, 2},
};

const TypeInfo& info(GgmlType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i;
  fail("ggml type {} is not supported by this GGUF writer/reader", static_cast<uint32_t>(t));
}

void put_u16(std::byte* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}
uint16_t get_u16(const std::byte* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
}  // namespace

std::string type_name(GgmlType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i.name;
  return "?";
}

bool parse_type(std::string_view name, GgmlType* t) {
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& i : kTypes) {
    std::string n(i.name);
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == n) {
      *t = i.type;
      return true;
    }
  }
  return false;
}

bool is_known(uint32_t t) {
  for (const auto& i : kTypes)
    if (static_cast<uint32_t>(i.type) == t) return true;
  return false;
}

bool is_quantized(GgmlType t) {
  return info(t).block > 1;
}
int64_t block_size(GgmlType t) {
  return info(t).block;
}
size_t type_size(GgmlType t) {
  return info(t).size;
}

size_t row_size(GgmlType t, int64_t n) {
  const TypeInfo& i = info(t);
  if (n % i.block != 0)
    fail("a row of {} values cannot be stored as {} (blocks of {} values)", n, i.name, i.block);
  return static_cast<size_t>(n / i.block) * i.size;
}

void pack_q4_0_block(uint16_t d, const uint8_t* q, std::byte* out) {
  put_u16(out, d);
  for (int j = 0; j < kQk / 2; ++j)
    out[2 + j] = static_cast<std::byte>((q[j] & 0x0F) | ((q[j + kQk / 2] & 0x0F) << 4));
}

void pack_q4_1_block(uint16_t d, uint16_t m, const uint8_t* q, std::byte* out) {
  put_u16(out, d);
  put_u16(out + 2, m);
  for (int j = 0; j < kQk / 2; ++j)
    out[4 + j] = static_cast<std::byte>((q[j] & 0x0F) | ((q[j + kQk / 2] & 0x0F) << 4));
}

void pack_q8_0_block(uint16_t d, const int8_t* q, std::byte* out) {
  put_u16(out, d);
  std::memcpy(out + 2, q, kQk);
}

void quantize_row(GgmlType t, const float* x, int64_t n, std::byte* out) {
  (void)row_size(t, n);  // checks the block multiple
  switch (t) {
    case GgmlType::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) put_u16(out + 2 * i, f32_to_f16(x[i]));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) put_u16(out + 2 * i, f32_to_bf16(x[i]));
      return;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const float* v = x + b * kQk;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQk; ++j)
          if (amax < std::fabs(v[j])) {
            amax = std::fabs(v[j]);
            max = v[j];
          }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[kQk];
        for (int j = 0; j < kQk; ++j)
          q[j] = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(v[j] * id + 8.5f)));
        pack_q4_0_block(f32_to_f16(d), q, out + b * 18);
      }
      return;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const float* v = x + b * kQk;
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < kQk; ++j) {
          min = std::min(min, v[j]);
          max = std::max(max, v[j]);
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t q[kQk];
        for (int j = 0; j < kQk; ++j)
          q[j] = static_cast<uint8_t>(
              std::min<int>(15, static_cast<int8_t>((v[j] - min) * id + 0.5f)));
        pack_q4_1_block(f32_to_f16(d), f32_to_f16(min), q, out + b * 20);
      }
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const float* v = x + b * kQk;
        float amax = 0.0f;
        for (int j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(v[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int8_t q[kQk];
        for (int j = 0; j < kQk; ++j) q[j] = static_cast<int8_t>(std::roundf(v[j] * id));
        pack_q8_0_block(f32_to_f16(d), q, out + b * 34);
      }
      return;
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      quantize_row_k(t, x, n, out);
      return;
  }
  fail("ggml type {} cannot be quantized here", type_name(t));
}

void dequantize_row(GgmlType t, const std::byte* in, int64_t n, float* y) {
  (void)row_size(t, n);
  switch (t) {
    case GgmlType::kF32:
      std::memcpy(y, in, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(get_u16(in + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(get_u16(in + 2 * i));
      return;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const std::byte* p = in + b * 18;
        const float d = f16_to_f32(get_u16(p));
        for (int j = 0; j < kQk / 2; ++j) {
          const int q = static_cast<int>(p[2 + j]);
          y[b * kQk + j] = static_cast<float>((q & 0x0F) - 8) * d;
          y[b * kQk + j + kQk / 2] = static_cast<float>((q >> 4) - 8) * d;
        }
      }
      return;
    case GgmlType::kQ4_1:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const std::byte* p = in + b * 20;
        const float d = f16_to_f32(get_u16(p)), m = f16_to_f32(get_u16(p + 2));
        for (int j = 0; j < kQk / 2; ++j) {
          const int q = static_cast<int>(p[4 + j]);
          y[b * kQk + j] = static_cast<float>(q & 0x0F) * d + m;
          y[b * kQk + j + kQk / 2] = static_cast<float>(q >> 4) * d + m;
        }
      }
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQk; ++b) {
        const std::byte* p = in + b * 34;
        const float d = f16_to_f32(get_u16(p));
        for (int j = 0; j < kQk; ++j)
          y[b * kQk + j] = static_cast<float>(static_cast<int8_t>(p[2 + j])) * d;
      }
      return;
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
      dequantize_row_k(t, in, n, y);
      return;
  }
  fail("ggml type {} cannot be dequantized here", type_name(t));
}

}  // namespace gptq::gguf
