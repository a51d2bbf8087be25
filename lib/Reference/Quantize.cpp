//===- Quantize.cpp - Reference KV quantization and dequantization --------===//
//
// Scale computation, code encoding and decoding, group bookkeeping and code
// packing for every KV quantization encoding (formulas in Quantize.h).
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Quantize.h"

#include <algorithm>
#include <cmath>

using namespace kvopt::reference;

namespace {

/// x rounded to f32: every step of the scale and code recipe is an f32
/// operation, and rounding the exact double result of one operation on f32
/// operands to f32 gives the correctly rounded f32 result.
double f32(double x) { return roundToScalar(ScalarType::F32, x); }

/// Channels per scale on the token axis.
int64_t tokenGroupWidth(const QuantEncoding &encoding, int64_t dim) {
  return encoding.group == 0 ? dim : encoding.group;
}

/// Sign-extends the low `bits` bits of `code`.
int64_t signExtend(uint8_t code, int64_t bits) {
  int64_t value = code & ((1 << bits) - 1);
  return value >= (int64_t{1} << (bits - 1)) ? value - (int64_t{1} << bits)
                                             : value;
}

} // namespace

int64_t kvopt::reference::quantBits(QuantKind kind) {
  switch (kind) {
  case QuantKind::Int8:
  case QuantKind::Fp8E4M3:
    return 8;
  case QuantKind::Int4:
    return 4;
  case QuantKind::Int2:
    return 2;
  }
  KVOPT_REF_CHECK(false, "unknown quantization kind");
}

double kvopt::reference::quantMax(QuantKind kind, bool symmetric) {
  if (kind == QuantKind::Fp8E4M3)
    return 448.0;
  int64_t bits = quantBits(kind);
  return symmetric ? static_cast<double>((int64_t{1} << (bits - 1)) - 1)
                   : static_cast<double>((int64_t{1} << bits) - 1);
}

void kvopt::reference::validateEncoding(const QuantEncoding &encoding,
                                        int64_t dim) {
  KVOPT_REF_CHECK(encoding.kind != QuantKind::Fp8E4M3 || encoding.symmetric,
                  "fp8_e4m3 must be symmetric");
  KVOPT_REF_CHECK(encoding.recent >= 0 && encoding.sinks >= 0,
                  "recent and sinks must be non-negative");
  if (encoding.axis == QuantAxis::Token) {
    KVOPT_REF_CHECK(encoding.group >= 0, "token group must be >= 0");
    KVOPT_REF_CHECK(dim % tokenGroupWidth(encoding, dim) == 0,
                    "token group must divide the head dim");
  } else {
    KVOPT_REF_CHECK(encoding.group >= 1, "channel group must be >= 1");
  }
}

QuantParams kvopt::reference::computeQuantParams(const QuantEncoding &encoding,
                                                 double lo, double hi) {
  KVOPT_REF_CHECK(lo <= hi, "group minimum exceeds its maximum");
  lo = f32(lo);
  hi = f32(hi);
  double qmax = quantMax(encoding.kind, encoding.symmetric);
  QuantParams params;
  if (encoding.symmetric) {
    double absmax = std::max(std::fabs(lo), std::fabs(hi));
    params.scale = roundToScalar(encoding.scaleType, f32(absmax / qmax));
  } else {
    double range = f32(hi - lo);
    params.scale = roundToScalar(encoding.scaleType, f32(range / qmax));
    params.zero = roundToScalar(encoding.scaleType, lo);
  }
  // A zero scale would divide by zero; 1 keeps every code finite and, for a
  // constant group, encodes each element exactly as the zero point.
  if (params.scale == 0.0)
    params.scale = 1.0;
  KVOPT_REF_CHECK(std::isfinite(params.scale) && std::isfinite(params.zero),
                  "scale or zero point overflows the scale type");
  return params;
}

uint8_t kvopt::reference::encodeQuant(const QuantEncoding &encoding,
                                      const QuantParams &params, double x) {
  x = f32(x);
  if (encoding.kind == QuantKind::Fp8E4M3)
    return toE4M3Bits(f32(x / params.scale));
  double qmax = quantMax(encoding.kind, encoding.symmetric);
  if (encoding.symmetric) {
    double q = roundHalfEven(f32(x / params.scale));
    q = std::min(std::max(q, -qmax), qmax);
    int64_t mask = (int64_t{1} << quantBits(encoding.kind)) - 1;
    return static_cast<uint8_t>(static_cast<int64_t>(q) & mask);
  }
  double q = roundHalfEven(f32(f32(x - params.zero) / params.scale));
  q = std::min(std::max(q, 0.0), qmax);
  return static_cast<uint8_t>(q);
}

double kvopt::reference::codeValue(const QuantEncoding &encoding,
                                   uint8_t code) {
  if (encoding.kind == QuantKind::Fp8E4M3)
    return fromE4M3Bits(code);
  int64_t bits = quantBits(encoding.kind);
  if (encoding.symmetric)
    return static_cast<double>(signExtend(code, bits));
  return static_cast<double>(code & ((1 << bits) - 1));
}

double kvopt::reference::decodeQuant(const QuantEncoding &encoding,
                                     const QuantParams &params, uint8_t code) {
  return codeValue(encoding, code) * params.scale + params.zero;
}

int64_t kvopt::reference::scaleCount(const QuantEncoding &encoding,
                                     int64_t tokens, int64_t heads,
                                     int64_t dim) {
  if (encoding.axis == QuantAxis::Token)
    return tokens * heads * (dim / tokenGroupWidth(encoding, dim));
  int64_t tokenGroups = (tokens + encoding.group - 1) / encoding.group;
  return tokenGroups * heads * dim;
}

