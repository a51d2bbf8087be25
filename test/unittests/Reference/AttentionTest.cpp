//===- AttentionTest.cpp - Tests of reference attention and merge ---------===//
//
// A hand-computed softmax, masks against an independent brute force, GQA
// against repeated heads, split-KV merges against unsplit attention, and
// quantized attention.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cmath>

using namespace kvopt::reference;
using namespace kvopt::reference::test;

namespace {

constexpr double kTol = 1e-12;

/// The mask written out again, independently of isKeyVisible.
bool visibleBruteForce(int64_t position, int64_t key, bool causal,
                       int64_t window, int64_t sinks) {
  bool inWindow = window == 0 || position - key < window;
  return (!causal || key <= position) && (inWindow || key < sinks);
}

struct Problem {
  Tensor q, k, v;
  std::vector<int64_t> lengths;
};

Problem randomProblem(std::mt19937_64 &rng, int64_t batch, int64_t qHeads,
                      int64_t kvHeads, int64_t queries, int64_t dim,
                      int64_t valueDim, int64_t maxLength) {
  Problem p;
  for (int64_t b = 0; b < batch; ++b)
    p.lengths.push_back(randomInt(rng, 1, maxLength));
  p.q = randomTensor(rng, {batch, qHeads, queries, dim});
  p.k = randomTensor(rng, {batch, kvHeads, maxLength, dim});
  p.v = randomTensor(rng, {batch, kvHeads, maxLength, valueDim});
  return p;
}

} // namespace

TEST(Attention, HandComputedSoftmax) {
  // scores 0 and ln 3: weights 1/4 and 3/4, out = 1/4 + 15/4 = 4.
  Tensor q({1, 1, 1, 1}, 1.0), k({1, 1, 2, 1}), v({1, 1, 2, 1});
  k.values() = {0.0, std::log(3.0)};
  v.values() = {1.0, 5.0};
  AttentionOptions options;
  AttentionResult r = attention(q, k, v, {2}, options);
  EXPECT_NEAR(r.out.values()[0], 4.0, kTol);
  EXPECT_NEAR(r.lse.values()[0], std::log(4.0), kTol);
  // The scale multiplies the scores: scale 2 gives weights 1 : 9.
  options.scale = 2.0;
  r = attention(q, k, v, {2}, options);
  EXPECT_NEAR(r.out.values()[0], (1.0 + 45.0) / 10.0, kTol);
  EXPECT_NEAR(r.lse.values()[0], std::log(10.0), kTol);
  // Length 1 hides the second key.
  r = attention(q, k, v, {1}, options);
  EXPECT_EQ(r.out.values()[0], 1.0);
  EXPECT_EQ(r.lse.values()[0], 0.0);
}

TEST(Attention, WindowAndSinksVisibleSet) {
  AttentionOptions options;
  options.causal = true;
  options.window = 3;
  options.sinks = 2;
  std::vector<int64_t> visible;
  for (int64_t key = 0; key < 12; ++key)
    if (isKeyVisible(options, 10, key, 12))
      visible.push_back(key);
  EXPECT_EQ(visible, std::vector<int64_t>({0, 1, 8, 9, 10}));
  EXPECT_EQ(queryPosition(12, 3, 0), 9);
}

