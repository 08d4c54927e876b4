#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "io/mapped_regions.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/system_error.h"

namespace gptq {

namespace {
// Closes the descriptor on every path out of open().
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

MappedFile MappedFile::open(const std::filesystem::path& path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot open '{}': {}; check that the file exists and is readable",
              path.string(), errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) {
    const int err = errno;
    fail_code(ExitCode::kIo, "cannot stat '{}': {}", path.string(), errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    fail_code(ExitCode::kIo, "'{}' is not a regular file; expected a .safetensors file",
              path.string());
  }
  MappedFile m;
  m.path_ = path;
  m.size_ = static_cast<size_t>(st.st_size);
  if (m.size_ > 0) {
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      fail_code(ExitCode::kIo, "cannot map '{}' ({} bytes) into memory: {}", path.string(), m.size_,
                errno_text(err));
    }
    m.data_ = static_cast<const std::byte*>(p);
    register_mapping(m.data_, m.size_, path.string());
  }
  return m;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) {
      unregister_mapping(data_);
      ::munmap(const_cast<std::byte*>(data_), size_);
    }
    path_ = std::move(o.path_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) {
    unregister_mapping(data_);
    ::munmap(const_cast<std::byte*>(data_), size_);
  }
}

void drop_mapped_pages(const std::byte* data, size_t nbytes) {
  static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data) + nbytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // advisory
}

}  // namespace gptq
