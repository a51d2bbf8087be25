//===- NumericTest.cpp - Tests of the f16/bf16/e4m3 conversions -----------===//
//
// Known bit patterns, exhaustive e4m3 round trips and round-to-nearest-even
// tie cases for the hand-written conversions.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace kvopt::reference;

TEST(Numeric, RoundHalfEven) {
  EXPECT_EQ(roundHalfEven(0.5), 0.0);
  EXPECT_EQ(roundHalfEven(1.5), 2.0);
  EXPECT_EQ(roundHalfEven(2.5), 2.0);
  EXPECT_EQ(roundHalfEven(-0.5), 0.0);
  EXPECT_EQ(roundHalfEven(-1.5), -2.0);
  EXPECT_EQ(roundHalfEven(-2.5), -2.0);
  EXPECT_EQ(roundHalfEven(2.4999999999999996), 2.0);
  EXPECT_EQ(roundHalfEven(-0.49999999999999994), 0.0);
  EXPECT_EQ(roundHalfEven(0x1p60 + 0x1p8), 0x1p60 + 0x1p8);
}

TEST(Numeric, F16KnownBits) {
  EXPECT_EQ(toF16Bits(1.0), 0x3C00);
  EXPECT_EQ(toF16Bits(-2.0), 0xC000);
  EXPECT_EQ(toF16Bits(65504.0), 0x7BFF);
  EXPECT_EQ(toF16Bits(0x1p-14), 0x0400);   // smallest normal
  EXPECT_EQ(toF16Bits(0x1p-24), 0x0001);   // smallest subnormal
  EXPECT_EQ(toF16Bits(0x1p-25), 0x0000);   // tie to even: 0
  EXPECT_EQ(toF16Bits(0x1.8p-25), 0x0001); // above the tie
  EXPECT_EQ(toF16Bits(0.1), 0x2E66);
  EXPECT_EQ(toF16Bits(1.0 / 3.0), 0x3555);
  EXPECT_EQ(toF16Bits(-0.0), 0x8000);
  // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: even mantissa wins.
  EXPECT_EQ(toF16Bits(1.0 + 0x1p-11), 0x3C00);
  EXPECT_EQ(toF16Bits(1.0 + 0x1p-10 + 0x1p-11), 0x3C02);
  // Overflow: 65519.99 rounds down, 65520 is the tie that goes to inf.
  EXPECT_EQ(toF16Bits(65519.99), 0x7BFF);
  EXPECT_EQ(toF16Bits(65520.0), 0x7C00);
  EXPECT_EQ(toF16Bits(-INFINITY), 0xFC00);
  EXPECT_EQ(toF16Bits(NAN) & 0x7C00, 0x7C00);
  EXPECT_NE(toF16Bits(NAN) & 0x03FF, 0);
  EXPECT_EQ(fromF16Bits(0x3C00), 1.0);
  EXPECT_EQ(fromF16Bits(0x0001), 0x1p-24);
  EXPECT_EQ(fromF16Bits(0x7BFF), 65504.0);
  EXPECT_EQ(fromF16Bits(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(fromF16Bits(0x7E00)));
}

TEST(Numeric, BF16KnownBits) {
  EXPECT_EQ(toBF16Bits(1.0), 0x3F80);
  EXPECT_EQ(toBF16Bits(-2.0), 0xC000);
  EXPECT_EQ(toBF16Bits(0.1), 0x3DCD);
  EXPECT_EQ(toBF16Bits(3.140625), 0x4049);
  EXPECT_EQ(toBF16Bits(1.0 + 0x1p-8), 0x3F80);          // tie to even
  EXPECT_EQ(toBF16Bits(1.0 + 0x1p-7 + 0x1p-8), 0x3F82); // tie to even
  EXPECT_EQ(toBF16Bits(0x1p-133), 0x0001);              // smallest subnormal
  EXPECT_EQ(toBF16Bits(0x1.fep127), 0x7F7F);            // max finite
  EXPECT_EQ(toBF16Bits(0x1.ffp127), 0x7F80);            // tie above max: inf
  EXPECT_EQ(fromBF16Bits(0x3F80), 1.0);
  EXPECT_EQ(fromBF16Bits(0x7F7F), 0x1.fep127);
  EXPECT_EQ(fromBF16Bits(0xFF80), -INFINITY);
}

TEST(Numeric, F32MatchesHardwareConversion) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mantissa(-2.0, 2.0);
  std::uniform_int_distribution<int> exponent(-150, 126);
  for (int i = 0; i < 20000; ++i) {
    double x = std::ldexp(mantissa(rng), exponent(rng));
    // The host converts double to float with round-to-nearest-even.
    float expected = static_cast<float>(x);
    uint32_t bits;
    std::memcpy(&bits, &expected, sizeof bits);
    ASSERT_EQ(toF32Bits(x), bits) << "x = " << x;
    ASSERT_EQ(fromF32Bits(bits), static_cast<double>(expected));
  }
}

