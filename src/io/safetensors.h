// Reading safetensors checkpoints over mmap: one file, or a sharded checkpoint with
// model.safetensors.index.json. Tensors are views into the mapping; nothing is copied until a
// tensor is converted. Every structural problem is reported as gptq::Error naming the file (and
// tensor) and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/dtype.h"

namespace gptq {

// Read-only memory mapping of a whole file (move-only).
class MappedFile {
 public:
  static MappedFile open(const std::filesystem::path& path);
  MappedFile() = default;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Gives the pages of a read-only mapped range back to the kernel (madvise MADV_DONTNEED on the
// whole pages inside it): they leave the resident set and are read again from the page cache if
// touched later. For weights already converted, so that memory stays bounded by what is in use.
void drop_mapped_pages(const std::byte* data, size_t nbytes);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // view into the mapping
  size_t nbytes = 0;
  const std::filesystem::path* file = nullptr;  // the file holding it

  int64_t numel() const;
  std::string shape_str() const;  // "[256, 768]"
};

// One .safetensors file.
class SafetensorsFile {
 public:
  // Maps and validates the file; throws gptq::Error on any malformation.
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return map_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MappedFile map_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  friend class SafetensorsParser;
};

// All tensors of a checkpoint: a single file, or the shards named by an index file.
class TensorStore {
 public:
  // `path` is a model directory (model.safetensors.index.json, else model.safetensors, else the
  // only *.safetensors file in it), an index file, or a .safetensors file.
  static TensorStore open(const std::filesystem::path& path);

  const TensorInfo* find(std::string_view name) const;
  // Throws gptq::Error naming the tensor and the checkpoint if absent.
  const TensorInfo& get(std::string_view name) const;
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return by_name_.size(); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::filesystem::path& root() const { return root_; }  // directory of the checkpoint
  // Metadata of the first file (and, for sharded checkpoints, the index "metadata").
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::filesystem::path root_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::unordered_map<std::string, const TensorInfo*> by_name_;
  std::map<std::string, std::string> metadata_;
};

// Converts a floating tensor (F32, F16, BF16, F64) to float32; `out` holds numel() floats.
// Throws gptq::Error naming the tensor for a non-float dtype.
void tensor_to_f32(const TensorInfo& t, float* out);
std::vector<float> tensor_to_f32(const TensorInfo& t);
// Elements [begin, begin + count) of the flattened tensor to float32 (the same values as the
// whole-tensor conversion gives them), on the calling thread: a lookup of a few rows (embedding
// rows converted when a token needs them, not at load).
void tensor_range_to_f32(const TensorInfo& t, int64_t begin, int64_t count, float* out);

}  // namespace gptq
