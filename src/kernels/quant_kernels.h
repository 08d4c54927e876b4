// Low-level QuantLinear kernels (Highway, dispatched at run time to the best target of the CPU).
// QuantLinear (quant_linear.h) owns the data and the threading; these functions compute one
// contiguous range of output tiles on the calling thread.
//
// ---------------------------------------------------------------------------------------------
// Repacked weight layout ("tile stream")
// ---------------------------------------------------------------------------------------------
// Output rows are taken in tiles of kTileRows = 16 (the last tile zero-padded). Input channels
// are taken in the kernel order: the checkpoint's channels sorted by group (stable sort of
// g_idx), each group zero-padded to a multiple of kBlock = 32 channels; group g spans the blocks
// [group_blocks[g], group_blocks[g + 1]) (an empty group spans none). Activations are permuted
// into this order at run time (padding positions read 0).
//
// Each tile is one contiguous byte stream of tile_bytes, 64-byte aligned:
//   for each group g:
//     float S[16]   = 2^b * scale[g, n]            (lane = row n of the tile)
//     float ZF[16]  = 1 + zero[g, n] / 2^b
//     for each block of the group: b words of 16 lanes (uint32, lane = row n):
//       b = 2, 4, 8: word w holds the codes of the block positions [w*P, w*P + P), P = 32 / b,
//                    position w*P + j at bits [j*b, j*b + b)  (the GPTQ qweight bitstream, one
//                    stream per row instead of per column)
//       b = 3:       bit planes: words 0, 1 hold the low 2 bits of positions [16w, 16w + 16),
//                    position 16w + j at bits [2j, 2j + 2) (as b = 2); word 2 holds bit 2 of
//                    position p = 16w + 4i + v (i, v < 4) at bit 8i + 4w + v, so that one shift
//                    puts it beside the low bits of the same byte lane of word w (int8 path)
//   so a group costs 128 bytes of parameters plus 64*b bytes per block and row tile.
//
// ---------------------------------------------------------------------------------------------
// Math
// ---------------------------------------------------------------------------------------------
// A code q in [0, 2^b) is turned into a float without a conversion instruction: OR-ing it into
// the top mantissa bits of 1.0f (bits [23 - b, 23)) gives exactly m = 1 + q / 2^b. Then
//   W[n, k] = scale * (q - z) = S * (m - ZF)            (m - ZF = (q - z) / 2^b exactly)
// GEMV (one activation row), float path (targets without the int8 path, and 8-bit codes except
// on AVX3_DL): per group g and row n,
//   D_g = sum_{k in g} m_k x_k                           (per code: shift, and-or, 1 FMA)
//   y_n = sum_g S_gn * (D_g - ZF_gn * X_g),   X_g = sum_{k in g} x_k
// GEMV, int8 path (AVX3_DL = AVX-512 VNNI, e.g. Zen 4, Ice Lake: vpdpbusd; AVX2, codes of at most
// 4 bits: vpmaddubsw + vpmaddwd, the same int32 sums): x is split per segment (at
// most 4 blocks of one group) as x = s (x0 + x1 / 2^7 + x2 / 2^14), int8 x0 in [-127, 127] and
// x1, x2 in [-64, 64] (|error| <= 2^-15 s = 2^-22 max|x| of the segment, about fp32
// rounding; the float path is used for non-finite x); codes are unpacked to bytes and vpdpbusd
// forms sum q * x_p exactly in int32 (3 instructions per 4 codes x 16 rows, about twice the float
// path's rate; AVX2: 11008 x 4096 from DRAM 9.4-10.3 -> 12.2-18.3 GB/s on 2 Zen 3 cores); per
// group
//   y_n += scale_gn * (sum_k q_k x_k - z_gn * X_g).
// GEMM (R activation rows at once): the weight vector S * (m - ZF) (bit-identical to the
// reference dequantization scale * (q - z)) is formed once per code and used by R FMAs.
// Every output is computed by one thread in a fixed order: results do not depend on the number
// of threads or the tile split.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gptq::kernels {

constexpr int64_t kTileRows = 16;
constexpr int64_t kBlock = 32;
// Activation rows per GEMM chunk: x is passed to the GEMM kernel transposed in chunks of
// kGemmChunk rows, [chunks][Kp][kGemmChunk] (rows past the end zero).
constexpr int64_t kGemmChunk = 16;