TEST(Numeric, F16AndBF16RoundTripEveryPattern) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    double h = fromF16Bits(static_cast<uint16_t>(bits));
    double b = fromBF16Bits(static_cast<uint16_t>(bits));
    if (!std::isnan(h)) {
      ASSERT_EQ(toF16Bits(h), bits);
    }
    if (!std::isnan(b)) {
      ASSERT_EQ(toBF16Bits(b), bits);
    }
  }
}

TEST(Numeric, E4M3KnownValues) {
  EXPECT_EQ(toE4M3Bits(1.0), 0x38);
  EXPECT_EQ(toE4M3Bits(448.0), 0x7E);
  EXPECT_EQ(toE4M3Bits(-448.0), 0xFE);
  EXPECT_EQ(toE4M3Bits(0x1p-9), 0x01);   // smallest subnormal
  EXPECT_EQ(toE4M3Bits(0x1p-6), 0x08);   // smallest normal
  EXPECT_EQ(toE4M3Bits(0x1p-10), 0x00);  // tie to even: 0
  EXPECT_EQ(toE4M3Bits(0x1.8p-9), 0x02); // tie 1.5 quanta: to 2 (even)
  EXPECT_EQ(toE4M3Bits(1.0625), 0x38);   // tie between 1 and 1.125
  EXPECT_EQ(toE4M3Bits(1.1875), 0x3A);   // tie between 1.125 and 1.25
  // Saturation: beyond the largest finite value, including infinity.
  EXPECT_EQ(toE4M3Bits(464.0), 0x7E);
  EXPECT_EQ(toE4M3Bits(1e9), 0x7E);
  EXPECT_EQ(toE4M3Bits(INFINITY), 0x7E);
  EXPECT_EQ(toE4M3Bits(-INFINITY), 0xFE);
  EXPECT_EQ(toE4M3Bits(NAN), 0x7F);
  EXPECT_EQ(fromE4M3Bits(0x7E), 448.0);
  EXPECT_EQ(fromE4M3Bits(0x01), 0x1p-9);
  EXPECT_EQ(fromE4M3Bits(0x07), 7 * 0x1p-9);
  EXPECT_EQ(fromE4M3Bits(0x78), 256.0);
  EXPECT_EQ(fromE4M3Bits(0x80), 0.0);
  EXPECT_TRUE(std::signbit(fromE4M3Bits(0x80)));
  EXPECT_TRUE(std::isnan(fromE4M3Bits(0x7F)));
  EXPECT_TRUE(std::isnan(fromE4M3Bits(0xFF)));
}

TEST(Numeric, E4M3AllCodesRoundTrip) {
  int nans = 0;
  double previous = -INFINITY;
  for (int code = 0; code < 256; ++code) {
    double value = fromE4M3Bits(static_cast<uint8_t>(code));
    if (std::isnan(value)) {
      ++nans;
      EXPECT_EQ(code & 0x7F, 0x7F);
      continue;
    }
    EXPECT_EQ(toE4M3Bits(value), code) << "code " << code;
    EXPECT_LE(std::fabs(value), 448.0);
    // Positive codes 0x00..0x7E are increasing.
    if (code < 0x7F) {
      EXPECT_GT(value, previous);
      previous = value;
    }
  }
  EXPECT_EQ(nans, 2);
}

TEST(Numeric, E4M3RoundsToNearest) {
  // Every double in range rounds to the nearest of the 253 finite values.
  std::vector<double> grid;
  for (int code = 0; code < 256; ++code)
    if (!std::isnan(fromE4M3Bits(static_cast<uint8_t>(code))))
      grid.push_back(fromE4M3Bits(static_cast<uint8_t>(code)));
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> dist(-460.0, 460.0);
  for (int i = 0; i < 20000; ++i) {
    double x = i % 2 ? dist(rng) : dist(rng) / 256.0;
    double rounded = roundToE4M3(x);
    double best = INFINITY;
    for (double g : grid)
      best = std::min(best, std::fabs(g - x));
    if (std::fabs(x) <= 448.0)
      ASSERT_EQ(std::fabs(rounded - x), best) << "x = " << x;
    else
      ASSERT_EQ(std::fabs(rounded), 448.0);
  }
}

TEST(Numeric, ScalarBytesAreLittleEndian) {
  uint8_t bytes[4] = {0, 0, 0, 0};
  writeScalarBytes(ScalarType::F16, 1.0, bytes);
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 0x3C);
  EXPECT_EQ(readScalarBytes(ScalarType::F16, bytes), 1.0);
  writeScalarBytes(ScalarType::F32, -2.5, bytes);
  EXPECT_EQ(bytes[3], 0xC0);
  EXPECT_EQ(bytes[2], 0x20);
  EXPECT_EQ(readScalarBytes(ScalarType::F32, bytes), -2.5);
  writeScalarBytes(ScalarType::BF16, 0.1, bytes);
  EXPECT_EQ(readScalarBytes(ScalarType::BF16, bytes), fromBF16Bits(0x3DCD));
}
