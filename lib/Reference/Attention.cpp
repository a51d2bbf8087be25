//===- Attention.cpp - Reference attention, quantized attention, merge ----===//
//
// Masked softmax attention with GQA, causal/window/sink masks, split ranges
// and log-sum-exp output; its quantized-cache form; and the merge of partial
// states.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Reference/Reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace kvopt::reference;

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
} // namespace

int64_t kvopt::reference::queryPosition(int64_t length, int64_t queries,
                                        int64_t i) {
  return length - queries + i;
}

bool kvopt::reference::isKeyVisible(const AttentionOptions &options,
                                    int64_t position, int64_t key,
                                    int64_t length) {
  int64_t end = options.keyEnd < 0 ? length : std::min(options.keyEnd, length);
  if (key < options.keyBegin || key >= end)
    return false;
  if (options.causal && key > position)
    return false;
  if (options.window > 0 && key <= position - options.window &&
      key >= options.sinks)
    return false;
  return true;
}

AttentionResult kvopt::reference::attention(const Tensor &q, const Tensor &k,
                                            const Tensor &v,
                                            const std::vector<int64_t> &lengths,
                                            const AttentionOptions &options) {
  KVOPT_REF_CHECK(q.rank() == 4 && k.rank() == 4 && v.rank() == 4,
                  "attention expects rank-4 q, k and v");
  int64_t batch = q.dim(0), qHeads = q.dim(1), queries = q.dim(2),
          dim = q.dim(3);
  int64_t kvHeads = k.dim(1), capacity = k.dim(2), valueDim = v.dim(3);
  KVOPT_REF_CHECK(k.dim(0) == batch && v.dim(0) == batch,
                  "q, k and v batch sizes differ");
  KVOPT_REF_CHECK(k.dim(3) == dim, "q and k head dims differ");
  KVOPT_REF_CHECK(v.dim(1) == kvHeads && v.dim(2) == capacity,
                  "k and v shapes differ");
  KVOPT_REF_CHECK(kvHeads > 0 && qHeads % kvHeads == 0,
                  "KV heads must divide query heads");
  KVOPT_REF_CHECK(static_cast<int64_t>(lengths.size()) == batch,
                  "one length per sequence");
  int64_t group = qHeads / kvHeads;

  AttentionResult result{Tensor({batch, qHeads, queries, valueDim}),
                         Tensor({batch, qHeads, queries}, kNegInf)};
  std::vector<double> scores(capacity);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t length = lengths[b];
    KVOPT_REF_CHECK(length >= 0 && length <= capacity,
                    "sequence length exceeds the K/V capacity");
    for (int64_t h = 0; h < qHeads; ++h) {
      int64_t kvHead = h / group;
      for (int64_t i = 0; i < queries; ++i) {
        int64_t position = queryPosition(length, queries, i);
        double maxScore = kNegInf;
        for (int64_t j = 0; j < length; ++j) {
          scores[j] = kNegInf;
          if (!isKeyVisible(options, position, j, length))
            continue;
          double dot = 0.0;
          for (int64_t d = 0; d < dim; ++d)
            dot += q.at({b, h, i, d}) * k.at({b, kvHead, j, d});
          scores[j] = options.scale * dot;
          maxScore = std::max(maxScore, scores[j]);
        }
        if (maxScore == kNegInf)
          continue; // No visible key: out stays 0, lse stays -inf.
        double denominator = 0.0;
        std::vector<double> numerator(valueDim, 0.0);
        for (int64_t j = 0; j < length; ++j) {
          if (scores[j] == kNegInf)
            continue;
          double weight = std::exp(scores[j] - maxScore);
          denominator += weight;
          for (int64_t d = 0; d < valueDim; ++d)
            numerator[d] += weight * v.at({b, kvHead, j, d});
        }
        for (int64_t d = 0; d < valueDim; ++d)
          result.out.at({b, h, i, d}) = numerator[d] / denominator;
        result.lse.at({b, h, i}) = maxScore + std::log(denominator);
      }
    }
  }
  return result;
}

std::vector<int64_t> QuantizedCache::lengths() const {
  std::vector<int64_t> result;
  for (const QuantizedTensor &sequence : sequences)
    result.push_back(sequence.tokens);
  return result;
}

QuantizedCache
kvopt::reference::quantizeCache(const Tensor &x,
                                const std::vector<int64_t> &lengths,
                                const QuantEncoding &encoding) {
  KVOPT_REF_CHECK(x.rank() == 4, "quantizeCache expects x[B, H, T, D]");
  KVOPT_REF_CHECK(static_cast<int64_t>(lengths.size()) == x.dim(0),
                  "one length per sequence");
  int64_t heads = x.dim(1), dim = x.dim(3);
  QuantizedCache cache;
  cache.encoding = encoding;
  for (int64_t b = 0; b < x.dim(0); ++b) {
    KVOPT_REF_CHECK(lengths[b] >= 0 && lengths[b] <= x.dim(2),
                    "sequence length exceeds the capacity");
    Tensor tokenMajor({lengths[b], heads, dim});
    for (int64_t t = 0; t < lengths[b]; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d)
          tokenMajor.at({t, h, d}) = x.at({b, h, t, d});
    cache.sequences.push_back(quantize(tokenMajor, encoding));
    cache.fullPrecision.push_back(std::move(tokenMajor));
  }
  return cache;
}

