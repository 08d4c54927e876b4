// GPTQ checkpoint packing (spec 3.2 - 3.6).
//
// Bit layout: along the packed dimension the codes form one little-endian bitstream, code i at
// bits [i*b, i*b + b) and word w = bits [32w, 32w + 32). For b in {2, 4, 8} no code straddles a
// word; for b = 3 codes 10 and 21 of every 32 straddle (AutoGPTQ's 10|1|10|1|10 layout is exactly
// this stream). qweight packs along K (one stream per output column n, words strided by N in
// memory); qzeros packs along N (one stream per group row).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "quant/pack.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace gptq {
namespace {

void check_bits(int bits, const char* what) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    fail_code(ExitCode::kInternal, "{}: bits {} unsupported (2, 3, 4 or 8)", what, bits);
  }
}

// ORs the codes of stream positions [i0, i0 + count) into the words, for `cols` independent
// streams laid out column-wise: src row i holds position i0 + i of every stream (stride lds),
// word row w of the streams is out + w * ldo. `out` must be zeroed beforehand.
void pack_rows(const uint8_t* src, int64_t lds, int64_t i0, int64_t count, int64_t cols, int bits,
               uint32_t* out, int64_t ldo) {
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = (i0 + i) * bits;
    const int shift = static_cast<int>(bit % 32);
    const uint8_t* s = src + i * lds;
    uint32_t* lo = out + (bit / 32) * ldo;
    for (int64_t c = 0; c < cols; ++c) lo[c] |= (s[c] & mask) << shift;
    if (shift + bits > 32) {  // 3-bit straddle: the high bits start the next word
      uint32_t* hi = lo + ldo;
      for (int64_t c = 0; c < cols; ++c) hi[c] |= (s[c] & mask) >> (32 - shift);
    }
  }
}

// Inverse of pack_rows.
void unpack_rows(const uint32_t* in, int64_t ldi, int64_t i0, int64_t count, int64_t cols, int bits,
                 uint8_t* dst, int64_t ldd) {
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bit = (i0 + i) * bits;
    const int shift = static_cast<int>(bit % 32);
    const uint32_t* lo = in + (bit / 32) * ldi;
    uint8_t* d = dst + i * ldd;
    if (shift + bits > 32) {
      const uint32_t* hi = lo + ldi;
      for (int64_t c = 0; c < cols; ++c) {
        d[c] = static_cast<uint8_t>(((lo[c] >> shift) | (hi[c] << (32 - shift))) & mask);
      }
    } else {
      for (int64_t c = 0; c < cols; ++c) d[c] = static_cast<uint8_t>((lo[c] >> shift) & mask);
    }
  }
}

// The 32 codes c[0..32) of one stream block -> `B` words, word i stored at out[i * ld].
// Little-endian byte order makes 8 consecutive codes one uint64 with code j in byte j, so for
// b = 4 three shift-or-mask steps (SWAR) squeeze the bytes into nibbles, and for b = 8 the bytes
// already are the word. b = 2 and 3 go through a 64-bit bit accumulator (fully unrolled).
template <int B>
inline void pack32(const uint8_t* c, uint32_t* out, int64_t ld) {
  static_assert(std::endian::native == std::endian::little);
  if constexpr (B == 8) {
    for (int i = 0; i < 8; ++i) {
      uint32_t v;
      std::memcpy(&v, c + 4 * i, 4);
      out[i * ld] = v;
    }
  } else if constexpr (B == 4) {
    for (int i = 0; i < 4; ++i) {
      uint64_t x;
      std::memcpy(&x, c + 8 * i, 8);
      x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;   // 16-bit lanes: c0 | c1 << 4
      x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;   // 32-bit lanes: c0..c3
      x = (x | (x >> 16)) & 0x00000000FFFFFFFFull;  // c0..c7
      out[i * ld] = static_cast<uint32_t>(x);
    }
  } else {
    uint64_t acc = 0;
    int nb = 0, w = 0;
    for (int j = 0; j < 32; ++j) {
      acc |= static_cast<uint64_t>(c[j]) << nb;
      nb += B;
      if (nb >= 32) {
        out[w++ * ld] = static_cast<uint32_t>(acc);
        acc >>= 32;
        nb -= 32;
      }
    }
  }
}

// qweight from codes [N, K]: per output column, its K codes (one contiguous row of `codes`) are
// packed block by block into the column's words (stride N). Columns go in chunks of 16 so that a
// chunk writes whole cache lines of every word row. Returns the OR of all codes (range check).
template <int B>
uint8_t pack_qweight(const uint8_t* codes, int64_t n, int64_t k, uint32_t* qw) {
  const int64_t full = k / 32, rows = (k * B + 31) / 32;
  std::atomic<uint8_t> seen{0};
  parallel_for((n + 15) / 16, [&](int64_t chunk) {
    uint8_t high = 0;
    for (int64_t col = chunk * 16; col < std::min(n, chunk * 16 + 16); ++col) {
      const uint8_t* src = codes + col * k;
      for (int64_t i = 0; i < k; ++i) high |= src[i];
      for (int64_t t = 0; t < full; ++t) pack32<B>(src + 32 * t, qw + t * B * n + col, n);
      if (full * 32 < k) {  // short last block: pad with zero codes, keep the existing words
        uint8_t tail[32] = {};
        std::memcpy(tail, src + full * 32, static_cast<size_t>(k - full * 32));
        uint32_t words[B];
        pack32<B>(tail, words, 1);
        for (int64_t r = full * B; r < rows; ++r) qw[r * n + col] = words[r - full * B];
      }
    }
    seen.fetch_or(high);
  });
  return seen.load();
}

