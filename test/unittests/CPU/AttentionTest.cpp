//===- AttentionTest.cpp - CPU attention, append and MLA numerics ---------===//
//
// The default suite: a few representative cases of each axis of the grid
// (layouts, page sizes, head dims, group sizes, encodings, masks, split-KV,
// threads, MLA), each against the reference. The full cross product is the
// sweep (SweepTest.cpp).
//
//===----------------------------------------------------------------------===//

#include "AttentionCases.h"

#include "gtest/gtest-spi.h"

using namespace kvopt;
using namespace kvopt::cputest;

namespace {
AttentionCase baseCase(int64_t pageSize, int64_t dim, int64_t group,
                       ScalarType element) {
  AttentionCase c;
  c.cache.kvHeads = 2;
  c.cache.headDim = dim;
  c.cache.capacity = 200;
  c.cache.element = element;
  c.cache.pageSize = pageSize;
  c.queryHeads = 2 * group;
  c.queryType = element;
  return c;
}

/// The failures runAttention reports for `c` (seed 7), intercepted.
int failuresOf(const AttentionCase &c) {
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &failures);
    runAttention(c, 7);
  }
  return failures.size();
}

void runSeeds(const AttentionCase &c) {
  for (uint64_t seed : testSeeds())
    runAttention(c, seed);
}
} // namespace

TEST(CPUAttention, ContiguousF16Gqa) {
  runSeeds(baseCase(0, 128, 4, ScalarType::F16));
}

TEST(CPUAttention, PagedF16EveryGroupSize) {
  for (int64_t group : {1, 2, 4, 8, 16})
    runSeeds(baseCase(16, 64, group, ScalarType::F16));
}

TEST(CPUAttention, PagedHeadDims) {
  for (int64_t dim : {64, 80, 96, 128, 256})
    runSeeds(
        baseCase(64, dim, 2, dim == 80 ? ScalarType::BF16 : ScalarType::F32));
}

TEST(CPUAttention, PageSizes) {
  for (int64_t page : {1, 16, 64, 256})
    runSeeds(baseCase(page, 64, 4, ScalarType::F16));
}

TEST(CPUAttention, MultiQueryWithoutLse) {
  AttentionCase c = baseCase(16, 64, 8, ScalarType::F32);
  c.cache.kvHeads = 1;
  c.queryHeads = 8;
  c.lse = false;
  runSeeds(c);
}

TEST(CPUAttention, MultiQueryEveryEncoding) {
  // One KV head (MQA) at head dim 128, as kvopt-bench --bench-kv-heads=1
  // runs it: every encoding, fixed-point path included.
  for (auto &[name, q] : encodingZoo(128)) {
    SCOPED_TRACE(name);
    AttentionCase c = baseCase(16, 128, 4, ScalarType::F16);
    c.cache.kvHeads = 1;
    c.queryHeads = 4;
    c.cache.key = q;
    c.cache.value = q;
    runSeeds(c);
  }
}

TEST(CPUAttention, EveryEncodingPaged) {
  for (auto &[name, q] : encodingZoo(64)) {
    SCOPED_TRACE(name);
    AttentionCase c = baseCase(16, 64, 4, ScalarType::F16);
    c.cache.key = q;
    c.cache.value = q;
    runSeeds(c);
  }
}

TEST(CPUAttention, MixedEncodingsContiguous) {
  // KIVI: keys per channel, values per token; contiguous, bf16.
  auto zoo = encodingZoo(128);
  AttentionCase c = baseCase(0, 128, 2, ScalarType::BF16);
  c.cache.capacity = 192;
  c.cache.key = zoo[8].second;   // int4 per channel, recent window
  c.cache.value = zoo[4].second; // int4 per token group, asymmetric
  runSeeds(c);
  c.cache.key.reset();
  c.cache.value = zoo[2].second; // fp8 values only
  runSeeds(c);
}

TEST(CPUAttention, SplitKVAndThreads) {
  AttentionCase c = baseCase(16, 128, 4, ScalarType::F16);
  c.cache.capacity = 3000;
  c.batch = 3;
  c.lengths = {2999, 1, 1234};
  c.compile.splits = 5;
  c.compile.splitTokens = 64;
  runSeeds(c);
  c.compile.threads = 2;
  c.cache.key = encodingZoo(128)[4].second;
  runSeeds(c);
}

TEST(CPUAttention, CausalPrefillWindowAndSinks) {
  AttentionCase c = baseCase(16, 64, 2, ScalarType::F32);
  c.queryRows = 5;
  c.causal = true;
  runSeeds(c);
  c.window = 37;
  c.sinks = 3;
  c.compile.splits = 3;
  c.compile.splitTokens = 16;
  runSeeds(c);
  c.queryRows = 1;
  c.causal = false;
  c.cache.key = c.cache.value = encodingZoo(64)[11].second;
  runSeeds(c);
}

