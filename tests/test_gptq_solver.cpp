// The GPTQ solver against the slow literal reference (tests/support/reference_gptq), the Hessian
// accumulator, the inverse Cholesky factor, the column orders, damping and error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "quant/gptq.h"
#include "support/reference_gptq.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace gptq {
namespace {

using testing::hessian_weighted_error;
using testing::reference_gptq;

// A linear layer with correlated calibration inputs: X = Z * A (A a random mixing matrix), columns
// rescaled over ~2 orders of magnitude (so act-order matters) and `dead` columns zeroed.
struct Layer {
  int64_t n = 0, k = 0, tokens = 0, nseq = 0;
  std::vector<float> x, w, h;
};

Layer make_layer(int64_t n, int64_t k, int64_t tokens, const std::vector<int>& dead,
                 uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Layer l;
  l.n = n;
  l.k = k;
  l.tokens = tokens;
  l.nseq = tokens / 16;
  std::vector<float> z(tokens * k), a(k * k);
  for (auto& v : z) v = normal(rng);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) a[i * k + j] = normal(rng) / std::sqrt(float(k));
    a[i * k + i] += 0.5f;
  }
  std::vector<float> colscale(k);
  for (auto& s : colscale) s = std::exp(0.8f * normal(rng));
  l.x.assign(tokens * k, 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t p = 0; p < k; ++p) {
      const float zv = z[t * k + p];
      for (int64_t j = 0; j < k; ++j) l.x[t * k + j] += zv * a[p * k + j];
    }
    for (int64_t j = 0; j < k; ++j) l.x[t * k + j] *= colscale[j];
    for (int d : dead) l.x[t * k + d] = 0.0f;
  }
  l.w.resize(n * k);
  for (auto& v : l.w) v = 0.05f * normal(rng);
  for (int i = 0; i < 8; ++i) l.w[(rng() % n) * k + rng() % k] *= 6.0f;  // a few outliers
  HessianAccumulator acc(k);
  acc.add(l.x.data(), tokens, l.nseq);
  l.h = acc.finalize();
  return l;
}

// ||(W - Q) X^T||^2, the layer objective on the calibration inputs.
double output_error(const Layer& l, const std::vector<float>& q) {
  double total = 0;
  for (int64_t r = 0; r < l.n; ++r) {
    for (int64_t t = 0; t < l.tokens; ++t) {
      double s = 0;
      for (int64_t c = 0; c < l.k; ++c) {
        s += (double(l.w[r * l.k + c]) - q[r * l.k + c]) * l.x[t * l.k + c];
      }
      total += s * s;
    }
  }
  return total;
}

TEST(GptqSolver, MatchesLiteralReferenceOnAllOptionCombinations) {
  // K = 360: three 128-blocks with a short last one (104), a short last group for gs 32 (8) and
  // gs 128 (104), groups starting mid-block for gs 32. Columns 5, 77, 300 are dead.
  const Layer l = make_layer(64, 360, 1440, {5, 77, 300}, 1234);
  double worst_match = 1.0, worst_err = 0.0;
  int cases = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (int gs : {-1, 32, 128}) {
      for (int desc : {0, 1}) {
        for (int stat : {0, 1}) {
          for (int sym : {0, 1}) {
            for (int gar : {0, 1}) {
              if (gar && (desc || gs == -1)) continue;
              if (gar && !(bits == 4 || bits == 2)) continue;  // GAR: a subset keeps this quick
              QuantConfig cfg;
              cfg.bits = bits;
              cfg.group_size = gs;
              cfg.desc_act = desc;
              cfg.static_groups = stat;
              cfg.sym = sym;
              cfg.act_group_aware = gar;
              cfg.damp_percent = 0.01;
              SCOPED_TRACE(::testing::Message()
                           << "bits=" << bits << " gs=" << gs << " desc=" << desc
                           << " static=" << stat << " sym=" << sym << " gar=" << gar);
              const GptqResult fast =
                  gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "test.layer");
              const auto ref = reference_gptq(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg);
              ++cases;
              ASSERT_EQ(fast.g_idx, ref.g_idx);
              ASSERT_EQ(fast.scales.size(), ref.scales.size());
              ASSERT_EQ(fast.dead_columns, 3);
              int64_t same = 0;
              for (size_t i = 0; i < ref.codes.size(); ++i) same += fast.codes[i] == ref.codes[i];
              const double match = double(same) / double(ref.codes.size());
              EXPECT_GE(match, 0.99);
              // Grids: identical up to float noise wherever no code flip has cascaded into them.
              int64_t close = 0;
              for (size_t i = 0; i < ref.scales.size(); ++i) {
                close +=
                    std::fabs(fast.scales[i] - ref.scales[i]) <= 1e-4f * std::fabs(ref.scales[i]) &&
                    fast.zeros[i] == ref.zeros[i];
              }
              EXPECT_GE(double(close) / double(ref.scales.size()), 0.97);
              const double e_fast =
                  hessian_weighted_error(l.w.data(), fast.dequant.data(), l.n, l.k, l.h.data());
              const double e_ref =
                  hessian_weighted_error(l.w.data(), ref.dequant.data(), l.n, l.k, l.h.data());
              const double rel = std::fabs(e_fast - e_ref) / e_ref;
              EXPECT_LE(rel, 0.01);
              EXPECT_NEAR(fast.loss, ref.loss, 0.01 * ref.loss);
              // The fake-quantized weight is scale * (code - zero) of the reported grid.
              for (int64_t r = 0; r < l.n; r += 7) {
                for (int64_t c = 0; c < l.k; c += 5) {
                  const int64_t g = fast.g_idx[c];
                  const float s = fast.scales[g * l.n + r], z = fast.zeros[g * l.n + r];
                  ASSERT_EQ(fast.dequant[r * l.k + c],
                            dequantize_code(fast.codes[r * l.k + c], s, z));
                }
              }
              worst_match = std::min(worst_match, match);
              worst_err = std::max(worst_err, rel);
            }
          }
        }
      }
    }
  }
  std::printf("%d cases: worst code agreement %.4f%%, worst H-weighted error difference %.4f%%\n",
              cases, 100 * worst_match, 100 * worst_err);
}

