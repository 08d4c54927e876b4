// Checkpoint packing (spec 3.2 - 3.7): exact words of the worked example and the symmetric qzeros
// constants, the 3-bit cross-word layout, round trips and argument checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "quant/gptq.h"
#include "quant/pack.h"
#include "util/error.h"
#include "util/fp16.h"

namespace gptq {
namespace {

uint32_t u32(int32_t v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

TEST(Pack, WorkedExampleOfSpec37) {
  // W [N=2, K=8], 4-bit, group size 4, symmetric, RTN.
  const std::vector<float> w = {0.10f, -0.20f, 0.30f,  -0.40f, 0.05f, 0.15f,  -0.25f, 0.35f,
                                0.70f, 0.00f,  -0.35f, 0.14f,  0.02f, -0.01f, 0.03f,  0.04f};
  QuantConfig cfg;
  cfg.bits = 4;
  cfg.group_size = 4;
  cfg.sym = true;
  const GptqResult r = rtn_quantize(w.data(), 2, 8, cfg);
  EXPECT_EQ(r.codes, (std::vector<uint8_t>{10, 4, 14, 0, 9, 11, 3, 15,  //
                                           15, 8, 4, 10, 12, 6, 14, 15}));
  for (auto format : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
    const PackedLinear p = pack_linear(r.codes.data(), r.scales.data(), r.zeros.data(),
                                       r.g_idx.data(), 2, 8, r.groups, 4, 4, format);
    ASSERT_EQ(p.qweight_rows(), 1);
    ASSERT_EQ(p.qweight.size(), 2u);
    EXPECT_EQ(u32(p.qweight[0]), 0xF3B90E4Au);
    EXPECT_EQ(p.qweight[0], -205975990);
    EXPECT_EQ(u32(p.qweight[1]), 0xFE6CA48Fu);
    EXPECT_EQ(p.qweight[1], -26434417);
    ASSERT_EQ(p.qzeros.size(), 2u);  // [G = 2, ceil(2 * 4 / 32) = 1]
    const uint32_t z = format == CheckpointFormat::kGptq ? 0x77u : 0x88u;
    EXPECT_EQ(u32(p.qzeros[0]), z);
    EXPECT_EQ(u32(p.qzeros[1]), z);
    // [G, N] = [[0.05334, 0.0933], [0.04666, 0.005333]] as printed by torch; exact fp16 bits.
    const float shown[4] = {0.05334f, 0.0933f, 0.04666f, 0.005333f};
    const uint16_t bits[4] = {0x2AD4, 0x2DF9, 0x29F9, 0x1D76};
    ASSERT_EQ(p.scales.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(p.scales[i], bits[i]) << i;
      EXPECT_NEAR(f16_to_f32(p.scales[i]), shown[i], 5e-5f) << i;
    }
    EXPECT_EQ(p.g_idx, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1}));
    const std::vector<float> deq = dequantize_linear(p);
    const float expected[16] = {0.1067f,  -0.2134f, 0.3201f, -0.4268f, 0.0467f,  0.1400f,
                                -0.2333f, 0.3266f,  0.6533f, 0.0f,     -0.3733f, 0.1866f,
                                0.0213f,  -0.0107f, 0.0320f, 0.0373f};
    for (int i = 0; i < 16; ++i) EXPECT_NEAR(deq[i], expected[i], 1e-4f) << i;
  }
}

TEST(Pack, SymmetricQzerosConstants) {
  struct Case {
    int bits;
    std::vector<uint32_t> v1, v2;
  };
  const Case cases[] = {
      {2, {0x55555555u}, {0xAAAAAAAAu}},
      {3, {0xDB6DB6DBu, 0xB6DB6DB6u, 0x6DB6DB6Du}, {0x24924924u, 0x49249249u, 0x92492492u}},
      {4, {0x77777777u}, {0x88888888u}},
      {8, {0x7F7F7F7Fu}, {0x80808080u}},
  };
  const int64_t n = 32, k = 64;
  for (const Case& c : cases) {
    const int groups = 2;
    std::vector<uint8_t> codes(n * k, 0);
    std::vector<float> scales(groups * n, 0.01f), zeros(groups * n, float(1 << (c.bits - 1)));
    std::vector<int32_t> g_idx(k);
    for (int64_t i = 0; i < k; ++i) g_idx[i] = static_cast<int32_t>(i / 32);
    for (auto format : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
      const PackedLinear p = pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n,
                                         k, groups, c.bits, 32, format);
      ASSERT_EQ(p.qzeros_cols(), c.bits);
      const auto& want = format == CheckpointFormat::kGptq ? c.v1 : c.v2;
      for (int g = 0; g < groups; ++g) {
        for (int j = 0; j < c.bits; ++j) {
          EXPECT_EQ(u32(p.qzeros[g * c.bits + j]), want[j % want.size()])
              << "bits " << c.bits << " word " << j;
        }
      }
    }
  }
  // The int32 spellings of the spec table.
  EXPECT_EQ(int32_t(0xDB6DB6DBu), -613566757);
  EXPECT_EQ(int32_t(0xB6DB6DB6u), -1227133514);
  EXPECT_EQ(int32_t(0x6DB6DB6Du), 1840700269);
}