TEST(CPUAttention, FixedPointDots) {
  // Token-axis integer codes take the fixed-point path (int-dots): every
  // kind, symmetric and asymmetric, one group per row and groups of 32,
  // for 8- and 16-lane tiles; f32 queries and outputs, so the comparison is
  // the f32 bound plus the fixed-point one. The same cases with int-dots
  // off keep the f32 contract.
  auto enc = makeEncoding;
  std::vector<std::pair<std::string, QuantEncoding>> codes = {
      {"int8_sym",
       enc(QuantKind::Int8, QuantAxis::Token, 0, true, ScalarType::F32)},
      {"int8_g32_asym",
       enc(QuantKind::Int8, QuantAxis::Token, 32, false, ScalarType::F16)},
      {"int4_g32_asym",
       enc(QuantKind::Int4, QuantAxis::Token, 32, false, ScalarType::F16)},
      {"int4_sym",
       enc(QuantKind::Int4, QuantAxis::Token, 0, true, ScalarType::BF16)},
      {"int2_g32_asym",
       enc(QuantKind::Int2, QuantAxis::Token, 32, false, ScalarType::F16)},
      {"int2_sym",
       enc(QuantKind::Int2, QuantAxis::Token, 0, true, ScalarType::F32)}};
  for (auto [bits, intDots] :
       {std::pair<int64_t, bool>{256, true}, {512, true}, {0, false}})
    for (auto &[name, q] : codes) {
      SCOPED_TRACE(name);
      AttentionCase c = baseCase(16, 128, 4, ScalarType::F32);
      c.cache.key = c.cache.value = q;
      c.compile.vectorBits = bits;
      c.compile.intDots = intDots;
      runSeeds(c);
    }
}

TEST(CPUAttention, FixedPointSpansAndBlocks) {
  // Sums of 8-bit codes split into several i32 spans (512 channels of one
  // group, and groups of 32 with one scale each), blocks of 32 and 64 keys
  // (smaller largest weights), lengths that are not multiples of a block.
  auto enc = makeEncoding;
  AttentionCase c = baseCase(16, 512, 2, ScalarType::F32);
  c.cache.capacity = 150;
  c.cache.key = c.cache.value =
      enc(QuantKind::Int8, QuantAxis::Token, 0, false, ScalarType::F16);
  runSeeds(c);
  c = baseCase(64, 128, 8, ScalarType::F32);
  c.cache.key =
      enc(QuantKind::Int4, QuantAxis::Token, 32, false, ScalarType::F16);
  c.cache.value =
      enc(QuantKind::Int8, QuantAxis::Token, 64, true, ScalarType::F32);
  for (int64_t block : {32, 64}) {
    c.compile.blockTokens = block;
    runSeeds(c);
  }
}

TEST(CPUAttention, FixedPointDetectsAMissingKey) {
  // The fixed-point bound still leaves room to fail: one key less on a
  // short context is caught.
  AttentionCase c = baseCase(16, 64, 2, ScalarType::F32);
  c.cache.key = c.cache.value = makeEncoding(QuantKind::Int8, QuantAxis::Token,
                                             32, false, ScalarType::F16);
  c.batch = 1;
  c.lengths = {9};
  c.kernelLengthDelta = -1;
  EXPECT_GT(failuresOf(c), 0);
}

TEST(CPUAttention, DetectsAMissingKey) {
  // The comparison can fail: a kernel that sees one key less than the
  // reference must fall outside the tolerance on a short context.
  AttentionCase c = baseCase(16, 64, 2, ScalarType::F32);
  c.batch = 1;
  c.lengths = {9};
  c.kernelLengthDelta = -1;
  EXPECT_GT(failuresOf(c), 0);
}

TEST(CPUAppend, FullPrecisionLayouts) {
  for (int64_t page : {0, 1, 16}) {
    AppendCase c;
    c.cache.kvHeads = 2;
    c.cache.headDim = 64;
    c.cache.capacity = 96;
    c.cache.pageSize = page;
    c.tokens = page == 1 ? 3 : 5;
    for (uint64_t seed : testSeeds())
      runAppend(c, seed);
  }
}

TEST(CPUAppend, EveryEncodingBitExact) {
  for (auto &[name, q] : encodingZoo(64)) {
    SCOPED_TRACE(name);
    AppendCase c;
    c.cache.kvHeads = 2;
    c.cache.headDim = 64;
    c.cache.capacity = 128;
    c.cache.pageSize = 16;
    c.cache.key = q;
    c.cache.value = q;
    c.tokens = q.axis == QuantAxis::Channel ? q.group + 3 : 3;
    for (uint64_t seed : testSeeds())
      runAppend(c, seed);
  }
}

TEST(CPUAppend, FusedRope) {
  AppendCase c;
  c.cache.kvHeads = 2;
  c.cache.headDim = 128;
  c.cache.capacity = 4096;
  c.cache.pageSize = 64;
  c.cache.element = ScalarType::F32;
  c.inputType = ScalarType::F32;
  c.tokens = 4;
  c.ropeTheta = 10000.0;
  for (uint64_t seed : testSeeds())
    runAppend(c, seed);
}

TEST(CPUMLA, LatentAttention) {
  MLACase c;
  for (uint64_t seed : testSeeds())
    runMLA(c, seed);
  c.pageSize = 64;
  c.batch = 2;
  QuantEncoding q;
  q.kind = QuantKind::Fp8E4M3;
  q.scaleType = ScalarType::F32;
  c.quant = q;
  c.compile.splits = 3;
  c.compile.splitTokens = 32;
  for (uint64_t seed : testSeeds())
    runMLA(c, seed);
}
