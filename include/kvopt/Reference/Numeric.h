//===- Numeric.h - Exact low-precision conversions in plain C++ -*- C++ -*-===//
//
// Round-to-nearest-even conversions between double and f32, f16, bf16 and
// fp8 e4m3 (bit patterns and values), written out by hand so that the
// reference depends on neither the compiler's half types nor the FP
// environment.
//
//===----------------------------------------------------------------------===//
//
// Every conversion rounds the exact double argument once, to nearest with
// ties to even:
//
//   f32  : 23 fraction bits, normal exponents -126..127, bias 127, IEEE inf.
//   f16  : 10 fraction bits, normal exponents  -14..15,  bias 15,  IEEE inf;
//          max finite 65504, |x| >= 65520 rounds to inf.
//   bf16 :  7 fraction bits, normal exponents -126..127, bias 127, IEEE inf.
//   e4m3 :  3 fraction bits, normal exponents   -6..8,   bias 7 (OCP E4M3FN):
//          no infinities, S.1111.111 (0x7F/0xFF) is NaN, max finite 448,
//          smallest subnormal 2^-9. Encoding saturates: finite values and
//          infinities beyond 448 in magnitude become +-448 (PTX
//          cvt.rn.satfinite.e4m3x2.f32 does the same); NaN becomes 0x7F.
//
// Subnormals are kept in every format (no flush to zero). NaN inputs map to
// a quiet NaN pattern (0x7FC00000, 0x7E00, 0x7FC0, 0x7F); the sign of zero is
// kept.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_REFERENCE_NUMERIC_H
#define KVOPT_REFERENCE_NUMERIC_H

#include <cstdint>

namespace kvopt {
namespace reference {

/// Floating-point element types of caches and of quantization scales.
enum class ScalarType { F16, BF16, F32 };

/// Size in bytes of one element of `type`.
int64_t scalarBytes(ScalarType type);
/// "f16", "bf16" or "f32".
const char *scalarTypeName(ScalarType type);

/// The integer nearest to `x`, ties to even. Unlike std::nearbyint it does
/// not read the FP environment's rounding mode. This is the rounding of every
/// integer quantization code (math.roundeven on the CPU, cvt.rni on PTX).
double roundHalfEven(double x);

/// `x` rounded to nearest-even in `type`, returned as a double (exact).
/// Overflow gives +-inf.
double roundToScalar(ScalarType type, double x);

/// Bit patterns (little-endian when stored) of `x` rounded to each format.
uint32_t toF32Bits(double x);
uint16_t toF16Bits(double x);
uint16_t toBF16Bits(double x);
/// Saturating round-to-nearest-even encoding to OCP e4m3 (E4M3FN).
uint8_t toE4M3Bits(double x);

/// Exact values of bit patterns.
double fromF32Bits(uint32_t bits);
double fromF16Bits(uint16_t bits);
double fromBF16Bits(uint16_t bits);
/// Exact value of an e4m3 code; 0x7F and 0xFF decode to NaN.
double fromE4M3Bits(uint8_t bits);

/// `x` rounded to e4m3 (saturating) and decoded again.
double roundToE4M3(double x);

/// Bits of `x` rounded to `type`, zero-extended to 32 bits.
uint32_t toScalarBits(ScalarType type, double x);
/// Value of the low `scalarBytes(type)` bytes of `bits`.
double fromScalarBits(ScalarType type, uint32_t bits);

/// Reads a little-endian element of `type` at `bytes`.
double readScalarBytes(ScalarType type, const uint8_t *bytes);
/// Writes `x` rounded to `type` at `bytes`, little-endian.
void writeScalarBytes(ScalarType type, double x, uint8_t *bytes);

} // namespace reference
} // namespace kvopt

#endif // KVOPT_REFERENCE_NUMERIC_H
