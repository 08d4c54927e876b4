#include "io/safetensors.h"

#include <fmt/format.h>

#include <cstring>

#include "io/safetensors_header.h"
#include "util/error.h"

namespace gptq {

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  return format_shape(shape);
}

// Fills a SafetensorsFile from its mapping (layout: u64 little-endian header length N, N bytes of
// JSON header, then the data section that the header's data_offsets index into).
class SafetensorsParser {
 public:
  static void parse(SafetensorsFile& f) {
    const std::string name = f.map_.path().string();
    const std::byte* base = f.map_.data();
    const uint64_t size = f.map_.size();
    if (size < 8) {
      fail_safetensors(name, fmt::format("the file is {} bytes, shorter than the 8-byte header "
                                         "length that starts a safetensors file",
                                         size));
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<uint64_t>(base[i]);
    if (n > size - 8) {
      fail_safetensors(name, fmt::format("the header length {} goes beyond the end of the file "
                                         "({} bytes; truncated file?)",
                                         n, size));
    }
    if (n > kMaxHeaderBytes) {
      fail_safetensors(
          name, fmt::format("the header length {} exceeds the {}-byte limit", n, kMaxHeaderBytes));
    }
    const std::string_view text(reinterpret_cast<const char*>(base + 8), n);
    const std::byte* data = base + 8 + n;
    SafetensorsHeader header = parse_safetensors_header(text, size - 8 - n, name);
    f.metadata_ = std::move(header.metadata);
    f.tensors_.reserve(header.entries.size());
    for (HeaderEntry& e : header.entries) {
      TensorInfo t;
      t.name = std::move(e.name);
      t.dtype = e.dtype;
      t.shape = std::move(e.shape);
      t.data = data + e.begin;
      t.nbytes = e.end - e.begin;
      t.file = &f.map_.path();
      f.index_.emplace(t.name, f.tensors_.size());
      f.tensors_.push_back(std::move(t));
    }
  }
};

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  auto f = std::make_unique<SafetensorsFile>();
  f->map_ = MappedFile::open(path);
  SafetensorsParser::parse(*f);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace gptq
