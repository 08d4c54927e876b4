// QuantLinear kernels vs the reference dequantize_linear + a double-precision matmul: all bit
// widths, group sizes (-1, 32, 128, short last group), act-order and arbitrary g_idx, v1/v2
// zeros, bias, batch sizes 1/3/16/64 and both GEMM paths; every compiled SIMD target the CPU
// supports (EMU128/SCALAR included where built); determinism across thread counts.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/half_gemv.h"
#include "kernels/quant_kernels.h"
#include "kernels/quant_linear.h"
#include "quant/pack.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace gptq::kernels {
namespace {

struct Case {
  int64_t n, k;
  int bits;
  int group_size;
  bool act_order;
  CheckpointFormat format;
  bool bias;
};

std::string describe(const Case& c) {
  return fmt::format("N={} K={} bits={} gs={} act_order={} {} bias={}", c.n, c.k, c.bits,
                     c.group_size, c.act_order,
                     c.format == CheckpointFormat::kGptq ? "gptq" : "gptq_v2", c.bias);
}

// Random asymmetric layer (zeros over the whole range, 0 included: the v1 wrap case).
PackedLinear make_packed(const Case& c, uint32_t seed, std::vector<float>* bias) {
  std::mt19937 rng(seed);
  const int maxq = (1 << c.bits) - 1;
  const int64_t gs = c.group_size > 0 ? c.group_size : c.k;
  const int64_t groups = (c.k + gs - 1) / gs;
  std::vector<uint8_t> codes(c.n * c.k);
  std::uniform_int_distribution<int> code(0, maxq);
  for (auto& q : codes) q = static_cast<uint8_t>(code(rng));
  std::vector<float> scales(groups * c.n), zeros(groups * c.n);
  std::uniform_real_distribution<float> sc(0.002f, 0.05f);
  for (auto& s : scales) s = f16_to_f32(f32_to_f16(sc(rng)));
  for (auto& z : zeros) z = static_cast<float>(code(rng));
  std::vector<int32_t> g_idx(c.k);
  std::vector<int64_t> order(c.k);
  std::iota(order.begin(), order.end(), 0);
  if (c.act_order) std::shuffle(order.begin(), order.end(), rng);
  for (int64_t i = 0; i < c.k; ++i) g_idx[order[i]] = static_cast<int32_t>(i / gs);
  if (bias) {
    bias->clear();
    if (c.bias) {
      std::normal_distribution<float> nd;
      bias->resize(c.n);
      for (auto& b : *bias) b = nd(rng);
    }
  }
  return pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), c.n, c.k, groups,
                     c.bits, c.group_size, c.format);
}

std::vector<float> random_x(int64_t rows, int64_t k, uint32_t seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(mean, 1.0f);
  std::vector<float> x(rows * k);
  for (auto& v : x) v = nd(rng);
  return x;
}

// y = x W^T + b in double, W [n, k].
std::vector<double> reference(const std::vector<float>& w, const std::vector<float>& bias,
                              const std::vector<float>& x, int64_t rows, int64_t n, int64_t k) {
  std::vector<double> y(rows * n);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double s = bias.empty() ? 0.0 : bias[j];
      for (int64_t i = 0; i < k; ++i) s += double(w[j * k + i]) * x[r * k + i];
      y[r * n + j] = s;
    }
  }
  return y;
}

