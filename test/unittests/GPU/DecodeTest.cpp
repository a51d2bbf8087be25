//===- DecodeTest.cpp - generated decode kernels vs the reference ---------===//
//
// Every case: kv-gpu-kernels generates the decode + merge kernels, the SIMT
// emulator runs them over pages written by the reference's writePagedCache
// (shuffled placement), in two schedules and two split plans, and the
// result must be within docs/Numerics.md's f32 bound of the reference with
// no race, divergence or out-of-bounds report.
//
//===----------------------------------------------------------------------===//

#include "DecodeHarness.h"

#include "gtest/gtest.h"

#include <cstdlib>
#include <random>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

namespace {

std::vector<uint64_t> seeds() {
  std::vector<uint64_t> s = {1};
  if (const char *env = std::getenv("KVOPT_TEST_SEED"))
    s.push_back(std::strtoull(env, nullptr, 10));
  return s;
}

Encoding enc(ref::QuantKind k, ref::QuantAxis a, int64_t g, bool sym,
             ref::ScalarType s = ref::ScalarType::F16) {
  return Encoding{k, a, g, sym, s};
}

/// Lengths that are not multiples of the page or tile.
std::vector<int64_t> randomLengths(std::mt19937_64 &rng, int64_t batch,
                                   int64_t maxLen) {
  std::uniform_int_distribution<int64_t> d(1, maxLen);
  std::vector<int64_t> l;
  for (int64_t b = 0; b < batch; ++b)
    l.push_back(d(rng));
  return l;
}

/// Runs `c` in two schedules: one split per sequence (forward) and small
/// chunks of two tiles (reverse), which exercises the merge.
void check(const DecodeCase &c) {
  SCOPED_TRACE(c.describe());
  std::string error;
  auto k = compileDecode(c, "sm_80", error);
  ASSERT_TRUE(k) << error;
  DecodeData d = makeDecodeData(c);
  struct Plan {
    simt::Schedule schedule;
    int64_t chunk;
  } plans[] = {{simt::Schedule::Forward, 1 << 20},
               {simt::Schedule::Reverse, 2 * k->tileTokens}};
  for (const Plan &p : plans) {
    DecodeRun r = runDecode(c, *k, d, p.schedule, p.chunk, "sm_80");
    SCOPED_TRACE(std::string("schedule ") + simt::scheduleName(p.schedule) +
                 ", splits " + std::to_string(r.splits));
    EXPECT_TRUE(r.decode.ok()) << r.decode.text();
    EXPECT_TRUE(r.merge.ok()) << r.merge.text();
    std::string where;
    double worst = worstError(c, d, r, where);
    EXPECT_LE(worst, 1.0) << where;
  }
  // With a GPU, the same case on the device (the planner's split and one
  // of two-tile chunks through the merge); GPUDecode.RealGpu says why not.
  if (Device *device = cudaDevice()) {
    auto dk = DeviceKernels::load(*device, k->gpuText, "sm_80", error);
    ASSERT_TRUE(dk) << error;
    for (int64_t chunk : {int64_t(0), 2 * k->tileTokens}) {
      DecodeRun r = runDecodeOnDevice(*dk, c, *k, d, chunk, "sm_80", error)
                        .value_or(DecodeRun{});
      ASSERT_FALSE(r.out.empty()) << error;
      SCOPED_TRACE("real GPU, splits " + std::to_string(r.splits));
      std::string where;
      EXPECT_LE(worstError(c, d, r, where), 1.0) << where;
    }
  }
}

DecodeCase base(int64_t D, int64_t G, int64_t P, std::vector<int64_t> lens,
                uint64_t seed) {
  DecodeCase c;
  c.headDim = D;
  c.group = G;
  c.pageSize = P;
  c.lengths = std::move(lens);
  c.seed = seed;
  return c;
}

} // namespace

// Full-precision f16 pages over head dims, group sizes and page sizes.
TEST(GPUDecode, F16Grid) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed);
    struct {
      int64_t D, G, P;
    } shapes[] = {
        {64, 1, 16}, {128, 8, 16}, {256, 2, 1}, {64, 16, 64}, {128, 4, 256}};
    for (auto s : shapes) {
      DecodeCase c = base(s.D, s.G, s.P, randomLengths(rng, 2, 150), seed);
      c.kvHeads = 2;
      check(c);
    }
  }
}

// bf16 and f32 caches; f16 queries and outputs (rounded once on store).
TEST(GPUDecode, ElementAndIOTypes) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 7);
    DecodeCase c = base(128, 4, 16, randomLengths(rng, 2, 100), seed);
    c.element = ref::ScalarType::BF16;
    check(c);
    c.element = ref::ScalarType::F32;
    c.query = ref::ScalarType::F16;
    c.output = ref::ScalarType::F16;
    check(c);
    c.output = ref::ScalarType::BF16;
    c.query = ref::ScalarType::BF16;
    check(c);
  }
}

