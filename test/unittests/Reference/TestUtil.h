//===- TestUtil.h - Shared helpers of the reference unit tests -*- C++ -*-===//
//
// Seeds (fixed plus KVOPT_TEST_SEED), random tensors and comparisons used by
// the reference's unit tests.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_UNITTESTS_REFERENCE_TESTUTIL_H
#define KVOPT_TEST_UNITTESTS_REFERENCE_TESTUTIL_H

#include "kvopt/Reference/Reference.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

namespace kvopt {
namespace reference {
namespace test {

/// Fixed seeds, plus the one in KVOPT_TEST_SEED when set, so that a CI run
/// can widen coverage and a failure can be replayed.
inline std::vector<uint64_t> testSeeds() {
  std::vector<uint64_t> seeds{1, 2, 3};
  if (const char *env = std::getenv("KVOPT_TEST_SEED"))
    seeds.push_back(std::strtoull(env, nullptr, 10));
  return seeds;
}

/// A tensor of uniform values in [lo, hi), each rounded to `element` so it
/// is a legal cache value.
inline Tensor randomTensor(std::mt19937_64 &rng, std::vector<int64_t> shape,
                           double lo = -1.0, double hi = 1.0,
                           ScalarType element = ScalarType::F32) {
  Tensor t(std::move(shape));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (double &x : t.values())
    x = roundToScalar(element, dist(rng));
  return t;
}

inline int64_t randomInt(std::mt19937_64 &rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

/// Largest |a - b| over all elements; infinities of the same sign match.
inline double maxAbsDiff(const Tensor &a, const Tensor &b) {
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0.0;
  for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i) {
    double x = a.data()[i], y = b.data()[i];
    if (x == y)
      continue;
    worst = std::max(worst, std::isnan(x - y) ? INFINITY : std::fabs(x - y));
  }
  return worst;
}

} // namespace test
} // namespace reference
} // namespace kvopt

#endif // KVOPT_TEST_UNITTESTS_REFERENCE_TESTUTIL_H
