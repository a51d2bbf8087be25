//===- RopeTest.cpp - Tests of reference RoPE and append ------------------===//
//
// Hand-computed rotations, the relative-position identity of RoPE, and
// appends into contiguous and paged caches.
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <cmath>

using namespace kvopt::reference;
using namespace kvopt::reference::test;

namespace {

double dot(const Tensor &a, const Tensor &b) {
  double sum = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i)
    sum += a.data()[i] * b.data()[i];
  return sum;
}

} // namespace

TEST(Rope, HandComputedRotateHalf) {
  // D = 4, theta = 100: frequencies 1 and 100^(-1/2) = 0.1; pairs (0, 2)
  // and (1, 3).
  Tensor x({1, 1, 1, 4});
  x.values() = {1.0, 2.0, 3.0, 4.0};
  Tensor y = applyRope(x, {3}, 100.0);
  double c0 = std::cos(3.0), s0 = std::sin(3.0);
  double c1 = std::cos(0.3), s1 = std::sin(0.3);
  EXPECT_NEAR(y.values()[0], 1 * c0 - 3 * s0, 1e-15);
  EXPECT_NEAR(y.values()[2], 3 * c0 + 1 * s0, 1e-15);
  EXPECT_NEAR(y.values()[1], 2 * c1 - 4 * s1, 1e-15);
  EXPECT_NEAR(y.values()[3], 4 * c1 + 2 * s1, 1e-15);
  // Position 0 is the identity.
  EXPECT_EQ(applyRope(x, {0}, 100.0).values(), x.values());
}

TEST(Rope, DotProductDependsOnlyOnRelativePosition) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    Tensor q = randomTensor(rng, {1, 1, 1, 64});
    Tensor k = randomTensor(rng, {1, 1, 1, 64});
    int64_t m = randomInt(rng, 0, 5000), n = randomInt(rng, 0, 5000);
    int64_t shift = randomInt(rng, 1, 3000);
    double a = dot(applyRope(q, {m}, 10000.0), applyRope(k, {n}, 10000.0));
    double b = dot(applyRope(q, {m + shift}, 10000.0),
                   applyRope(k, {n + shift}, 10000.0));
    EXPECT_NEAR(a, b, 1e-9);
    // Rotations keep the norm.
    Tensor rotated = applyRope(q, {m}, 500000.0);
    EXPECT_NEAR(dot(rotated, rotated), dot(q, q), 1e-12);
  }
}

TEST(Append, ContiguousWritesRopedKeysAtTheirPositions) {
  std::mt19937_64 rng(4);
  Tensor cache = randomTensor(rng, {2, 2, 10, 8});
  Tensor before = cache;
  Tensor rows = randomTensor(rng, {2, 2, 3, 8});
  std::vector<int64_t> start{4, 0};
  appendContiguous(cache, rows, start, 10000.0);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t t = 0; t < 10; ++t) {
        bool written = t >= start[b] && t < start[b] + 3;
        Tensor slot({1, 1, 1, 8});
        for (int64_t d = 0; d < 8; ++d)
          slot.values()[d] = written ? rows.at({b, h, t - start[b], d}) : 0.0;
        Tensor expected = applyRope(slot, {t}, 10000.0);
        for (int64_t d = 0; d < 8; ++d)
          EXPECT_EQ(cache.at({b, h, t, d}),
                    written ? expected.values()[d] : before.at({b, h, t, d}));
      }
  // Theta 0 stores the rows unrotated (values).
  Tensor values({2, 2, 10, 8});
  appendContiguous(values, rows, start, 0.0);
  EXPECT_EQ(values.at({0, 1, 5, 3}), rows.at({0, 1, 1, 3}));
}

TEST(Append, PagedEqualsContiguousThroughGather) {
  for (uint64_t seed : testSeeds()) {
    std::mt19937_64 rng(seed);
    for (PageOrder order : {PageOrder::TokenMajor, PageOrder::HeadMajor}) {
      int64_t pageSize = randomInt(rng, 1, 5), maxPages = 6;
      int64_t heads = 2, dim = 4, batch = 2;
      BlockTable table{batch, maxPages, {}};
      // Shuffled physical placement of all pages.
      std::vector<int32_t> physical(batch * maxPages);
      for (size_t i = 0; i < physical.size(); ++i)
        physical[i] = static_cast<int32_t>(i);
      std::shuffle(physical.begin(), physical.end(), rng);
      table.pages = physical;
      std::vector<int64_t> shape =
          order == PageOrder::TokenMajor
              ? std::vector<int64_t>{batch * maxPages, pageSize, heads, dim}
              : std::vector<int64_t>{batch * maxPages, heads, pageSize, dim};
      Tensor pages(shape);
      Tensor contiguous({batch, heads, maxPages * pageSize, dim});
      // Two appends per sequence: a prefill chunk, then decode tokens.
      std::vector<int64_t> lengths(batch, 0);
      for (int64_t step : {3, 2}) {
        int64_t tokens = std::min(step, maxPages * pageSize - 3);
        Tensor rows = randomTensor(rng, {batch, heads, tokens, dim});
        appendPaged(pages, order, table, rows, lengths, 10000.0);
        appendContiguous(contiguous, rows, lengths, 10000.0);
        for (int64_t &length : lengths)
          length += tokens;
      }
      Tensor gathered = gatherPages(pages, order, table, lengths);
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t t = 0; t < lengths[b]; ++t)
            for (int64_t d = 0; d < dim; ++d)
              EXPECT_EQ(gathered.at({b, h, t, d}), contiguous.at({b, h, t, d}));
    }
  }
}
