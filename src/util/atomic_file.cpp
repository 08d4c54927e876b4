#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {
// What to do about a failed write, by errno.
const char* write_hint(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return "the disk is full: free some space or choose another output directory";
    case EFBIG:
      return "the file exceeds the maximum file size (ulimit -f or the file system's limit): raise the limit "
             "or choose another output directory";
    case EROFS:
      return "the file system is read-only: choose another output directory";
    case EACCES:
    case EPERM:
      return "permission denied: choose a writable output directory";
    default:
      return "check the output directory and the disk";
  }
}
}  // namespace

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot create {}: {} (is the output location writable?); {}", tmp.string(),
              std::strerror(err), write_hint(err));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail_code(ExitCode::kIo, "cannot write {}: {}; {}", tmp.string(), std::strerror(err), write_hint(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_code(ExitCode::kIo, "cannot write {}: {}; {}", tmp.string(), std::strerror(err), write_hint(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail_code(ExitCode::kIo, "cannot rename {} to {}: {}", tmp.string(), path.string(), std::strerror(err));
  }
  sync_directory(path.parent_path().empty() ? fs::path(".") : path.parent_path());
}

}  // namespace gptq
