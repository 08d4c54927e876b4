#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unordered_map>

#include "io/safetensors_header.h"
#include "util/atomic_file.h"
#include "util/content_hash.h"
#include "util/error.h"
#include "util/system_error.h"

namespace gptq {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_io(const char* action, const fs::path& file, int err) {
  fail_code(ExitCode::kIo, "cannot {} '{}': {}; {}", action, file.string(), errno_text(err),
            write_error_hint(err));
}

void pwrite_all(int fd, const fs::path& file, const void* data, uint64_t n, uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    const ssize_t r = ::pwrite(fd, p, chunk, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_io("write", file, errno);
    }
    if (r == 0) fail_io("write", file, EIO);
    p += r;
    n -= static_cast<uint64_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

std::string json_string(const std::string& s, const char* what) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::type_error&) {
    fail("SafetensorsWriter: {} '{}' is not valid UTF-8", what, s);
  }
}

// Header bytes of one shard: u64 length + compact JSON padded with spaces to a multiple of 8
// (as the reference safetensors implementation does), so the data section is 8-byte aligned.
std::string build_header(const std::map<std::string, std::string>& metadata,
                         const std::vector<const TensorSpec*>& specs,
                         const std::vector<uint64_t>& begins) {
  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) json += ',';
      first = false;
      json += json_string(k, "metadata key") + ":" + json_string(v, "metadata value");
    }
    json += '}';
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = *specs[i];
    if (json.size() > 1) json += ',';
    json += fmt::format(R"({}:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})",
                        json_string(s.name, "tensor name"), dtype_name(s.dtype),
                        fmt::join(s.shape, ","), begins[i], begins[i] + s.nbytes());
  }
  json += '}';
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  return out + json;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// <base>-NNNNN-of-NNNNN.safetensors
bool is_shard_name(std::string_view name, const std::string& base) {
  constexpr std::string_view kSuffix = ".safetensors";
  if (name.size() != base.size() + 15 + kSuffix.size()) return false;
  if (!name.starts_with(base) || name[base.size()] != '-' || !name.ends_with(kSuffix)) {
    return false;
  }
  const std::string_view mid = name.substr(base.size() + 1, 14);
  return all_digits(mid.substr(0, 5)) && mid.substr(5, 4) == "-of-" && all_digits(mid.substr(9));
}

}  // namespace

uint64_t TensorSpec::nbytes() const {
  const auto n = tensor_nbytes(dtype, shape);
  if (!n) {
    fail("tensor '{}': invalid shape {} (a negative dimension, or a byte size that overflows)",
         name, format_shape(shape));
  }
  return *n;
}

struct SafetensorsWriter::Impl {
  struct Tensor {
    size_t shard = 0;
    uint64_t file_offset = 0;  // of the tensor's first byte in its shard file
    uint64_t nbytes = 0;
    std::map<uint64_t, uint64_t> written;  // disjoint byte ranges [begin, end) already written
    uint64_t written_bytes = 0;
    std::string checksum;  // of the bytes written in one piece (empty: read back when asked)
  };
  struct Shard {
    std::string name;  // final file name
    fs::path partial;
    std::string header;
    uint64_t file_size = 0;
    int fd = -1;
    bool created = false;  // created (not resumed) by this writer
  };

  fs::path dir;
  std::vector<TensorSpec> specs;
  Options options;
  std::vector<Tensor> tensors;
  std::unordered_map<std::string, size_t> by_name;
  std::vector<Shard> shards;
  std::mutex mu;  // guards Tensor::written* (write() may run on several threads)
  bool finished = false;

  std::string index_name() const { return options.base_name + ".safetensors.index.json"; }

  void plan();
  void open_files();
  void close_files(bool remove_resumed);
  Tensor& tensor(std::string_view name, const char* action);
  static void add_range(Tensor& t, uint64_t begin, uint64_t end);
  void write_index();
  void remove_stale_files();
};