TEST(Attention, MasksMatchBruteForceOverCompactedKeys) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (int iter = 0; iter < 20; ++iter) {
      int64_t queries = randomInt(rng, 1, 5);
      Problem p = randomProblem(rng, 2, 2, 1, queries, 5, 3, 17);
      AttentionOptions options;
      options.scale = 0.7;
      options.causal = randomInt(rng, 0, 1);
      options.window = randomInt(rng, 0, 1) ? randomInt(rng, 1, 6) : 0;
      options.sinks = randomInt(rng, 0, 3);
      AttentionResult r = attention(p.q, p.k, p.v, p.lengths, options);
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t i = 0; i < queries; ++i) {
            int64_t position = p.lengths[b] - queries + i;
            std::vector<int64_t> keys;
            for (int64_t j = 0; j < p.lengths[b]; ++j)
              if (visibleBruteForce(position, j, options.causal, options.window,
                                    options.sinks))
                keys.push_back(j);
            if (keys.empty()) {
              EXPECT_EQ(r.lse.at({b, h, i}), -INFINITY);
              for (int64_t d = 0; d < 3; ++d)
                EXPECT_EQ(r.out.at({b, h, i, d}), 0.0);
              continue;
            }
            // Unmasked single-query attention over the visible keys only.
            int64_t n = static_cast<int64_t>(keys.size());
            Tensor q1({1, 1, 1, 5}), k1({1, 1, n, 5}), v1({1, 1, n, 3});
            for (int64_t d = 0; d < 5; ++d)
              q1.at({0, 0, 0, d}) = p.q.at({b, h, i, d});
            for (int64_t j = 0; j < n; ++j) {
              for (int64_t d = 0; d < 5; ++d)
                k1.at({0, 0, j, d}) = p.k.at({b, 0, keys[j], d});
              for (int64_t d = 0; d < 3; ++d)
                v1.at({0, 0, j, d}) = p.v.at({b, 0, keys[j], d});
            }
            AttentionOptions plain;
            plain.scale = options.scale;
            AttentionResult expected = attention(q1, k1, v1, {n}, plain);
            EXPECT_NEAR(r.lse.at({b, h, i}), expected.lse.values()[0], kTol);
            for (int64_t d = 0; d < 3; ++d)
              EXPECT_NEAR(r.out.at({b, h, i, d}), expected.out.values()[d],
                          kTol);
          }
    }
  }
}

TEST(Attention, GroupedQueryEqualsRepeatedKVHeads) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (int64_t group : {1, 2, 3, 4, 8, 16}) {
      int64_t kvHeads = randomInt(rng, 1, 2), qHeads = kvHeads * group;
      Problem p = randomProblem(rng, 2, qHeads, kvHeads, 2, 8, 8, 13);
      Tensor kRep({2, qHeads, 13, 8}), vRep({2, qHeads, 13, 8});
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t h = 0; h < qHeads; ++h)
          for (int64_t t = 0; t < 13; ++t)
            for (int64_t d = 0; d < 8; ++d) {
              kRep.at({b, h, t, d}) = p.k.at({b, h / group, t, d});
              vRep.at({b, h, t, d}) = p.v.at({b, h / group, t, d});
            }
      AttentionOptions options;
      options.scale = 1.0 / std::sqrt(8.0);
      options.causal = true;
      AttentionResult gqa = attention(p.q, p.k, p.v, p.lengths, options);
      AttentionResult mha = attention(p.q, kRep, vRep, p.lengths, options);
      EXPECT_EQ(maxAbsDiff(gqa.out, mha.out), 0.0);
      EXPECT_EQ(maxAbsDiff(gqa.lse, mha.lse), 0.0);
    }
  }
}

TEST(Attention, PrefillRowsEqualDecodeSteps) {
  std::mt19937_64 rng(21);
  Problem p = randomProblem(rng, 1, 4, 2, 6, 8, 8, 20);
  p.lengths = {20};
  AttentionOptions options;
  options.scale = 0.35;
  options.causal = true;
  options.window = 7;
  options.sinks = 1;
  AttentionResult prefill = attention(p.q, p.k, p.v, p.lengths, options);
  for (int64_t i = 0; i < 6; ++i) {
    // Decode query i alone over the first 20 - 6 + i + 1 tokens.
    Tensor q1({1, 4, 1, 8});
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t d = 0; d < 8; ++d)
        q1.at({0, h, 0, d}) = p.q.at({0, h, i, d});
    AttentionResult decode = attention(q1, p.k, p.v, {20 - 6 + i + 1}, options);
    for (int64_t h = 0; h < 4; ++h) {
      EXPECT_NEAR(decode.lse.at({0, h, 0}), prefill.lse.at({0, h, i}), kTol);
      for (int64_t d = 0; d < 8; ++d)
        EXPECT_NEAR(decode.out.at({0, h, 0, d}), prefill.out.at({0, h, i, d}),
                    kTol);
    }
  }
}

