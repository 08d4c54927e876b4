// Element types of safetensors tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gptq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64, F8_E4M3, F8_E5M2 };

// Bytes per element.
size_t dtype_size(DType t);
// Name as written in a safetensors header ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; returns false if unknown.
bool parse_dtype(std::string_view name, DType* out);
inline bool is_float(DType t) { return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16; }

}  // namespace gptq