int64_t expected_groups(int64_t k, int group_size) {
  return group_size > 0 ? (k + group_size - 1) / group_size : 1;
}

// Stored qzeros field of a zero point: v1 keeps zero - 1 as the b-bit field (an asymmetric zero of
// 0 wraps to maxq, read back here as 0; other readers disagree, see model/loader_compat.h), v2 keeps zero.
uint8_t zero_field(int zero, int maxq, CheckpointFormat format) {
  const int v = format == CheckpointFormat::kGptq ? zero - 1 : zero;
  return static_cast<uint8_t>(v & maxq);
}

int zero_from_field(uint32_t field, int maxq, CheckpointFormat format) {
  return static_cast<int>(format == CheckpointFormat::kGptq ? (field + 1) & maxq : field);
}

}  // namespace

void pack_bits_columns(const uint8_t* codes_kn, int64_t k, int64_t n, int bits, int32_t* out) {
  check_bits(bits, "pack_bits_columns");
  const int64_t rows = (k * bits + 31) / 32;
  std::fill(out, out + rows * n, 0);
  pack_rows(codes_kn, n, 0, k, n, bits, reinterpret_cast<uint32_t*>(out), n);
}

void unpack_bits_columns(const int32_t* packed, int64_t k, int64_t n, int bits, uint8_t* codes_kn) {
  check_bits(bits, "unpack_bits_columns");
  unpack_rows(reinterpret_cast<const uint32_t*>(packed), n, 0, k, n, bits, codes_kn, n);
}

PackedLinear pack_linear(const uint8_t* codes, const float* scales, const float* zeros,
                         const int32_t* g_idx, int64_t n, int64_t k, int64_t groups, int bits,
                         int group_size, CheckpointFormat format) {
  check_bits(bits, "pack_linear");
  if (n <= 0 || k <= 0) fail_code(ExitCode::kInternal, "pack_linear: bad shape [{}, {}]", n, k);
  if (groups != expected_groups(k, group_size)) {
    fail_code(ExitCode::kInternal,
              "pack_linear: {} groups given, {} expected for K={} group_size={}", groups,
              expected_groups(k, group_size), k, group_size);
  }
  const int maxq = (1 << bits) - 1;
  PackedLinear p;
  p.bits = bits;
  p.group_size = group_size;
  p.in_features = k;
  p.out_features = n;
  p.groups = groups;
  p.format = format;

  // qweight.
  p.qweight.resize(static_cast<size_t>(p.qweight_rows() * n));
  uint32_t* qw = reinterpret_cast<uint32_t*>(p.qweight.data());
  uint8_t seen = 0;
  switch (bits) {
    case 2:
      seen = pack_qweight<2>(codes, n, k, qw);
      break;
    case 3:
      seen = pack_qweight<3>(codes, n, k, qw);
      break;
    case 4:
      seen = pack_qweight<4>(codes, n, k, qw);
      break;
    default:
      seen = pack_qweight<8>(codes, n, k, qw);
      break;
  }
  if (seen > maxq) {
    fail_code(ExitCode::kInternal, "pack_linear: a code exceeds maxq = {} for {} bits", maxq, bits);
  }

  // qzeros: per group a stream along N.
  p.qzeros.assign(static_cast<size_t>(groups * p.qzeros_cols()), 0);
  std::vector<uint8_t> fields(static_cast<size_t>(n));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t j = 0; j < n; ++j) {
      const float z = zeros[g * n + j];
      if (!(z >= 0.0f && z <= static_cast<float>(maxq)) || z != std::nearbyint(z)) {
        fail_code(ExitCode::kInternal,
                  "pack_linear: zero point {} (group {}, column {}) is not "
                  "an integer in [0, {}]",
                  z, g, j, maxq);
      }
      fields[j] = zero_field(static_cast<int>(z), maxq, format);
    }
    pack_rows(fields.data(), 1, 0, n, 1, bits,
              reinterpret_cast<uint32_t*>(p.qzeros.data() + g * p.qzeros_cols()), 1);
  }

  // scales: fp16 (what exllama/GPTQModel store whatever the model dtype).
  p.scales.resize(static_cast<size_t>(groups * n));
  f32_to_f16(scales, p.scales.data(), p.scales.size());
  for (size_t i = 0; i < p.scales.size(); ++i) {
    if ((p.scales[i] & 0x7c00u) == 0x7c00u) {
      fail_code(ExitCode::kNumerical,
                "pack_linear: scale {} (group {}, column {}) does not fit in fp16; the layer's "
                "weights are out of range for a GPTQ checkpoint",
                scales[i], static_cast<int64_t>(i) / n, static_cast<int64_t>(i) % n);
    }
  }

  p.g_idx.assign(g_idx, g_idx + k);
  for (int64_t c = 0; c < k; ++c) {
    if (g_idx[c] < 0 || g_idx[c] >= groups) {
      fail_code(ExitCode::kInternal, "pack_linear: g_idx[{}] = {} outside [0, {})", c, g_idx[c],
                groups);
    }
  }
  return p;
}

