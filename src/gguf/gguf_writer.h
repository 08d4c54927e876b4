// Writes a GGUF file: metadata key/values in insertion order, then tensors whose bytes are
// produced one at a time while writing (memory: one tensor). The file appears atomically: it is
// written to "<out>.tmp", synced and renamed over <out>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "gguf/ggml_quant.h"
#include "gguf/gguf_format.h"

namespace gptq::gguf {

class GgufWriter {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  bool has_key(const std::string& key) const;

  // ne: ggml order (ne[0] = values per row). `produce` returns exactly the tensor's bytes.
  using Producer = std::function<std::vector<std::byte>()>;
  void add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                  Producer produce);
  size_t tensor_count() const { return tensors_.size(); }

  // Writes the file (atomic rename); errors name the path (ExitCode::kIo).
  void write(const std::filesystem::path& out) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    Producer produce;
    uint64_t nbytes = 0;
  };
  void begin_kv(const std::string& key, ValueType type);
  std::string kv_;  // serialized key/values
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

// Bytes of a tensor of shape ne in `type`.
uint64_t tensor_nbytes(const std::vector<int64_t>& ne, GgmlType type);

}  // namespace gptq::gguf
