// The global operator new/delete of the programs that own their process (the gptq CLI and the
// benchmarks; not the library, not the Python module): malloc/free as libstdc++'s, plus the
// transparent-huge-page advice (advise_huge_pages) for blocks of 2 MiB and more once the program
// has called prefer_mapped_large_allocations(). Those blocks are then glibc's own mappings, and
// the quantize pipeline's stage buffers (4-120 MB: activations, Hessians, the solver's matrices),
// allocated and freed block after block, are first touched as 2 MiB pages instead of 4 KiB ones:
// bench_quantize --blocks 2 took 1.17 M page faults, 0.25 M with the advice (/usr/bin/time).
// glibc's tunable glibc.malloc.hugetlb=1 does much the same (0.13 M), but only from the
// environment at startup.
#include <cstdlib>
#include <new>

#include "util/huge_pages.h"

namespace {

void* allocate(std::size_t n) noexcept {
  for (;;) {
    if (void* p = std::malloc(n != 0 ? n : 1)) {
      if (gptq::large_allocations_advised()) gptq::advise_huge_pages(p, n);
      return p;
    }
    const std::new_handler handler = std::get_new_handler();
    if (!handler) return nullptr;
    handler();  // may throw; otherwise try again, as the standard's operator new does
  }
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
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