// Every encoding with fused dequantization: int8, fp8, int4, int2; token
// axis groups; zero points; scale types. Channel-axis encodings (which need
// a recent window) are in FullPrecisionWindows.
TEST(GPUDecode, Quantized) {
  using K = ref::QuantKind;
  using A = ref::QuantAxis;
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 11);
    struct {
      Encoding k, v;
      int64_t P;
    } encs[] = {
        {enc(K::Int8, A::Token, 0, true, ref::ScalarType::F32),
         enc(K::Int8, A::Token, 0, true, ref::ScalarType::F32), 16},
        {enc(K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::F32),
         enc(K::Fp8E4M3, A::Token, 32, true), 16},
        {enc(K::Int4, A::Token, 16, false), enc(K::Int4, A::Token, 32, false),
         32},
        {enc(K::Int2, A::Token, 32, false),
         enc(K::Int2, A::Token, 16, false, ref::ScalarType::BF16), 16},
        {enc(K::Int8, A::Token, 64, true, ref::ScalarType::BF16),
         enc(K::Int4, A::Token, 0, true), 64},
        {enc(K::Int4, A::Token, 64, true), enc(K::Int8, A::Token, 8, false), 4},
        {enc(K::Int2, A::Token, 0, true, ref::ScalarType::F32),
         enc(K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::BF16), 1},
    };
    for (auto &e : encs) {
      DecodeCase c = base(128, 4, e.P, randomLengths(rng, 2, 130), seed);
      c.key = e.k;
      c.value = e.v;
      check(c);
    }
  }
}

Encoding windowed(Encoding e, int64_t recent, int64_t sinks) {
  e.recent = recent;
  e.sinks = sinks;
  return e;
}

// Full-precision windows: the last `recent` and first `sinks` tokens read
// exactly from the window region at the end of the pool, the others
// dequantized from pages. KIVI's per-channel keys (token groups that
// divide the page, recent >= group - 1) with per-token values; sinks;
// sequences shorter than the window; page size 1 (token axis); several
// query rows with a causal mask.
TEST(GPUDecode, FullPrecisionWindows) {
  using K = ref::QuantKind;
  using A = ref::QuantAxis;
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 23);
    struct {
      Encoding k, v;
      int64_t D, G, P;
    } encs[] = {
        // KIVI: int4 keys per channel over 16 tokens, int4 values per token.
        {windowed(enc(K::Int4, A::Channel, 16, false), 16, 0),
         windowed(enc(K::Int4, A::Token, 32, false), 16, 0), 128, 4, 16},
        // int8 per channel over 8 tokens with sinks on both sides.
        {windowed(enc(K::Int8, A::Channel, 8, true), 7, 3),
         windowed(enc(K::Int8, A::Token, 0, true), 7, 3), 64, 8, 32},
        // int2 per channel over 4 tokens; fp8 values with sinks only.
        {windowed(enc(K::Int2, A::Channel, 4, false, ref::ScalarType::BF16), 5,
                  0),
         windowed(enc(K::Fp8E4M3, A::Token, 0, true, ref::ScalarType::F32), 0,
                  2),
         128, 2, 16},
        // Token axis, page size 1, a window on the keys only.
        {windowed(enc(K::Int4, A::Token, 32, false), 8, 2),
         enc(K::Int8, A::Token, 0, true), 64, 4, 1},
    };
    for (auto &e : encs) {
      std::vector<int64_t> lengths = randomLengths(rng, 2, 150);
      lengths.push_back(3); // shorter than every window
      DecodeCase c = base(e.D, e.G, e.P, lengths, seed);
      c.key = e.k;
      c.value = e.v;
      check(c);
    }
    // Several query rows over a windowed per-channel cache, causal.
    DecodeCase c = base(64, 2, 16, {41, 90}, seed);
    c.key = windowed(enc(K::Int4, A::Channel, 16, false), 16, 0);
    c.value = windowed(enc(K::Int4, A::Token, 32, false), 16, 2);
    c.queryLen = 3;
    c.causal = true;
    check(c);
  }
}

// Several query rows per sequence: causal masks, sliding window + sinks.
TEST(GPUDecode, MaskedQueryRows) {
  for (uint64_t seed : seeds()) {
    DecodeCase c = base(64, 2, 16, {37, 90}, seed);
    c.queryLen = 3;
    c.causal = true;
    check(c);
    c.window = 20;
    c.sinks = 4;
    check(c);
  }
}

// A sequence of one token, and an empty chunk (lse = -inf part).
TEST(GPUDecode, ShortAndEmptyChunks) {
  DecodeCase c = base(64, 8, 1, {1, 65}, 3);
  check(c);
}

// Unsupported caches are diagnosed, not miscompiled.
TEST(GPUDecode, RejectsWindowsAndOddHeadDims) {
  DecodeCase c = base(64, 1, 16, {10}, 1);
  std::string error;
  EXPECT_TRUE(compileDecode(c, "sm_80", error)) << error;
  EXPECT_FALSE(compileDecode(c, "sm_70", error));
  EXPECT_NE(error.find("unknown chip 'sm_70'"), std::string::npos) << error;
}

// Every case above also runs on the GPU when a driver and device exist;
// otherwise this says why they did not.
TEST(GPUDecode, RealGpu) {
  std::string why;
  if (!cudaDevice(&why))
    GTEST_SKIP() << "no CUDA driver/device (" << why
                 << "): the GPUDecode cases ran under the emulator only";
  DecodeCase c = base(128, 8, 16, {1, 300, 77}, 5);
  check(c);
}
