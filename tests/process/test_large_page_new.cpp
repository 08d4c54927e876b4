// The programs' operator new/delete (src/process/large_page_new.cpp): a freed large block serves
// the next request of about its size, and the blocks it keeps never take the process above the
// high-water mark of large blocks in use. glibc's count of bytes in its own mappings
// (mallinfo2().hblkhd: every block of 1 MiB and more once prefer_mapped_large_allocations() ran)
// shows which blocks are still held. Each test runs in a process of its own (ctest).
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstddef>
#include <new>
#include <vector>

#include "util/huge_pages.h"

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

std::size_t mapped_bytes() {
  return ::mallinfo2().hblkhd;
}

// A block from the global operator new, written so that it is used.
void* block(std::size_t bytes) {
  auto* p = static_cast<volatile char*>(::operator new(bytes));
  p[0] = 1;
  p[bytes - 1] = 2;
  return const_cast<char*>(p);
}

TEST(LargeBlockReuse, AFreedBlockServesTheNextRequestOfItsSize) {
  gptq::prefer_mapped_large_allocations(true, true);
  ASSERT_TRUE(gptq::freed_large_blocks_reused());
  void* a = block(8 * kMiB);
  const std::size_t with_a = mapped_bytes();
  ::operator delete(a);
  EXPECT_EQ(mapped_bytes(), with_a);  // kept, still mapped
  void* b = block(7 * kMiB);          // within a quarter of its size: the same block
  EXPECT_EQ(b, a);
  EXPECT_EQ(mapped_bytes(), with_a);
  ::operator delete(b);
}

TEST(LargeBlockReuse, KeptBlocksStayWithinTheHighWaterMark) {
  gptq::prefer_mapped_large_allocations(true, true);
  const std::size_t before = mapped_bytes();
  void* a = block(64 * kMiB);  // the largest yet: the high-water mark is about 64 MiB
  ::operator delete(a);
  EXPECT_GE(mapped_bytes(), before + 64 * kMiB);  // kept: 0 in use + 64 cached <= 64
  // 24 MiB is too small to take the 64 MiB block; with 24 MiB in use, at most 40 MiB may be held
  // for reuse: the 64 MiB block is unmapped.
  void* b = block(24 * kMiB);
  EXPECT_LT(mapped_bytes(), before + 64 * kMiB);
  EXPECT_GE(mapped_bytes(), before + 24 * kMiB);
  ::operator delete(b);
}

TEST(LargeBlockReuse, WithoutReuseAFreedBlockIsUnmapped) {
  gptq::prefer_mapped_large_allocations(true, false);
  ASSERT_FALSE(gptq::freed_large_blocks_reused());
  const std::size_t before = mapped_bytes();
  void* a = block(8 * kMiB);
  EXPECT_GE(mapped_bytes(), before + 8 * kMiB);
  ::operator delete(a);
  EXPECT_EQ(mapped_bytes(), before);
}

TEST(LargeBlockReuse, SmallBlocksAreNotKept) {
  gptq::prefer_mapped_large_allocations(true, true);
  const std::size_t before = mapped_bytes();
  void* a = block(kMiB + kMiB / 2);  // glibc maps it (>= 1 MiB), under the 2 MiB of a large block
  EXPECT_GE(mapped_bytes(), before + kMiB);
  ::operator delete(a);
  EXPECT_EQ(mapped_bytes(), before);
}

// resize_first_touched is resize(): the old values stay and the new ones are zero, also in a
// block that operator delete kept (which still holds what it held) and that the grown vector gets.
TEST(ResizeFirstTouched, KeepsTheOldValuesAndZeroesTheNewOnes) {
  gptq::prefer_mapped_large_allocations(true, true);
  constexpr std::size_t n = 3 * kMiB;  // 12 MiB of floats: the pages are touched on the pool
  { std::vector<float> dirty(n, 7.0f); }
  std::vector<float> v = {1.0f, 2.0f, 3.0f};
  gptq::resize_first_touched(v, n);
  ASSERT_EQ(v.size(), n);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.0f);
  EXPECT_EQ(v[2], 3.0f);
  std::size_t nonzero = 0;
  for (std::size_t i = 3; i < n; ++i) nonzero += v[i] != 0.0f;
  EXPECT_EQ(nonzero, 0u);
  std::vector<unsigned char> small(10, 5);  // under 4 MiB of growth: a plain resize
  gptq::resize_first_touched(small, 20);
  EXPECT_EQ(small, std::vector<unsigned char>(
                       {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

}  // namespace