TEST(Pack, BitLayoutOfEveryWidth) {
  std::mt19937 rng(5);
  for (int bits : {2, 3, 4, 8}) {
    const int64_t k = 64, n = 3;
    std::vector<uint8_t> codes(k * n);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
    std::vector<int32_t> out((k * bits / 32) * n);
    pack_bits_columns(codes.data(), k, n, bits, out.data());
    for (int64_t col = 0; col < n; ++col) {
      auto code = [&](int64_t i) { return uint32_t(codes[i * n + col]); };
      for (int64_t t = 0; t < k / 32; ++t) {
        uint32_t w[8] = {};
        if (bits == 3) {  // the 10 | 1 | 10 | 1 | 10 table of spec 3.2
          for (int j = 0; j < 10; ++j) w[0] |= code(32 * t + j) << (3 * j);
          w[0] |= (code(32 * t + 10) & 3u) << 30;
          w[1] |= code(32 * t + 10) >> 2;
          for (int j = 11; j < 21; ++j) w[1] |= code(32 * t + j) << (3 * (j - 11) + 1);
          w[1] |= (code(32 * t + 21) & 1u) << 31;
          w[2] |= code(32 * t + 21) >> 1;
          for (int j = 22; j < 32; ++j) w[2] |= code(32 * t + j) << (3 * (j - 22) + 2);
        } else {  // qweight[r] = sum_j code[r*pf + j] << (b*j)
          const int pf = 32 / bits;
          for (int r = 0; r < bits; ++r)
            for (int j = 0; j < pf; ++j) w[r] |= code(32 * t + r * pf + j) << (bits * j);
        }
        for (int r = 0; r < bits; ++r) {
          EXPECT_EQ(u32(out[(t * bits + r) * n + col]), w[r]) << bits << " " << t << " " << r;
        }
      }
    }
    std::vector<uint8_t> back(k * n);
    unpack_bits_columns(out.data(), k, n, bits, back.data());
    EXPECT_EQ(back, codes);
  }
}

// Random packed layer: codes, zero points (all of 0..maxq, including 0 whose v1 field wraps),
// scales and g_idx (sequential or act-order style).
void round_trip(int bits, int64_t k, int64_t n, int group_size, bool act_order,
                CheckpointFormat format, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "bits " << bits << " K " << k << " N " << n << " gs "
                                    << group_size << " act_order " << act_order << " v"
                                    << (format == CheckpointFormat::kGptq ? 1 : 2));
  std::mt19937 rng(seed);
  const int maxq = (1 << bits) - 1;
  const int64_t gs = group_size > 0 ? group_size : k;
  const int64_t groups = (k + gs - 1) / gs;
  std::vector<uint8_t> codes(n * k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (maxq + 1));
  std::vector<float> scales(groups * n), zeros(groups * n);
  std::uniform_real_distribution<float> u(1e-3f, 0.1f);
  for (auto& s : scales) s = u(rng);
  for (auto& z : zeros) z = float(rng() % (maxq + 1));
  std::vector<int32_t> g_idx(k);
  std::vector<int32_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order) std::shuffle(perm.begin(), perm.end(), rng);
  for (int64_t j = 0; j < k; ++j) g_idx[perm[j]] = static_cast<int32_t>(j / gs);

  const PackedLinear p = pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n, k,
                                     groups, bits, group_size, format);
  ASSERT_EQ(p.qweight_rows(), (k * bits + 31) / 32);
  ASSERT_EQ(int64_t(p.qweight.size()), p.qweight_rows() * n);
  ASSERT_EQ(p.qzeros_cols(), (n * bits + 31) / 32);
  ASSERT_EQ(int64_t(p.qzeros.size()), groups * p.qzeros_cols());
  std::vector<uint8_t> codes_back;
  std::vector<int32_t> zeros_back;
  unpack_linear(p, &codes_back, &zeros_back);
  ASSERT_EQ(codes_back, codes);
  for (int64_t i = 0; i < groups * n; ++i) ASSERT_EQ(zeros_back[i], int32_t(zeros[i])) << i;
  EXPECT_EQ(p.g_idx, g_idx);
  const std::vector<float> deq = dequantize_linear(p);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const int64_t g = g_idx[c];
      const float s = f16_to_f32(f32_to_f16(scales[g * n + r]));
      ASSERT_EQ(deq[r * k + c], s * (float(codes[r * k + c]) - zeros[g * n + r]));
    }
  }
}