// max |y - ref| relative to max |ref| (the output scale).
double rel_error(const std::vector<float>& y, const std::vector<double>& ref) {
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(double(y[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  return err / std::max(scale, 1e-30);
}

constexpr double kTol = 1e-5;

// Int8 activations: each x is replaced by s q with |x - s q| <= s / 2 = max|x| / 254 of its
// segment (<= the row's max), so |y - ref| <= sum_k |W[n, k]| max_k |x[r, k]| / 254 (+ fp32
// rounding) for every output.
bool within_int8_rounding(const std::vector<float>& y, const std::vector<double>& ref,
                          const std::vector<float>& w, const std::vector<float>& x, int64_t rows,
                          int64_t n, int64_t k) {
  double scale = 0.0;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  for (int64_t r = 0; r < rows; ++r) {
    double xmax = 0.0;
    for (int64_t i = 0; i < k; ++i) xmax = std::max(xmax, std::abs(double(x[r * k + i])));
    for (int64_t j = 0; j < n; ++j) {
      double wabs = 0.0;
      for (int64_t i = 0; i < k; ++i) wabs += std::abs(double(w[j * k + i]));
      const double bound = wabs * xmax / 254.0 * 1.001 + kTol * scale;
      if (std::abs(double(y[r * n + j]) - ref[r * n + j]) > bound) return false;
    }
  }
  return true;
}

// Runs every batch size and GEMM path of one case; returns the worst relative error.
double check_case(const Case& c, uint32_t seed, const QuantLinearOptions& opt = {}) {
  std::vector<float> bias;
  const PackedLinear p = make_packed(c, seed, &bias);
  const std::vector<float> w = dequantize_linear(p);
  const QuantLinear ql(p, bias, opt);
  EXPECT_EQ(ql.in_features(), c.k);
  EXPECT_EQ(ql.out_features(), c.n);
  double worst = 0.0;
  for (int64_t rows : {1, 3, 16, 64}) {
    const std::vector<float> x = random_x(rows, c.k, seed + 7 * uint32_t(rows));
    const std::vector<double> ref = reference(w, bias, x, rows, c.n, c.k);
    for (GemmPath path : {GemmPath::kFused, GemmPath::kDequantSgemm}) {
      if (rows == 1 && path == GemmPath::kDequantSgemm) continue;
      std::vector<float> y(rows * c.n, std::nanf(""));
      ql.forward(x.data(), rows, y.data(), path);
      const double e = rel_error(y, ref);
      EXPECT_LT(e, kTol) << describe(c) << " rows=" << rows
                         << (path == GemmPath::kFused ? " fused" : " dequant+sgemm");
      worst = std::max(worst, e);
    }
    if (rows > 1) {
      // Int8 activations (a fallback to the fused GEMM where int8_kernels(bits) is false): within
      // the 8-bit rounding of x; exact where every activation is +-127 (each segment's scale is
      // then 1, the int32 dot products are the whole sum), which pins the byte slots, zeros and
      // groups.
      std::vector<float> y(rows * c.n);
      ql.forward(x.data(), rows, y.data(), GemmPath::kInt8);
      EXPECT_TRUE(within_int8_rounding(y, ref, w, x, rows, c.n, c.k))
          << describe(c) << " rows=" << rows << " int8";
      std::vector<float> xs(x.size());
      for (size_t i = 0; i < x.size(); ++i) xs[i] = x[i] < 0 ? -127.0f : 127.0f;
      ql.forward(xs.data(), rows, y.data(), GemmPath::kInt8);
      EXPECT_LT(rel_error(y, reference(w, bias, xs, rows, c.n, c.k)), kTol)
          << describe(c) << " rows=" << rows << " int8 exact";
    }
  }
  return worst;
}

TEST(QuantLinear, MatchesReferenceAllConfigurations) {
  double worst = 0.0;
  int cases = 0;
  uint32_t seed = 1;
  for (auto [n, k] : {std::pair<int64_t, int64_t>{96, 160}, {40, 96}}) {
    for (int bits : {2, 3, 4, 8}) {
      for (int gs : {-1, 32, 128}) {
        for (bool act : {false, true}) {
          for (auto fmt_ : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
            for (bool bias : {false, true}) {
              worst = std::max(worst, check_case({n, k, bits, gs, act, fmt_, bias}, seed++));
              ++cases;
            }
          }
        }
      }
    }
  }
  std::printf("[ info ] %d cases, worst relative error %.3g (target %s)\n", cases, worst,
              dispatch_target_name());
}

TEST(QuantLinear, RealisticShapeAndPositiveActivations) {
  // Larger K (long groups, many groups), activations with a large common mean (the per-group
  // sum trick subtracts zero * sum(x): the case where it cancels most).
  for (int bits : {3, 4}) {
    const Case c{256, 768, bits, 128, true, CheckpointFormat::kGptq, true};
    std::vector<float> bias;
    const PackedLinear p = make_packed(c, 99, &bias);
    const QuantLinear ql(p, bias);
    const std::vector<float> w = dequantize_linear(p);
    for (int64_t rows : {1, 16}) {
      const std::vector<float> x = random_x(rows, c.k, 5, 3.0f);
      std::vector<float> y(rows * c.n);
      ql.forward(x.data(), rows, y.data());
      EXPECT_LT(rel_error(y, reference(w, bias, x, rows, c.n, c.k)), kTol) << describe(c);
    }
  }
}

TEST(QuantLinear, LongGroupsAndOutlierActivations) {
  // One group over K = 4128 (segments of the int8 GEMV path), and activations with outliers
  // (LLM hidden states: a few channels 100x larger), for every width.
  double worst = 0.0;
  for (int bits : {2, 3, 4, 8}) {
    for (int gs : {-1, 128}) {
      const Case c{48, 4128, bits, gs, gs > 0, CheckpointFormat::kGptqV2, false};
      const PackedLinear p = make_packed(c, 41, nullptr);
      const QuantLinear ql(p);
      const std::vector<float> w = dequantize_linear(p);
      for (int64_t rows : {1, 4}) {
        std::vector<float> x = random_x(rows, c.k, 6, 0.5f);
        for (int64_t r = 0; r < rows; ++r) {
          x[r * c.k + 7] = 150.0f;
          x[r * c.k + 2049] = -90.0f;
        }
        std::vector<float> y(rows * c.n);
        ql.forward(x.data(), rows, y.data());
        const double e = rel_error(y, reference(w, {}, x, rows, c.n, c.k));
        EXPECT_LT(e, kTol) << describe(c) << " rows " << rows;
        worst = std::max(worst, e);
      }
    }
  }
  std::printf("[ info ] worst relative error %.3g\n", worst);
}

TEST(QuantLinear, NonFiniteAndTinyActivations) {
  const Case c{32, 256, 4, 128, false, CheckpointFormat::kGptq, false};
  const PackedLinear p = make_packed(c, 51, nullptr);
  const QuantLinear ql(p);
  const std::vector<float> w = dequantize_linear(p);
  for (int64_t rows : {1, 2}) {
    // NaN / inf in x reach every output, as in the reference matmul.
    for (float bad : {std::nanf(""), INFINITY}) {
      std::vector<float> x = random_x(rows, c.k, 9);
      x[3] = bad;
      std::vector<float> y(rows * c.n);
      ql.forward(x.data(), rows, y.data());
      for (int64_t j = 0; j < c.n; ++j) EXPECT_FALSE(std::isfinite(y[j])) << j;
    }
    // Tiny (subnormal-range) activations keep their relative accuracy.
    std::vector<float> x = random_x(rows, c.k, 10);
    for (auto& v : x) v *= 1e-36f;
    std::vector<float> y(rows * c.n);
    ql.forward(x.data(), rows, y.data());
    EXPECT_LT(rel_error(y, reference(w, {}, x, rows, c.n, c.k)), 1e-4);
  }
  // The int8 GEMM: non-finite x falls back to the float GEMM (every output non-finite); a segment
  // below 1e-30 counts as 0 (finite outputs within 1e-30 sum |W|); 1e-20 is within the 8-bit
  // rounding.
  const int64_t rows = 3;
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> x = random_x(rows, c.k, 9);
    x[3] = bad;
    std::vector<float> y(rows * c.n);
    ql.forward(x.data(), rows, y.data(), GemmPath::kInt8);
    for (int64_t j = 0; j < c.n; ++j) EXPECT_FALSE(std::isfinite(y[j])) << j;
  }
  for (float scale : {1e-40f, 1e-20f}) {  // 1e-40: subnormal x, 1 / (max / 127) = inf
    std::vector<float> x = random_x(rows, c.k, 10);
    for (auto& v : x) v *= scale;
    for (size_t i = 0; i < x.size(); i += 5) x[i] = 0.0f;  // 0 * (1 / s) must not be NaN
    std::vector<float> y(rows * c.n);
    ql.forward(x.data(), rows, y.data(), GemmPath::kInt8);
    const std::vector<double> ref = reference(w, {}, x, rows, c.n, c.k);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << scale;
    if (scale < 1e-30f) {
      for (size_t i = 0; i < y.size(); ++i) EXPECT_LE(std::abs(double(y[i]) - ref[i]), 1e-27);
    } else {
      EXPECT_TRUE(within_int8_rounding(y, ref, w, x, rows, c.n, c.k)) << scale;
    }
  }
}

TEST(QuantLinear, UnalignedShapes) {
  // K and N not multiples of 32 (GPTQModel's pack_original sizes words with ceil): the kernel
  // pads the last block and the last row tile.
  uint32_t seed = 300;
  for (int bits : {2, 3, 4, 8}) {
    for (int gs : {-1, 32}) {
      for (bool act : {false, true}) {
        check_case({24, 72, bits, gs, act, CheckpointFormat::kGptq, true}, seed++);
        check_case({7, 45, bits, gs, act, CheckpointFormat::kGptqV2, false}, seed++);
      }
    }
  }
}

TEST(QuantLinear, ArbitraryGroupIndex) {
  // g_idx with uneven groups (sizes not multiples of 32, one group empty): padded in the kernel.
  const int64_t n = 48, k = 192, groups = 5;
  std::mt19937 rng(3);
  for (int bits : {2, 3, 4, 8}) {
    const int maxq = (1 << bits) - 1;
    std::vector<uint8_t> codes(n * k);
    for (auto& q : codes) q = static_cast<uint8_t>(rng() % (maxq + 1));
    std::vector<float> scales(groups * n), zeros(groups * n);
    for (auto& s : scales) s = 0.01f + 0.001f * static_cast<float>(rng() % 50);
    for (auto& z : zeros) z = static_cast<float>(rng() % (maxq + 1));
    std::vector<int32_t> g_idx(k);
    for (auto& g : g_idx) {
      g = static_cast<int32_t>(rng() % 4);
      if (g == 2) g = 4;  // group 2 stays empty
    }
    const PackedLinear p = pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n,
                                       k, groups, bits, 40, CheckpointFormat::kGptqV2);
    const QuantLinear ql(p);
    EXPECT_TRUE(ql.act_order());
    const std::vector<float> w = dequantize_linear(p);
    for (int64_t rows : {1, 5, 17}) {
      const std::vector<float> x = random_x(rows, k, 11);
      const std::vector<double> ref = reference(w, {}, x, rows, n, k);
      for (GemmPath path : {GemmPath::kFused, GemmPath::kDequantSgemm}) {
        std::vector<float> y(rows * n);
        ql.forward(x.data(), rows, y.data(), path);
        EXPECT_LT(rel_error(y, ref), kTol) << "bits " << bits << " rows " << rows;
      }
    }
  }
}

TEST(QuantLinear, DequantizeIsBitExact) {
  for (int bits : {2, 3, 4, 8}) {
    for (bool act : {false, true}) {
      const Case c{64, 224, bits, 32, act, CheckpointFormat::kGptq, false};
      const PackedLinear p = make_packed(c, 17, nullptr);
      const std::vector<float> ref = dequantize_linear(p);
      const std::vector<float> got = QuantLinear(p).dequantize();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << describe(c) << " " << i;
    }
  }
}

TEST(QuantLinear, DescWithFloatScalesAndDefaultGroupIndex) {
  // The loader path: float (e.g. bf16-converted) scales, no g_idx, copy construction.
  const Case c{64, 256, 4, 128, false, CheckpointFormat::kGptqV2, true};
  std::vector<float> bias;
  const PackedLinear p = make_packed(c, 23, &bias);
  std::vector<float> scales(p.scales.size());
  for (size_t i = 0; i < scales.size(); ++i)
    scales[i] = bf16_to_f32(f32_to_bf16(0.01f + i * 1e-5f));
  QuantLinearDesc d;
  d.bits = 4;
  d.group_size = 128;
  d.in_features = c.k;
  d.out_features = c.n;
  d.groups = p.groups;
  d.format = p.format;
  d.qweight = p.qweight.data();
  d.qzeros = p.qzeros.data();
  d.scales = scales.data();
  d.bias = bias.data();
  const QuantLinear a(d);
  const QuantLinear b(a);  // copies own their data
  std::vector<uint8_t> codes;
  std::vector<int32_t> zeros;
  unpack_linear(p, &codes, &zeros);
  std::vector<float> w(c.n * c.k);
  for (int64_t j = 0; j < c.n; ++j) {
    for (int64_t i = 0; i < c.k; ++i) {
      const int64_t g = i / 128;
      w[j * c.k + i] = scales[g * c.n + j] * (static_cast<float>(codes[j * c.k + i]) -
                                              static_cast<float>(zeros[g * c.n + j]));
    }
  }
  for (int64_t rows : {1, 16}) {
    const std::vector<float> x = random_x(rows, c.k, 4);
    std::vector<float> y(rows * c.n);
    b.forward(x.data(), rows, y.data());
    EXPECT_LT(rel_error(y, reference(w, bias, x, rows, c.n, c.k)), kTol);
  }
}

TEST(QuantLinear, DeterministicAcrossThreadCounts) {
  const Case c{512, 1024, 4, 128, true, CheckpointFormat::kGptq, true};
  std::vector<float> bias;
  const PackedLinear p = make_packed(c, 31, &bias);
  for (int64_t rows : {1, 16, 33}) {
    const std::vector<float> x = random_x(rows, c.k, 8);
    std::vector<float> first;
    for (int threads : {1, 2, 3, 4}) {
      QuantLinearOptions opt;
      opt.threads = threads;
      const QuantLinear ql(p, bias, opt);
      std::vector<float> y(rows * c.n);
      ql.forward(x.data(), rows, y.data());
      if (first.empty()) {
        first = y;
      } else {
        ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)))
            << "rows " << rows << " threads " << threads;
      }
    }
  }
}

