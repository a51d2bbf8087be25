//===- SweepTest.cpp - the exhaustive CPU numerics grid -------------------===//
//
// Head dims x group sizes x page sizes x encodings x masks x splits, the
// fixed-point path x tile widths x blocks, and MLA; runs only with
// KVOPT_CPU_SWEEP=1 (ctest -L sweep).
//
//===----------------------------------------------------------------------===//

#include "AttentionCases.h"

using namespace kvopt;
using namespace kvopt::cputest;

namespace {
/// Whether `q` can be stored in pages of `page` tokens (0 = contiguous).
bool fits(const std::optional<QuantEncoding> &q, int64_t page,
          int64_t capacity) {
  if (!q || q->axis != QuantAxis::Channel)
    return true;
  return (page ? page : capacity) % q->group == 0;
}
} // namespace

TEST(Sweep, DimsGroupsPages) {
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  for (int64_t dim : {64, 80, 96, 128, 256})
    for (int64_t group : {1, 2, 4, 8, 16})
      for (int64_t page : {0, 1, 16, 64, 256}) {
        AttentionCase c;
        c.cache.kvHeads = 2;
        c.cache.headDim = dim;
        c.cache.capacity = 300;
        c.cache.pageSize = page;
        c.cache.element = ScalarType::F16;
        c.queryHeads = 2 * group;
        c.queryType = ScalarType::F16;
        for (uint64_t seed : testSeeds())
          runAttention(c, seed);
      }
}

TEST(Sweep, EncodingsDimsPages) {
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  for (int64_t dim : {64, 80, 96, 128, 256})
    for (auto &[name, q] : encodingZoo(dim))
      for (int64_t page : {0, 1, 16, 64, 256}) {
        if (!fits(q, page, 320))
          continue;
        SCOPED_TRACE(name);
        AttentionCase c;
        c.cache.kvHeads = 2;
        c.cache.headDim = dim;
        c.cache.capacity = 320;
        c.cache.pageSize = page;
        c.cache.element = dim == 96 ? ScalarType::BF16 : ScalarType::F16;
        c.cache.key = q;
        c.cache.value = q;
        c.queryHeads = 8;
        c.queryType = c.cache.element;
        for (uint64_t seed : testSeeds())
          runAttention(c, seed);
      }
}

TEST(Sweep, MasksSplitsThreads) {
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  for (int64_t rows : {1, 3})
    for (bool causal : {false, true})
      for (int64_t window : {0, 50})
        for (int64_t splits : {1, 4, 7})
          for (unsigned threads : {0u, 2u}) {
            AttentionCase c;
            c.cache.kvHeads = 2;
            c.cache.headDim = 64;
            c.cache.capacity = 700;
            c.cache.pageSize = 16;
            c.cache.element = ScalarType::F32;
            c.queryHeads = 8;
            c.queryRows = rows;
            c.queryType = ScalarType::F32;
            c.causal = causal;
            c.window = window;
            c.sinks = window ? 4 : 0;
            c.compile.splits = splits;
            c.compile.splitTokens = 32;
            c.compile.threads = threads;
            for (uint64_t seed : testSeeds())
              runAttention(c, seed);
          }
}

TEST(Sweep, FixedPointTilesBlocks) {
  // Every token-axis integer encoding of the zoo, on the fixed-point path
  // and off it, with 8- and 16-lane tiles, blocks of 16 and 32 keys, group
  // sizes 1, 4 and 8, f32 outputs (the tightest comparison).
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  for (int64_t dim : {64, 128, 256})
    for (auto &[name, q] : encodingZoo(dim)) {
      if (q.axis != QuantAxis::Token || q.kind == QuantKind::Fp8E4M3)
        continue;
      for (int64_t bits : {256, 512})
        for (bool intDots : {true, false})
          for (int64_t block : {16, 32}) {
            SCOPED_TRACE(name);
            AttentionCase c;
            c.cache.kvHeads = 2;
            c.cache.headDim = dim;
            c.cache.capacity = 250;
            c.cache.pageSize = 16;
            c.cache.element = ScalarType::F32;
            c.cache.key = q;
            c.cache.value = q;
            c.queryHeads = 2 * (block == 16 ? 4 : dim == 64 ? 1 : 8);
            c.queryType = ScalarType::F32;
            c.compile.vectorBits = bits;
            c.compile.intDots = intDots;
            c.compile.blockTokens = block;
            for (uint64_t seed : testSeeds())
              runAttention(c, seed);
          }
    }
}

TEST(Sweep, AppendEncodingsPages) {
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  for (int64_t dim : {64, 80, 128})
    for (auto &[name, q] : encodingZoo(dim))
      for (int64_t page : {0, 16, 64}) {
        if (!fits(q, page, 256))
          continue;
        SCOPED_TRACE(name);
        AppendCase c;
        c.cache.kvHeads = 2;
        c.cache.headDim = dim;
        c.cache.capacity = 256;
        c.cache.pageSize = page;
        c.cache.key = q;
        c.cache.value = q;
        c.tokens = q.axis == QuantAxis::Channel ? 2 * q.group + 1 : 7;
        for (uint64_t seed : testSeeds())
          runAppend(c, seed);
      }
}

TEST(Sweep, MLA) {
  if (!sweepEnabled())
    GTEST_SKIP() << "set KVOPT_CPU_SWEEP=1 (ctest -L sweep)";
  std::vector<std::optional<QuantEncoding>> quants = {std::nullopt};
  for (auto &[name, q] : encodingZoo(576))
    if (q.axis == QuantAxis::Token)
      quants.push_back(q);
  for (auto &q : quants)
    for (int64_t page : {0, 1, 64}) {
      MLACase c;
      c.capacity = 200;
      c.pageSize = page;
      c.heads = 16;
      c.batch = 2;
      c.quant = q;
      c.causal = page == 1;
      c.queryRows = page == 1 ? 2 : 1;
      c.compile.splits = page == 64 ? 3 : 1;
      c.compile.splitTokens = 32;
      runMLA(c, 1);
    }
}
