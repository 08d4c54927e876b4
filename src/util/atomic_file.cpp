#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

void FileWriter::write_at(uint64_t offset, const void* data, size_t n) const {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      fail_code(ExitCode::kIo, "cannot write {}: {}; {}", path_.string(), errno_text(err),
                write_error_hint(err));
    }
    done += static_cast<size_t>(w);
  }
}

void write_file_atomic(const fs::path& path, const std::function<void(const FileWriter&)>& write) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot create {}: {} (is the output location writable?); {}", tmp.string(),
              errno_text(err), write_error_hint(err));
  }
  try {
    write(FileWriter(fd, tmp));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_code(ExitCode::kIo, "cannot write {}: {}; {}", tmp.string(), errno_text(err), write_error_hint(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_code(ExitCode::kIo, "cannot rename {} to {}: {}; {}", tmp.string(), path.string(), errno_text(err),
              write_error_hint(err));
  }
  sync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  write_file_atomic(path, [&](const FileWriter& f) { f.write_at(0, bytes.data(), bytes.size()); });
}

}  // namespace gptq