TEST(GptqSolver, BeatsRoundToNearestOnTheLayerObjective) {
  const Layer l = make_layer(48, 256, 1024, {}, 99);
  for (int bits : {2, 3, 4, 8}) {
    for (bool desc : {false, true}) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = 128;
      cfg.desc_act = desc;
      const GptqResult g = gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "x");
      const GptqResult r = rtn_quantize(l.w.data(), l.n, l.k, cfg);
      const double eg = output_error(l, g.dequant), er = output_error(l, r.dequant);
      std::printf("bits %d desc_act %d: ||(W-Q)X||^2 GPTQ %.5g  RTN %.5g  (ratio %.3f)\n", bits,
                  int(desc), eg, er, eg / er);
      EXPECT_LT(eg, er) << "bits " << bits;
    }
  }
}

TEST(GptqSolver, GroupLayoutOfActOrderModes) {
  const Layer l = make_layer(16, 200, 800, {3}, 7);
  QuantConfig cfg;
  cfg.group_size = 32;
  cfg.desc_act = true;
  GptqResult r = gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "x");
  ASSERT_EQ(r.groups, 7);  // ceil(200 / 32), last group of 8
  std::vector<int> count(7, 0);
  bool monotonic = true;
  for (int64_t c = 0; c < l.k; ++c) {
    ++count[r.g_idx[c]];
    if (c > 0 && r.g_idx[c] < r.g_idx[c - 1]) monotonic = false;
  }
  for (int g = 0; g < 6; ++g) EXPECT_EQ(count[g], 32);
  EXPECT_EQ(count[6], 8);
  EXPECT_FALSE(monotonic);
  // The dead column (diag 1 after the fix) sorts by that value; its codes are the zero point.
  for (int64_t row = 0; row < l.n; ++row) EXPECT_EQ(r.dequant[row * l.k + 3], 0.0f);

  for (bool gar : {false, true}) {  // static+desc_act and GAR keep g_idx trivial
    QuantConfig c2 = cfg;
    c2.static_groups = !gar;
    c2.desc_act = !gar;
    c2.act_group_aware = gar;
    r = gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, c2, "x");
    for (int64_t c = 0; c < l.k; ++c) EXPECT_EQ(r.g_idx[c], c / 32);
  }
}