// Shards like Hugging Face's max_shard_size: tensors in declared order; a new shard starts when
// the next tensor would push a non-empty shard past the limit.
void SafetensorsWriter::Impl::plan() {
  if (options.base_name.empty() || options.base_name.find('/') != std::string::npos) {
    fail("SafetensorsWriter: invalid base name '{}'", options.base_name);
  }
  std::vector<std::vector<size_t>> groups(1);
  uint64_t group_bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec& s = specs[i];
    if (s.name.empty() || s.name == "__metadata__") {
      fail("SafetensorsWriter: invalid tensor name '{}'", s.name);
    }
    if (!by_name.emplace(s.name, i).second) {
      fail("SafetensorsWriter: tensor '{}' is declared twice", s.name);
    }
    const uint64_t n = s.nbytes();
    if (options.max_shard_bytes > 0 && !groups.back().empty() &&
        (group_bytes + n < group_bytes || group_bytes + n > options.max_shard_bytes)) {
      groups.emplace_back();
      group_bytes = 0;
    }
    groups.back().push_back(i);
    group_bytes += n;
  }

  tensors.resize(specs.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    Shard shard;
    shard.name = groups.size() == 1 ? options.base_name + ".safetensors"
                                    : fmt::format("{}-{:05d}-of-{:05d}.safetensors",
                                                  options.base_name, g + 1, groups.size());
    shard.partial = dir / (shard.name + ".partial");
    std::vector<const TensorSpec*> shard_specs;
    std::vector<uint64_t> begins;
    uint64_t offset = 0;
    for (size_t i : groups[g]) {
      shard_specs.push_back(&specs[i]);
      begins.push_back(offset);
      tensors[i].shard = g;
      tensors[i].nbytes = specs[i].nbytes();
      offset += tensors[i].nbytes;
    }
    shard.header = build_header(options.metadata, shard_specs, begins);
    for (size_t k = 0; k < groups[g].size(); ++k) {
      tensors[groups[g][k]].file_offset = shard.header.size() + begins[k];
    }
    shard.file_size = shard.header.size() + offset;
    shards.push_back(std::move(shard));
  }
}

void SafetensorsWriter::Impl::open_files() {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    fail_code(ExitCode::kIo,
              "cannot create output directory '{}': {}; choose another output "
              "directory",
              dir.string(), ec ? ec.message() : "not a directory");
  }
  for (Shard& s : shards) {
    if (options.resume) {
      s.fd = ::open(s.partial.c_str(), O_RDWR | O_CLOEXEC);
      if (s.fd < 0) {
        const int err = errno;
        fail_code(ExitCode::kIo, "cannot resume from '{}': {}; run again without resuming",
                  s.partial.string(), errno_text(err));
      }
      std::string existing(s.header.size(), '\0');
      const ssize_t r = ::pread(s.fd, existing.data(), existing.size(), 0);
      if (r != static_cast<ssize_t>(existing.size()) || existing != s.header) {
        fail(
            "cannot resume from '{}': its header differs from the tensors being written now (a "
            "different model or options); delete it or run again without resuming",
            s.partial.string());
      }
    } else {
      s.fd = ::open(s.partial.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (s.fd < 0) fail_io("create", s.partial, errno);
      s.created = true;
      pwrite_all(s.fd, s.partial, s.header.data(), s.header.size(), 0);
    }
  }
}

void SafetensorsWriter::Impl::close_files(bool remove_resumed) {
  for (Shard& s : shards) {
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
    if (!options.keep_partial && (s.created || remove_resumed)) {
      std::error_code ec;
      fs::remove(s.partial, ec);
    }
  }
}

SafetensorsWriter::Impl::Tensor& SafetensorsWriter::Impl::tensor(std::string_view name,
                                                                 const char* action) {
  if (finished) fail_code(ExitCode::kInternal, "SafetensorsWriter: {} after finish()", action);
  const auto it = by_name.find(std::string(name));
  if (it == by_name.end()) {
    fail_code(ExitCode::kInternal, "SafetensorsWriter: cannot {} tensor '{}': it was not declared",
              action, name);
  }
  return tensors[it->second];
}

