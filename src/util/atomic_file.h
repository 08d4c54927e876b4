// Durable, atomic file writes: write "<path>.tmp", fsync, rename over <path>, fsync the
// directory. A reader sees the old or the new content, never a mix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

namespace gptq {

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// write_file_atomic in steps, for a file written in pieces: the constructor creates
// "<path>.tmp"; write_at() puts bytes at any offset, from any thread (pwrite), and starts their
// write-back to the disk at once (sync_file_range), so that commit() -- fsync, rename over <path>,
// fsync of the directory -- has little left to wait for when the pieces came early. Destroyed
// without commit() (a failed piece, an exception elsewhere), it removes the temporary file and
// <path> stays as it was. Errors throw gptq::Error (kIo) naming the file.
class AtomicFileWrite {
 public:
  explicit AtomicFileWrite(std::filesystem::path path);
  ~AtomicFileWrite();
  AtomicFileWrite(const AtomicFileWrite&) = delete;
  AtomicFileWrite& operator=(const AtomicFileWrite&) = delete;

  void write_at(uint64_t offset, const void* data, size_t n) const;
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  int fd_ = -1;  // -1 once committed
};
// rename(2) that fails (EEXIST) instead of replacing an existing `to` (an empty directory that
// appeared meanwhile, say); plain rename where the file system cannot do that.
void rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to, std::error_code& ec);
// Starts writing bytes [offset, offset + n) of an open file back to the disk without waiting
// (sync_file_range; advisory: the fsync that follows makes them durable and reports any error), so
// that fsync has less left to wait for when the pieces came early.
void start_writeback(int fd, uint64_t offset, uint64_t n);
// fsync of a directory (makes renames inside it durable).
void sync_directory(const std::filesystem::path& dir);

}  // namespace gptq