TEST(QuantLinear, EverySupportedTarget) {
  // The dispatcher's choice is reported; then every compiled target the CPU can run (the
  // emulated EMU128 / SCALAR baseline included when built) must agree with the reference.
  std::printf("[ info ] dispatch target: %s\n", dispatch_target_name());
  std::vector<int64_t> targets;
  const int64_t mask = hwy::SupportedTargets() & compiled_targets();
  for (int64_t t = mask; t != 0; t &= t - 1) targets.push_back(t & -t);
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    hwy::SetSupportedTargetsForTest(target);
    EXPECT_STREQ(dispatch_target_name(), hwy::TargetName(target));
    double worst = 0.0;
    uint32_t seed = 100;
    for (int bits : {2, 3, 4, 8}) {
      worst = std::max(
          worst, check_case({40, 160, bits, 32, true, CheckpointFormat::kGptq, true}, seed++));
    }
    std::printf("[ info ] target %-8s worst relative error %.3g\n", hwy::TargetName(target), worst);
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(QuantLinear, RejectsBadInput) {
  const Case c{32, 64, 4, 32, false, CheckpointFormat::kGptq, false};
  PackedLinear p = make_packed(c, 1, nullptr);
  PackedLinear bad = p;
  bad.g_idx[5] = 7;
  EXPECT_THROW(QuantLinear{bad}, Error);
  bad = p;
  bad.bits = 5;
  EXPECT_THROW(QuantLinear{bad}, Error);
  bad = p;
  bad.qweight.pop_back();
  EXPECT_THROW(QuantLinear{bad}, Error);
  EXPECT_THROW(QuantLinear(p, std::vector<float>(3)), Error);
  bad = p;
  bad.scales[0] = 0x7c00;  // +inf
  EXPECT_THROW(QuantLinear{bad}, Error);
}

// ------------------------------------------------------------------ 16-bit GEMV (half_gemv.h)

// W [n, k] as 16-bit values of N(0, 1) (a few exact zeros and tiny values), and its exact floats.
struct HalfMatrix {
  std::vector<uint16_t> bits;
  std::vector<float> f;
};

HalfMatrix random_half(HalfType type, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  HalfMatrix m;
  m.bits.resize(static_cast<size_t>(n * k));
  m.f.resize(m.bits.size());
  for (size_t i = 0; i < m.bits.size(); ++i) {
    float v = nd(rng);
    if (i % 97 == 5) v = 0.0f;
    if (i % 89 == 3) v *= 1e-6f;  // binary16 subnormal
    m.bits[i] = type == HalfType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
    m.f[i] = type == HalfType::kF16 ? f16_to_f32(m.bits[i]) : bf16_to_f32(m.bits[i]);
  }
  return m;
}

// Checks y against the double-precision product of the exact weights. Bound: a float sum of
// products accumulated along at most k + 8 rounded operations (FMAs, the two accumulators' add
// and the lane reduction: log2(32) adds) errs by at most (k + 8) u sum |w x|, u = 2^-24.
void expect_half_gemv_close(const HalfMatrix& m, const std::vector<float>& x,
                            const std::vector<float>& y, int64_t n, int64_t k,
                            const std::string& what) {
  const double u = std::ldexp(1.0, -24);
  for (int64_t r = 0; r < n; ++r) {
    double ref = 0.0, mag = 0.0;
    for (int64_t c = 0; c < k; ++c) {
      const double p = static_cast<double>(m.f[r * k + c]) * x[c];
      ref += p;
      mag += std::abs(p);
    }
    const double bound = static_cast<double>(k + 8) * u * mag;
    ASSERT_LE(std::abs(y[r] - ref), bound)
        << what << " row " << r << " y " << y[r] << " ref " << ref;
  }
}

TEST(HalfGemv, MatchesDoubleReferenceOddShapes) {
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    for (int64_t n : {1, 3, 5, 37}) {
      for (int64_t k : {1, 5, 15, 17, 33, 100, 1001}) {
        const HalfMatrix m = random_half(type, n, k, static_cast<uint32_t>(n * 1000 + k));
        const std::vector<float> x = random_x(1, k, static_cast<uint32_t>(k + 7));
        std::vector<float> y(static_cast<size_t>(n), -1.0f);
        half_gemv(type, m.bits.data(), n, k, x.data(), y.data());
        expect_half_gemv_close(m, x, y, n, k,
                               std::string(type == HalfType::kF16 ? "F16" : "BF16") + " n " +
                                   std::to_string(n) + " k " + std::to_string(k));
      }
    }
  }
}