TEST(GptqSolver, ResultIsDeterministicAndThreadIndependent) {
  const Layer l = make_layer(200, 192, 600, {}, 5);  // several row tiles
  QuantConfig cfg;
  cfg.group_size = 64;
  cfg.desc_act = true;
  const GptqResult a = gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "x");
  const GptqResult b = gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "x");
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.loss, b.loss);
  // Rows are independent given H: solving a subset of rows gives the same rows.
  const GptqResult part =
      gptq_quantize(l.w.data() + 64 * l.k, 70, l.k, l.h.data(), l.nseq, cfg, "x");
  int64_t same = 0;
  for (int64_t i = 0; i < 70 * l.k; ++i) same += part.codes[i] == a.codes[64 * l.k + i];
  EXPECT_GE(double(same) / double(70 * l.k), 0.999);
}

// Linears reading the same inputs share one factor: each layer solved with it equals the layer
// solved alone, in every order mode (with a dead column); same_factor tells the settings that
// change the factor from those that do not.
TEST(GptqSolver, SharedFactorGivesEachLayerItsOwnSolution) {
  const Layer l = make_layer(96, 160, 480, {7}, 11);
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w2(static_cast<size_t>(70 * l.k));
  for (auto& v : w2) v = normal(rng);
  for (int mode = 0; mode < 3; ++mode) {
    QuantConfig cfg;
    cfg.group_size = 32;
    cfg.desc_act = mode == 1;
    cfg.act_group_aware = mode == 2;
    const GptqFactor f = gptq_factor(l.h.data(), l.k, cfg, "qkv");
    EXPECT_EQ(f.permuted, mode != 0);
    ASSERT_EQ(f.dead, std::vector<int32_t>{7});
    for (const auto& [w, n] :
         {std::pair<const float*, int64_t>{l.w.data(), l.n}, {w2.data(), 70}}) {
      const GptqResult alone = gptq_quantize(w, n, l.k, l.h.data(), l.nseq, cfg, "x");
      const GptqResult shared = gptq_quantize(w, n, l.k, f, l.nseq, cfg, "x");
      EXPECT_EQ(shared.codes, alone.codes) << "mode " << mode << " n " << n;
      EXPECT_EQ(shared.scales, alone.scales);
      EXPECT_EQ(shared.zeros, alone.zeros);
      EXPECT_EQ(shared.g_idx, alone.g_idx);
      EXPECT_EQ(shared.dequant, alone.dequant);
      EXPECT_EQ(shared.loss, alone.loss);
      EXPECT_EQ(shared.dead_columns, 1);
    }
  }
  QuantConfig base;
  QuantConfig other = base;
  other.bits = 3;
  other.sym = !base.sym;
  other.group_size = 64;
  other.static_groups = true;
  EXPECT_TRUE(same_factor(base, other));  // grids and groups: not the factor
  other = base;
  other.damp_percent = 0.05;
  EXPECT_FALSE(same_factor(base, other));
  other = base;
  other.damp_auto_increment = 0.01;
  EXPECT_FALSE(same_factor(base, other));
  other = base;
  other.desc_act = true;
  EXPECT_FALSE(same_factor(base, other));
  QuantConfig gar = base;
  gar.act_group_aware = true;
  EXPECT_FALSE(same_factor(base, gar));
  other = gar;
  other.group_size = 64;  // GAR orders whole groups
  EXPECT_FALSE(same_factor(gar, other));
  QuantConfig act = base;
  act.desc_act = true;
  other = act;
  other.group_size = 64;  // act-order does not look at groups
  EXPECT_TRUE(same_factor(act, other));
  // A factor of another size is refused, naming the layer.
  const GptqFactor small = gptq_factor(l.h.data(), 1, base, "tiny");
  try {
    gptq_quantize(l.w.data(), l.n, l.k, small, l.nseq, base, "model.layers.0.self_attn.k_proj");
    FAIL() << "expected a size error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.k_proj"), std::string::npos);
  }
}

TEST(GptqSolver, CholeskyFailureIsReportedOrDampingEscalates) {
  // Indefinite: the 2x2 block [[1, 1.2], [1.2, 1]] has eigenvalue -0.2; mean(diag) = 1.
  const int64_t k = 4;
  std::vector<float> h = {1, 1.2f, 0, 0, 1.2f, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  std::vector<float> w = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, 0.6f, -0.7f, 0.8f};
  QuantConfig cfg;
  cfg.group_size = -1;
  cfg.damp_percent = 0.01;
  try {
    gptq_quantize(w.data(), 2, k, h.data(), 1, cfg, "model.layers.3.mlp.up_proj");
    FAIL() << "expected a Cholesky failure";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kNumerical);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.layers.3.mlp.up_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--damp"), std::string::npos) << msg;
  }
  cfg.damp_auto_increment = 0.1;  // 0.01 -> 0.11 -> 0.21 > 0.2
  const GptqResult r = gptq_quantize(w.data(), 2, k, h.data(), 1, cfg, "x");
  EXPECT_EQ(r.damp_retries, 2);
  EXPECT_NEAR(r.damp, 0.21, 1e-12);
}

