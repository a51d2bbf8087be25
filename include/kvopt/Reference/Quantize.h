//===- Quantize.h - Reference KV quantization and dequantization -*- C++
//-*-===//
//
// The exact meaning of every KV-cache quantization encoding (int8, fp8 e4m3,
// int4, int2; per-token or per-channel scales; symmetric or asymmetric; exact
// recent and sink windows), as the oracle that append and attention kernels
// are tested against.
//
//===----------------------------------------------------------------------===//
//
// Shapes. One cache component (K or V) of one sequence is quantized as a
// token-major tensor x[T][H][D] (tokens, KV heads, head dim), the order of a
// page in docs/CacheLayout.md. A group is the set of elements sharing one
// scale:
//   axis = token  : g = group ? group : D channels of one token and head,
//                   scales[T][H][D/g]; group must divide D.
//   axis = channel: g = group (>= 1) consecutive tokens of one channel and
//                   head, aligned to token 0, scales[ceil(T/g)][H][D]. The
//                   last group of a tensor whose length is not a multiple of
//                   g holds only the tokens present.
//
// Scale and zero point of a group with minimum lo and maximum hi, all
// arithmetic in f32 (each step rounded to nearest-even f32), then one
// rounding rt() to the scale type (f16, bf16 or f32):
//   symmetric : s = rt(max(|lo|, |hi|) / qmax)
//               qmax = 127 (int8), 7 (int4), 1 (int2), 448 (fp8 e4m3)
//   asymmetric: s = rt((hi - lo) / (2^bits - 1)),  z = rt(lo)
//   if s == 0 (an all-zero or constant group, or a quotient that underflows
//   the scale type) then s = 1. A scale that overflows the scale type to inf
//   is outside the contract and aborts.
//
// Codes, from the rounded s and z, with x first rounded to f32 (a no-op for
// f16, bf16 and f32 cache elements) and the quotient an f32 division:
//   int symmetric : q = clamp(roundeven(x / s), -qmax, qmax), stored as the
//                   low `bits` bits of q's two's complement
//   int asymmetric: q = clamp(roundeven((x - z) / s), 0, 2^bits - 1),
//                   stored unsigned
//   fp8 e4m3      : code = e4m3_satfinite_rne(x / s); fp8 must be symmetric
// The symmetric clamp never fires with these scale types (RNE moves s by
// at most u/(1+u) relative, and qmax * u < 1/2); the asymmetric one does
// when z rounds above lo or s rounds down.
// Dequantized value, computed in double:
//   x' = q * s (symmetric int), q * s + z (asymmetric), e4m3(code) * s (fp8).
//
// Why f32 for the codes: a code is discrete, so a kernel that divides in f32
// and a reference that divides in double would disagree wherever x / s lies
// within an f32 rounding of a half-integer. IEEE division is correctly
// rounded (div.rn.f32 on PTX, arith.divf on the CPU), and a double quotient
// of two f32 values rounded to f32 equals the f32 quotient (53 >= 2*24 + 2),
// so a kernel following this recipe reproduces every code bit for bit.
// Rounding s and z to their storage type before computing q matters for the
// same reason: the kernel that dequantizes only sees the stored s and z.
//
// Exact windows. With `sinks` = S and `recent` = R, in a sequence of length
// T token t is also kept in full precision when t < S or t >= T - R. The
// quantized storage still covers every token (scales include window tokens);
// the dequantized view returns the full-precision value for window tokens.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_REFERENCE_QUANTIZE_H
#define KVOPT_REFERENCE_QUANTIZE_H

#include "kvopt/Reference/Numeric.h"
#include "kvopt/Reference/Tensor.h"

#include <cstdint>
#include <vector>

