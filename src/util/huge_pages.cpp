#include "util/huge_pages.h"

#include <malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "util/thread_pool.h"

namespace gptq {

namespace {
constexpr size_t kHuge = size_t{2} << 20;
}  // namespace

void advise_huge_pages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t begin = (a + kHuge - 1) / kHuge * kHuge, end = (a + bytes) / kHuge * kHuge;
  if (end > begin)
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);  // advisory
#else
  (void)p;
  (void)bytes;
#endif
}

namespace {
std::atomic<bool> g_advise_large{false}, g_reuse_large{false};
}  // namespace

void prefer_mapped_large_allocations(bool advise_huge, bool reuse_freed) {
#ifdef M_MMAP_THRESHOLD
  ::mallopt(M_MMAP_THRESHOLD, 1 << 20);  // also fixes it: no dynamic raise
  g_advise_large.store(advise_huge, std::memory_order_relaxed);
  g_reuse_large.store(reuse_freed, std::memory_order_relaxed);
#else
  (void)advise_huge;
  (void)reuse_freed;
#endif
}

bool large_allocations_advised() {
  return g_advise_large.load(std::memory_order_relaxed);
}

bool freed_large_blocks_reused() {
  return g_reuse_large.load(std::memory_order_relaxed);
}

void touch_pages_in_parallel(void* p, size_t bytes) {
  constexpr size_t kPage = 4096;
  auto* bytes_at = static_cast<volatile unsigned char*>(p);
  const auto chunks = static_cast<int64_t>((bytes + kHuge - 1) / kHuge);
  parallel_for(chunks, [&](int64_t c) {
    const size_t end = std::min(bytes, (static_cast<size_t>(c) + 1) * kHuge);
    for (size_t off = static_cast<size_t>(c) * kHuge; off < end; off += kPage) bytes_at[off] = 0;
  });
}

void* alloc_maybe_huge(size_t bytes) {
  if (bytes < kHuge) return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (p) advise_huge_pages(p, rounded);
  return p;
}

FloatBuffer::FloatBuffer(size_t n) : n_(n) {
  if (n == 0) return;
  p_.reset(static_cast<float*>(alloc_maybe_huge(n * sizeof(float))));
  if (!p_) throw std::bad_alloc();
}

void FloatBuffer::Free::operator()(float* p) const {
  std::free(p);
}

}  // namespace gptq
