// The quantization grid (spec 2.3), the code function, RTN and QuantConfig::validate.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "quant/gptq.h"
#include "util/error.h"

namespace gptq {
namespace {

QuantConfig config(int bits, bool sym, int group_size = -1) {
  QuantConfig c;
  c.bits = bits;
  c.sym = sym;
  c.group_size = group_size;
  return c;
}

TEST(Grid, SymmetricUsesTheLargerMagnitudeAndMidpointZero) {
  const std::vector<float> row = {0.1f, -0.4f, 0.3f, -0.2f};
  const GridParams g = find_grid(row.data(), 1, 4, 4, config(4, true));
  EXPECT_EQ(g.scale[0], 0.8f / 15.0f);  // (0.4 - (-0.4)) / 15
  EXPECT_EQ(g.zero[0], 8.0f);
  for (int bits : {2, 3, 8}) {
    const GridParams gb = find_grid(row.data(), 1, 4, 4, config(bits, true));
    EXPECT_EQ(gb.zero[0], float(1 << (bits - 1))) << bits;  // 2, 4, 128
    EXPECT_EQ(gb.scale[0], 0.8f / float((1 << bits) - 1)) << bits;
  }
  // +xmax lands on code maxq + 1 and is clipped: 4-bit +xmax -> 7 * scale = 14/15 xmax.
  const int code = quantize_code(0.4f, g.scale[0], g.zero[0], 15);
  EXPECT_EQ(code, 15);
  EXPECT_FLOAT_EQ(dequantize_code(code, g.scale[0], g.zero[0]), 0.4f * 14.0f / 15.0f);
}

TEST(Grid, AsymmetricRoundsTheZeroPoint) {
  const std::vector<float> row = {-0.2f, 0.6f, 0.1f};
  const GridParams g = find_grid(row.data(), 1, 3, 3, config(4, false));
  EXPECT_EQ(g.scale[0], 0.8f / 15.0f);
  EXPECT_EQ(g.zero[0], 4.0f);  // round(0.2 / 0.05333) = round(3.75)
  // All-positive row: xmin stays 0 -> zero 0 (asym).
  const std::vector<float> pos = {0.3f, 0.9f};
  const GridParams gp = find_grid(pos.data(), 1, 2, 2, config(4, false));
  EXPECT_EQ(gp.scale[0], 0.9f / 15.0f);
  EXPECT_EQ(gp.zero[0], 0.0f);
}

TEST(Grid, SymmetricAllPositiveRowKeepsZeroMinimum) {
  // No negative value: xmin = 0 is not mirrored, scale = xmax / maxq with zero 8, so only
  // [0, 7/15 xmax] is representable and larger values clip (the reference quirk).
  const std::vector<float> row = {0.1f, 0.5f, 0.2f};
  const GridParams g = find_grid(row.data(), 1, 3, 3, config(4, true));
  EXPECT_EQ(g.scale[0], 0.5f / 15.0f);
  EXPECT_EQ(g.zero[0], 8.0f);
  EXPECT_EQ(quantize_code(0.5f, g.scale[0], g.zero[0], 15), 15);
  EXPECT_FLOAT_EQ(dequantize_code(15, g.scale[0], g.zero[0]), 7.0f * 0.5f / 15.0f);
  EXPECT_EQ(quantize_code(0.1f, g.scale[0], g.zero[0], 15), 11);  // round(3) + 8
}

TEST(Grid, AllZeroRowGetsTheUnitRange) {
  const std::vector<float> row(5, 0.0f);
  const GridParams s = find_grid(row.data(), 1, 5, 5, config(4, true));
  EXPECT_EQ(s.scale[0], 2.0f / 15.0f);
  EXPECT_EQ(s.zero[0], 8.0f);
  const GridParams a = find_grid(row.data(), 1, 5, 5, config(4, false));
  EXPECT_EQ(a.scale[0], 2.0f / 15.0f);
  // round(1 / fl(2/15)): in float 1 / 0.13333334 = 7.4999995, so 7 (torch gives the same).
  EXPECT_EQ(a.zero[0], 7.0f);
  EXPECT_EQ(quantize_code(0.0f, a.scale[0], a.zero[0], 15), 7);
  const GridParams a3 = find_grid(row.data(), 1, 5, 5, config(3, false));
  EXPECT_EQ(a3.zero[0], 3.0f);  // 1 / fl(2/7) = 3.4999998 -> 3
  const GridParams a2 = find_grid(row.data(), 1, 5, 5, config(2, false));
  EXPECT_EQ(a2.zero[0], 2.0f);  // 1 / fl(2/3) = 1.5 -> 2 (half to even)
}

TEST(Grid, RowsAndStride) {
  // Two rows of a [2, 6] matrix, grid over columns 2..4.
  const std::vector<float> m = {9, 9, 1, -2, 0.5f, 9, 9, 9, 0, 0, 0, 9};
  const GridParams g = find_grid(m.data() + 2, 2, 3, 6, config(4, true));
  EXPECT_EQ(g.scale[0], 4.0f / 15.0f);
  EXPECT_EQ(g.scale[1], 2.0f / 15.0f);
}

TEST(Quantize, RoundsHalfToEven) {
  // scale 1 (exact), zero 8: x + 8 rounded half-to-even.
  EXPECT_EQ(quantize_code(0.5f, 1.0f, 8.0f, 15), 8);
  EXPECT_EQ(quantize_code(1.5f, 1.0f, 8.0f, 15), 10);
  EXPECT_EQ(quantize_code(2.5f, 1.0f, 8.0f, 15), 10);
  EXPECT_EQ(quantize_code(-0.5f, 1.0f, 8.0f, 15), 8);
  EXPECT_EQ(quantize_code(-1.5f, 1.0f, 8.0f, 15), 6);
  EXPECT_EQ(quantize_code(-2.5f, 1.0f, 8.0f, 15), 6);
  EXPECT_EQ(quantize_code(3.75f, 1.0f, 8.0f, 15), 12);  // not halfway
  EXPECT_EQ(quantize_code(-7.5f, 1.0f, 8.0f, 15), 0);   // -8 + 8
  EXPECT_EQ(quantize_code(7.5f, 1.0f, 8.0f, 15), 15);   // 8 + 8 clipped
  EXPECT_EQ(quantize_code(-100.f, 1.0f, 8.0f, 15), 0);
  EXPECT_EQ(quantize_code(1e30f, 1e-30f, 8.0f, 15), 15);
  EXPECT_EQ(quantize_code(0.0f, 0.0f, 8.0f, 15), 0);  // 0/0: NaN lands on 0, no UB
}

TEST(Quantize, MatchesNearbyintEverywhere) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> mag(-30.0f, 30.0f);
  for (int i = 0; i < 200000; ++i) {
    const float v = std::ldexp(i % 2 ? 1.0f : -1.0f, int(mag(rng))) * (1 + (i % 97) / 97.0f);
    const float half = std::floor(v) + 0.5f;  // exact halfway cases too
    for (float x : {v, half}) {
      for (int maxq : {3, 7, 15, 255}) {
        const float zero = float((maxq + 1) / 2);
        float ref = std::nearbyint(x) + zero;
        ref = std::fmin(std::fmax(ref, 0.0f), float(maxq));
        ASSERT_EQ(quantize_code(x, 1.0f, zero, maxq), int(ref)) << x;
      }
    }
  }
}

TEST(Grid, MseSearchLowersTheError) {
  // A row with one outlier: shrinking the range trades the outlier for the bulk.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const int64_t cols = 128;
  std::vector<float> row(cols);
  for (auto& v : row) v = normal(rng);
  row[17] = 0.09f;
  for (bool sym : {true, false}) {
    for (int bits : {2, 3, 4}) {
      QuantConfig plain = config(bits, sym), mse = plain;
      mse.mse_norm = 2.4;
      const GridParams gp = find_grid(row.data(), 1, cols, cols, plain);
      const GridParams gm = find_grid(row.data(), 1, cols, cols, mse);
      auto err = [&](const GridParams& g) {
        double e = 0;
        for (float x : row) {
          const float q = dequantize_code(quantize_code(x, g.scale[0], g.zero[0], plain.maxq()),
                                          g.scale[0], g.zero[0]);
          e += std::pow(std::fabs(q - x), 2.4);
        }
        return e;
      };
      std::printf("bits %d sym %d: sum |Q(x)-x|^2.4 min/max %.4g, MSE-searched %.4g\n", bits,
                  int(sym), err(gp), err(gm));
      EXPECT_LT(err(gm), err(gp)) << "bits " << bits << " sym " << sym;
      EXPECT_LT(gm.scale[0], gp.scale[0]);
      EXPECT_EQ(gm.zero[0], std::nearbyint(gm.zero[0]));
    }
  }
}

TEST(Rtn, UsesTheGridOfEachGroup) {
  const int64_t n = 3, k = 10;
  std::vector<float> w(n * k);
  for (int64_t i = 0; i < n * k; ++i) w[i] = std::sin(0.7f * float(i)) * float(1 + i % 3);
  const QuantConfig cfg = config(3, false, 4);  // groups 0-3, 4-7, 8-9 (short)
  const GptqResult r = rtn_quantize(w.data(), n, k, cfg);
  ASSERT_EQ(r.groups, 3);
  EXPECT_EQ(r.g_idx, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}));
  for (int64_t g = 0; g < 3; ++g) {
    const int64_t c0 = g * 4, c1 = std::min<int64_t>(k, c0 + 4);
    const GridParams gp = find_grid(w.data() + c0, n, c1 - c0, k, cfg);
    for (int64_t row = 0; row < n; ++row) {
      EXPECT_EQ(r.scales[g * n + row], gp.scale[row]);
      EXPECT_EQ(r.zeros[g * n + row], gp.zero[row]);
      for (int64_t c = c0; c < c1; ++c) {
        const int code = quantize_code(w[row * k + c], gp.scale[row], gp.zero[row], 7);
        EXPECT_EQ(r.codes[row * k + c], code);
        EXPECT_EQ(r.dequant[row * k + c], dequantize_code(code, gp.scale[row], gp.zero[row]));
      }
    }
  }
  const GptqResult whole = rtn_quantize(w.data(), n, k, config(4, true, -1));
  EXPECT_EQ(whole.groups, 1);
  EXPECT_EQ(whole.g_idx, std::vector<int32_t>(k, 0));
}