void SafetensorsWriter::Impl::add_range(Tensor& t, uint64_t begin, uint64_t end) {
  auto it = t.written.upper_bound(begin);
  if (it != t.written.begin() && std::prev(it)->second >= begin) --it;
  while (it != t.written.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second);
    t.written_bytes -= it->second - it->first;
    it = t.written.erase(it);
  }
  t.written.emplace(begin, end);
  t.written_bytes += end - begin;
}

// The index as transformers writes it: sorted keys, indent 2, trailing newline; tmp + rename.
void SafetensorsWriter::Impl::write_index() {
  nlohmann::json index;
  uint64_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    total += tensors[i].nbytes;
    index["weight_map"][specs[i].name] = shards[tensors[i].shard].name;
  }
  index["metadata"]["total_size"] = total;
  const std::string text = index.dump(2) + "\n";
  const fs::path final_path = dir / index_name();
  const fs::path tmp = dir / (index_name() + ".partial");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_io("create", tmp, errno);
  try {
    pwrite_all(fd, tmp, text.data(), text.size(), 0);
    if (::fsync(fd) != 0) fail_io("sync", tmp, errno);
  } catch (...) {
    ::close(fd);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) fail_io("rename into", final_path, errno);
}

// Files of an earlier run under the same base name that are not part of this checkpoint (a stale
// index would win over a new single file when the directory is read back).
void SafetensorsWriter::Impl::remove_stale_files() {
  const std::string& base = options.base_name;
  std::vector<std::string> keep;
  for (const Shard& s : shards) keep.push_back(s.name);
  if (shards.size() > 1) keep.push_back(index_name());
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours =
        name == base + ".safetensors" || name == index_name() || is_shard_name(name, base);
    if (ours && entry.is_regular_file() &&
        std::find(keep.begin(), keep.end(), name) == keep.end()) {
      std::error_code rm;
      fs::remove(entry.path(), rm);
    }
  }
}

