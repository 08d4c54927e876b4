// Writes a float32 array as a NumPy .npy file (format 1.0, little-endian, C order), streamed: the
// header first, then the rows as they are produced (`gptq eval --logits`).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace gptq::cli {

class NpyWriter {
 public:
  NpyWriter(const std::filesystem::path& path, const std::vector<int64_t>& shape);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  void write(const float* data, int64_t count);
  // Checks that every element was written and closes the file.
  void finish();

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  int64_t expected_ = 1, written_ = 0;
};

}  // namespace gptq::cli