namespace {

// Tensor sizes of a PackedLinear that may come from a file.
void check_packed(const PackedLinear& p) {
  if (p.bits != 2 && p.bits != 3 && p.bits != 4 && p.bits != 8) {
    fail("packed layer: bits {} unsupported (2, 3, 4 or 8)", p.bits);
  }
  const int64_t n = p.out_features, k = p.in_features;
  if (n <= 0 || k <= 0 || p.groups <= 0) {
    fail("packed layer: bad shape in_features={} out_features={} groups={}", k, n, p.groups);
  }
  auto expect = [](const char* what, size_t got, int64_t want) {
    if (got != static_cast<size_t>(want)) {
      fail("packed layer: {} has {} elements, {} expected from the layer shape", what, got, want);
    }
  };
  expect("qweight", p.qweight.size(), p.qweight_rows() * n);
  expect("qzeros", p.qzeros.size(), p.groups * p.qzeros_cols());
  expect("scales", p.scales.size(), p.groups * n);
  expect("g_idx", p.g_idx.size(), k);
}

}  // namespace

void unpack_linear(const PackedLinear& p, std::vector<uint8_t>* codes_nk,
                   std::vector<int32_t>* zeros_gn) {
  check_packed(p);
  const int64_t n = p.out_features, k = p.in_features;
  const int maxq = (1 << p.bits) - 1;
  if (codes_nk) {
    codes_nk->resize(static_cast<size_t>(n * k));
    const uint32_t* qw = reinterpret_cast<const uint32_t*>(p.qweight.data());
    constexpr int64_t kKB = 64, kNC = 256;
    parallel_for((k + kKB - 1) / kKB, [&](int64_t b) {
      const int64_t k0 = b * kKB, kc = std::min(kKB, k - k0);
      uint8_t tile[kKB * kNC];
      for (int64_t n0 = 0; n0 < n; n0 += kNC) {
        const int64_t nc = std::min(kNC, n - n0);
        unpack_rows(qw + n0, n, k0, kc, nc, p.bits, tile, kNC);
        for (int64_t j = 0; j < nc; ++j) {
          uint8_t* dst = codes_nk->data() + (n0 + j) * k + k0;
          for (int64_t i = 0; i < kc; ++i) dst[i] = tile[i * kNC + j];
        }
      }
    });
  }
  if (zeros_gn) {
    zeros_gn->resize(static_cast<size_t>(p.groups * n));
    std::vector<uint8_t> fields(static_cast<size_t>(n));
    for (int64_t g = 0; g < p.groups; ++g) {
      unpack_rows(reinterpret_cast<const uint32_t*>(p.qzeros.data() + g * p.qzeros_cols()), 1, 0, n,
                  1, p.bits, fields.data(), 1);
      for (int64_t j = 0; j < n; ++j) {
        (*zeros_gn)[g * n + j] = zero_from_field(fields[j], maxq, p.format);
      }
    }
  }
}

std::vector<float> dequantize_linear(const PackedLinear& p) {
  const int64_t n = p.out_features, k = p.in_features;
  std::vector<uint8_t> codes;
  std::vector<int32_t> zeros;
  unpack_linear(p, &codes, &zeros);
  std::vector<float> scales(p.scales.size());
  f16_to_f32(p.scales.data(), scales.data(), scales.size());
  for (int64_t c = 0; c < k; ++c) {
    if (p.g_idx[c] < 0 || p.g_idx[c] >= p.groups) {
      fail_code(ExitCode::kBadInput, "g_idx[{}] = {} outside [0, {})", c, p.g_idx[c], p.groups);
    }
  }
  std::vector<float> w(static_cast<size_t>(n * k));
  parallel_for((n + 63) / 64, [&](int64_t b) {
    for (int64_t r = b * 64; r < std::min(n, b * 64 + 64); ++r) {
      const uint8_t* q = codes.data() + r * k;
      float* dst = w.data() + r * k;
      for (int64_t c = 0; c < k; ++c) {
        const int64_t g = p.g_idx[c];
        dst[c] =
            scales[g * n + r] * (static_cast<float>(q[c]) - static_cast<float>(zeros[g * n + r]));
      }
    }
  });
  return w;
}

}  // namespace gptq
