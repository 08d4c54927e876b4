#include "nn/kv_cache.h"

#include <algorithm>

#include "util/error.h"

namespace gptq::nn {

KvCache::KvCache(int64_t blocks, int64_t width, int64_t capacity) : blocks_(blocks), width_(width) {
  if (blocks <= 0 || width <= 0 || capacity < 0)
    fail_code(ExitCode::kInternal, "KV cache: {} blocks of width {} and capacity {} is no shape",
              blocks, width, capacity);
  reserve(capacity);
}

void KvCache::reserve(int64_t capacity) {
  if (capacity <= capacity_) return;
  std::vector<float> grown(static_cast<size_t>(blocks_ * 2 * capacity * width_));
  const int64_t rows = length_ * width_;
  for (int64_t b = 0; b < blocks_; ++b)
    for (int64_t kv = 0; kv < 2; ++kv) {
      const float* src = base(b) + kv * capacity_ * width_;
      std::copy(src, src + rows, grown.data() + (b * 2 + kv) * capacity * width_);
    }
  data_.swap(grown);
  capacity_ = capacity;
}

KvBlockView KvCache::block(int64_t b, int64_t tokens) {
  if (b < 0 || b >= blocks_)
    fail_code(ExitCode::kInternal, "KV cache: block {} out of range ({} blocks)", b, blocks_);
  if (tokens < 0 || length_ + tokens > capacity_)
    fail_code(ExitCode::kInternal,
              "KV cache full: {} cached + {} new positions exceed its capacity of {} (reserve "
              "more room first)",
              length_, tokens, capacity_);
  float* k = base(b);
  return {k, k + capacity_ * width_, width_, capacity_, length_};
}

void KvCache::advance(int64_t tokens) {
  if (tokens < 0 || length_ + tokens > capacity_)
    fail_code(ExitCode::kInternal, "KV cache: advancing {} positions past {} exceeds capacity {}",
              tokens, length_, capacity_);
  length_ += tokens;
}

const float* KvCache::key(int64_t b, int64_t pos) const {
  if (b < 0 || b >= blocks_ || pos < 0 || pos >= length_)
    fail_code(ExitCode::kInternal, "KV cache: no key for block {} position {} ({} cached)", b, pos,
              length_);
  return base(b) + pos * width_;
}

const float* KvCache::value(int64_t b, int64_t pos) const {
  return key(b, pos) + capacity_ * width_;
}

}  // namespace gptq::nn