int64_t kvopt::reference::scaleIndex(const QuantEncoding &encoding,
                                     const QuantizedTensor &q, int64_t token,
                                     int64_t head, int64_t channel) {
  if (encoding.axis == QuantAxis::Token) {
    int64_t width = tokenGroupWidth(encoding, q.dim);
    int64_t perHead = q.dim / width;
    return (token * q.heads + head) * perHead + channel / width;
  }
  return ((token / encoding.group) * q.heads + head) * q.dim + channel;
}

QuantizedTensor kvopt::reference::quantize(const Tensor &x,
                                           const QuantEncoding &encoding) {
  KVOPT_REF_CHECK(x.rank() == 3, "quantize expects x[tokens][heads][dim]");
  QuantizedTensor q;
  q.tokens = x.dim(0);
  q.heads = x.dim(1);
  q.dim = x.dim(2);
  validateEncoding(encoding, q.dim);
  int64_t count = scaleCount(encoding, q.tokens, q.heads, q.dim);

  // Pass 1: the range of every group.
  std::vector<double> lo(count, INFINITY), hi(count, -INFINITY);
  for (int64_t t = 0; t < q.tokens; ++t)
    for (int64_t h = 0; h < q.heads; ++h)
      for (int64_t d = 0; d < q.dim; ++d) {
        int64_t s = scaleIndex(encoding, q, t, h, d);
        double value = f32(x.at({t, h, d}));
        lo[s] = std::min(lo[s], value);
        hi[s] = std::max(hi[s], value);
      }

  // Pass 2: rounded parameters, then codes from the rounded parameters.
  std::vector<QuantParams> params(count);
  q.scales.resize(count);
  if (!encoding.symmetric)
    q.zeros.resize(count);
  for (int64_t s = 0; s < count; ++s) {
    params[s] = computeQuantParams(encoding, lo[s], hi[s]);
    q.scales[s] = params[s].scale;
    if (!encoding.symmetric)
      q.zeros[s] = params[s].zero;
  }
  q.codes.resize(x.numel());
  for (int64_t t = 0; t < q.tokens; ++t)
    for (int64_t h = 0; h < q.heads; ++h)
      for (int64_t d = 0; d < q.dim; ++d) {
        int64_t s = scaleIndex(encoding, q, t, h, d);
        q.codes[x.offset({t, h, d})] =
            encodeQuant(encoding, params[s], x.at({t, h, d}));
      }
  return q;
}

bool kvopt::reference::isFullPrecisionToken(const QuantEncoding &encoding,
                                            int64_t token, int64_t length) {
  return token < encoding.sinks || token >= length - encoding.recent;
}

Tensor kvopt::reference::dequantize(const QuantizedTensor &q,
                                    const QuantEncoding &encoding,
                                    const Tensor *fullPrecision) {
  validateEncoding(encoding, q.dim);
  KVOPT_REF_CHECK(static_cast<int64_t>(q.codes.size()) ==
                      q.tokens * q.heads * q.dim,
                  "code count does not match the tensor shape");
  KVOPT_REF_CHECK(static_cast<int64_t>(q.scales.size()) ==
                      scaleCount(encoding, q.tokens, q.heads, q.dim),
                  "scale count does not match the encoding");
  KVOPT_REF_CHECK(encoding.symmetric || q.zeros.size() == q.scales.size(),
                  "asymmetric storage needs one zero point per scale");
  bool hasWindows = encoding.recent > 0 || encoding.sinks > 0;
  KVOPT_REF_CHECK(
      !hasWindows ||
          (fullPrecision && fullPrecision->shape() ==
                                std::vector<int64_t>{q.tokens, q.heads, q.dim}),
      "recent/sink windows need the full-precision tensor");
  Tensor out({q.tokens, q.heads, q.dim});
  for (int64_t t = 0; t < q.tokens; ++t) {
    bool exact = hasWindows && isFullPrecisionToken(encoding, t, q.tokens);
    for (int64_t h = 0; h < q.heads; ++h)
      for (int64_t d = 0; d < q.dim; ++d) {
        if (exact) {
          out.at({t, h, d}) = fullPrecision->at({t, h, d});
          continue;
        }
        int64_t s = scaleIndex(encoding, q, t, h, d);
        QuantParams params{q.scales[s], encoding.symmetric ? 0.0 : q.zeros[s]};
        out.at({t, h, d}) =
            decodeQuant(encoding, params, q.codes[out.offset({t, h, d})]);
      }
  }
  return out;
}

Tensor kvopt::reference::quantizeDequantize(const Tensor &x,
                                            const QuantEncoding &encoding) {
  return dequantize(quantize(x, encoding), encoding, &x);
}

std::vector<uint8_t>
kvopt::reference::packCodes(QuantKind kind, const std::vector<uint8_t> &codes) {
  int64_t bits = quantBits(kind);
  int64_t perByte = 8 / bits;
  int64_t count = static_cast<int64_t>(codes.size());
  std::vector<uint8_t> bytes((count + perByte - 1) / perByte, 0);
  uint8_t mask = static_cast<uint8_t>((1 << bits) - 1);
  for (int64_t i = 0; i < count; ++i)
    bytes[i / perByte] |=
        static_cast<uint8_t>((codes[i] & mask) << ((i % perByte) * bits));
  return bytes;
}

std::vector<uint8_t> kvopt::reference::unpackCodes(QuantKind kind,
                                                   const uint8_t *bytes,
                                                   int64_t count) {
  int64_t bits = quantBits(kind);
  int64_t perByte = 8 / bits;
  std::vector<uint8_t> codes(count);
  for (int64_t i = 0; i < count; ++i)
    codes[i] = static_cast<uint8_t>(
        (bytes[i / perByte] >> ((i % perByte) * bits)) & ((1 << bits) - 1));
  return codes;
}
