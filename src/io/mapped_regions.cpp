#include "io/mapped_regions.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

namespace gptq {

namespace {

constexpr size_t kSlots = 4096;      // mappings registered at once (shards of the largest models)
constexpr size_t kPathBytes = 1024;  // longer paths are cut (the message names the file's start)
constexpr uintptr_t kClaimed = 1;    // a slot being filled

struct Slot {
  std::atomic<uintptr_t> begin{0};
  size_t size = 0;
  char path[kPathBytes] = {};
};

Slot g_slots[kSlots];

}  // namespace

void register_mapping(const void* begin, size_t size, const std::string& path) {
  const auto b = reinterpret_cast<uintptr_t>(begin);
  if (b <= kClaimed || size == 0) return;
  for (Slot& s : g_slots) {
    uintptr_t expected = 0;
    if (!s.begin.compare_exchange_strong(expected, kClaimed, std::memory_order_acquire)) continue;
    s.size = size;
    const size_t n = std::min(path.size(), kPathBytes - 1);
    std::memcpy(s.path, path.data(), n);
    s.path[n] = '\0';
    s.begin.store(b, std::memory_order_release);
    return;
  }
  // Table full: the mapping is not covered (a SIGBUS in it gets the default action).
}

void unregister_mapping(const void* begin) {
  const auto b = reinterpret_cast<uintptr_t>(begin);
  for (Slot& s : g_slots) {
    uintptr_t expected = b;
    if (s.begin.compare_exchange_strong(expected, 0, std::memory_order_acq_rel)) return;
  }
}

const char* mapped_file_at(const void* addr) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  for (const Slot& s : g_slots) {
    const uintptr_t b = s.begin.load(std::memory_order_acquire);
    if (b > kClaimed && a >= b && a - b < s.size) return s.path;
  }
  return nullptr;
}

}  // namespace gptq