Tensor kvopt::reference::dequantizeCache(const QuantizedCache &cache) {
  KVOPT_REF_CHECK(!cache.sequences.empty(), "empty quantized cache");
  KVOPT_REF_CHECK(cache.fullPrecision.empty() ||
                      cache.fullPrecision.size() == cache.sequences.size(),
                  "one full-precision tensor per sequence");
  int64_t batch = static_cast<int64_t>(cache.sequences.size());
  int64_t heads = cache.sequences[0].heads, dim = cache.sequences[0].dim;
  std::vector<int64_t> lengths = cache.lengths();
  int64_t capacity = *std::max_element(lengths.begin(), lengths.end());
  Tensor out({batch, heads, capacity, dim});
  for (int64_t b = 0; b < batch; ++b) {
    const QuantizedTensor &sequence = cache.sequences[b];
    KVOPT_REF_CHECK(sequence.heads == heads && sequence.dim == dim,
                    "sequences of one cache differ in shape");
    Tensor values = dequantize(
        sequence, cache.encoding,
        cache.fullPrecision.empty() ? nullptr : &cache.fullPrecision[b]);
    for (int64_t t = 0; t < sequence.tokens; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d)
          out.at({b, h, t, d}) = values.at({t, h, d});
  }
  return out;
}

AttentionResult
kvopt::reference::attentionQuantized(const Tensor &q, const QuantizedCache &k,
                                     const QuantizedCache &v,
                                     const AttentionOptions &options) {
  std::vector<int64_t> lengths = k.lengths();
  KVOPT_REF_CHECK(lengths == v.lengths(), "K and V lengths differ");
  return attention(q, dequantizeCache(k), dequantizeCache(v), lengths, options);
}

AttentionResult
kvopt::reference::mergeStates(const std::vector<AttentionResult> &parts) {
  KVOPT_REF_CHECK(!parts.empty(), "merge needs at least one part");
  const Tensor &firstOut = parts[0].out;
  int64_t valueDim = firstOut.dim(-1);
  int64_t rows = firstOut.numel() / std::max<int64_t>(valueDim, 1);
  for (const AttentionResult &part : parts) {
    KVOPT_REF_CHECK(part.out.shape() == firstOut.shape() &&
                        part.lse.shape() == parts[0].lse.shape() &&
                        part.lse.numel() == rows,
                    "partial states differ in shape");
  }
  AttentionResult merged{Tensor(firstOut.shape()),
                         Tensor(parts[0].lse.shape(), kNegInf)};
  for (int64_t r = 0; r < rows; ++r) {
    double maxLse = kNegInf;
    for (const AttentionResult &part : parts)
      maxLse = std::max(maxLse, part.lse.data()[r]);
    if (maxLse == kNegInf)
      continue; // Every part saw no key: o = 0, lse = -inf.
    double total = 0.0;
    for (const AttentionResult &part : parts)
      total += std::exp(part.lse.data()[r] - maxLse);
    double lse = maxLse + std::log(total);
    merged.lse.data()[r] = lse;
    for (const AttentionResult &part : parts) {
      // A part that saw no key carries no weight; skipping it also ignores
      // whatever its output row holds.
      if (part.lse.data()[r] == kNegInf)
        continue;
      double weight = std::exp(part.lse.data()[r] - lse);
      for (int64_t d = 0; d < valueDim; ++d)
        merged.out.data()[r * valueDim + d] +=
            weight * part.out.data()[r * valueDim + d];
    }
  }
  return merged;
}

AttentionTolerance kvopt::reference::fp32AttentionTolerance(
    int64_t dim, int64_t keys, double maxScore, double maxValue, double maxLse,
    bool dequantizing, ScalarType outputType) {
  const double u = 0x1p-24; // f32 unit roundoff
  double d = static_cast<double>(dim), t = static_cast<double>(keys);
  // Score error: a dot product of `dim` terms (gamma_dim), the scale
  // multiply, and with fused dequantization one more rounding per K element.
  double scoreError = (d + 1.0 + (dequantizing ? d : 0.0)) * u * maxScore;
  // Sum of `keys` exponentials (gamma_keys), expf's ~2 ulp, the log, the
  // final division, and online-softmax rescaling: a few u beyond gamma_keys.
  double sumError = (t + 8.0) * u;
  AttentionTolerance tolerance;
  tolerance.lse = scoreError + sumError + 2.0 * u * maxLse;
  // Softmax weights move by at most 2 * scoreError relative; V's own
  // dequantization adds u relative.
  double valueError = dequantizing ? u : 0.0;
  double outputRounding = outputType == ScalarType::F32   ? u
                          : outputType == ScalarType::F16 ? 0x1p-11
                                                          : 0x1p-8;
  tolerance.out =
      maxValue * (2.0 * scoreError + sumError + valueError + outputRounding);
  return tolerance;
}

int64_t kvopt::reference::fixedPointWeightMax(int64_t blockTokens,
                                              int64_t codeMax) {
  int64_t limit = int64_t(2147483647) / (blockTokens * codeMax);
  return std::max<int64_t>(1, std::min<int64_t>(32767, limit));
}

void kvopt::reference::addFixedPointTolerance(
    AttentionTolerance &tol, double maxQuery, double maxCodeSum,
    double maxValue, bool fixedValues, int64_t blockTokens, int64_t codeMax,
    double maxValueRange) {
  // Rounding a query element moves it by at most half a step; the score is
  // sum_d q_d * (k_d - z_d) + (a term computed from the exact queries).
  double scoreError = maxQuery / 65534.0 * maxCodeSum;
  tol.lse += scoreError;
  // Softmax weights move by at most 2 * scoreError relative.
  tol.out += 2.0 * scoreError * maxValue;
  if (fixedValues) {
    // A weight moves by at most half a step, wmax / (2 * weightMax), with
    // wmax the block's largest weight; summed over the block and divided
    // by l >= the sum of the blocks' largest weights.
    double weightMax = double(fixedPointWeightMax(blockTokens, codeMax));
    tol.out += double(blockTokens) * maxValueRange / (2.0 * weightMax);
  }
}
