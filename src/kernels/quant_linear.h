// QuantLinear: y = x W^T + b straight from GPTQ codes (spec 3.2 - 3.6), the inference LinearOp
// of quantized checkpoints. W[n, k] = scale[g(k), n] * (q[k, n] - z[g(k), n]) with g(k) =
// g_idx[k], for bits 2/3/4/8, any group size (-1 too), act-order g_idx, gptq (v1) or gptq_v2
// zeros, fp16 or bf16 scales (given as float), optional bias.
//
// The constructor re-lays the checkpoint out once (quant_kernels.h "tile stream": input channels
// sorted by group, 16-row tiles, per-group float parameters interleaved with the codes); forward
// permutes the activations to that order and runs
//   rows == 1: a fused dequantize-and-multiply GEMV (per-group sums: the inner loop is one FMA
//              per code and 16 rows),
//   rows > 1:  a fused GEMM that forms each 16-row weight vector once and uses it for up to 16
//              activation rows (or, with GemmPath::kDequantSgemm, dequantized panels + sgemm;
//              with GemmPath::kInt8, int8 activations and int8 dot products, not fp32-exact),
// multi-threaded over output tiles with a persistent pool. Results are deterministic and do
// not depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/quant_kernels.h"
#include "nn/block_forward.h"
#include "quant/pack.h"
#include "quant/quant_config.h"

namespace gptq::kernels {

// A GPTQ layer as stored in the checkpoint; the pointers are only read during construction.
struct QuantLinearDesc {
  int bits = 4;                                       // 2, 3, 4 or 8
  int group_size = 128;                               // > 0 or -1 (one group)
  int64_t in_features = 0;                            // K
  int64_t out_features = 0;                           // N
  int64_t groups = 0;                                 // G (rows of qzeros / scales)
  CheckpointFormat format = CheckpointFormat::kGptq;  // v1: stored zero = zero - 1
  const int32_t* qweight = nullptr;                   // [ceil(K*b/32), N]
  const int32_t* qzeros = nullptr;                    // [G, ceil(N*b/32)]
  const float* scales = nullptr;                      // [G, N] (fp16/bf16 converted by the caller)
  const int32_t* g_idx = nullptr;  // [K]; nullptr = k / group_size (0 for group_size -1)
  const float* bias = nullptr;     // [N] or nullptr
};

// The description of a packed layer whose scales are given as float ([G, N]; fp16 or bf16 in the
// file) and whose bias is optional (nullptr).
QuantLinearDesc describe_packed(const PackedLinear& packed, const float* scales, const float* bias);

enum class GemmPath {
  kAuto,          // fused GEMM for rows > 1 (measured faster at every batch size tried)
  kFused,         // fused dequantize-and-multiply GEMM
  kDequantSgemm,  // dequantize panels of output rows to fp32, then cblas_sgemm
  kInt8,          // rows > 1 with int8 activations (gemm_int8_tiles: AVX2/AVX-512, approximate as
                  // llama.cpp's q8 activations); the fused GEMM where it cannot run
};

struct QuantLinearOptions {
  int threads = 0;  // 0 = compute_threads() (util/thread_pool.h) at each call
  GemmPath gemm_path = GemmPath::kAuto;
};

class QuantLinear final : public LinearOp {
 public:
  // Throws gptq::Error (kBadInput) on inconsistent shapes, bits, g_idx or non-finite scales.
  explicit QuantLinear(const QuantLinearDesc& desc, const QuantLinearOptions& options = {});
  // From pack.h's PackedLinear (fp16 scales); bias empty or [N].
  explicit QuantLinear(const PackedLinear& packed, const std::vector<float>& bias = {},
                       const QuantLinearOptions& options = {});
  QuantLinear(const QuantLinear& other);
  QuantLinear& operator=(const QuantLinear&) = delete;
  ~QuantLinear() override;

  int64_t in_features() const override { return k_; }
  int64_t out_features() const override { return n_; }
  // x [rows, K] -> y [rows, N] (overwritten). Safe to call concurrently.
  void forward(const float* x, int64_t rows, float* y) const override;
  // Same with an explicit GEMM path for rows > 1 (benchmarks, tests).
  void forward(const float* x, int64_t rows, float* y, GemmPath path) const;

  void set_threads(int threads) { options_.threads = threads; }
  int bits() const { return bits_; }
  int64_t groups() const { return groups_; }
  bool act_order() const { return !identity_perm_; }
  // Bytes the kernels read per call for the weights (codes + per-group parameters).
  int64_t weight_bytes() const;
  // Bytes of the checkpoint tensors it was built from (qweight + qzeros + fp16 scales + g_idx).
  int64_t checkpoint_bytes() const;
  // The dense weight W [N, K] (reference order), as the kernels see it.
  std::vector<float> dequantize() const;
  const TileStream& stream() const { return stream_; }

 private:
  void build(const QuantLinearDesc& d);
  int resolve_threads() const;
  void gemv(const float* x, float* y, int threads) const;
  void gemm_fused(const float* x, int64_t rows, float* y, int threads) const;
  void gemm_dequant_sgemm(const float* x, int64_t rows, float* y, int threads) const;
  // False (nothing written) where the int8 GEMM cannot run.
  bool gemm_int8(const float* x, int64_t rows, float* y, int threads) const;

  int bits_ = 4;
  int64_t k_ = 0, n_ = 0, groups_ = 0, tiles_ = 0;
  QuantLinearOptions options_;
  bool identity_perm_ = true;
  std::vector<int32_t> perm_;          // [kp]: kernel position -> input channel, -1 = padding
  std::vector<int32_t> group_blocks_;  // [groups + 1]
  std::vector<float> bias_;            // [N] or empty
  struct AlignedFree {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, AlignedFree> data_;
  int64_t data_bytes_ = 0;
  TileStream stream_;
};

}  // namespace gptq::kernels
