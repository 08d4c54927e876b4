#include "kernels/quant_linear.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "util/blas.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"

namespace gptq::kernels {
namespace {

constexpr int64_t kParamBytes = 2 * kTileRows * sizeof(float);
constexpr int64_t kWordBytes = kTileRows * sizeof(uint32_t);
// Work is cut into tasks of whole tiles that the pool's threads claim dynamically: about
// kTasksPerThread per thread (load balance on a busy machine), none smaller than kMinTaskBytes
// of weights (a hand-off costs ~1 us).
constexpr int64_t kTasksPerThread = 4;
constexpr int64_t kMinTaskBytes = 16 << 10;
// Output rows per dequantized panel of the kDequantSgemm path.
constexpr int64_t kPanelRows = 128;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Scratch buffers of the calling thread (forward is const and may run concurrently).
std::vector<float>& scratch(int i) {
  thread_local std::vector<float> bufs[3];
  return bufs[i];
}

// A 64-byte aligned byte scratch of the calling thread, at least `bytes` long (slot 0: the GEMV's
// prepared activations, 1: the int8 GEMM's).
uint8_t* aligned_scratch(int slot, size_t bytes) {
  thread_local std::vector<uint8_t> bufs[2];
  std::vector<uint8_t>& b = bufs[slot];
  if (b.size() < bytes + 64) b.resize(bytes + 64);
  return b.data() + (64 - reinterpret_cast<uintptr_t>(b.data()) % 64) % 64;
}

}  // namespace

void QuantLinear::AlignedFree::operator()(uint8_t* p) const {
  std::free(p);
}

QuantLinear::QuantLinear(const QuantLinearDesc& desc, const QuantLinearOptions& options)
    : options_(options) {
  build(desc);
}

QuantLinearDesc describe_packed(const PackedLinear& packed, const float* scales,
                                const float* bias) {
  QuantLinearDesc d;
  d.bits = packed.bits;
  d.group_size = packed.group_size;
  d.in_features = packed.in_features;
  d.out_features = packed.out_features;
  d.groups = packed.groups;
  d.format = packed.format;
  d.qweight = packed.qweight.data();
  d.qzeros = packed.qzeros.data();
  d.scales = scales;
  d.g_idx = packed.g_idx.empty() ? nullptr : packed.g_idx.data();
  d.bias = bias;
  return d;
}

QuantLinear::QuantLinear(const PackedLinear& packed, const std::vector<float>& bias,
                         const QuantLinearOptions& options)
    : options_(options) {
  if (!bias.empty() && static_cast<int64_t>(bias.size()) != packed.out_features) {
    fail("QuantLinear: bias has {} values, expected out_features = {}", bias.size(),
         packed.out_features);
  }
  if (static_cast<int64_t>(packed.scales.size()) != packed.groups * packed.out_features) {
    fail("QuantLinear: scales has {} values, expected [{}, {}]", packed.scales.size(),
         packed.groups, packed.out_features);
  }
  std::vector<float> scales(packed.scales.size());
  f16_to_f32(packed.scales.data(), scales.data(), scales.size());
  const QuantLinearDesc d =
      describe_packed(packed, scales.data(), bias.empty() ? nullptr : bias.data());
  if (static_cast<int64_t>(packed.qweight.size()) != packed.qweight_rows() * packed.out_features ||
      static_cast<int64_t>(packed.qzeros.size()) != packed.groups * packed.qzeros_cols() ||
      (!packed.g_idx.empty() && static_cast<int64_t>(packed.g_idx.size()) != packed.in_features)) {
    fail("QuantLinear: packed tensors do not match K={} N={} G={} bits={}", packed.in_features,
         packed.out_features, packed.groups, packed.bits);
  }
  build(d);
}

QuantLinear::QuantLinear(const QuantLinear& o)
    : LinearOp(),
      bits_(o.bits_),
      k_(o.k_),
      n_(o.n_),
      groups_(o.groups_),
      tiles_(o.tiles_),
      options_(o.options_),
      identity_perm_(o.identity_perm_),
      perm_(o.perm_),
      group_blocks_(o.group_blocks_),
      bias_(o.bias_),
      data_bytes_(o.data_bytes_),
      stream_(o.stream_) {
  data_.reset(static_cast<uint8_t*>(alloc_maybe_huge(static_cast<size_t>(data_bytes_))));
  if (!data_) throw std::bad_alloc();
  std::memcpy(data_.get(), o.data_.get(), static_cast<size_t>(data_bytes_));
  stream_.data = data_.get();
  stream_.group_blocks = group_blocks_.data();
}

QuantLinear::~QuantLinear() = default;

void QuantLinear::build(const QuantLinearDesc& d) {
  const int b = d.bits;
  if (b != 2 && b != 3 && b != 4 && b != 8)
    fail("QuantLinear: bits {} unsupported (2, 3, 4, 8)", b);
  if (d.in_features <= 0 || d.out_features <= 0) {
    fail("QuantLinear: bad shape in_features={} out_features={}", d.in_features, d.out_features);
  }
  if (d.in_features > (int64_t{1} << 30) || d.out_features > (int64_t{1} << 30)) {
    fail("QuantLinear: shape [{}, {}] too large", d.out_features, d.in_features);
  }
  if (d.group_size == 0 || d.group_size < -1)
    fail("QuantLinear: group_size {} invalid", d.group_size);
  if (!d.qweight || !d.qzeros || !d.scales)
    fail("QuantLinear: qweight, qzeros and scales required");
  k_ = d.in_features;
  n_ = d.out_features;
  bits_ = b;
  groups_ = d.groups;
  if (groups_ <= 0) fail("QuantLinear: {} groups", groups_);
  const int64_t gs = d.group_size > 0 ? d.group_size : k_;
  if (!d.g_idx && groups_ != ceil_div(k_, gs)) {
    fail("QuantLinear: {} groups given without g_idx; K={} group_size={} needs {}", groups_, k_,
         d.group_size, ceil_div(k_, gs));
  }
  const int maxq = (1 << b) - 1;

  // Group of every input channel, channels sorted by group (stable), groups padded to blocks.
  std::vector<int32_t> gk(static_cast<size_t>(k_));
  for (int64_t k = 0; k < k_; ++k) {
    const int64_t g = d.g_idx ? d.g_idx[k] : k / gs;
    if (g < 0 || g >= groups_) {
      fail("QuantLinear: g_idx[{}] = {} outside [0, {})", k, g, groups_);
    }
    gk[k] = static_cast<int32_t>(g);
  }
  std::vector<int64_t> count(static_cast<size_t>(groups_), 0);
  for (int32_t g : gk) ++count[g];
  group_blocks_.assign(static_cast<size_t>(groups_ + 1), 0);
  for (int64_t g = 0; g < groups_; ++g) {
    group_blocks_[g + 1] = group_blocks_[g] + static_cast<int32_t>(ceil_div(count[g], kBlock));
  }
  const int64_t blocks = group_blocks_[groups_];
  const int64_t kp = blocks * kBlock;
  perm_.assign(static_cast<size_t>(kp), -1);
  {
    std::vector<int64_t> next(static_cast<size_t>(groups_));
    for (int64_t g = 0; g < groups_; ++g) next[g] = group_blocks_[g] * kBlock;
    for (int64_t k = 0; k < k_; ++k) perm_[next[gk[k]]++] = static_cast<int32_t>(k);
  }
  identity_perm_ = kp == k_;
  for (int64_t i = 0; identity_perm_ && i < kp; ++i) identity_perm_ = perm_[i] == i;

  // With channels in checkpoint order and 2/4/8 bits, a block's words are rows of qweight: GPTQ
  // packs channel k of row n into word (k / (32 / b), n) at bit b * (k % (32 / b)), which is the
  // tile layout (quant_kernels.h) with block `blk` in qweight rows [blk * b, blk * b + b). Those
  // rows are copied; otherwise the codes are unpacked and repacked channel by channel.
  const bool direct = identity_perm_ && b != 3;
  // Codes [K, N] (repacked path) and zero points [G, N] (v1: stored field + 1, modulo 2^b as
  // pack.cpp reads it).
  std::vector<uint8_t> codes(direct ? 0 : static_cast<size_t>(k_ * n_));
  if (!direct) unpack_bits_columns(d.qweight, k_, n_, b, codes.data());
  const int64_t zcols = ceil_div(n_ * b, 32);
  std::vector<uint8_t> zeros(static_cast<size_t>(groups_ * n_));
  for (int64_t g = 0; g < groups_; ++g) {
    unpack_bits_columns(d.qzeros + g * zcols, n_, 1, b, zeros.data() + g * n_);
    if (d.format == CheckpointFormat::kGptq) {
      for (int64_t j = 0; j < n_; ++j) {
        uint8_t& z = zeros[g * n_ + j];
        z = static_cast<uint8_t>((z + 1) & maxq);
      }
    }
  }
  for (int64_t i = 0; i < groups_ * n_; ++i) {
    if (!std::isfinite(d.scales[i])) {
      fail("QuantLinear: scale[{}, {}] = {} is not finite", i / n_, i % n_, d.scales[i]);
    }
  }
  if (d.bias) bias_.assign(d.bias, d.bias + n_);

  // Tile streams (layout in quant_kernels.h).
  tiles_ = ceil_div(n_, kTileRows);
  const int64_t tile_bytes = groups_ * kParamBytes + blocks * b * kWordBytes;
  data_bytes_ = std::max<int64_t>(64, tiles_ * tile_bytes);
  data_.reset(static_cast<uint8_t*>(alloc_maybe_huge(static_cast<size_t>(data_bytes_))));
  if (!data_) throw std::bad_alloc();
  const float two_b = static_cast<float>(1 << b);
  auto fill_tile = [&](int64_t t) {
    uint8_t* p = data_.get() + t * tile_bytes;
    const int64_t n0 = t * kTileRows;
    const int64_t rows = std::min(kTileRows, n_ - n0);
    for (int64_t g = 0; g < groups_; ++g) {
      float params[2 * kTileRows];
      for (int64_t l = 0; l < kTileRows; ++l) {
        const bool valid = l < rows;
        params[l] = valid ? d.scales[g * n_ + n0 + l] * two_b : 0.0f;
        params[kTileRows + l] = valid ? 1.0f + zeros[g * n_ + n0 + l] / two_b : 1.0f;
      }
      std::memcpy(p, params, sizeof(params));
      p += kParamBytes;
      for (int64_t blk = group_blocks_[g]; blk < group_blocks_[g + 1]; ++blk) {
        if (direct) {
          for (int w = 0; w < b; ++w) {
            const int32_t* src = d.qweight + (blk * b + w) * n_ + n0;
            std::memcpy(p, src, static_cast<size_t>(rows) * sizeof(uint32_t));
            std::memset(p + rows * sizeof(uint32_t), 0,
                        static_cast<size_t>(kTileRows - rows) * sizeof(uint32_t));
            p += kWordBytes;
          }
          continue;
        }
        uint32_t words[8][kTileRows] = {};
        for (int i = 0; i < kBlock; ++i) {
          const int32_t k = perm_[blk * kBlock + i];
          if (k < 0) continue;  // padding: code 0 (its activation is 0)
          const uint8_t* src = codes.data() + static_cast<int64_t>(k) * n_ + n0;
          for (int64_t l = 0; l < rows; ++l) {
            const uint32_t q = src[l];
            if (b == 3) {  // bit planes (quant_kernels.h)
              const int w = i / 16, j = i % 16;
              words[w][l] |= (q & 3u) << (2 * j);
              words[2][l] |= ((q >> 2) & 1u) << (8 * (j / 4) + 4 * w + j % 4);
            } else {
              const int per = 32 / b;
              words[i / per][l] |= q << (b * (i % per));
            }
          }
        }
        for (int w = 0; w < b; ++w) {
          std::memcpy(p, words[w], kWordBytes);
          p += kWordBytes;
        }
      }
    }
  };
  const int threads = resolve_threads();
  parallel_for(
      tiles_, [&](int64_t t) { fill_tile(t); }, threads);

  stream_.data = data_.get();
  stream_.tile_bytes = tile_bytes;
  stream_.group_blocks = group_blocks_.data();
  stream_.groups = groups_;
  stream_.kp = kp;
  stream_.n = n_;
  stream_.bits = b;
}

int QuantLinear::resolve_threads() const {
  return options_.threads > 0 ? options_.threads : compute_threads();
}

int64_t QuantLinear::weight_bytes() const {
  return tiles_ * stream_.tile_bytes;
}

int64_t QuantLinear::checkpoint_bytes() const {
  return ceil_div(k_ * bits_, 32) * n_ * 4 + groups_ * ceil_div(n_ * bits_, 32) * 4 +
         groups_ * n_ * 2 + k_ * 4;
}

void QuantLinear::forward(const float* x, int64_t rows, float* y) const {
  forward(x, rows, y, options_.gemm_path);
}

void QuantLinear::forward(const float* x, int64_t rows, float* y, GemmPath path) const {
  if (rows <= 0) return;
  const int threads = resolve_threads();
  if (rows == 1) {
    gemv(x, y, threads);
  } else if (path == GemmPath::kDequantSgemm) {
    gemm_dequant_sgemm(x, rows, y, threads);
  } else if (path != GemmPath::kInt8 || !gemm_int8(x, rows, y, threads)) {
    gemm_fused(x, rows, y, threads);  // also where the int8 GEMM cannot run
  }
}

namespace {

// Runs fn(t0, t1) over [0, tiles) cut into tasks (see kTasksPerThread) on `threads` threads.
void for_tiles(int threads, int64_t tiles, int64_t bytes_per_tile,
               const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t by_size = std::max<int64_t>(1, tiles * bytes_per_tile / kMinTaskBytes);
  const int64_t tasks = std::min({tiles, by_size, threads * kTasksPerThread});
  if (tasks <= 1 || threads <= 1) {
    fn(0, tiles);
    return;
  }
  parallel_for(
      tasks, [&](int64_t i) { fn(split_begin(tiles, tasks, i), split_begin(tiles, tasks, i + 1)); },
      threads);
}

}  // namespace

void QuantLinear::gemv(const float* x, float* y, int threads) const {
  uint8_t* scratch = aligned_scratch(0, gemv_scratch_bytes(stream_));
  gemv_prepare(stream_, identity_perm_ ? nullptr : perm_.data(), x, scratch);
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  const TileStream& w = stream_;
  for_tiles(threads, tiles_, w.tile_bytes,
            [&](int64_t t0, int64_t t1) { gemv_tiles(w, scratch, bias, t0, t1, y); });
}

void QuantLinear::gemm_fused(const float* x, int64_t rows, float* y, int threads) const {
  const int64_t kp = stream_.kp;
  const int64_t chunks = ceil_div(rows, kGemmChunk);
  // x transposed in chunks of 16 rows: xt[c][kpos][r] = x[16c + r, perm[kpos]] (0 if padding).
  std::vector<float>& xt = scratch(2);
  xt.assign(static_cast<size_t>(chunks * kp * kGemmChunk), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * k_;
    float* dst = xt.data() + (r / kGemmChunk) * kp * kGemmChunk + r % kGemmChunk;
    if (identity_perm_) {
      for (int64_t i = 0; i < kp; ++i) dst[i * kGemmChunk] = xr[i];
    } else {
      for (int64_t i = 0; i < kp; ++i) {
        if (perm_[i] >= 0) dst[i * kGemmChunk] = xr[perm_[i]];
      }
    }
  }
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  const TileStream& w = stream_;
  const float* xtp = xt.data();
  const int64_t n = n_;
  for_tiles(threads, tiles_, w.tile_bytes * rows,
            [&](int64_t t0, int64_t t1) { gemm_tiles(w, xtp, rows, bias, t0, t1, y, n); });
}

bool QuantLinear::gemm_int8(const float* x, int64_t rows, float* y, int threads) const {
  if (!int8_kernels(stream_.bits)) return false;  // no scratch, no row tasks for nothing
  uint8_t* sc = aligned_scratch(1, gemm_int8_scratch_bytes(stream_, rows));
  // Rows quantized in parallel (each row by one thread: the same bytes for any thread count).
  const int64_t row_tasks = std::min<int64_t>(rows, threads);
  std::vector<char> ok(static_cast<size_t>(row_tasks), 0);
  auto prepare = [&](int64_t i) {
    ok[i] =
        gemm_int8_prepare(stream_, identity_perm_ ? nullptr : perm_.data(), x, rows, k_,
                          split_begin(rows, row_tasks, i), split_begin(rows, row_tasks, i + 1), sc);
  };
  if (row_tasks <= 1) {
    prepare(0);
  } else {
    parallel_for(row_tasks, prepare, threads);
  }
  if (std::find(ok.begin(), ok.end(), 0) != ok.end()) return false;
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  const TileStream& w = stream_;
  const int64_t n = n_;
  for_tiles(threads, tiles_, w.tile_bytes * rows,
            [&](int64_t t0, int64_t t1) { gemm_int8_tiles(w, sc, rows, bias, t0, t1, y, n); });
  return true;
}

void QuantLinear::gemm_dequant_sgemm(const float* x, int64_t rows, float* y, int threads) const {
  const int64_t kp = stream_.kp;
  const float* xp = x;
  if (!identity_perm_) {
    std::vector<float>& buf = scratch(0);
    buf.assign(static_cast<size_t>(rows * kp), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < kp; ++i) {
        if (perm_[i] >= 0) buf[r * kp + i] = x[r * k_ + perm_[i]];
      }
    }
    xp = buf.data();
  }
  constexpr int64_t kPanelTiles = kPanelRows / kTileRows;
  const ComputeThreadsScope scope(threads);  // the sgemm's tiles too
  std::vector<float>& wt = scratch(1);
  wt.resize(static_cast<size_t>(kp * kPanelRows));
  const TileStream& w = stream_;
  for (int64_t t0 = 0; t0 < tiles_; t0 += kPanelTiles) {
    const int64_t nt = std::min(kPanelTiles, tiles_ - t0);
    const int64_t n0 = t0 * kTileRows, cols = std::min(nt * kTileRows, n_ - n0);
    float* wtp = wt.data();
    for_tiles(threads, nt, w.tile_bytes, [&](int64_t a, int64_t e) {
      dequant_tiles(w, t0 + a, t0 + e, wtp + a * kTileRows, kPanelRows);
    });
    blas::sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(cols), static_cast<int>(kp), 1.0f, xp, static_cast<int>(kp), wtp,
                static_cast<int>(kPanelRows), 0.0f, y + n0, static_cast<int>(n_));
  }
  if (!bias_.empty()) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < n_; ++j) y[r * n_ + j] += bias_[j];
    }
  }
}

std::vector<float> QuantLinear::dequantize() const {
  const int64_t kp = stream_.kp, np = tiles_ * kTileRows;
  std::vector<float> wt(static_cast<size_t>(kp * np));
  dequant_tiles(stream_, 0, tiles_, wt.data(), np);
  std::vector<float> w(static_cast<size_t>(n_ * k_));
  for (int64_t i = 0; i < kp; ++i) {
    const int32_t k = perm_[i];
    if (k < 0) continue;
    for (int64_t n = 0; n < n_; ++n) w[n * k_ + k] = wt[i * np + n];
  }
  return w;
}

}  // namespace gptq::kernels
