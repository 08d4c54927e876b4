#include "util/content_hash.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <vector>

#include "util/error.h"
#include "util/system_error.h"

namespace gptq {

namespace {

constexpr size_t kChunk = size_t{1} << 20;

std::string hex(uint64_t h) {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; ++i) s[15 - i] = d[(h >> (4 * i)) & 15];
  return s;
}

struct State {
  XXH3_state_t* s = XXH3_createState();
  State() {
    if (!s) throw std::bad_alloc();
    XXH3_64bits_reset(s);
  }
  ~State() { XXH3_freeState(s); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

// Feeds [offset, offset + n) of fd into the state; returns false at a premature end of file,
// sets errno on a read error (and returns false).
bool feed(int fd, uint64_t offset, uint64_t n, State& st, int* err) {
  std::vector<char> buf(kChunk);
  *err = 0;
  while (n > 0) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n, kChunk));
    const ssize_t r = ::pread(fd, buf.data(), want, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return false;
    }
    if (r == 0) return false;
    XXH3_64bits_update(st.s, buf.data(), static_cast<size_t>(r));
    offset += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace

std::string content_hash(const void* data, size_t n) {
  return hex(XXH3_64bits(data, n));
}

bool content_hash_of_range(int fd, uint64_t offset, uint64_t n, std::string* out) {
  State st;
  int err = 0;
  if (!feed(fd, offset, n, st, &err)) return false;
  *out = hex(XXH3_64bits_digest(st.s));
  return true;
}

std::string content_hash_of_file(const std::filesystem::path& path, uint64_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot open '{}': {}", path.string(), errno_text(err));
  }
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    const int err = errno;
    ::close(fd);
    fail_code(ExitCode::kIo, "cannot stat '{}': {}", path.string(), errno_text(err));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  const uint64_t n = static_cast<uint64_t>(sb.st_size);
  State st;
  int err = 0;
  const bool ok = feed(fd, 0, n, st, &err);
  ::close(fd);
  if (!ok)
    fail_code(ExitCode::kIo, "cannot read '{}': {}", path.string(),
              err ? errno_text(err) : std::string("the file became shorter while being read"));
  if (size) *size = n;
  return hex(XXH3_64bits_digest(st.s));
}

}  // namespace gptq
