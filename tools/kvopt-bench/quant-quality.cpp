//===- quant-quality.cpp - attention error of each KV encoding ------------===//
//
// Prints, per encoding, the relative error of decode-attention outputs over
// quantized K/V against full precision, on random keys and on keys with a
// few large outlier channels (as real models have). Uses the reference's
// quantizer and double-precision attention; the CPU kernels match the
// reference's dequantized values within the tolerances the numerics suite
// checks, so these figures are the kernels' quantization error too.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Reference.h"

#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace kvopt::reference;

namespace {
QuantEncoding enc(QuantKind kind, QuantAxis axis, int64_t group, bool sym) {
  QuantEncoding q;
  q.kind = kind;
  q.axis = axis;
  q.group = group;
  q.symmetric = sym;
  q.scaleType = ScalarType::F16;
  return q;
}

/// Relative L2 error of the attention output (mean over rows).
double relativeError(const Tensor &got, const Tensor &want) {
  int64_t d = want.dim(-1), rows = want.numel() / d;
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t e = 0; e < d; ++e) {
      double x = got.data()[r * d + e], y = want.data()[r * d + e];
      num += (x - y) * (x - y);
      den += y * y;
    }
    total += std::sqrt(num / den);
  }
  return total / rows;
}
} // namespace

int main() {
  const int64_t b = 4, hq = 32, hkv = 8, d = 128, t = 1024;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto randomKV = [&](bool outliers) {
    Tensor x({b, hkv, t, d});
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t ch = i % d;
      double scale = outliers && (ch == 3 || ch == 17 || ch == 64 || ch == 101)
                         ? 20.0
                         : 1.0;
      x.data()[i] = roundToScalar(ScalarType::F16, scale * normal(rng));
    }
    return x;
  };
  Tensor q({b, hq, 1, d});
  for (double &x : q.values())
    x = roundToScalar(ScalarType::F16, normal(rng));
  std::vector<int64_t> lengths(b, t);
  AttentionOptions options;
  options.scale = 1.0 / std::sqrt(double(d));

  struct Row {
    std::string name;
    std::optional<QuantEncoding> key, value;
  };
  std::vector<Row> rows = {
      {"int8 / int8 (token, whole head)",
       enc(QuantKind::Int8, QuantAxis::Token, 0, true),
       enc(QuantKind::Int8, QuantAxis::Token, 0, true)},
      {"fp8_e4m3 / fp8_e4m3 (token)",
       enc(QuantKind::Fp8E4M3, QuantAxis::Token, 0, true),
       enc(QuantKind::Fp8E4M3, QuantAxis::Token, 0, true)},
      {"int4 / int4 (token, g32, asym)",
       enc(QuantKind::Int4, QuantAxis::Token, 32, false),
       enc(QuantKind::Int4, QuantAxis::Token, 32, false)},
      {"int4 KIVI (K channel g32, V token g32)",
       enc(QuantKind::Int4, QuantAxis::Channel, 32, false),
       enc(QuantKind::Int4, QuantAxis::Token, 32, false)},
      {"int2 / int2 (token, g16, asym)",
       enc(QuantKind::Int2, QuantAxis::Token, 16, false),
       enc(QuantKind::Int2, QuantAxis::Token, 16, false)},
      {"int2 KIVI (K channel g32, V token g16)",
       enc(QuantKind::Int2, QuantAxis::Channel, 32, false),
       enc(QuantKind::Int2, QuantAxis::Token, 16, false)},
  };
  std::printf("decode attention, B=%lld, %lld q / %lld KV heads, dim %lld, "
              "%lld keys, f16 K/V, no full-precision windows\n",
              (long long)b, (long long)hq, (long long)hkv, (long long)d,
              (long long)t);
  std::printf("relative L2 error of the output vs full precision (mean over "
              "rows)\n");
  std::printf("| %-40s | %12s | %14s |\n", "K / V encoding", "random keys",
              "outlier keys");
  std::printf("|%s|%s|%s|\n", std::string(42, '-').c_str(),
              std::string(14, '-').c_str(), std::string(16, '-').c_str());
  Tensor v = randomKV(false);
  Tensor kRandom = randomKV(false), kOutlier = randomKV(true);
  AttentionResult refRandom = attention(q, kRandom, v, lengths, options);
  AttentionResult refOutlier = attention(q, kOutlier, v, lengths, options);
  for (const Row &row : rows) {
    double err[2];
    for (int o = 0; o < 2; ++o) {
      const Tensor &k = o ? kOutlier : kRandom;
      Tensor kq =
          row.key ? dequantizeCache(quantizeCache(k, lengths, *row.key)) : k;
      Tensor vq = row.value
                      ? dequantizeCache(quantizeCache(v, lengths, *row.value))
                      : v;
      AttentionResult got = attention(q, kq, vq, lengths, options);
      err[o] = relativeError(got.out, (o ? refOutlier : refRandom).out);
    }
    std::printf("| %-40s | %12.5f | %14.5f |\n", row.name.c_str(), err[0],
                err[1]);
  }
  return 0;
}