struct TileStream {
  const uint8_t* data = nullptr;  // tile t starts at data + t * tile_bytes
  int64_t tile_bytes = 0;
  const int32_t* group_blocks = nullptr;  // [groups + 1] block offsets in the kernel order
  int64_t groups = 0;
  int64_t kp = 0;  // kernel-order input length = group_blocks[groups] * kBlock
  int64_t n = 0;   // output rows (the last tile may be partial)
  int bits = 4;
};

// GEMV input: the activation vector prepared once per call by gemv_prepare() into a buffer of
// gemv_scratch_bytes(w) bytes (64-byte aligned, owned by the caller): x in the kernel order, the
// group sums, and on targets with the int8 path (AVX2, AVX3_DL) x split into three int8
// planes (quant_kernels.cpp). perm: [kp] kernel position -> input channel (-1: padding), or
// nullptr when the kernel order is the identity.
size_t gemv_scratch_bytes(const TileStream& w);
void gemv_prepare(const TileStream& w, const int32_t* perm, const float* x, uint8_t* scratch);

// GEMV for the output tiles [t0, t1): y[n] = sum_k W[n, k] x[k] (+ bias[n]), from a scratch
// prepared by gemv_prepare (on any target: a mismatch falls back to the float path).
void gemv_tiles(const TileStream& w, const uint8_t* scratch, const float* bias, int64_t t0,
                int64_t t1, float* y);

// GEMM for the output tiles [t0, t1) and all `rows` activation rows:
// y[r, n] = sum_k W[n, k] x[r, k] (+ bias[n]), y row stride ldy.
// xt: [ceil(rows / kGemmChunk)][kp][kGemmChunk] (transposed chunks, kernel order, zero padded).
void gemm_tiles(const TileStream& w, const float* xt, int64_t rows, const float* bias, int64_t t0,
                int64_t t1, float* y, int64_t ldy);

// Int8 GEMM (AVX2, AVX3_DL; llama.cpp-style activations): each row of x [rows, ldx] (input
// order) is quantized per segment (at most 4 blocks of one group) to int8 with scale max|x| / 127,
// and y[r, n] = sum_g scale_gn (sum_seg s_seg sum_k q_k xq_k - z_gn X_g) (+ bias[n]) with exact
// int32 dot products and the float group sums X_g. Relative error of an output ~ 2^-8 of the
// segment maxima (the float GEMM is exact to fp32 rounding). prepare fills the rows [r0, r1) of
// the scratch (disjoint ranges may run on different threads; the range that ends at `rows` also
// clears the padding) and returns false where the int8 GEMM cannot run (see int8_kernels, or a
// non-finite activation in these rows): then use gemm_tiles.
size_t gemm_int8_scratch_bytes(const TileStream& w, int64_t rows);
bool gemm_int8_prepare(const TileStream& w, const int32_t* perm, const float* x, int64_t rows,
                       int64_t ldx, int64_t r0, int64_t r1, uint8_t* scratch);
void gemm_int8_tiles(const TileStream& w, const uint8_t* scratch, int64_t rows, const float* bias,
                     int64_t t0, int64_t t1, float* y, int64_t ldy);

// Dequantizes the tiles [t0, t1) into wt [kp][ldw] (transposed: column (t - t0) * 16 + lane;
// rows past n are written as zeros): wt[k][c] = W[t0 * 16 + c, k] in the kernel order.
void dequant_tiles(const TileStream& w, int64_t t0, int64_t t1, float* wt, int64_t ldw);

// Sum of n floats with SIMD, read as `streams` (1 or 4) concurrent sequential streams (the
// memory-bandwidth probe of the benchmark).
float sum_floats(const float* p, size_t n, int streams = 1);

// Bit mask of the Highway targets these kernels are compiled for (HWY_TARGETS of this file:
// it adds AVX3_DL to the defaults); AND with hwy::SupportedTargets() for the ones usable here.
int64_t compiled_targets();

// Name of the target the dispatcher picks now (e.g. "AVX3", "AVX2", "EMU128").
const char* dispatch_target_name();

// Whether the target the dispatcher picks now runs the int8 GEMV and GEMM for codes of `bits`
// bits (AVX3_DL: every width; AVX2: at most 4, where vpmaddubsw cannot saturate; others: no).
bool int8_kernels(int bits);

}  // namespace gptq::kernels