TEST(Attention, MergeOfRandomSplitsEqualsUnsplit) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (int iter = 0; iter < 10; ++iter) {
      Problem p = randomProblem(rng, 3, 4, 2, randomInt(rng, 1, 3), 6, 5, 40);
      AttentionOptions options;
      options.scale = 0.4;
      options.causal = true;
      options.window = randomInt(rng, 0, 1) ? randomInt(rng, 1, 12) : 0;
      options.sinks = randomInt(rng, 0, 2);
      AttentionResult whole = attention(p.q, p.k, p.v, p.lengths, options);
      // Random cut points over [0, 40]; some splits are empty or fully
      // masked, so their lse is -inf.
      std::vector<int64_t> cuts{0, 40};
      for (int64_t c = randomInt(rng, 0, 6); c > 0; --c)
        cuts.push_back(randomInt(rng, 0, 40));
      std::sort(cuts.begin(), cuts.end());
      std::vector<AttentionResult> parts;
      for (size_t s = 0; s + 1 < cuts.size(); ++s) {
        AttentionOptions split = options;
        split.keyBegin = cuts[s];
        split.keyEnd = cuts[s + 1];
        parts.push_back(attention(p.q, p.k, p.v, p.lengths, split));
      }
      AttentionResult merged = mergeStates(parts);
      EXPECT_LE(maxAbsDiff(merged.out, whole.out), 1e-12);
      EXPECT_LE(maxAbsDiff(merged.lse, whole.lse), 1e-12);
      // Associativity: merging in two stages gives the same state.
      if (parts.size() >= 3) {
        std::vector<AttentionResult> head(parts.begin(), parts.begin() + 2);
        std::vector<AttentionResult> staged{mergeStates(head)};
        staged.insert(staged.end(), parts.begin() + 2, parts.end());
        AttentionResult twoStage = mergeStates(staged);
        EXPECT_LE(maxAbsDiff(twoStage.out, whole.out), 1e-12);
      }
    }
  }
}

TEST(Attention, MergeHandlesInfinitePartials) {
  AttentionResult empty{Tensor({1, 2}, NAN), Tensor({1}, -INFINITY)};
  AttentionResult real{Tensor({1, 2}), Tensor({1}, 0.5)};
  real.out.values() = {1.0, -2.0};
  // The empty part's (garbage) output carries no weight.
  AttentionResult merged = mergeStates({empty, real, empty});
  EXPECT_EQ(merged.out.values(), real.out.values());
  EXPECT_EQ(merged.lse.values()[0], 0.5);
  merged = mergeStates({empty, empty});
  EXPECT_EQ(merged.out.values(), std::vector<double>({0.0, 0.0}));
  EXPECT_EQ(merged.lse.values()[0], -INFINITY);
  // Two equal parts: same output, lse + ln 2.
  merged = mergeStates({real, real});
  EXPECT_NEAR(merged.out.values()[1], -2.0, kTol);
  EXPECT_NEAR(merged.lse.values()[0], 0.5 + std::log(2.0), kTol);
}

TEST(Attention, RowsWithoutKeysAreZeroWithInfiniteLse) {
  // Causal prefill of 4 queries over a sequence of length 2: queries 0 and 1
  // sit at positions -2 and -1 and see nothing.
  std::mt19937_64 rng(3);
  Problem p = randomProblem(rng, 1, 1, 1, 4, 4, 4, 2);
  p.lengths = {2};
  AttentionOptions options;
  options.causal = true;
  AttentionResult r = attention(p.q, p.k, p.v, p.lengths, options);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.lse.at({0, 0, i}), -INFINITY);
    for (int64_t d = 0; d < 4; ++d)
      EXPECT_EQ(r.out.at({0, 0, i, d}), 0.0);
  }
  EXPECT_TRUE(std::isfinite(r.lse.at({0, 0, 2})));
}

