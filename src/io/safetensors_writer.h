// Streaming safetensors writer, single file or sharded with an index (Hugging Face layout:
// model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json).
//
// All tensor specs are declared up front, so each shard's header is known and written first; the
// data of every tensor is then written once, in any order, straight to its place in its shard
// (positional writes): the whole model is never held in memory. Output goes to temporary names
// ("<name>.partial"); finish() checks that every tensor was written completely, syncs and renames
// them into place. A writer destroyed before finish() removes its temporaries unless
// Options::keep_partial is set (used by resumable runs, which reopen them with Options::resume).
// write() and mark_written() may be called from several threads at once. finish() also removes
// checkpoint files of an earlier run under the same base name that are not part of this one
// (a stale index or shards would otherwise be read back instead of the new files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/dtype.h"

namespace gptq {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  struct Options {
    uint64_t max_shard_bytes = 0;      // 0: one file; else shard like HF's max_shard_size
    std::string base_name = "model";   // model.safetensors / model-00001-of-00003.safetensors
    std::map<std::string, std::string> metadata;  // __metadata__ of every shard
    bool keep_partial = false;  // on destruction without finish(), keep the .partial files
    bool resume = false;        // reopen existing .partial files whose header matches exactly
  };

  // Tensors keep the declared order inside the shards. Duplicate names are an error.
  SafetensorsWriter(std::filesystem::path out_dir, std::vector<TensorSpec> specs, Options options);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes bytes [offset, offset + nbytes) of tensor `name`. A tensor may be written in pieces.
  void write(std::string_view name, const void* data, uint64_t nbytes, uint64_t offset = 0);
  // Declares a tensor complete without writing it (its bytes are already in a resumed .partial).
  void mark_written(std::string_view name);
  // mark_written after checking the bytes in the resumed .partial against `checksum` (a value of
  // checksums() of the run that wrote them); a truncated or modified shard is an error naming
  // the file and the tensor.
  void adopt_written(std::string_view name, const std::string& checksum);
  // XXH3-64 (hex) of every completely written tensor, by name: what a resumed run checks.
  std::map<std::string, std::string> checksums() const;
  // Syncs the data written so far (a durable checkpoint for resumable runs).
  void sync();
  // Verifies completeness, writes the index (if sharded), syncs and renames into place.
  void finish();

  // Final file names (relative to out_dir), in shard order, plus the index if sharded.
  std::vector<std::string> file_names() const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace gptq