TEST(GptqSolver, RejectsNonFiniteInputsNamingTheLayer) {
  const Layer l = make_layer(8, 64, 256, {}, 3);
  QuantConfig cfg;
  cfg.group_size = 32;
  std::vector<float> w = l.w, h = l.h;
  w[3 * 64 + 10] = NAN;
  try {
    gptq_quantize(w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "blk.0.q");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.q"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("[3, 10]"), std::string::npos) << e.what();
  }
  h[5] = INFINITY;
  try {
    gptq_quantize(l.w.data(), l.n, l.k, h.data(), l.nseq, cfg, "blk.0.k");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kNumerical);
    EXPECT_NE(std::string(e.what()).find("blk.0.k"), std::string::npos);
  }
  cfg.bits = 5;
  EXPECT_THROW(gptq_quantize(l.w.data(), l.n, l.k, l.h.data(), l.nseq, cfg, "x"), Error);
}

TEST(GptqSolver, AllDeadColumnsGiveZeroWeights) {
  const int64_t n = 4, k = 40;
  std::vector<float> w(n * k, 0.3f), h(k * k, 0.0f);
  QuantConfig cfg;
  cfg.group_size = 16;
  const GptqResult r = gptq_quantize(w.data(), n, k, h.data(), 1, cfg, "x");
  EXPECT_EQ(r.dead_columns, k);
  for (float v : r.dequant) EXPECT_EQ(v, 0.0f);
  for (uint8_t c : r.codes) EXPECT_EQ(c, 8);
}

TEST(HessianAccumulator, MatchesTwoOverNTimesXtXAndMerges) {
  const int64_t k = 37, rows = 101;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * k);
  for (auto& v : x) v = normal(rng);
  HessianAccumulator all(k), a(k), b(k);
  all.add(x.data(), rows, 5);
  a.add(x.data(), 40, 2);
  b.add(x.data() + 40 * k, rows - 40, 3);
  a.merge(b);
  EXPECT_EQ(a.nsamples(), 5);
  EXPECT_EQ(a.rows_seen(), rows);
  const std::vector<float> h = all.finalize(), hm = a.finalize();
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t t = 0; t < rows; ++t) s += double(x[t * k + i]) * x[t * k + j];
      s *= 2.0 / 5.0;
      EXPECT_NEAR(h[i * k + j], s, 1e-4 * (1 + std::fabs(s)));
      EXPECT_NEAR(hm[i * k + j], s, 1e-4 * (1 + std::fabs(s)));
      EXPECT_EQ(h[i * k + j], h[j * k + i]);
    }
  }
  HessianAccumulator empty(k);
  EXPECT_THROW(empty.finalize(), Error);
}

TEST(InverseCholesky, UpperFactorOfTheInverse) {
  const Layer l = make_layer(1, 50, 400, {}, 21);
  std::vector<float> a = l.h;
  ASSERT_EQ(inverse_cholesky_upper(a.data(), 50), 0);
  // U^T U H = I.
  const int64_t k = 50;
  for (int64_t i = 0; i < k; ++i) EXPECT_GT(a[i * k + i], 0.0f);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        double hinv = 0;  // (U^T U)[i, p]
        for (int64_t q = 0; q <= std::min(i, p); ++q) hinv += double(a[q * k + i]) * a[q * k + p];
        s += hinv * l.h[p * k + j];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 2e-3);
    }
  }
  std::vector<float> bad = {1, 2, 2, 1};
  EXPECT_NE(inverse_cholesky_upper(bad.data(), 2), 0);
}

