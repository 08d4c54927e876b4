// The global operator new/delete of the programs that own their process (the gptq CLI and the
// benchmarks; not the library, not the Python module): malloc/free as libstdc++'s, and, once the
// program has called prefer_mapped_large_allocations(), two things for blocks of 2 MiB and more:
//
// - Transparent-huge-page advice (advise_huge_pages). Those blocks are glibc's own mappings, and
//   the quantize pipeline's stage buffers (4-120 MB: activations, Hessians, the solver's matrices),
//   allocated and freed block after block, are first touched as 2 MiB pages instead of 4 KiB ones:
//   bench_quantize --blocks 2 took 1.17 M page faults, 0.25 M with the advice (/usr/bin/time).
//   glibc's tunable glibc.malloc.hugetlb=1 does much the same (0.13 M), but only from the
//   environment at startup.
// - Reuse of freed blocks (LargeBlockCache below). Each transformer block allocates the same
//   buffers as the one before; a freed buffer is kept, still resident, for the next request of
//   about its size, instead of being unmapped and then faulted in and zeroed by the kernel again,
//   page by page, on the one thread that first writes it. The cache never raises the peak RSS.
#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include "util/huge_pages.h"

namespace {

constexpr std::size_t kLarge = std::size_t{2} << 20;

// Freed large blocks, by usable size (malloc_usable_size), kept for reuse within a bound that
// keeps the resident total at or below its high-water mark: with `live` the bytes of large blocks
// in use and `high` the most there have ever been, the cache holds at most high - live bytes. A
// block freed at the peak is therefore released, and a fresh allocation that raises `live` first
// releases cached blocks. Requests take a cached block of at least their size and at most a
// quarter more (a larger one would be held by a smaller user while its own size is asked again).
class LargeBlockCache {
 public:
  // A cached block for a request of n bytes, or nullptr.
  void* take(std::size_t n) {
    const std::lock_guard<std::mutex> lock(mu_);
    const auto it = free_.lower_bound(n);
    if (it == free_.end() || it->first > n + n / 4) return nullptr;
    void* p = it->second;
    cached_ -= it->first;
    live_ += it->first;
    free_.erase(it);
    return p;
  }

  // A block of `usable` bytes fresh from malloc.
  void allocated(std::size_t usable) {
    const std::lock_guard<std::mutex> lock(mu_);
    live_ += usable;
    high_ = std::max(high_, live_);
    trim();
  }

  // Whether the cache keeps the freed block p of `usable` bytes (`reuse`: the program asked for
  // it); if not, the caller frees it.
  bool keep(void* p, std::size_t usable, bool reuse) {
    const std::lock_guard<std::mutex> lock(mu_);
    live_ -= std::min(live_, usable);  // every large block was counted when allocated
    if (!reuse || cached_ + usable > high_ - live_) return false;
    free_.emplace(usable, p);
    cached_ += usable;
    return true;
  }

 private:
  // Releases cached blocks, largest first, until the bound holds again.
  void trim() {
    while (cached_ > high_ - live_ && !free_.empty()) {
      const auto last = std::prev(free_.end());
      cached_ -= last->first;
      std::free(last->second);
      free_.erase(last);
    }
  }

  std::mutex mu_;
  std::multimap<std::size_t, void*> free_;
  std::size_t live_ = 0, high_ = 0, cached_ = 0;  // high_ >= live_ + cached_ at all times
};

// Constructed on first use (operator new runs before other files' static initialisers) and
// never destroyed (operator delete runs during static destruction).
LargeBlockCache& cache() {
  alignas(LargeBlockCache) static unsigned char storage[sizeof(LargeBlockCache)];
  static LargeBlockCache* const c = new (storage) LargeBlockCache();
  return *c;
}

void* allocate(std::size_t n) noexcept {
  if (n >= kLarge && gptq::freed_large_blocks_reused())
    if (void* p = cache().take(n)) return p;
  for (;;) {
    if (void* p = std::malloc(n != 0 ? n : 1)) {
      if (const std::size_t usable = ::malloc_usable_size(p); usable >= kLarge) {
        if (gptq::large_allocations_advised()) gptq::advise_huge_pages(p, n);
        cache().allocated(usable);
      }
      return p;
    }
    const std::new_handler handler = std::get_new_handler();
    if (!handler) return nullptr;
    handler();  // may throw; otherwise try again, as the standard's operator new does
  }
}

// Large blocks: those of at least kLarge usable bytes, counted as live when allocated.
void release(void* p) noexcept {
  if (!p) return;
  const std::size_t usable = ::malloc_usable_size(p);
  if (usable >= kLarge && cache().keep(p, usable, gptq::freed_large_blocks_reused())) return;
  std::free(p);
}

}  // namespace

void* operator new(std::size_t n) {
  if (void* p = allocate(n)) return p;
  throw std::bad_alloc();
}

void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept {
  release(p);
}

void operator delete(void* p, std::size_t) noexcept {
  release(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
  release(p);
}
