// HessianAccumulator: H = 2/n * X^T X (spec 2.2), kept as the raw sum X^T X in fp32 plus counts so
// that partial accumulators merge exactly (GPTQModel style sum-then-scale, spec 2.6). AutoGPTQ's
// running average H = H*n/(n+t) + 2/(n+t) X X^T is the same matrix up to fp32 rounding, and GPTQ is
// invariant to a positive scale of H anyway (damping is relative to mean(diag H)).
#include <algorithm>

#include "quant/gptq.h"
#include "util/blas.h"
#include "util/error.h"
#include "util/huge_pages.h"
#include "util/stage_clock.h"
#include "util/thread_pool.h"

namespace gptq {

HessianAccumulator::HessianAccumulator(int64_t k) : k_(k) {
  if (k <= 0)
    fail_code(ExitCode::kInternal, "HessianAccumulator: in_features must be > 0, got {}", k);
  resize_first_touched(xtx_, static_cast<size_t>(k * k));  // zero
}

HessianAccumulator HessianAccumulator::from_raw(int64_t k, int64_t nseq, int64_t rows,
                                                std::vector<float> xtx) {
  if (k <= 0 || nseq < 0 || rows < 0 || xtx.size() != static_cast<size_t>(k * k))
    fail_code(ExitCode::kInternal,
              "HessianAccumulator::from_raw: k {}, nseq {}, rows {}, {} values", k, nseq, rows,
              xtx.size());
  HessianAccumulator a(1);
  a.k_ = k;
  a.nseq_ = nseq;
  a.rows_ = rows;
  a.xtx_ = std::move(xtx);
  return a;
}

void HessianAccumulator::add(const float* x, int64_t rows, int64_t nseq) {
  if (rows < 0 || nseq < 0) {
    fail_code(ExitCode::kInternal, "HessianAccumulator::add: negative rows ({}) or nseq ({})", rows,
              nseq);
  }
  const StageClock::Stage stage("hessian");
  if (rows > 0) {
    // Upper triangle of C += A^T A with A = x [rows, k] row-major: one SYRK (half the flops of a
    // GEMM). Row-major upper == column-major lower of the same buffer; finalize() mirrors it.
    blas::ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k_, rows, 1.0f, x, k_, 1.0f, xtx_.data(),
                k_);
  }
  rows_ += rows;
  nseq_ += nseq;
}

void HessianAccumulator::merge(const HessianAccumulator& other) {
  if (other.k_ != k_) {
    fail_code(ExitCode::kInternal, "HessianAccumulator::merge: in_features differ ({} vs {})", k_,
              other.k_);
  }
  // Only the upper triangles are meaningful; adding the full buffers is simplest and cheap.
  float* dst = xtx_.data();
  const float* src = other.xtx_.data();
  const size_t n = xtx_.size();
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
  rows_ += other.rows_;
  nseq_ += other.nseq_;
}

namespace {

// h [k, k] holding X^T X in its upper triangle -> f * X^T X, symmetric. Two passes on the pool:
// scale the upper triangle's rows, then mirror it into the lower one by tiles of rows (a task
// writes only the lower part of its rows and reads only the finished upper triangle).
void scale_upper_and_mirror(float* h, int64_t k, float f) {
  constexpr int64_t kT = 64;
  parallel_ranges(k, kT, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* row = h + i * k;
      for (int64_t j = i; j < k; ++j) row[j] *= f;
    }
  });
  parallel_ranges(k, kT, [&](int64_t i0, int64_t i1) {
    for (int64_t j0 = 0; j0 < i1; j0 += kT) {
      const int64_t j1 = std::min(j0 + kT, k);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1 && j < i; ++j) h[i * k + j] = h[j * k + i];
    }
  });
}

}  // namespace

float HessianAccumulator::scale() const {
  if (nseq_ <= 0) {
    fail_code(ExitCode::kBadInput,
              "Hessian of a layer with in_features {} saw no calibration sequences ({} rows): "
              "feed calibration data before quantizing",
              k_, rows_);
  }
  return static_cast<float>(2.0 / static_cast<double>(nseq_));
}

std::vector<float> HessianAccumulator::finalize() const& {
  const float f = scale();
  const StageClock::Stage stage("hessian");
  std::vector<float> h(xtx_);
  scale_upper_and_mirror(h.data(), k_, f);
  return h;
}

std::vector<float> HessianAccumulator::finalize() && {
  const float f = scale();
  const StageClock::Stage stage("hessian");
  scale_upper_and_mirror(xtx_.data(), k_, f);
  return std::move(xtx_);
}

}  // namespace gptq