TEST(InverseCholesky, ManyBlocksThreadIndependentAndNamesTheFailingColumn) {
  // K = 600: panels of 128 (four) and 88 (each diagonal block factored 64 columns at a time), so
  // the Cholesky's nested panels, the triangular inverse's GEMM + TRSM tasks and the short last
  // block all run; U^T U H = I, and the bytes are the same with 1, 2 or 3 threads.
  const int64_t k = 600;
  Layer l = make_layer(1, k, 2400, {}, 33);
  double mean = 0;  // damped by 1% of the mean diagonal, as the solver does
  for (int64_t i = 0; i < k; ++i) mean += l.h[i * k + i] / k;
  for (int64_t i = 0; i < k; ++i) l.h[i * k + i] += static_cast<float>(0.01 * mean);
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    const ComputeThreadsScope scope(threads);
    std::vector<float> a = l.h;
    ASSERT_EQ(inverse_cholesky_upper(a.data(), k), 0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < i; ++j) a[i * k + j] = 0.0f;  // the undefined strict lower part
    if (first.empty()) {
      first = a;
    } else {
      EXPECT_EQ(first, a) << threads << " threads";
    }
  }
  std::vector<double> hinv(k * k, 0.0);  // U^T U
  for (int64_t q = 0; q < k; ++q)
    for (int64_t i = q; i < k; ++i)
      for (int64_t p = q; p < k; ++p)
        hinv[i * k + p] += double(first[q * k + i]) * first[q * k + p];
  double worst = 0;
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += hinv[i * k + p] * l.h[p * k + j];
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  }
  EXPECT_LT(worst, 2e-3);
  // Not positive definite at column c (1-based) of H: reported as that column, although the
  // factorization runs on the reversed matrix (in the first, a middle and the last panel).
  for (const int64_t c : {600, 301, 201, 1}) {
    std::vector<float> bad(k * k, 0.0f);
    for (int64_t i = 0; i < k; ++i) bad[i * k + i] = i == c - 1 ? -1.0f : 1.0f;
    EXPECT_EQ(inverse_cholesky_upper(bad.data(), k), c);
  }
}

// K >= 4096 takes 256-column panels: the same checks on K = 4100 (16 panels of 256 and one of
// 4), with a diagonally dominant H (cheap to build) and U^T U H v = v on random vectors.
TEST(InverseCholesky, WidePanelsThreadIndependentAndNamesTheFailingColumn) {
  const int64_t k = 4100;
  std::mt19937 rng(71);
  std::uniform_real_distribution<float> uni(-0.5f, 0.5f);
  std::vector<float> h(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k; ++i) {
    h[i * k + i] = static_cast<float>(k) * (1.0f + uni(rng));
    for (int64_t j = 0; j < i; ++j) h[i * k + j] = h[j * k + i] = uni(rng);
  }
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    const ComputeThreadsScope scope(threads);
    std::vector<float> a = h;
    ASSERT_EQ(inverse_cholesky_upper(a.data(), k), 0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < i; ++j) a[i * k + j] = 0.0f;
    if (first.empty()) {
      first = std::move(a);
    } else {
      EXPECT_TRUE(first == a) << threads << " threads";
    }
  }
  for (int probe = 0; probe < 3; ++probe) {
    std::vector<double> v(k), hv(k, 0.0), uhv(k, 0.0), back(k, 0.0);
    for (auto& x : v) x = uni(rng);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) hv[i] += double(h[i * k + j]) * v[j];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = i; j < k; ++j) uhv[i] += double(first[i * k + j]) * hv[j];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = i; j < k; ++j) back[j] += double(first[i * k + j]) * uhv[i];
    double worst = 0;
    for (int64_t i = 0; i < k; ++i) worst = std::max(worst, std::fabs(back[i] - v[i]));
    EXPECT_LT(worst, 1e-3) << "probe " << probe;
  }
  for (const int64_t c : {int64_t{4100}, int64_t{3000}, int64_t{5}}) {
    std::vector<float> bad = h;
    bad[(c - 1) * k + (c - 1)] = -1.0f;
    EXPECT_EQ(inverse_cholesky_upper(bad.data(), k), c);
  }
}

TEST(Permutation, ActOrderIsStableDescending) {
  const std::vector<float> d = {1, 3, 2, 3, 0.5f, 2};
  EXPECT_EQ(act_order_permutation(d.data(), 6), (std::vector<int32_t>{1, 3, 2, 5, 0, 4}));
}

TEST(Permutation, GroupAwareReordering) {
  // Groups of 3: {0,1,2} max 5, {3,4,5} max 9, {6,7,8} max 5 (tie with group 0: stays after it);
  // tail {9, 10} unchanged.
  const std::vector<float> d = {1, 5, 2, 9, 4, 6, 5, 0, 3, 100, 50};
  EXPECT_EQ(gar_permutation(d.data(), 11, 3),
            (std::vector<int32_t>{3, 5, 4, 1, 2, 0, 6, 8, 7, 9, 10}));
}

}  // namespace
}  // namespace gptq
