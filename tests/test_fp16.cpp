// F16/BF16 <-> F32: exhaustive round trips, the scalar reference against known values, and every
// compiled Highway target against the scalar reference (random, edge and tail cases).
#include "util/fp16.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace gptq {
namespace {

uint32_t bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
float from_bits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
bool f16_is_nan(uint16_t h) {
  return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
}
bool bf16_is_nan(uint16_t h) {
  return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
}

// Runs `body` once per Highway target compiled in and supported by this CPU, with dispatch forced
// to that target.
template <class F>
void for_each_target(F body) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Fp16Scalar, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to 65536: even is inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // halfway: even is zero
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);     // 1.5 ulp: up to even
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // largest subnormal rounds up
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // halfway: stays even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_EQ(bits(f16_to_f32(0x7c01)), 0x7fc02000u);  // quieted, payload kept (as F16C)
  EXPECT_EQ(f32_to_f16(from_bits(0x7f802001u)), 0x7e01);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // halfway: even
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // FLT_MAX overflows to inf
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);  // subnormal kept
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f800001u)), 0x7fc0);  // NaN with low payload stays NaN
}

TEST(Fp16, AllHalfPatternsRoundTrip) {
  std::vector<uint16_t> all(65536), back(65536);
  std::vector<float> wide(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  for_each_target([&] {
    f16_to_f32(all.data(), wide.data(), all.size());
    f32_to_f16(wide.data(), back.data(), wide.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      const uint16_t h = all[i];
      ASSERT_EQ(bits(wide[i]), bits(f16_to_f32(h))) << std::hex << h;
      if (f16_is_nan(h)) {
        ASSERT_TRUE(std::isnan(wide[i])) << std::hex << h;
        ASSERT_TRUE(f16_is_nan(back[i])) << std::hex << h;
        ASSERT_EQ(back[i] & 0x8000, h & 0x8000) << std::hex << h;
      } else {
        ASSERT_EQ(back[i], h) << std::hex << h;
        ASSERT_EQ(f32_to_f16(f16_to_f32(h)), h) << std::hex << h;
      }
    }
  });
}

TEST(Fp16, AllBf16PatternsRoundTrip) {
  std::vector<uint16_t> all(65536), back(65536);
  std::vector<float> wide(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  for_each_target([&] {
    bf16_to_f32(all.data(), wide.data(), all.size());
    f32_to_bf16(wide.data(), back.data(), wide.size());
    for (uint32_t i = 0; i < 65536; ++i) {
      const uint16_t h = all[i];
      ASSERT_EQ(bits(wide[i]), static_cast<uint32_t>(h) << 16) << std::hex << h;
      if (bf16_is_nan(h)) {
        ASSERT_TRUE(bf16_is_nan(back[i])) << std::hex << h;
      } else {
        ASSERT_EQ(back[i], h) << std::hex << h;
      }
    }
  });
}

// Random floats of every magnitude plus the edges where rounding changes behaviour.
std::vector<float> edge_and_random_floats(size_t n_random) {
  std::vector<uint32_t> edges = {0x00000000u, 0x00000001u, 0x007fffffu, 0x00800000u, 0x33000000u,
                                 0x33000001u, 0x32ffffffu, 0x33400000u, 0x38800000u, 0x387fffffu,
                                 0x387fe000u, 0x387ff000u, 0x387fefffu, 0x477fe000u, 0x477fefffu,
                                 0x477ff000u, 0x477ff001u, 0x477fffffu, 0x47800000u, 0x7f7fffffu,
                                 0x7f800000u, 0x7f800001u, 0x7fc00000u, 0x7fffffffu, 0x3f801000u,
                                 0x3f803000u, 0x3f800fffu, 0x3f801001u, 0x3f808000u, 0x3f818000u};
  std::vector<float> v;
  for (uint32_t e : edges) {
    v.push_back(from_bits(e));
    v.push_back(from_bits(e | 0x80000000u));
  }
  // Halfway and near-halfway cases around every f16 value (including subnormals).
  for (uint32_t h = 0; h < 0x7c00; h += 7) {
    const float a = f16_to_f32(static_cast<uint16_t>(h));
    const float b = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = a + (b - a) / 2;  // exact: a and b are f16 values
    v.push_back(mid);
    v.push_back(std::nextafter(mid, 0.0f));
    v.push_back(std::nextafter(mid, INFINITY));
    v.push_back(-mid);
  }
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_int_distribution<int> exp_in_f16(-30, 17);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  for (size_t i = 0; i < n_random; ++i) {
    if (i % 2 == 0) {
      v.push_back(from_bits(any_bits(rng)));
    } else {
      const float f = std::ldexp(mant(rng), exp_in_f16(rng));
      v.push_back(i % 4 == 1 ? f : -f);
    }
  }
  return v;
}

TEST(Fp16, F32ToHalfMatchesScalarOnMillionsOfFloats) {
  const std::vector<float> in = edge_and_random_floats(4'000'000);
  std::vector<uint16_t> out(in.size());
  for_each_target([&] {
    f32_to_f16(in.data(), out.data(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(out[i], f32_to_f16(in[i])) << "f16 of bits 0x" << std::hex << bits(in[i]);
    }
    f32_to_bf16(in.data(), out.data(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(out[i], f32_to_bf16(in[i])) << "bf16 of bits 0x" << std::hex << bits(in[i]);
    }
  });
}

TEST(Fp16, F32ToHalfIsRoundToNearestEven) {
  // Independent check of the reference: the result is the nearest f16 (ties to even mantissa).
  const std::vector<float> in = edge_and_random_floats(200'000);
  for (float f : in) {
    if (std::isnan(f)) continue;
    const uint16_t h = f32_to_f16(f);
    const double x = std::fabs(static_cast<double>(f));
    if (x >= 65520.0) {
      ASSERT_EQ(h & 0x7fff, 0x7c00) << f;
      continue;
    }
    const double got = std::fabs(static_cast<double>(f16_to_f32(h)));
    const double next =
        std::fabs(static_cast<double>(f16_to_f32(static_cast<uint16_t>((h & 0x7fff) + 1))));
    const double prev =
        (h & 0x7fff) == 0
            ? -1.0
            : std::fabs(static_cast<double>(f16_to_f32(static_cast<uint16_t>((h & 0x7fff) - 1))));
    ASSERT_LE(std::fabs(got - x), std::fabs(next - x)) << f;
    if (prev >= 0) {
      ASSERT_LE(std::fabs(got - x), std::fabs(prev - x)) << f;
    }
    if (std::fabs(got - x) == std::fabs(next - x) && got != next) {
      ASSERT_EQ(h & 1, 0) << f;
    }
  }
}

TEST(Fp16, VectorEqualsScalarForEveryLengthAndOffset) {
  std::vector<float> src = edge_and_random_floats(1000);
  for_each_target([&] {
    for (size_t offset = 0; offset < 3; ++offset) {
      for (size_t n = 0; n <= 100; ++n) {
        const float* in = src.data() + offset;
        std::vector<uint16_t> h(n + 1, 0xabcd), hb(n + 1, 0xabcd);
        std::vector<float> f(n + 1, -7.0f), fb(n + 1, -7.0f);
        f32_to_f16(in, h.data(), n);
        f32_to_bf16(in, hb.data(), n);
        f16_to_f32(h.data(), f.data(), n);
        bf16_to_f32(hb.data(), fb.data(), n);
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(h[i], f32_to_f16(in[i])) << "n=" << n << " i=" << i;
          ASSERT_EQ(hb[i], f32_to_bf16(in[i])) << "n=" << n << " i=" << i;
          ASSERT_EQ(bits(f[i]), bits(f16_to_f32(h[i]))) << "n=" << n << " i=" << i;
          ASSERT_EQ(bits(fb[i]), bits(bf16_to_f32(hb[i]))) << "n=" << n << " i=" << i;
        }
        // Nothing written past the end.
        ASSERT_EQ(h[n], 0xabcd);
        ASSERT_EQ(hb[n], 0xabcd);
        ASSERT_EQ(f[n], -7.0f);
        ASSERT_EQ(fb[n], -7.0f);
      }
    }
  });
}

TEST(Fp16, DispatchCoversSeveralTargets) {
  // Informational: which targets were exercised above.
  std::string names;
  for (int64_t t : hwy::SupportedAndGeneratedTargets())
    names += std::string(hwy::TargetName(t)) + " ";
  RecordProperty("targets", names);
  EXPECT_FALSE(hwy::SupportedAndGeneratedTargets().empty());
}

}  // namespace
}  // namespace gptq
