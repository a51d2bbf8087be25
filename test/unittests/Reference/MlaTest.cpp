//===- MlaTest.cpp - Tests of reference multi-head latent attention -------===//
//
// The latent projection by hand, and absorbed MLA against naive MLA.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <cmath>

using namespace kvopt::reference;
using namespace kvopt::reference::test;

namespace {

MlaWeights randomWeights(std::mt19937_64 &rng, int64_t hidden, int64_t latent,
                         int64_t rope, int64_t heads, int64_t nope,
                         int64_t valueDim) {
  MlaWeights w;
  w.downKV = randomTensor(rng, {hidden, latent}, -0.3, 0.3);
  w.downRope = randomTensor(rng, {hidden, rope}, -0.3, 0.3);
  w.upK = randomTensor(rng, {heads, latent, nope}, -0.3, 0.3);
  w.upV = randomTensor(rng, {heads, latent, valueDim}, -0.3, 0.3);
  return w;
}

} // namespace

TEST(Mla, ProjectionHandComputed) {
  // hidden [1, 1, 2] = [1, 2]; W_dkv = [[1, 0, 2], [0, 1, 1]] -> c = [1, 2, 4];
  // W_kr = [[1, 0], [0, 1]] -> k_r = RoPE([1, 2], position 1) with D = 2.
  MlaWeights w;
  w.downKV = Tensor({2, 3});
  w.downKV.values() = {1, 0, 2, 0, 1, 1};
  w.downRope = Tensor({2, 2});
  w.downRope.values() = {1, 0, 0, 1};
  Tensor hidden({1, 1, 2});
  hidden.values() = {1, 2};
  MlaCache cache = mlaProject(hidden, w, {1}, 10000.0);
  EXPECT_EQ(cache.latent.values(), std::vector<double>({1, 2, 4}));
  EXPECT_NEAR(cache.ropeKey.values()[0], std::cos(1.0) - 2 * std::sin(1.0),
              1e-15);
  EXPECT_NEAR(cache.ropeKey.values()[1], 2 * std::cos(1.0) + std::sin(1.0),
              1e-15);
}

TEST(Mla, AbsorbedEqualsNaive) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    int64_t batch = 2, heads = 4, hidden = 24, latent = 32, rope = 8, nope = 16,
            valueDim = 12, tokens = 19, queries = 3;
    MlaWeights w =
        randomWeights(rng, hidden, latent, rope, heads, nope, valueDim);
    Tensor h = randomTensor(rng, {batch, tokens, hidden});
    std::vector<int64_t> positions;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < tokens; ++t)
        positions.push_back(t);
    MlaCache cache = mlaProject(h, w, positions, 10000.0);
    Tensor qNope = randomTensor(rng, {batch, heads, queries, nope});
    Tensor qRope = randomTensor(rng, {batch, heads, queries, rope});
    std::vector<int64_t> lengths{tokens, randomInt(rng, 1, tokens)};
    AttentionOptions options;
    options.scale = 1.0 / std::sqrt(static_cast<double>(nope + rope));
    options.causal = true;
    AttentionResult naive =
        mlaAttentionNaive(qNope, qRope, cache, w, lengths, options);
    AttentionResult absorbed =
        mlaAttentionAbsorbed(qNope, qRope, cache, w, lengths, options);
    ASSERT_EQ(naive.out.shape(), absorbed.out.shape());
    EXPECT_LE(maxAbsDiff(naive.out, absorbed.out), 1e-10);
    EXPECT_LE(maxAbsDiff(naive.lse, absorbed.lse), 1e-10);
    // The outputs are not trivially zero.
    double largest = 0.0;
    for (double x : naive.out.values())
      largest = std::max(largest, std::fabs(x));
    EXPECT_GT(largest, 1e-3);
  }
}
