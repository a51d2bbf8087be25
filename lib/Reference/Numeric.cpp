//===- Numeric.cpp - Exact low-precision conversions in plain C++ ---------===//
//
// One generic round-to-nearest-even routine parameterized by a binary
// format, and the bit-level encoders and decoders built on it.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Numeric.h"
#include "kvopt/Reference/Tensor.h"

#include <cmath>
#include <limits>

using namespace kvopt::reference;

namespace {

/// A binary floating-point format with an implicit leading one.
struct BinaryFormat {
  int fractionBits;   ///< Stored significand bits (precision - 1).
  int exponentBits;   ///< Width of the exponent field.
  int bias;           ///< Exponent bias.
  int minExponent;    ///< Smallest normal exponent (1 - bias).
  double maxFinite;   ///< Largest finite magnitude.
  bool hasInfinities; ///< IEEE-style inf/NaN at the all-ones exponent.
};

constexpr BinaryFormat kF32{23, 8, 127, -126, 0x1.fffffep127, true};
constexpr BinaryFormat kF16{10, 5, 15, -14, 65504.0, true};
constexpr BinaryFormat kBF16{7, 8, 127, -126, 0x1.fep127, true};
constexpr BinaryFormat kE4M3{3, 4, 7, -6, 448.0, false};

/// Rounds |x| (finite, non-zero) to the format's grid, ignoring overflow.
/// The grid spacing at x is 2^(max(e, minExponent) - fractionBits) where
/// 2^e <= |x| < 2^(e+1); scaling by a power of two is exact in double, so
/// the only rounding is roundHalfEven.
double roundMagnitude(const BinaryFormat &format, double magnitude) {
  int exponent;
  std::frexp(magnitude, &exponent); // magnitude = m * 2^exponent, m in [.5,1)
  int unbiased = exponent - 1;
  if (unbiased < format.minExponent)
    unbiased = format.minExponent;
  double quantum = std::ldexp(1.0, unbiased - format.fractionBits);
  return roundHalfEven(magnitude / quantum) * quantum;
}

/// Rounds `x` to `format`: overflow gives inf, or saturates for formats
/// without infinities (the only use of such a format here is satfinite e4m3).
double roundToFormat(const BinaryFormat &format, double x) {
  if (std::isnan(x) || x == 0.0)
    return x;
  if (std::isinf(x))
    return format.hasInfinities ? x : std::copysign(format.maxFinite, x);
  double rounded = roundMagnitude(format, std::fabs(x));
  if (rounded > format.maxFinite)
    rounded = format.hasInfinities ? std::numeric_limits<double>::infinity()
                                   : format.maxFinite;
  return std::copysign(rounded, x);
}

/// Bit pattern of `value`, which must already lie on the format's grid.
uint32_t encodeExact(const BinaryFormat &format, double value) {
  int totalBits = 1 + format.exponentBits + format.fractionBits;
  uint32_t sign = std::signbit(value) ? 1u << (totalBits - 1) : 0u;
  uint32_t expAllOnes = (1u << format.exponentBits) - 1;
  if (std::isnan(value)) {
    // Quiet NaN: all-ones exponent and the top fraction bit, or for e4m3
    // (whose only NaN is S.1111.111) all fraction bits.
    uint32_t fraction = format.hasInfinities ? 1u << (format.fractionBits - 1)
                                             : (1u << format.fractionBits) - 1;
    return (expAllOnes << format.fractionBits) | fraction;
  }
  if (std::isinf(value))
    return sign | (expAllOnes << format.fractionBits);
  double magnitude = std::fabs(value);
  if (magnitude == 0.0)
    return sign;
  int exponent;
  std::frexp(magnitude, &exponent);
  int unbiased = exponent - 1;
  if (unbiased < format.minExponent) {
    // Subnormal: exponent field 0, fraction counts quanta of the smallest
    // normal binade's spacing.
    double fraction =
        std::ldexp(magnitude, format.fractionBits - format.minExponent);
    return sign | static_cast<uint32_t>(fraction);
  }
  double significand = std::ldexp(magnitude, format.fractionBits - unbiased);
  uint32_t fraction =
      static_cast<uint32_t>(significand) - (1u << format.fractionBits);
  uint32_t biased = static_cast<uint32_t>(unbiased + format.bias);
  return sign | (biased << format.fractionBits) | fraction;
}

double decodeBits(const BinaryFormat &format, uint32_t bits) {
  int totalBits = 1 + format.exponentBits + format.fractionBits;
  bool negative = (bits >> (totalBits - 1)) & 1u;
  uint32_t expAllOnes = (1u << format.exponentBits) - 1;
  uint32_t biased = (bits >> format.fractionBits) & expAllOnes;
  uint32_t fraction = bits & ((1u << format.fractionBits) - 1);
  double magnitude;
  if (format.hasInfinities && biased == expAllOnes) {
    magnitude = fraction ? std::numeric_limits<double>::quiet_NaN()
                         : std::numeric_limits<double>::infinity();
  } else if (!format.hasInfinities && biased == expAllOnes &&
             fraction == (1u << format.fractionBits) - 1) {
    magnitude = std::numeric_limits<double>::quiet_NaN();
  } else if (biased == 0) {
    magnitude = std::ldexp(static_cast<double>(fraction),
                           format.minExponent - format.fractionBits);
  } else {
    magnitude = std::ldexp(
        static_cast<double>(fraction + (1u << format.fractionBits)),
        static_cast<int>(biased) - format.bias - format.fractionBits);
  }
  return negative ? -magnitude : magnitude;
}

const BinaryFormat &formatOf(ScalarType type) {
  switch (type) {
  case ScalarType::F16:
    return kF16;
  case ScalarType::BF16:
    return kBF16;
  case ScalarType::F32:
    return kF32;
  }
  KVOPT_REF_CHECK(false, "unknown scalar type");
}

} // namespace

