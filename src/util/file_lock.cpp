#include "util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "util/error.h"
#include "util/system_error.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_errno(const char* action, const fs::path& p, int err) {
  fail_code(ExitCode::kIo, "cannot {} {}: {}; {}", action, p.string(), errno_text(err),
            write_error_hint(err));
}

long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

}  // namespace

void FileLock::record_pid() const {
  const std::string pid = std::to_string(static_cast<long>(::getpid())) + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    fail_code(ExitCode::kIo, "cannot write the run lock: {}", errno_text(errno));
}

FileLock FileLock::create(const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_errno("create", tmp, errno);
  FileLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) fail_errno("lock", tmp, errno);
  lock.record_pid();
  if (::fsync(fd) != 0) fail_errno("sync", tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail_errno("rename into", path, errno);
  return lock;
}

std::optional<FileLock> FileLock::try_lock(const fs::path& path, long* holder) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) fail_errno("open", path, errno);
  FileLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) fail_errno("lock", path, err);
    if (holder) *holder = read_pid(fd);
    return std::nullopt;
  }
  return lock;
}

FileLock::FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace gptq
