//===- QuantizeTest.cpp - Tests of the reference KV quantization ----------===//
//
// Hand-computed codes and scales, per-element error bounds for every
// encoding, exact windows, zero groups and code packing.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <cmath>

using namespace kvopt::reference;
using namespace kvopt::reference::test;

namespace {

Tensor tensor3(std::vector<int64_t> shape, std::vector<double> values) {
  Tensor t(std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  t.values() = std::move(values);
  return t;
}

QuantEncoding encodingOf(QuantKind kind, QuantAxis axis, int64_t group,
                         bool symmetric, ScalarType scaleType) {
  QuantEncoding e;
  e.kind = kind;
  e.axis = axis;
  e.group = group;
  e.symmetric = symmetric;
  e.scaleType = scaleType;
  return e;
}

/// Unit roundoff of a scale type.
double unitRoundoff(ScalarType type) {
  switch (type) {
  case ScalarType::F16:
    return 0x1p-11;
  case ScalarType::BF16:
    return 0x1p-8;
  case ScalarType::F32:
    return 0x1p-24;
  }
  return 0;
}

} // namespace

TEST(Quantize, Int4SymmetricTokenHandComputed) {
  // absmax 7 and qmax 7 give scale 1; -3.5 and 2.5 are ties to even.
  Tensor x = tensor3({1, 1, 4}, {7.0, -3.5, 2.5, 0.4});
  QuantEncoding e =
      encodingOf(QuantKind::Int4, QuantAxis::Token, 0, true, ScalarType::F16);
  QuantizedTensor q = quantize(x, e);
  EXPECT_EQ(q.scales, std::vector<double>({1.0}));
  EXPECT_TRUE(q.zeros.empty());
  EXPECT_EQ(q.codes, std::vector<uint8_t>({7, 0xC, 2, 0}));
  EXPECT_EQ(dequantize(q, e).values(), std::vector<double>({7, -4, 2, 0}));
}

TEST(Quantize, Int2AsymmetricHandComputed) {
  // range 3 over qmax 3 gives scale 1, zero point -1.
  Tensor x = tensor3({1, 1, 4}, {-1.0, 0.5, 1.5, 2.0});
  QuantEncoding e =
      encodingOf(QuantKind::Int2, QuantAxis::Token, 0, false, ScalarType::F32);
  QuantizedTensor q = quantize(x, e);
  EXPECT_EQ(q.scales, std::vector<double>({1.0}));
  EXPECT_EQ(q.zeros, std::vector<double>({-1.0}));
  EXPECT_EQ(q.codes, std::vector<uint8_t>({0, 2, 2, 3}));
  EXPECT_EQ(dequantize(q, e).values(), std::vector<double>({-1, 1, 1, 2}));
}

TEST(Quantize, Int4ChannelAxisHandComputed) {
  // x[3 tokens][1 head][2 channels], groups of 2 tokens: {0, 1} and {2}.
  Tensor x = tensor3({3, 1, 2}, {1.0, -7.0, 3.5, 0.5, -14.0, 0.0});
  QuantEncoding e =
      encodingOf(QuantKind::Int4, QuantAxis::Channel, 2, true, ScalarType::F16);
  QuantizedTensor q = quantize(x, e);
  // scales[2 token groups][1][2]: 3.5/7, 7/7, 14/7, and 1 for the zero group.
  EXPECT_EQ(q.scales, std::vector<double>({0.5, 1.0, 2.0, 1.0}));
  EXPECT_EQ(q.codes, std::vector<uint8_t>({2, 0x9, 7, 0, 0x9, 0}));
  EXPECT_EQ(dequantize(q, e).values(),
            std::vector<double>({1.0, -7.0, 3.5, 0.0, -14.0, 0.0}));
}

TEST(Quantize, Fp8HandComputed) {
  Tensor x = tensor3({1, 1, 4}, {448.0, -1.0, 0.0, 3.0});
  QuantEncoding e = encodingOf(QuantKind::Fp8E4M3, QuantAxis::Token, 0, true,
                               ScalarType::F32);
  QuantizedTensor q = quantize(x, e);
  EXPECT_EQ(q.scales, std::vector<double>({1.0}));
  EXPECT_EQ(q.codes, std::vector<uint8_t>({0x7E, 0xB8, 0x00, 0x44}));
}

TEST(Quantize, ScaleIsRoundedBeforeCodes) {
  // absmax 1, int8: the exact scale 1/127 rounds to 1.0078125 * 2^-7 in
  // bf16. x = 0.79131 sits at 100.497 exact scales (code 100) but at
  // 100.503 rounded scales: the code must come from the rounded scale.
  double x0 = roundToScalar(ScalarType::F32, 0.79131);
  Tensor x = tensor3({1, 1, 2}, {1.0, x0});
  QuantEncoding e =
      encodingOf(QuantKind::Int8, QuantAxis::Token, 0, true, ScalarType::BF16);
  QuantizedTensor q = quantize(x, e);
  double scale = 1.0078125 * 0x1p-7;
  EXPECT_EQ(q.scales[0], scale);
  EXPECT_EQ(q.codes[1], 101);
  EXPECT_EQ(dequantize(q, e).values()[1], 101 * scale);
}

TEST(Quantize, AsymmetricCodesClampWhenTheZeroPointRoundsUp) {
  // lo = 1 + 3 * 2^-12 rounds up to z = 1 + 2^-10 in f16; with s = 2^-12,
  // (lo - z) / s = -1 must clamp to code 0 (x' = z), not wrap around.
  double lo = 1.0 + 3 * 0x1p-12, hi = lo + 3 * 0x1p-12;
  Tensor x = tensor3({1, 1, 2}, {lo, hi});
  QuantEncoding e =
      encodingOf(QuantKind::Int2, QuantAxis::Token, 0, false, ScalarType::F16);
  QuantizedTensor q = quantize(x, e);
  EXPECT_EQ(q.scales[0], 0x1p-12);
  EXPECT_EQ(q.zeros[0], 1.0 + 0x1p-10);
  EXPECT_EQ(q.codes, std::vector<uint8_t>({0, 2}));
  EXPECT_EQ(dequantize(q, e).values(),
            std::vector<double>({1.0 + 0x1p-10, hi}));
}

TEST(Quantize, ZeroAndConstantGroupsUseScaleOne) {
  for (bool symmetric : {true, false}) {
    QuantEncoding e = encodingOf(QuantKind::Int4, QuantAxis::Token, 2,
                                 symmetric, ScalarType::F16);
    Tensor x = tensor3({1, 1, 4}, {0.0, 0.0, 0.3125, 0.3125});
    QuantizedTensor q = quantize(x, e);
    EXPECT_EQ(q.scales[0], 1.0);
    Tensor back = dequantize(q, e);
    EXPECT_EQ(back.values()[0], 0.0);
    EXPECT_EQ(back.values()[1], 0.0);
    // A constant group: the symmetric scale is 0.3125 / 7 rounded, the
    // asymmetric one has zero range, so scale 1 and x' = z = 0.3125.
    if (!symmetric) {
      EXPECT_EQ(q.scales[1], 1.0);
      EXPECT_EQ(back.values()[2], 0.3125);
    }
    for (double value : back.values())
      EXPECT_TRUE(std::isfinite(value));
  }
}

TEST(Quantize, ErrorBoundedByHalfScaleForEveryEncoding) {
  const QuantKind kinds[] = {QuantKind::Int8, QuantKind::Fp8E4M3,
                             QuantKind::Int4, QuantKind::Int2};
  const ScalarType scaleTypes[] = {ScalarType::F16, ScalarType::BF16,
                                   ScalarType::F32};
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (QuantKind kind : kinds)
      for (QuantAxis axis : {QuantAxis::Token, QuantAxis::Channel})
        for (bool symmetric : {true, false})
          for (ScalarType scaleType : scaleTypes) {
            if (kind == QuantKind::Fp8E4M3 && !symmetric)
              continue;
            int64_t tokens = randomInt(rng, 1, 40),
                    heads = randomInt(rng, 1, 3);
            int64_t dim = 8 * randomInt(rng, 1, 4);
            int64_t group = axis == QuantAxis::Token
                                ? (randomInt(rng, 0, 1) ? 0 : 8)
                                : randomInt(rng, 1, 9);
            QuantEncoding e =
                encodingOf(kind, axis, group, symmetric, scaleType);
            // Offsets make asymmetric groups matter (not centred on zero).
            double offset = symmetric ? 0.0 : randomInt(rng, -3, 3);
            Tensor x = randomTensor(rng, {tokens, heads, dim}, offset - 2.0,
                                    offset + 2.0, ScalarType::F16);
            QuantizedTensor q = quantize(x, e);
            Tensor back = dequantize(q, e);
            std::vector<double> groupMin(q.scales.size(), INFINITY);
            for (int64_t t = 0; t < tokens; ++t)
              for (int64_t h = 0; h < heads; ++h)
                for (int64_t d = 0; d < dim; ++d) {
                  double &lo = groupMin[scaleIndex(e, q, t, h, d)];
                  lo = std::min(lo, x.at({t, h, d}));
                }
            double qmax = quantMax(kind, symmetric);
            double u = unitRoundoff(scaleType);
            for (int64_t t = 0; t < tokens; ++t)
              for (int64_t h = 0; h < heads; ++h)
                for (int64_t d = 0; d < dim; ++d) {
                  int64_t s = scaleIndex(e, q, t, h, d);
                  double scale = q.scales[s];
                  double value = x.at({t, h, d});
                  double err = std::fabs(value - back.at({t, h, d}));
                  // s/2 from rounding; qmax * s * u when the rounded scale
                  // clamps the group's extreme; f32 steps add ~2^-23.
                  double clamp = qmax * scale * (u + 0x1p-22);
                  double bound;
                  if (kind == QuantKind::Fp8E4M3) {
                    bound = std::fabs(value) * (0x1p-4 + 0x1p-22) +
                            scale * 0x1p-10 + clamp;
                  } else {
                    bound = scale / 2 + clamp;
                    // The zero point's rounding shifts the whole grid.
                    if (!symmetric)
                      bound += std::fabs(q.zeros[s] - groupMin[s]);
                  }
                  ASSERT_LE(err, bound * (1 + 1e-12))
                      << "seed " << seed << " kind " << int(kind) << " axis "
                      << int(axis) << " sym " << symmetric << " scale type "
                      << scalarTypeName(scaleType) << " at " << t << "," << h
                      << "," << d;
                  // Codes stay in their documented range.
                  uint8_t code = q.codes[x.offset({t, h, d})];
                  if (kind != QuantKind::Fp8E4M3) {
                    double c = codeValue(e, code);
                    EXPECT_LE(std::fabs(c - (symmetric ? 0 : qmax / 2)),
                              symmetric ? qmax : qmax / 2 + 0.5);
                  } else {
                    EXPECT_NE(code & 0x7F, 0x7F);
                  }
                }
          }
  }
}

