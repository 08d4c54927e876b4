// Stable 64-bit FNV-1a hashing (run fingerprints; identical on every platform).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gptq {

class Fnv64 {
 public:
  Fnv64& add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
    return *this;
  }
  Fnv64& add(std::string_view s) {
    add(s.data(), s.size());
    return add("\0", 1);
  }
  Fnv64& add_u64(uint64_t v) { return add(&v, sizeof v); }
  uint64_t value() const { return h_; }
  std::string hex() const;

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

inline std::string Fnv64::hex() const {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; ++i) s[15 - i] = d[(h_ >> (4 * i)) & 15];
  return s;
}

}  // namespace gptq
