// Large buffers backed by transparent huge pages where the kernel offers them (THP "madvise"
// mode): a 400 MB weight buffer then costs ~200 page faults instead of ~100k at first touch.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

namespace gptq {

// Asks for huge pages on the 2 MiB-aligned interior of [p, p + bytes) (advisory; a no-op for
// small ranges or where unsupported). Call it before the memory is first written.
void advise_huge_pages(void* p, size_t bytes);

// std::aligned_alloc(64, bytes) for small buffers; 2 MiB-aligned, rounded up and advised
// (advise_huge_pages) from 2 MiB up. Release with std::free. nullptr on failure.
void* alloc_maybe_huge(size_t bytes);

// Makes glibc serve every allocation of 1 MiB or more from its own mapping, returned to the system
// when freed; with `advise_huge` the programs' operator new also advises huge pages for them
// (large_allocations_advised below), and with `reuse_freed` it keeps freed blocks of 2 MiB and more
// for the next allocations of about their size, within the peak RSS so far
// (src/process/large_page_new.cpp). glibc otherwise raises its mmap threshold (up to 32 MiB) as
// large blocks are freed, and the quantize pipeline's per-stage buffers (4-45 MB, freed stage after
// stage) then come from the heap and stay resident. Process-wide: for programs that own their
// process (the CLI, the benchmarks), not for the library called from a host application.
void prefer_mapped_large_allocations(bool advise_huge = true, bool reuse_freed = true);
// Whether prefer_mapped_large_allocations(true) was called. The programs' operator new
// (src/process/large_page_new.cpp) then advises huge pages for every block of 2 MiB and more.
bool large_allocations_advised();
// Whether prefer_mapped_large_allocations(_, true) was called: the programs' operator delete then
// keeps freed blocks of 2 MiB and more for reuse.
bool freed_large_blocks_reused();

// Writes one byte of every 4 KiB page of [p, p + bytes) (memory not yet in use), 2 MiB per task on
// the thread pool: the kernel's zeroing of fresh pages, done at first touch, then runs on every
// thread instead of the one that first fills the buffer.
void touch_pages_in_parallel(void* p, size_t bytes);

// v.resize(n) (new elements zero, the old ones kept) where a fresh buffer of 4 MiB or more gets its
// pages faulted in on the thread pool first (touch_pages_in_parallel), not one by one under the
// calling thread's zero fill: a [T, intermediate] GEMM output, a K x K Hessian. In the quantize
// pipeline (perf of bench_quantize --blocks 2 on a Zen 3 VM) the time with only one of the two
// threads busy went from 6.4% to 2.6% of the run.
template <class T>
void resize_first_touched(std::vector<T>& v, size_t n) {
  static_assert(std::is_trivially_copyable_v<T>);
  constexpr size_t kMinBytes = size_t{4} << 20;
  if (n > v.capacity() && (n - v.size()) * sizeof(T) >= kMinBytes) {
    std::vector<T> grown;
    grown.reserve(n);
    advise_huge_pages(grown.data(), n * sizeof(T));
    touch_pages_in_parallel(grown.data(), n * sizeof(T));
    grown.assign(v.begin(), v.end());
    v.swap(grown);
  }
  v.resize(n);
}

// A fixed-size float array allocated with alloc_maybe_huge and left uninitialised: the owner
// writes every element (a weight converted from the checkpoint), so first touch happens on the
// threads that convert it, and there is no zeroing pass. Throws std::bad_alloc.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  explicit FloatBuffer(size_t n);
  float* data() { return p_.get(); }
  const float* data() const { return p_.get(); }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> p_;
  size_t n_ = 0;
};

}  // namespace gptq