void expect_usage_error(const QuantConfig& c, const std::string& needle) {
  try {
    c.validate();
    FAIL() << "expected an error mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantConfig, ValidateNamesTheOption) {
  QuantConfig ok;
  EXPECT_NO_THROW(ok.validate());
  QuantConfig c = ok;
  c.bits = 5;
  expect_usage_error(c, "--bits 5: must be one of 2, 3, 4, 8");
  c = ok;
  c.group_size = 0;
  expect_usage_error(c, "--group-size 0");
  c.group_size = -2;
  expect_usage_error(c, "--group-size -2");
  c = ok;
  c.damp_percent = 1.0;
  expect_usage_error(c, "--damp 1");
  c.damp_percent = 0.0;
  expect_usage_error(c, "--damp 0");
  c = ok;
  c.act_group_aware = true;
  c.desc_act = true;
  expect_usage_error(c, "--act-group-aware");
  c.desc_act = false;
  c.group_size = -1;
  expect_usage_error(c, "--act-group-aware");
  c = ok;
  c.mse_norm = -1;
  expect_usage_error(c, "--mse");
  c = ok;
  c.damp_auto_increment = -0.1;
  expect_usage_error(c, "--damp-auto-increment");
  c = ok;
  c.block_size = 0;
  expect_usage_error(c, "--block-size");
  c = ok;
  c.group_size = -1;
  c.desc_act = true;
  c.static_groups = true;
  EXPECT_NO_THROW(c.validate());
}

}  // namespace
}  // namespace gptq
