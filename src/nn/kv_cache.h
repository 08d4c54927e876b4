// KV cache of one sequence for incremental decoding: per block, the keys (after rotary) and the
// values of every position seen so far, each [capacity, kv_heads * head_dim] fp32, row p =
// position p. A step appends the rows of its new positions in every block (BlockForward::
// forward_cached), then advance() makes them part of the cached prefix.
#pragma once

#include <cstdint>
#include <vector>

namespace gptq::nn {

// One block's slice of the cache, as BlockForward::forward_cached uses it.
struct KvBlockView {
  float* keys = nullptr;    // [capacity, width], rows 0..past-1 valid
  float* values = nullptr;  // [capacity, width]
  int64_t width = 0;        // kv_heads * head_dim
  int64_t capacity = 0;     // rows allocated
  int64_t past = 0;         // positions already cached (= position of the first new token)
};

class KvCache {
 public:
  KvCache() = default;
  // Room for `capacity` positions in each of `blocks` blocks; empty (length 0).
  KvCache(int64_t blocks, int64_t width, int64_t capacity);

  int64_t blocks() const { return blocks_; }
  int64_t width() const { return width_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // positions cached
  int64_t bytes() const { return static_cast<int64_t>(data_.size() * sizeof(float)); }

  // Grows the room to at least `capacity` positions, keeping the cached rows.
  void reserve(int64_t capacity);
  // Block `b` for a step that appends `tokens` positions at length(); throws if they do not fit.
  KvBlockView block(int64_t b, int64_t tokens);
  // Makes `tokens` appended positions part of the cache (after every block has run the step).
  void advance(int64_t tokens);
  // Forgets every position (the room is kept).
  void clear() { length_ = 0; }

  // Cached key / value row of position `pos` in block `b` (tests, inspection).
  const float* key(int64_t b, int64_t pos) const;
  const float* value(int64_t b, int64_t pos) const;

 private:
  float* base(int64_t b) { return data_.data() + b * 2 * capacity_ * width_; }
  const float* base(int64_t b) const { return data_.data() + b * 2 * capacity_ * width_; }

  int64_t blocks_ = 0, width_ = 0, capacity_ = 0, length_ = 0;
  std::vector<float> data_;  // [blocks][keys, values][capacity][width]
};

}  // namespace gptq::nn
