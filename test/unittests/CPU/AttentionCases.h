//===- AttentionCases.h - attention/append/MLA case runners ----*- C++ -*-===//
//
// One function per kernel family that compiles the kernel of a case (once
// per binary), runs it on random data and checks it against the reference
// with the tolerances of docs/Numerics.md; shared by the default suite and
// the sweep.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_UNITTESTS_CPU_ATTENTIONCASES_H
#define KVOPT_TEST_UNITTESTS_CPU_ATTENTIONCASES_H

#include "TestSupport.h"

namespace kvopt {
namespace cputest {

struct AttentionCase {
  CacheSpec cache;
  int64_t batch = 2;
  int64_t queryHeads = 4;
  int64_t queryRows = 1;
  ScalarType queryType = ScalarType::F16;
  bool causal = false;
  int64_t window = 0, sinks = 0;
  bool lse = true;
  /// Lengths; empty = random in [1, capacity].
  std::vector<int64_t> lengths;
  CPUCompileOptions compile;
  /// Added to the lengths the kernel sees (tests of the test: -1 must fail).
  int64_t kernelLengthDelta = 0;
  Executor executor = Executor::Jit;
  std::string describe() const;
};
/// Runs `c` with `seed`; failures are reported through gtest.
void runAttention(const AttentionCase &c, uint64_t seed);

struct AppendCase {
  CacheSpec cache;
  int64_t batch = 2;
  int64_t tokens = 1;
  ScalarType inputType = ScalarType::F16;
  double ropeTheta = 0;
  Executor executor = Executor::Jit;
  std::string describe() const;
};
/// Appends `tokens` rows after random prefixes and compares the page and
/// window bytes with the reference's writer (bit-exact; with RoPE, the
/// decoded values within the RoPE bound).
void runAppend(const AppendCase &c, uint64_t seed);

struct MLACase {
  int64_t latent = 512, rope = 64, capacity = 300, pageSize = 0;
  int64_t batch = 1, heads = 16, queryRows = 1;
  ScalarType element = ScalarType::BF16;
  std::optional<QuantEncoding> quant;
  bool causal = false;
  CPUCompileOptions compile;
  Executor executor = Executor::Jit;
  std::string describe() const;
};
void runMLA(const MLACase &c, uint64_t seed);

} // namespace cputest
} // namespace kvopt

#endif // KVOPT_TEST_UNITTESTS_CPU_ATTENTIONCASES_H