TEST(Pack, RoundTripAllWidthsFormatsAndShapes) {
  uint32_t seed = 1;
  for (int bits : {2, 3, 4, 8}) {
    for (auto format : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
      for (bool act : {false, true}) {
        round_trip(bits, 96, 64, 32, act, format, seed++);
        round_trip(bits, 160, 32, 64, act, format, seed++);    // short last group
        round_trip(bits, 40, 20, 16, act, format, seed++);     // K, N not multiples of 32 (ceil)
        round_trip(bits, 1000, 300, -1, act, format, seed++);  // several pack blocks and tiles
      }
    }
  }
}

TEST(Pack, AsymmetricZeroOfZeroInV1WrapsAndReadsBack) {
  const int64_t n = 8, k = 32;
  std::vector<uint8_t> codes(n * k, 3);
  std::vector<float> scales(n, 0.1f), zeros(n, 0.0f);
  std::vector<int32_t> g_idx(k, 0);
  const PackedLinear v1 = pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n, k,
                                      1, 4, -1, CheckpointFormat::kGptq);
  EXPECT_EQ(u32(v1.qzeros[0]), 0xFFFFFFFFu);  // field = (0 - 1) mod 16 = 15
  const PackedLinear v2 = pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n, k,
                                      1, 4, -1, CheckpointFormat::kGptqV2);
  EXPECT_EQ(v2.qzeros[0], 0);
  for (const PackedLinear* p : {&v1, &v2}) {
    std::vector<int32_t> z;
    unpack_linear(*p, nullptr, &z);
    EXPECT_EQ(z, std::vector<int32_t>(n, 0));
  }
}

TEST(Pack, PackedGptqResultDequantizesToTheSolverWeights) {
  const int64_t n = 64, k = 256;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(n * k), x(512 * k);
  for (auto& v : w) v = normal(rng);
  for (auto& v : x) v = normal(rng);
  HessianAccumulator acc(k);
  acc.add(x.data(), 512, 4);
  const std::vector<float> h = acc.finalize();
  for (bool desc : {false, true}) {
    QuantConfig cfg;
    cfg.bits = 3;
    cfg.group_size = 64;
    cfg.desc_act = desc;
    const GptqResult r = gptq_quantize(w.data(), n, k, h.data(), 4, cfg, "x");
    const PackedLinear p =
        pack_linear(r.codes.data(), r.scales.data(), r.zeros.data(), r.g_idx.data(), n, k, r.groups,
                    cfg.bits, cfg.group_size, CheckpointFormat::kGptq);
    const std::vector<float> deq = dequantize_linear(p);
    for (int64_t i = 0; i < n * k; ++i) {
      // Only the fp16 rounding of the scale separates the checkpoint from the solver's weights.
      ASSERT_NEAR(deq[i], r.dequant[i], 1e-3f * std::fabs(r.dequant[i]) + 1e-7f) << i;
    }
  }
}

TEST(Pack, RejectsInconsistentInputs) {
  const int64_t n = 4, k = 32;
  std::vector<uint8_t> codes(n * k, 1);
  std::vector<float> scales(n, 0.1f), zeros(n, 8.0f);
  std::vector<int32_t> g_idx(k, 0);
  auto pack = [&](int bits, int groups) {
    return pack_linear(codes.data(), scales.data(), zeros.data(), g_idx.data(), n, k, groups, bits,
                       -1, CheckpointFormat::kGptq);
  };
  EXPECT_NO_THROW(pack(4, 1));
  EXPECT_THROW(pack(5, 1), Error);
  EXPECT_THROW(pack(4, 2), Error);  // group count does not match group_size -1
  codes[7] = 16;
  EXPECT_THROW(pack(4, 1), Error);  // code above maxq
  codes[7] = 1;
  zeros[2] = 3.5f;
  EXPECT_THROW(pack(4, 1), Error);  // non-integral zero
  zeros[2] = 8.0f;
  g_idx[5] = 1;
  EXPECT_THROW(pack(4, 1), Error);  // g_idx outside [0, G)
  g_idx[5] = 0;
  PackedLinear bad = pack(4, 1);
  bad.qweight.pop_back();  // e.g. a truncated tensor read from a file
  EXPECT_THROW(dequantize_linear(bad), Error);
  scales[1] = 1e6f;
  try {
    pack(4, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kNumerical);  // scale overflows fp16
  }
}

}  // namespace
}  // namespace gptq
