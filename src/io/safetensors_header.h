// The JSON header of a safetensors file: parsing and full validation against the size of the
// data section (the bytes after the 8-byte length and the header).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.h"

namespace gptq {

struct HeaderEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // data_offsets, relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<HeaderEntry> entries;             // sorted by begin offset
};

// Largest header accepted (the limit of the reference safetensors implementation).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates `json` (the header bytes of `file`, which only names the file in
// messages) for a data section of `data_size` bytes: entry structure, known dtypes, non-negative
// integer dims, byte sizes matching shape x dtype, and offsets that tile the data section exactly
// (no overlap, no hole, nothing after the last tensor). Throws gptq::Error on any problem.
SafetensorsHeader parse_safetensors_header(std::string_view json, uint64_t data_size,
                                           const std::string& file);

// Throws gptq::Error "invalid safetensors file '<file>': <what>; ..." with a hint on what to do.
[[noreturn]] void fail_safetensors(const std::string& file, const std::string& what);

// Bytes of a tensor of this dtype and shape; nullopt for a negative dim or on overflow.
std::optional<uint64_t> tensor_nbytes(DType dtype, std::span<const int64_t> shape);
// "[256, 768]"
std::string format_shape(std::span<const int64_t> shape);

}  // namespace gptq
