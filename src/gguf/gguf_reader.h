// Reads a GGUF file back (memory-mapped): metadata key/values and the tensor table, with every
// size and offset checked against the file (a damaged file is a gptq::Error naming it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/ggml_quant.h"
#include "gguf/gguf_format.h"
#include "io/safetensors.h"

namespace gptq::gguf {

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section
  const std::byte* data = nullptr;
  uint64_t nbytes = 0;
  int64_t numel() const;
};

class GgufFile {
 public:
  static GgufFile open(const std::filesystem::path& path);

  uint32_t version() const { return version_; }
  // Values as JSON (numbers, bools, strings, arrays); keys in file order in `keys()`.
  const std::vector<std::string>& keys() const { return keys_; }
  const nlohmann::json& value(const std::string& key) const;  // throws naming the key if absent
  bool has(const std::string& key) const { return values_.contains(key); }
  ValueType value_type(const std::string& key) const { return types_.at(key); }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find(const std::string& name) const;
  const std::filesystem::path& path() const { return map_.path(); }

  // The tensor as float32 (ggml order: ne[0] fastest), dequantized with this library's code.
  std::vector<float> to_f32(const GgufTensor& t) const;

 private:
  MappedFile map_;
  uint32_t version_ = 0;
  std::vector<std::string> keys_;
  nlohmann::json values_ = nlohmann::json::object();
  std::map<std::string, ValueType> types_;
  std::vector<GgufTensor> tensors_;
};

// True if the file starts with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace gptq::gguf
