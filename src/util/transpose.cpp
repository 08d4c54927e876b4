#include "util/transpose.h"

#if defined(__x86_64__) && defined(__GNUC__)
#if !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wuninitialized flags.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define GPTQ_X86_TRANSPOSE 1
#endif

namespace gptq {
namespace {

void transpose_plain(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t r0, int64_t r1,
                     int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) dst[c * ldd + r] = src[r * lds + c];
}

#ifdef GPTQ_X86_TRANSPOSE
// One 16x16 block. Rows a..p of 16 floats; a 128-bit lane L holds columns 4L..4L+3.
//   1. unpacklo/hi of row pairs: lane L of t[2i] = (a[4L], b[4L], a[4L+1], b[4L+1]), t[2i+1] the
//      same for columns 4L+2, 4L+3.
//   2. shuffle_ps of two such pairs: lane L of x[4G + j] = rows 4G..4G+3 of column 4L + j.
//   3. shuffle_f32x4 gathers lane L of the four row groups G: column 4L + j, rows a..p.
__attribute__((target("avx512f"))) void block16(const float* src, int64_t lds, float* dst,
                                                int64_t ldd) {
  __m512 r[16], t[16], x[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {
    const __m512 lo01 = t[4 * g], hi01 = t[4 * g + 1], lo23 = t[4 * g + 2], hi23 = t[4 * g + 3];
    x[4 * g + 0] = _mm512_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    x[4 * g + 1] = _mm512_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    x[4 * g + 2] = _mm512_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    x[4 * g + 3] = _mm512_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {
    // s01: lanes (G0.L0, G0.L1, G1.L0, G1.L1); s01h: lanes 2, 3; the same for groups 2, 3.
    const __m512 s01 = _mm512_shuffle_f32x4(x[j], x[4 + j], 0x44);
    const __m512 s01h = _mm512_shuffle_f32x4(x[j], x[4 + j], 0xEE);
    const __m512 s23 = _mm512_shuffle_f32x4(x[8 + j], x[12 + j], 0x44);
    const __m512 s23h = _mm512_shuffle_f32x4(x[8 + j], x[12 + j], 0xEE);
    _mm512_storeu_ps(dst + (0 + j) * ldd, _mm512_shuffle_f32x4(s01, s23, 0x88));
    _mm512_storeu_ps(dst + (4 + j) * ldd, _mm512_shuffle_f32x4(s01, s23, 0xDD));
    _mm512_storeu_ps(dst + (8 + j) * ldd, _mm512_shuffle_f32x4(s01h, s23h, 0x88));
    _mm512_storeu_ps(dst + (12 + j) * ldd, _mm512_shuffle_f32x4(s01h, s23h, 0xDD));
  }
}

// One 8x8 block: the same first two steps on 128-bit lanes, then permute2f128 joins the lanes.
__attribute__((target("avx2"))) void block8(const float* src, int64_t lds, float* dst,
                                            int64_t ldd) {
  __m256 r[8], t[8], x[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; ++g) {
    const __m256 lo01 = t[4 * g], hi01 = t[4 * g + 1], lo23 = t[4 * g + 2], hi23 = t[4 * g + 3];
    x[4 * g + 0] = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(1, 0, 1, 0));
    x[4 * g + 1] = _mm256_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 2, 3, 2));
    x[4 * g + 2] = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(1, 0, 1, 0));
    x[4 * g + 3] = _mm256_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(dst + j * ldd, _mm256_permute2f128_ps(x[j], x[4 + j], 0x20));
    _mm256_storeu_ps(dst + (4 + j) * ldd, _mm256_permute2f128_ps(x[j], x[4 + j], 0x31));
  }
}

template <int B, void (*Block)(const float*, int64_t, float*, int64_t)>
void transpose_blocked(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows,
                       int64_t cols) {
  const int64_t rb = rows / B * B, cb = cols / B * B;
  for (int64_t r = 0; r < rb; r += B)
    for (int64_t c = 0; c < cb; c += B) Block(src + r * lds + c, lds, dst + c * ldd + r, ldd);
  transpose_plain(src, lds, dst, ldd, 0, rb, cb, cols);    // right edge
  transpose_plain(src, lds, dst, ldd, rb, rows, 0, cols);  // bottom edge
}

#endif

}  // namespace

bool transpose_kernel_supported(TransposeKernel kernel) {
#ifdef GPTQ_X86_TRANSPOSE
  __builtin_cpu_init();
  if (kernel == TransposeKernel::kAvx512) return __builtin_cpu_supports("avx512f");
  if (kernel == TransposeKernel::kAvx2) return __builtin_cpu_supports("avx2");
#endif
  return kernel == TransposeKernel::kAuto || kernel == TransposeKernel::kPlain;
}

void transpose_f32(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows,
                   int64_t cols, TransposeKernel kernel) {
#ifdef GPTQ_X86_TRANSPOSE
  if (kernel == TransposeKernel::kAuto) {
    static const TransposeKernel best =
        transpose_kernel_supported(TransposeKernel::kAvx512) ? TransposeKernel::kAvx512
        : transpose_kernel_supported(TransposeKernel::kAvx2) ? TransposeKernel::kAvx2
                                                             : TransposeKernel::kPlain;
    kernel = best;
  }
  switch (kernel) {
    case TransposeKernel::kAvx512:
      return transpose_blocked<16, block16>(src, lds, dst, ldd, rows, cols);
    case TransposeKernel::kAvx2:
      return transpose_blocked<8, block8>(src, lds, dst, ldd, rows, cols);
    default:
      break;
  }
#endif
  transpose_plain(src, lds, dst, ldd, 0, rows, 0, cols);
}

}  // namespace gptq