SafetensorsWriter::SafetensorsWriter(fs::path out_dir, std::vector<TensorSpec> specs,
                                     Options options)
    : impl_(new Impl) {
  impl_->dir = std::move(out_dir);
  impl_->specs = std::move(specs);
  impl_->options = std::move(options);
  try {
    impl_->plan();
    impl_->open_files();
  } catch (...) {
    impl_->close_files(/*remove_resumed=*/false);
    delete impl_;
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (!impl_->finished) impl_->close_files(/*remove_resumed=*/true);
  delete impl_;
}

void SafetensorsWriter::write(std::string_view name, const void* data, uint64_t nbytes,
                              uint64_t offset) {
  Impl::Tensor& t = impl_->tensor(name, "write");
  if (offset > t.nbytes || nbytes > t.nbytes - offset) {
    fail_code(ExitCode::kInternal,
              "SafetensorsWriter: cannot write bytes [{}, {}) of tensor '{}', which has {} bytes",
              offset, offset + nbytes, name, t.nbytes);
  }
  if (nbytes == 0) return;
  const Impl::Shard& shard = impl_->shards[t.shard];
  pwrite_all(shard.fd, shard.partial, data, nbytes, t.file_offset + offset);
  start_writeback(shard.fd, t.file_offset + offset, nbytes);  // sync() then waits for less
  std::string checksum = offset == 0 && nbytes == t.nbytes ? content_hash(data, nbytes) : std::string();
  std::lock_guard lock(impl_->mu);
  Impl::add_range(t, offset, offset + nbytes);
  t.checksum = std::move(checksum);
}

void SafetensorsWriter::adopt_written(std::string_view name, const std::string& checksum) {
  Impl::Tensor& t = impl_->tensor(name, "adopt");
  const Impl::Shard& shard = impl_->shards[t.shard];
  std::string found;
  if (!content_hash_of_range(shard.fd, t.file_offset, t.nbytes, &found)) {
    struct stat st {};
    ::fstat(shard.fd, &st);
    fail("cannot resume from '{}': it is truncated ({} bytes, but tensor '{}' written by the interrupted run "
         "ends at byte {}); delete {} and run again without resuming",
         shard.partial.string(), st.st_size, name, t.file_offset + t.nbytes, impl_->dir.string());
  }
  if (found != checksum)
    fail("cannot resume from '{}': tensor '{}' (bytes {}-{}) is not what the interrupted run wrote (checksum {}, "
         "recorded {}): the file was modified; delete {} and run again without resuming",
         shard.partial.string(), name, t.file_offset, t.file_offset + t.nbytes, found, checksum,
         impl_->dir.string());
  mark_written(name);
  std::lock_guard lock(impl_->mu);
  t.checksum = checksum;
}

std::map<std::string, std::string> SafetensorsWriter::checksums() const {
  std::map<std::string, std::string> out;
  std::lock_guard lock(impl_->mu);
  for (size_t i = 0; i < impl_->specs.size(); ++i) {
    Impl::Tensor& t = impl_->tensors[i];
    if (t.written_bytes != t.nbytes) continue;
    if (t.checksum.empty()) {
      const Impl::Shard& shard = impl_->shards[t.shard];
      if (!content_hash_of_range(shard.fd, t.file_offset, t.nbytes, &t.checksum))
        fail_code(ExitCode::kIo, "cannot read back tensor '{}' from '{}'", impl_->specs[i].name,
                  shard.partial.string());
    }
    out.emplace(impl_->specs[i].name, t.checksum);
  }
  return out;
}

void SafetensorsWriter::mark_written(std::string_view name) {
  Impl::Tensor& t = impl_->tensor(name, "mark written");
  std::lock_guard lock(impl_->mu);
  t.written.clear();
  t.written_bytes = 0;
  t.checksum.clear();
  if (t.nbytes > 0) Impl::add_range(t, 0, t.nbytes);
}

void SafetensorsWriter::sync() {
  if (impl_->finished) return;
  for (const Impl::Shard& s : impl_->shards) {
    if (::fsync(s.fd) != 0) fail_io("sync", s.partial, errno);
  }
}

void SafetensorsWriter::finish() {
  Impl& im = *impl_;
  if (im.finished) fail_code(ExitCode::kInternal, "SafetensorsWriter: finish() called twice");
  std::vector<std::string> missing;
  size_t n_missing = 0;
  for (size_t i = 0; i < im.specs.size(); ++i) {
    const Impl::Tensor& t = im.tensors[i];
    if (t.written_bytes == t.nbytes) continue;
    if (++n_missing <= 5) {
      missing.push_back(
          fmt::format("'{}' ({} of {} bytes)", im.specs[i].name, t.written_bytes, t.nbytes));
    }
  }
  if (n_missing > 0) {
    fail_code(ExitCode::kInternal,
              "cannot finish the checkpoint in '{}': {} of {} tensors are not completely written: "
              "{}{}",
              im.dir.string(), n_missing, im.specs.size(), fmt::join(missing, ", "),
              n_missing > missing.size() ? ", ..." : "");
  }
  for (Impl::Shard& s : im.shards) {
    struct stat st {};
    if (::fstat(s.fd, &st) != 0) fail_io("stat", s.partial, errno);
    if (static_cast<uint64_t>(st.st_size) != s.file_size &&
        ::ftruncate(s.fd, static_cast<off_t>(s.file_size)) != 0) {
      fail_io("truncate", s.partial, errno);
    }
    if (::fsync(s.fd) != 0) fail_io("sync", s.partial, errno);
  }
  for (Impl::Shard& s : im.shards) {
    ::close(s.fd);
    s.fd = -1;
    const fs::path final_path = im.dir / s.name;
    if (::rename(s.partial.c_str(), final_path.c_str()) != 0) {
      fail_io("rename into", final_path, errno);
    }
  }
  im.finished = true;
  if (im.shards.size() > 1) im.write_index();
  im.remove_stale_files();
  const int dfd = ::open(im.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::vector<std::string> SafetensorsWriter::file_names() const {
  std::vector<std::string> names;
  for (const Impl::Shard& s : impl_->shards) names.push_back(s.name);
  if (impl_->shards.size() > 1) names.push_back(impl_->index_name());
  return names;
}

}  // namespace gptq
