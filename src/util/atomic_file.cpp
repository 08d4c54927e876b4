#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <utility>

#include "util/error.h"
#include "util/system_error.h"

namespace gptq {

namespace fs = std::filesystem;

void rename_no_replace(const fs::path& from, const fs::path& to, std::error_code& ec) {
  ec.clear();
  int r = ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
  if (r != 0 && (errno == EINVAL || errno == ENOSYS)) r = ::rename(from.c_str(), to.c_str());
  if (r != 0) ec = std::error_code(errno, std::generic_category());
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void start_writeback(int fd, uint64_t offset, uint64_t n) {
#ifdef SYNC_FILE_RANGE_WRITE
  ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(n), SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
  (void)offset;
  (void)n;
#endif
}

AtomicFileWrite::AtomicFileWrite(fs::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot create {}: {} (is the output location writable?); {}",
              tmp_.string(), errno_text(err), write_error_hint(err));
  }
}

AtomicFileWrite::~AtomicFileWrite() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFileWrite::write_at(uint64_t offset, const void* data, size_t n) const {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      fail_code(ExitCode::kIo, "cannot write {}: {}; {}", tmp_.string(), errno_text(err),
                write_error_hint(err));
    }
    done += static_cast<size_t>(w);
  }
  start_writeback(fd_, offset, n);
}

void AtomicFileWrite::commit() {
  const int fd = std::exchange(fd_, -1);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail_code(ExitCode::kIo, "cannot write {}: {}; {}", tmp_.string(), errno_text(err),
              write_error_hint(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail_code(ExitCode::kIo, "cannot rename {} to {}: {}; {}", tmp_.string(), path_.string(),
              errno_text(err), write_error_hint(err));
  }
  sync_directory(path_.parent_path().empty() ? fs::path(".") : path_.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicFileWrite f(path);
  f.write_at(0, bytes.data(), bytes.size());
  f.commit();
}

}  // namespace gptq
