// Durable, atomic file writes: write "<path>.tmp", fsync, rename over <path>, fsync the
// directory. A reader sees the old or the new content, never a mix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>
#include <system_error>
#include <utility>

namespace gptq {

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// The temporary file of a write_file_atomic in progress: bytes go to any offsets, in any order,
// from any thread (pwrite). Throws gptq::Error (kIo) naming the file when a write fails.
class FileWriter {
 public:
  FileWriter(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void write_at(uint64_t offset, const void* data, size_t n) const;

 private:
  int fd_;
  std::filesystem::path path_;
};
// The same for a file written in pieces by `write` (which may use the thread pool); if it throws,
// the temporary file is removed and <path> is left as it was.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const FileWriter&)>& write);
// rename(2) that fails (EEXIST) instead of replacing an existing `to` (an empty directory that
// appeared meanwhile, say); plain rename where the file system cannot do that.
void rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to, std::error_code& ec);
// fsync of a directory (makes renames inside it durable).
void sync_directory(const std::filesystem::path& dir);

}  // namespace gptq
