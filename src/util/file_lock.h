// An exclusive advisory lock (flock) on a file, held while the object lives: two processes
// working on the same directory find out about each other. The file holds the owner's pid.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace gptq {

class FileLock {
 public:
  // Creates `path` (and takes the lock before the file is visible under that name: it is made
  // under a temporary name `path.tmp.PID`, locked, then renamed), writing `pid\n` into it. Throws
  // on I/O errors.
  static FileLock create(const std::filesystem::path& path);
  // Opens the existing `path` and takes the lock; nullopt when another process holds it, with
  // the pid it recorded in *holder (0 when unknown). Throws on I/O errors (e.g. no such file).
  static std::optional<FileLock> try_lock(const std::filesystem::path& path, long* holder);

  FileLock() = default;
  FileLock(FileLock&& o) noexcept;
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  bool held() const { return fd_ >= 0; }
  // Records this process as the holder (rewrites the pid in the file).
  void record_pid() const;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace gptq
