#include "gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/atomic_file.h"
#include "util/error.h"

namespace gptq::gguf {

namespace {
template <typename T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

class OutFile {
 public:
  explicit OutFile(std::filesystem::path p) : path_(std::move(p)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      fail_code(ExitCode::kIo, "cannot create {}: {}", path_.string(), std::strerror(errno));
  }
  ~OutFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OutFile(const OutFile&) = delete;
  OutFile& operator=(const OutFile&) = delete;
  void write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        fail_code(ExitCode::kIo, "cannot write {}: {} (check the free disk space)", path_.string(),
                  std::strerror(errno));
      p += w;
      n -= static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
    }
  }
  void pad_to(uint64_t align) {
    static const char zeros[64] = {};
    const uint64_t pad = (align - written_ % align) % align;
    write(zeros, pad);
  }
  void close_synced() {
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      fd_ = -1;
      fail_code(ExitCode::kIo, "cannot write {}: {}", path_.string(), std::strerror(errno));
    }
    fd_ = -1;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t written_ = 0;
};
}  // namespace

uint64_t tensor_nbytes(const std::vector<int64_t>& ne, GgmlType type) {
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= static_cast<uint64_t>(ne[i]);
  return rows * row_size(type, ne.empty() ? 1 : ne[0]);
}

void GgufWriter::begin_kv(const std::string& key, ValueType type) {
  if (has_key(key)) fail_code(ExitCode::kInternal, "GGUF key {} written twice", key);
  keys_.push_back(key);
  put_str(kv_, key);
  put<uint32_t>(kv_, static_cast<uint32_t>(type));
}

bool GgufWriter::has_key(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  begin_kv(key, ValueType::kU32);
  put(kv_, v);
}
void GgufWriter::add_i32(const std::string& key, int32_t v) {
  begin_kv(key, ValueType::kI32);
  put(kv_, v);
}
void GgufWriter::add_u64(const std::string& key, uint64_t v) {
  begin_kv(key, ValueType::kU64);
  put(kv_, v);
}
void GgufWriter::add_f32(const std::string& key, float v) {
  begin_kv(key, ValueType::kF32);
  put(kv_, v);
}
void GgufWriter::add_bool(const std::string& key, bool v) {
  begin_kv(key, ValueType::kBool);
  put<uint8_t>(kv_, v ? 1 : 0);
}
void GgufWriter::add_string(const std::string& key, const std::string& v) {
  begin_kv(key, ValueType::kString);
  put_str(kv_, v);
}
void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
  begin_kv(key, ValueType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(ValueType::kString));
  put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
}
void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& v) {
  begin_kv(key, ValueType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(ValueType::kI32));
  put<uint64_t>(kv_, v.size());
  for (const int32_t x : v) put(kv_, x);
}
void GgufWriter::add_f32_array(const std::string& key, const std::vector<float>& v) {
  begin_kv(key, ValueType::kArray);
  put<uint32_t>(kv_, static_cast<uint32_t>(ValueType::kF32));
  put<uint64_t>(kv_, v.size());
  for (const float x : v) put(kv_, x);
}

void GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                            Producer produce) {
  for (const auto& t : tensors_)
    if (t.name == name) fail_code(ExitCode::kInternal, "GGUF tensor {} written twice", name);
  if (name.size() >= 64) fail("GGUF tensor name {} is longer than ggml's 63 characters", name);
  const uint64_t nbytes = tensor_nbytes(ne, type);
  tensors_.push_back(Tensor{name, std::move(ne), type, std::move(produce), nbytes});
}

void GgufWriter::write(const std::filesystem::path& out) const {
  std::string head;
  put<uint32_t>(head, kMagic);
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, keys_.size());
  head += kv_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_str(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.ne.size()));
    for (const int64_t d : t.ne) put<uint64_t>(head, static_cast<uint64_t>(d));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset += (t.nbytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  std::filesystem::path tmp = out;
  tmp += ".tmp";
  try {
    OutFile f(tmp);
    f.write(head.data(), head.size());
    f.pad_to(kAlignment);
    for (const auto& t : tensors_) {
      const std::vector<std::byte> bytes = t.produce();
      if (bytes.size() != t.nbytes)
        fail_code(ExitCode::kInternal, "GGUF tensor {}: {} bytes produced, {} expected", t.name,
                  bytes.size(), t.nbytes);
      f.write(bytes.data(), bytes.size());
      f.pad_to(kAlignment);
    }
    f.close_synced();
    std::filesystem::rename(tmp, out);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  sync_directory(out.has_parent_path() ? out.parent_path() : std::filesystem::path("."));
}

}  // namespace gptq::gguf