// Any row grouping, any thread count and an odd address (safetensors data need not be 2-byte
// aligned: it goes through the converting path) give the same bits.
TEST(HalfGemv, BitIdenticalAcrossThreadsGroupingAndAlignment) {
  const int64_t n = 1000, k = 333;  // 4 tasks of 256 rows, the last partial
  for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
    const HalfMatrix m = random_half(type, n, k, 77);
    const std::vector<float> x = random_x(1, k, 78);
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      std::vector<float> y(static_cast<size_t>(n));
      half_gemv(type, m.bits.data(), n, k, x.data(), y.data(), threads);
      if (first.empty()) {
        first = y;
        expect_half_gemv_close(m, x, y, n, k, "threads 1");
      } else {
        ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float)))
            << "threads " << threads;
      }
    }
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t r0 = 0; r0 < n; r0 += 3)  // groups of 3: 1-row path and 4-row path mixed
      half_gemv_rows(type, m.bits.data(), k, x.data(), r0, std::min(n, r0 + 3), y.data() + r0);
    ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << "grouping";
    std::vector<uint8_t> odd(m.bits.size() * 2 + 1);
    std::memcpy(odd.data() + 1, m.bits.data(), m.bits.size() * 2);
    std::fill(y.begin(), y.end(), 0.0f);
    half_gemv(type, odd.data() + 1, n, k, x.data(), y.data(), 2);
    ASSERT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << "odd address";
  }
}