namespace kvopt {
namespace reference {

/// Storage format of quantized codes.
enum class QuantKind { Int8, Fp8E4M3, Int4, Int2 };

/// What one scale covers: `Token` = channels of one token (KIVI's values),
/// `Channel` = tokens of one channel (KIVI's keys).
enum class QuantAxis { Token, Channel };

/// A quantization encoding, field for field as in docs/CacheLayout.md.
struct QuantEncoding {
  QuantKind kind = QuantKind::Int8;
  QuantAxis axis = QuantAxis::Token;
  /// Token axis: channels per scale, 0 = the whole head. Channel axis:
  /// tokens per scale, >= 1.
  int64_t group = 0;
  bool symmetric = true;
  /// Element type of scales and zero points.
  ScalarType scaleType = ScalarType::F32;
  /// The most recent `recent` tokens are also kept in full precision.
  int64_t recent = 0;
  /// The first `sinks` tokens are also kept in full precision.
  int64_t sinks = 0;
};

/// Bits per stored code: 8, 8, 4, 2.
int64_t quantBits(QuantKind kind);
/// Largest code magnitude: symmetric 127, 448, 7, 1; asymmetric
/// 2^bits - 1 (255, 15, 3; fp8 has no asymmetric form).
double quantMax(QuantKind kind, bool symmetric);
/// Aborts unless `encoding` is valid for heads of dimension `dim`.
void validateEncoding(const QuantEncoding &encoding, int64_t dim);

/// Scale and zero point of one group (zero is 0 when symmetric).
struct QuantParams {
  double scale = 1.0;
  double zero = 0.0;
};

/// Rounded scale and zero point of a group whose values span [lo, hi].
QuantParams computeQuantParams(const QuantEncoding &encoding, double lo,
                               double hi);
/// The stored code of `x` (in its low quantBits bits).
uint8_t encodeQuant(const QuantEncoding &encoding, const QuantParams &params,
                    double x);
/// The number a code stands for before scaling: the signed or unsigned
/// integer, or the e4m3 value.
double codeValue(const QuantEncoding &encoding, uint8_t code);
/// The dequantized value of `code`.
double decodeQuant(const QuantEncoding &encoding, const QuantParams &params,
                   uint8_t code);

/// Quantized storage of one component x[T][H][D] of one sequence.
struct QuantizedTensor {
  int64_t tokens = 0;
  int64_t heads = 0;
  int64_t dim = 0;
  /// [tokens][heads][dim], one code per element (unpacked).
  std::vector<uint8_t> codes;
  /// Token axis [tokens][heads][dim / g]; channel axis
  /// [ceil(tokens / g)][heads][dim]. Values are exact in the scale type.
  std::vector<double> scales;
  /// Zero points, shaped like `scales`; empty when symmetric.
  std::vector<double> zeros;
};

/// Index into QuantizedTensor::scales of the group holding element (t, h, d).
int64_t scaleIndex(const QuantEncoding &encoding, const QuantizedTensor &q,
                   int64_t token, int64_t head, int64_t channel);
/// Number of scales for `tokens` tokens of `heads` x `dim`.
int64_t scaleCount(const QuantEncoding &encoding, int64_t tokens, int64_t heads,
                   int64_t dim);

/// Quantizes x[T][H][D] (recent/sinks do not change the storage).
QuantizedTensor quantize(const Tensor &x, const QuantEncoding &encoding);

/// Whether token `token` of a sequence of `length` tokens is kept in full
/// precision (a sink or a recent token).
bool isFullPrecisionToken(const QuantEncoding &encoding, int64_t token,
                          int64_t length);

/// The dequantized view [T][H][D]. Window tokens (see isFullPrecisionToken)
/// are copied from `fullPrecision`, which must then be given and have the
/// same shape; other tokens are decoded from codes and scales.
Tensor dequantize(const QuantizedTensor &q, const QuantEncoding &encoding,
                  const Tensor *fullPrecision = nullptr);

/// dequantize(quantize(x), encoding, &x): what a kernel reading a cache
/// built from x must see.
Tensor quantizeDequantize(const Tensor &x, const QuantEncoding &encoding);

/// Packs codes densely as in docs/CacheLayout.md: int4 two per byte, low
/// nibble first; int2 four per byte, lowest bits first; 8-bit kinds as is.
/// A trailing partial byte is zero-padded.
std::vector<uint8_t> packCodes(QuantKind kind,
                               const std::vector<uint8_t> &codes);
/// Inverse of packCodes for `count` codes.
std::vector<uint8_t> unpackCodes(QuantKind kind, const uint8_t *bytes,
                                 int64_t count);

} // namespace reference
} // namespace kvopt

#endif // KVOPT_REFERENCE_QUANTIZE_H