TEST(Quantize, ScalesAndZerosAreRepresentableInTheScaleType) {
  std::mt19937_64 rng(5);
  for (ScalarType type : {ScalarType::F16, ScalarType::BF16, ScalarType::F32}) {
    QuantEncoding e =
        encodingOf(QuantKind::Int4, QuantAxis::Channel, 3, false, type);
    Tensor x = randomTensor(rng, {10, 2, 16}, -3.0, 5.0);
    QuantizedTensor q = quantize(x, e);
    for (size_t i = 0; i < q.scales.size(); ++i) {
      EXPECT_EQ(roundToScalar(type, q.scales[i]), q.scales[i]);
      EXPECT_EQ(roundToScalar(type, q.zeros[i]), q.zeros[i]);
    }
    // Re-encoding every element from the stored parameters gives the
    // stored codes: a dequantizing kernel needs nothing else.
    for (int64_t t = 0; t < 10; ++t)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t d = 0; d < 16; ++d) {
          int64_t s = scaleIndex(e, q, t, h, d);
          QuantParams params{q.scales[s], q.zeros[s]};
          EXPECT_EQ(encodeQuant(e, params, x.at({t, h, d})),
                    q.codes[x.offset({t, h, d})]);
        }
  }
}

TEST(Quantize, RecentAndSinkTokensAreExact) {
  std::mt19937_64 rng(9);
  Tensor x = randomTensor(rng, {12, 2, 8});
  QuantEncoding plain = encodingOf(QuantKind::Int2, QuantAxis::Channel, 4,
                                   false, ScalarType::F16);
  QuantEncoding windowed = plain;
  windowed.recent = 3;
  windowed.sinks = 2;
  // Windows do not change the storage (scales include window tokens) ...
  QuantizedTensor q = quantize(x, windowed);
  QuantizedTensor qPlain = quantize(x, plain);
  EXPECT_EQ(q.codes, qPlain.codes);
  EXPECT_EQ(q.scales, qPlain.scales);
  // ... only the view: tokens 0, 1 and 9, 10, 11 are exact.
  Tensor view = dequantize(q, windowed, &x);
  Tensor quantized = dequantize(qPlain, plain);
  for (int64_t t = 0; t < 12; ++t) {
    bool exact = t < 2 || t >= 9;
    EXPECT_EQ(isFullPrecisionToken(windowed, t, 12), exact);
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t d = 0; d < 8; ++d)
        EXPECT_EQ(view.at({t, h, d}),
                  exact ? x.at({t, h, d}) : quantized.at({t, h, d}));
  }
  EXPECT_EQ(maxAbsDiff(quantizeDequantize(x, windowed), view), 0.0);
}

