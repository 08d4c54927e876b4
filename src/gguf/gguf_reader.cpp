#include "gguf/gguf_reader.h"

#include <cstring>
#include <fstream>

#include "util/error.h"

namespace gptq::gguf {

namespace {
class Cursor {
 public:
  Cursor(const std::byte* data, size_t size, const std::filesystem::path& path)
      : p_(data), end_(data + size), path_(path) {}
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  std::string str() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  size_t pos(const std::byte* base) const { return static_cast<size_t>(p_ - base); }

 private:
  void need(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_))
      fail("{}: the GGUF header is truncated or damaged (a length runs past the end of the file)",
           path_.string());
  }
  const std::byte* p_;
  const std::byte* end_;
  const std::filesystem::path& path_;
};

nlohmann::json read_scalar(Cursor& c, ValueType t, const std::filesystem::path& path,
                           const std::string& key) {
  switch (t) {
    case ValueType::kU8:
      return c.get<uint8_t>();
    case ValueType::kI8:
      return c.get<int8_t>();
    case ValueType::kU16:
      return c.get<uint16_t>();
    case ValueType::kI16:
      return c.get<int16_t>();
    case ValueType::kU32:
      return c.get<uint32_t>();
    case ValueType::kI32:
      return c.get<int32_t>();
    case ValueType::kF32:
      return c.get<float>();
    case ValueType::kBool:
      return c.get<uint8_t>() != 0;
    case ValueType::kString:
      return c.str();
    case ValueType::kU64:
      return c.get<uint64_t>();
    case ValueType::kI64:
      return c.get<int64_t>();
    case ValueType::kF64:
      return c.get<double>();
    case ValueType::kArray:
      break;
  }
  fail("{}: key {} has the unknown GGUF value type {}", path.string(), key,
       static_cast<uint32_t>(t));
}
}  // namespace

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (const int64_t d : ne) n *= d;
  return n;
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  uint32_t magic = 0;
  if (!f.read(reinterpret_cast<char*>(&magic), 4)) return false;
  return magic == kMagic;
}

GgufFile GgufFile::open(const std::filesystem::path& path) {
  GgufFile g;
  g.map_ = MappedFile::open(path);
  const std::byte* base = g.map_.data();
  Cursor c(base, g.map_.size(), path);
  if (c.get<uint32_t>() != kMagic) fail("{} is not a GGUF file (no GGUF magic)", path.string());
  g.version_ = c.get<uint32_t>();
  if (g.version_ < 2 || g.version_ > 3)
    fail("{}: GGUF version {} is not supported (2 or 3)", path.string(), g.version_);
  const uint64_t n_tensors = c.get<uint64_t>(), n_kv = c.get<uint64_t>();
  if (n_tensors > (1u << 24) || n_kv > (1u << 24))
    fail("{}: implausible GGUF counts", path.string());
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str();
    const auto t = static_cast<ValueType>(c.get<uint32_t>());
    nlohmann::json v;
    if (t == ValueType::kArray) {
      const auto et = static_cast<ValueType>(c.get<uint32_t>());
      const uint64_t n = c.get<uint64_t>();
      if (et == ValueType::kArray)
        fail("{}: key {}: nested GGUF arrays are not supported", path.string(), key);
      if (n > g.map_.size())
        fail("{}: key {}: array length {} runs past the file", path.string(), key, n);
      v = nlohmann::json::array();
      for (uint64_t j = 0; j < n; ++j) v.push_back(read_scalar(c, et, path, key));
    } else {
      v = read_scalar(c, t, path, key);
    }
    if (g.values_.contains(key)) fail("{}: GGUF key {} appears twice", path.string(), key);
    g.keys_.push_back(key);
    g.types_[key] = t;
    g.values_[key] = std::move(v);
  }
  uint64_t alignment = kAlignment;
  if (g.values_.contains("general.alignment"))
    alignment = g.values_["general.alignment"].get<uint64_t>();
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail("{}: general.alignment {} is not a power of two", path.string(), alignment);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.str();
    const uint32_t nd = c.get<uint32_t>();
    if (nd > 4)
      fail("{}: tensor {} has {} dimensions (ggml has at most 4)", path.string(), t.name, nd);
    for (uint32_t d = 0; d < nd; ++d) {
      const auto v = c.get<uint64_t>();
      if (v > (uint64_t{1} << 40))
        fail("{}: tensor {} has an implausible dimension {}", path.string(), t.name, v);
      t.ne.push_back(static_cast<int64_t>(v));
    }
    const uint32_t type = c.get<uint32_t>();
    if (!is_known(type))
      fail(
          "{}: tensor {} has ggml type {}, which this reader does not know (f32, f16, bf16, q4_0, "
          "q4_1, q8_0)",
          path.string(), t.name, type);
    t.type = static_cast<GgmlType>(type);
    t.offset = c.get<uint64_t>();
    g.tensors_.push_back(std::move(t));
  }
  const uint64_t data_start = (c.pos(base) + alignment - 1) / alignment * alignment;
  for (auto& t : g.tensors_) {
    uint64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= static_cast<uint64_t>(t.ne[d]);
    if (t.ne.empty() || t.ne[0] % block_size(t.type) != 0)
      fail("{}: tensor {}: row length is not a multiple of the {} block", path.string(), t.name,
           type_name(t.type));
    t.nbytes = rows * row_size(t.type, t.ne[0]);
    if (t.offset % alignment != 0 || data_start + t.offset + t.nbytes > g.map_.size())
      fail("{}: tensor {}: data at offset {} ({} bytes) lies outside the file", path.string(),
           t.name, t.offset, t.nbytes);
    t.data = base + data_start + t.offset;
  }
  return g;
}

const nlohmann::json& GgufFile::value(const std::string& key) const {
  if (!values_.contains(key)) fail("{}: GGUF key {} is missing", path().string(), key);
  return values_.at(key);
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<float> GgufFile::to_f32(const GgufTensor& t) const {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  const int64_t n = t.ne[0];
  const size_t rs = row_size(t.type, n);
  for (int64_t r = 0; r < t.numel() / n; ++r)
    dequantize_row(t.type, t.data + r * rs, n, out.data() + r * n);
  return out;
}

}  // namespace gptq::gguf