TEST(Attention, QuantizedCacheUsesTheDequantizedView) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    Problem p = randomProblem(rng, 2, 4, 2, 1, 16, 16, 30);
    QuantEncoding keyEncoding;
    keyEncoding.kind = QuantKind::Int4;
    keyEncoding.axis = QuantAxis::Channel;
    keyEncoding.group = 8;
    keyEncoding.symmetric = false;
    keyEncoding.scaleType = ScalarType::F16;
    keyEncoding.recent = 4;
    QuantEncoding valueEncoding;
    valueEncoding.kind = QuantKind::Int8;
    valueEncoding.group = 8;
    valueEncoding.sinks = 1;
    QuantizedCache k = quantizeCache(p.k, p.lengths, keyEncoding);
    QuantizedCache v = quantizeCache(p.v, p.lengths, valueEncoding);
    AttentionOptions options;
    options.scale = 0.25;
    options.causal = true;
    AttentionResult quantized = attentionQuantized(p.q, k, v, options);
    // Against attention over per-sequence quantizeDequantize, written out.
    Tensor kView({2, 2, 30, 16}), vView({2, 2, 30, 16});
    for (int64_t b = 0; b < 2; ++b) {
      Tensor kRows({p.lengths[b], 2, 16}), vRows({p.lengths[b], 2, 16});
      for (int64_t t = 0; t < p.lengths[b]; ++t)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t d = 0; d < 16; ++d) {
            kRows.at({t, h, d}) = p.k.at({b, h, t, d});
            vRows.at({t, h, d}) = p.v.at({b, h, t, d});
          }
      Tensor kBack = quantizeDequantize(kRows, keyEncoding);
      Tensor vBack = quantizeDequantize(vRows, valueEncoding);
      for (int64_t t = 0; t < p.lengths[b]; ++t)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t d = 0; d < 16; ++d) {
            kView.at({b, h, t, d}) = kBack.at({t, h, d});
            vView.at({b, h, t, d}) = vBack.at({t, h, d});
          }
    }
    AttentionResult expected = attention(p.q, kView, vView, p.lengths, options);
    EXPECT_EQ(maxAbsDiff(quantized.out, expected.out), 0.0);
    // And it is close to, but not equal to, full precision.
    AttentionResult exact = attention(p.q, p.k, p.v, p.lengths, options);
    double err = maxAbsDiff(quantized.out, exact.out);
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, 0.2);
  }
}

namespace {

/// A straightforward f32 kernel: f32 dot products, online softmax over keys
/// in order with f32 expf, f32 accumulation. The tolerance must cover it.
AttentionResult attentionF32(const Tensor &q, const Tensor &k, const Tensor &v,
                             int64_t length, double scale) {
  int64_t dim = q.dim(3), valueDim = v.dim(3);
  AttentionResult r{Tensor({1, 1, 1, valueDim}), Tensor({1, 1, 1})};
  float m = -INFINITY, l = 0.0f;
  std::vector<float> acc(valueDim, 0.0f);
  for (int64_t j = 0; j < length; ++j) {
    float dot = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      dot += static_cast<float>(q.at({0, 0, 0, d})) *
             static_cast<float>(k.at({0, 0, j, d}));
    float s = dot * static_cast<float>(scale);
    float mNew = std::max(m, s);
    float rescale = std::exp(m - mNew), p = std::exp(s - mNew);
    l = l * rescale + p;
    for (int64_t d = 0; d < valueDim; ++d)
      acc[d] = acc[d] * rescale + p * static_cast<float>(v.at({0, 0, j, d}));
    m = mNew;
  }
  for (int64_t d = 0; d < valueDim; ++d)
    r.out.values()[d] = acc[d] / l;
  r.lse.values()[0] = m + std::log(l);
  return r;
}

} // namespace

TEST(Attention, Fp32ToleranceCoversAnF32Kernel) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (int64_t dim : {64, 128, 256}) {
      // Head dim 64 gets a short context so the dropped-key check runs.
      int64_t length =
          dim == 64 ? randomInt(rng, 3, 40) : randomInt(rng, 1, 3000);
      Tensor q = randomTensor(rng, {1, 1, 1, dim}, -2.0, 2.0, ScalarType::F16);
      Tensor k =
          randomTensor(rng, {1, 1, length, dim}, -2.0, 2.0, ScalarType::F16);
      Tensor v =
          randomTensor(rng, {1, 1, length, dim}, -3.0, 3.0, ScalarType::BF16);
      double scale = 1.0 / std::sqrt(static_cast<double>(dim));
      AttentionOptions options;
      options.scale = scale;
      AttentionResult expected = attention(q, k, v, {length}, options);
      AttentionResult actual = attentionF32(q, k, v, length, scale);
      AttentionTolerance tol = fp32AttentionTolerance(
          dim, length, scale * 4.0 * dim, 3.0,
          std::fabs(expected.lse.values()[0]), false, ScalarType::F32);
      EXPECT_LE(maxAbsDiff(actual.out, expected.out), tol.out);
      EXPECT_LE(std::fabs(actual.lse.values()[0] - expected.lse.values()[0]),
                tol.lse);
      // The bound is not vacuous: dropping one key of a short context
      // breaks it.
      if (dim == 64) {
        AttentionResult dropped = attentionF32(q, k, v, length - 1, scale);
        EXPECT_GT(maxAbsDiff(dropped.out, expected.out), tol.out);
      }
    }
  }
}