int64_t kvopt::reference::scalarBytes(ScalarType type) {
  return type == ScalarType::F32 ? 4 : 2;
}

const char *kvopt::reference::scalarTypeName(ScalarType type) {
  switch (type) {
  case ScalarType::F16:
    return "f16";
  case ScalarType::BF16:
    return "bf16";
  case ScalarType::F32:
    return "f32";
  }
  KVOPT_REF_CHECK(false, "unknown scalar type");
}

double kvopt::reference::roundHalfEven(double x) {
  // x - trunc(x) is exact (Sterbenz: |trunc(x)| >= |x| / 2 once |x| >= 1),
  // so the tie test below sees the true fraction.
  double whole = std::trunc(x);
  double fraction = std::fabs(x - whole);
  double away = whole + (x < 0 ? -1.0 : 1.0);
  if (fraction > 0.5)
    return away;
  if (fraction < 0.5)
    return whole;
  return std::fmod(whole, 2.0) == 0.0 ? whole : away;
}

double kvopt::reference::roundToScalar(ScalarType type, double x) {
  return roundToFormat(formatOf(type), x);
}

uint32_t kvopt::reference::toF32Bits(double x) {
  return encodeExact(kF32, roundToFormat(kF32, x));
}
uint16_t kvopt::reference::toF16Bits(double x) {
  return static_cast<uint16_t>(encodeExact(kF16, roundToFormat(kF16, x)));
}
uint16_t kvopt::reference::toBF16Bits(double x) {
  return static_cast<uint16_t>(encodeExact(kBF16, roundToFormat(kBF16, x)));
}
uint8_t kvopt::reference::toE4M3Bits(double x) {
  return static_cast<uint8_t>(encodeExact(kE4M3, roundToFormat(kE4M3, x)));
}

double kvopt::reference::fromF32Bits(uint32_t bits) {
  return decodeBits(kF32, bits);
}
double kvopt::reference::fromF16Bits(uint16_t bits) {
  return decodeBits(kF16, bits);
}
double kvopt::reference::fromBF16Bits(uint16_t bits) {
  return decodeBits(kBF16, bits);
}
double kvopt::reference::fromE4M3Bits(uint8_t bits) {
  return decodeBits(kE4M3, bits);
}

double kvopt::reference::roundToE4M3(double x) {
  return roundToFormat(kE4M3, x);
}

uint32_t kvopt::reference::toScalarBits(ScalarType type, double x) {
  const BinaryFormat &format = formatOf(type);
  return encodeExact(format, roundToFormat(format, x));
}

double kvopt::reference::fromScalarBits(ScalarType type, uint32_t bits) {
  return decodeBits(formatOf(type), bits);
}

double kvopt::reference::readScalarBytes(ScalarType type,
                                         const uint8_t *bytes) {
  uint32_t bits = 0;
  for (int64_t i = scalarBytes(type) - 1; i >= 0; --i)
    bits = (bits << 8) | bytes[i];
  return fromScalarBits(type, bits);
}

void kvopt::reference::writeScalarBytes(ScalarType type, double x,
                                        uint8_t *bytes) {
  uint32_t bits = toScalarBits(type, x);
  for (int64_t i = 0; i < scalarBytes(type); ++i)
    bytes[i] = static_cast<uint8_t>(bits >> (8 * i));
}