TEST(HalfGemv, EverySupportedTarget) {
  const int64_t mask = hwy::SupportedTargets() & compiled_targets();
  int tested = 0;
  for (int64_t t = mask; t != 0; t &= t - 1) {
    hwy::SetSupportedTargetsForTest(t & -t);
    for (HalfType type : {HalfType::kF16, HalfType::kBF16}) {
      const int64_t n = 9, k = 77;
      const HalfMatrix m = random_half(type, n, k, 5);
      const std::vector<float> x = random_x(1, k, 6);
      std::vector<float> y(static_cast<size_t>(n));
      half_gemv(type, m.bits.data(), n, k, x.data(), y.data(), 1);
      expect_half_gemv_close(m, x, y, n, k, hwy::TargetName(t & -t));
      std::vector<uint8_t> odd(m.bits.size() * 2 + 1);  // the converting path: the same bits
      std::memcpy(odd.data() + 1, m.bits.data(), m.bits.size() * 2);
      std::vector<float> y_odd(static_cast<size_t>(n));
      half_gemv(type, odd.data() + 1, n, k, x.data(), y_odd.data(), 1);
      ASSERT_EQ(0, std::memcmp(y.data(), y_odd.data(), y.size() * sizeof(float)))
          << hwy::TargetName(t & -t);
    }
    std::printf("[ info ] half_gemv checked with target %s enabled\n", hwy::TargetName(t & -t));
    ++tested;
  }
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_GT(tested, 0);
}

TEST(ThreadPool, RunsEveryIndexOnce) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 50; ++rep) {
    const int64_t n = 1 + rep % 17;
    std::vector<std::atomic<int>> hits(n);
    pool.run(n, [&](int64_t i) { hits[i].fetch_add(1); });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
  // Nested calls run serially instead of deadlocking; exceptions propagate after all tasks.
  std::atomic<int> nested{0};
  pool.run(2, [&](int64_t i) {
    if (i == 0) pool.run(3, [&](int64_t) { ++nested; });
  });
  EXPECT_EQ(nested.load(), 3);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.run(8,
                        [&](int64_t i) {
                          ++ran;
                          if (i == 1) throw Error("boom");
                        }),
               Error);
  EXPECT_EQ(ran.load(), 8);
}

}  // namespace
}  // namespace gptq::kernels