TEST(Quantize, PackingOrder) {
  // int4: low nibble first; int2: lowest bits first; partial bytes padded.
  std::vector<uint8_t> int4 = {0x1, 0x2, 0xF, 0x8, 0x5};
  EXPECT_EQ(packCodes(QuantKind::Int4, int4),
            std::vector<uint8_t>({0x21, 0x8F, 0x05}));
  std::vector<uint8_t> int2 = {1, 2, 3, 0, 3};
  EXPECT_EQ(packCodes(QuantKind::Int2, int2),
            std::vector<uint8_t>({0x39, 0x03}));
  std::vector<uint8_t> packed = packCodes(QuantKind::Int4, int4);
  EXPECT_EQ(unpackCodes(QuantKind::Int4, packed.data(), 5), int4);
  packed = packCodes(QuantKind::Int2, int2);
  EXPECT_EQ(unpackCodes(QuantKind::Int2, packed.data(), 5), int2);
  std::vector<uint8_t> bytes = {0x00, 0x7F, 0x80, 0xFF};
  EXPECT_EQ(packCodes(QuantKind::Int8, bytes), bytes);
}

TEST(Quantize, RejectsInvalidEncodings) {
  Tensor x({2, 1, 8});
  QuantEncoding asymFp8 = encodingOf(QuantKind::Fp8E4M3, QuantAxis::Token, 0,
                                     false, ScalarType::F32);
  EXPECT_DEATH(quantize(x, asymFp8), "fp8_e4m3 must be symmetric");
  QuantEncoding badGroup =
      encodingOf(QuantKind::Int8, QuantAxis::Token, 3, true, ScalarType::F32);
  EXPECT_DEATH(quantize(x, badGroup), "must divide the head dim");
  QuantEncoding zeroChannelGroup =
      encodingOf(QuantKind::Int8, QuantAxis::Channel, 0, true, ScalarType::F32);
  EXPECT_DEATH(quantize(x, zeroChannelGroup), "channel group must be >= 1");
}
