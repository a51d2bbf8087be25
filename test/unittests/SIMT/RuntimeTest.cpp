//===- RuntimeTest.cpp - The SIMT runtime, driven by hand-written kernels -===//
//
// These kernels are plain C++ functions that call the runtime exactly as
// code emitted by kv-simt-emulate does: special registers, warp collectives
// and barriers through __kv_simt_*, every memory access through its hook.
// They pin down the runtime's semantics without the compiler in the loop.
//
//===----------------------------------------------------------------------===//

#include "kvopt/simt/Launch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

using namespace kvopt::simt;

namespace {

const char *const kSites[] = {"site0", "site1", "site2", "site3",
                              "site4", "site5", "site6", "site7"};

kvopt_simt_kernel makeKernel(const char *name, void (*fn)(void **),
                             const kvopt_simt_shared_var *vars = nullptr,
                             uint64_t numVars = 0, uint64_t staticBytes = 0) {
  kvopt_simt_kernel k{};
  k.abi_version = KVOPT_SIMT_ABI_VERSION;
  k.num_params = 0;
  k.name = name;
  k.packed = fn;
  k.shared_vars = vars;
  k.num_shared_vars = numVars;
  k.static_shared_bytes = staticBytes;
  k.sites = kSites;
  k.num_sites = 8;
  return k;
}

template <class T> T *param(void **params, int i) {
  return *static_cast<T **>(params[i]);
}
template <class T> T load(T *p, int site) {
  return *static_cast<T *>(__kv_simt_ld_global(p, sizeof(T), site));
}
template <class T> void store(T *p, T v, int site) {
  *static_cast<T *>(__kv_simt_st_global(p, sizeof(T), site)) = v;
}
template <class T> T lds(T *p, int site, int var) {
  return *static_cast<T *>(__kv_simt_ld_shared(p, sizeof(T), site, var));
}
template <class T> void sts(T *p, T v, int site, int var) {
  *static_cast<T *>(__kv_simt_st_shared(p, sizeof(T), site, var)) = v;
}
float shflF(uint32_t mode, uint32_t mask, float v, uint32_t b, uint32_t c) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  bits = uint32_t(__kv_simt_shfl(mode, mask, bits, b, c, 7));
  memcpy(&v, &bits, 4);
  return v;
}
uint32_t linearTid() {
  return __kv_simt_sreg_tid_x() +
         __kv_simt_sreg_ntid_x() *
             (__kv_simt_sreg_tid_y() +
              __kv_simt_sreg_ntid_y() * __kv_simt_sreg_tid_z());
}

const Schedule kSchedules[] = {Schedule::Forward, Schedule::Reverse,
                               Schedule::Random};

LaunchOptions quiet(Schedule s = Schedule::Forward) {
  LaunchOptions o;
  o.schedule = s;
  o.seed = 7;
  o.printReports = false;
  return o;
}

//===----------------------------------------------------------------------===//
// Shuffles: the runtime's PTX clamp semantics against CUDA's documented
// width semantics, with CUDA's encoding of width into the c operand.
//===----------------------------------------------------------------------===//

struct ShflCase {
  uint32_t mode, b, c;
};
ShflCase gShfl;

void shflKernel(void **params) {
  uint32_t lane = __kv_simt_sreg_laneid();
  auto *out = param<uint32_t>(params, 0);
  auto *valid = param<uint32_t>(params, 1);
  uint32_t b = gShfl.b == 99 ? (lane * 7) % 32 : gShfl.b; // 99: per-lane source
  uint64_t r =
      __kv_simt_shfl(gShfl.mode, 0xFFFFFFFFu, 1000 + lane, b, gShfl.c, 0);
  out[lane] = uint32_t(r);
  valid[lane] = uint32_t(r >> 32);
}

/// CUDA's __shfl*_sync(width) semantics, written from the programming guide.
uint32_t cudaSource(uint32_t mode, uint32_t lane, uint32_t b, uint32_t width,
                    bool &valid) {
  uint32_t group = lane / width * width;
  valid = true;
  switch (mode) {
  case KVOPT_SIMT_SHFL_IDX:
    return group + b % width;
  case KVOPT_SIMT_SHFL_UP:
    if (lane - group < b) {
      valid = false;
      return lane;
    }
    return lane - b;
  case KVOPT_SIMT_SHFL_DOWN:
    if (lane - group + b >= width) {
      valid = false;
      return lane;
    }
    return lane + b;
  default: // xor may reach earlier groups, never later ones
    if ((lane ^ b) >= group + width) {
      valid = false;
      return lane;
    }
    return lane ^ b;
  }
}

TEST(SimtRuntime, ShuffleModesMatchCudaWidthSemantics) {
  kvopt_simt_kernel k = makeKernel("shfl", shflKernel);
  std::vector<uint32_t> out(32), valid(32);
  uint32_t *po = out.data(), *pv = valid.data();
  void *params[] = {&po, &pv};
  int cases = 0;
  for (uint32_t mode = 0; mode < 4; ++mode)
    for (uint32_t width : {32u, 16u, 8u, 4u, 2u, 1u})
      for (uint32_t b : {0u, 1u, 2u, 3u, 5u, 8u, 16u, 31u, 99u}) {
        if (b == 99 && mode != KVOPT_SIMT_SHFL_IDX)
          continue;
        uint32_t c =
            ((32 - width) << 8) | (mode == KVOPT_SIMT_SHFL_UP ? 0 : 0x1f);
        gShfl = {mode, b, c};
        LaunchResult r = launch(k, {}, {32, 1, 1}, 0, params, quiet());
        ASSERT_TRUE(r.ok()) << r.text();
        for (uint32_t lane = 0; lane < 32; ++lane) {
          uint32_t bb = b == 99 ? (lane * 7) % 32 : b;
          bool ok;
          uint32_t src = cudaSource(mode, lane, bb & 31, width, ok);
          ASSERT_EQ(out[lane], 1000 + src)
              << "mode " << mode << " width " << width << " b " << bb
              << " lane " << lane;
          if (mode != KVOPT_SIMT_SHFL_IDX) // idx: pval is j <= maxLane, always
            ASSERT_EQ(valid[lane], uint32_t(ok))
                << "mode " << mode << " lane " << lane;
        }
        ++cases;
      }
  EXPECT_EQ(cases, 4 * 6 * 8 + 6);
}

/// MLIR's gpu.shuffle encoding: mask = -1 >> (32 - w), c = w - 1 (up: 32 - w).
TEST(SimtRuntime, ShuffleWithMlirEncodingStaysInFirstSegment) {
  kvopt_simt_kernel k = makeKernel("shfl", shflKernel);
  std::vector<uint32_t> out(32), valid(32);
  uint32_t *po = out.data(), *pv = valid.data();
  void *params[] = {&po, &pv};
  // Full warp, width 32, xor 1: pairs swap.
  gShfl = {KVOPT_SIMT_SHFL_BFLY, 1, 31};
  LaunchResult r = launch(k, {}, {32, 1, 1}, 0, params, quiet());
  ASSERT_TRUE(r.ok());
  for (uint32_t l = 0; l < 32; ++l)
    EXPECT_EQ(out[l], 1000 + (l ^ 1));
  // up with c = 0: lanes below b keep their value and report invalid.
  gShfl = {KVOPT_SIMT_SHFL_UP, 3, 0};
  r = launch(k, {}, {32, 1, 1}, 0, params, quiet());
  ASSERT_TRUE(r.ok());
  for (uint32_t l = 0; l < 32; ++l) {
    EXPECT_EQ(out[l], 1000 + (l < 3 ? l : l - 3));
    EXPECT_EQ(valid[l], l >= 3 ? 1u : 0u);
  }
}

//===----------------------------------------------------------------------===//
// Votes and redux
//===----------------------------------------------------------------------===//

void voteKernel(void **params) {
  uint32_t lane = __kv_simt_sreg_laneid();
  auto *out = param<uint32_t>(params, 0);
  uint32_t m3 = lane % 3 == 0, all = 1, none = 0;
  out[lane * 8 + 0] = __kv_simt_vote(KVOPT_SIMT_VOTE_BALLOT, ~0u, m3, 0);
  out[lane * 8 + 1] = __kv_simt_vote(KVOPT_SIMT_VOTE_ANY, ~0u, m3, 1);
  out[lane * 8 + 2] = __kv_simt_vote(KVOPT_SIMT_VOTE_ALL, ~0u, m3, 2);
  out[lane * 8 + 3] = __kv_simt_vote(KVOPT_SIMT_VOTE_ALL, ~0u, all, 3);
  out[lane * 8 + 4] = __kv_simt_vote(KVOPT_SIMT_VOTE_UNI, ~0u, none, 4);
  out[lane * 8 + 5] = __kv_simt_vote(KVOPT_SIMT_VOTE_UNI, ~0u, m3, 5);
  out[lane * 8 + 6] = __kv_simt_redux(KVOPT_SIMT_REDUX_ADD, 0, ~0u, lane, 6);
  float f = lane == 17 ? -50.f : float(lane);
  uint32_t bits;
  memcpy(&bits, &f, 4);
  out[lane * 8 + 7] = __kv_simt_redux(KVOPT_SIMT_REDUX_FMAX,
                                      KVOPT_SIMT_REDUX_ABS, ~0u, bits, 7);
}

TEST(SimtRuntime, VotesAndRedux) {
  kvopt_simt_kernel k = makeKernel("vote", voteKernel);
  std::vector<uint32_t> out(32 * 8);
  uint32_t *po = out.data();
  void *params[] = {&po};
  for (Schedule s : kSchedules) {
    LaunchResult r = launch(k, {}, {32, 1, 1}, 0, params, quiet(s));
    ASSERT_TRUE(r.ok()) << r.text();
    float fmax = 50.f;
    uint32_t fbits;
    memcpy(&fbits, &fmax, 4);
    for (uint32_t l = 0; l < 32; ++l) {
      EXPECT_EQ(out[l * 8 + 0], 0x49249249u);
      EXPECT_EQ(out[l * 8 + 1], 1u);
      EXPECT_EQ(out[l * 8 + 2], 0u);
      EXPECT_EQ(out[l * 8 + 3], 1u);
      EXPECT_EQ(out[l * 8 + 4], 1u);
      EXPECT_EQ(out[l * 8 + 5], 0u);
      EXPECT_EQ(out[l * 8 + 6], 496u);
      EXPECT_EQ(out[l * 8 + 7], fbits);
    }
    EXPECT_EQ(r.counters.warpCollectives, 8u);
  }
}

//===----------------------------------------------------------------------===//
// Block reduction: shuffles + shared memory + barriers
//===----------------------------------------------------------------------===//

const kvopt_simt_shared_var kRedVars[] = {{"partial", 0, 32 * 4},
                                          {"other", 32 * 4 + 32, 32 * 4}};
bool gSkipBarrier = false;

void reduceKernel(void **params) {
  auto *in = param<float>(params, 0);
  auto *out = param<float>(params, 1);
  auto *partial = static_cast<float *>(__kv_simt_smem_base());
  uint32_t tid = linearTid(), n = __kv_simt_sreg_ntid_x();
  uint32_t lane = __kv_simt_sreg_laneid(), warp = tid / 32;
  float v = load(in + __kv_simt_sreg_ctaid_x() * n + tid, 0);
  for (uint32_t off = 16; off; off /= 2)
    v += shflF(KVOPT_SIMT_SHFL_BFLY, ~0u, v, off, 31);
  if (lane == 0)
    sts(partial + warp, v, 1, 0);
  if (!gSkipBarrier)
    __kv_simt_barrier(2);
  if (warp == 0) {
    uint32_t nw = (n + 31) / 32;
    v = lane < nw ? lds(partial + lane, 3, 0) : 0.f;
    for (uint32_t off = 16; off; off /= 2)
      v += shflF(KVOPT_SIMT_SHFL_BFLY, ~0u, v, off, 31);
    if (lane == 0)
      store(out + __kv_simt_sreg_ctaid_x(), v, 4);
  }
}

struct Aligned {
  explicit Aligned(size_t n) : n(n) {
    p = static_cast<float *>(aligned_alloc(256, (n * 4 + 255) / 256 * 256));
  }
  ~Aligned() { free(p); }
  float *p;
  size_t n;
};

TEST(SimtRuntime, BlockReductionEverySchedule) {
  const uint32_t blocks = 3, threads = 256;
  kvopt_simt_kernel k =
      makeKernel("reduce", reduceKernel, kRedVars, 2, 32 * 4 * 2 + 32);
  Aligned in(blocks * threads), out(blocks);
  for (size_t i = 0; i < in.n; ++i)
    in.p[i] = float(int(i * 37 % 101) - 50) / 8.f;
  void *params[] = {&in.p, &out.p};
  for (Schedule s : kSchedules) {
    LaunchOptions o = quiet(s);
    o.buffers = {{"in", in.p, in.n * 4}, {"out", out.p, out.n * 4}};
    LaunchResult r = launch(k, {blocks, 1, 1}, {threads, 1, 1}, 0, params, o);
    ASSERT_TRUE(r.ok()) << scheduleName(s) << "\n" << r.text();
    for (uint32_t b = 0; b < blocks; ++b) {
      double ref = 0;
      for (uint32_t t = 0; t < threads; ++t)
        ref += in.p[b * threads + t];
      EXPECT_NEAR(out.p[b], ref, 1e-3) << scheduleName(s) << " block " << b;
    }
    const Counters &c = r.counters;
    EXPECT_EQ(c.globalLoadBytes, 4u * blocks * threads);
    EXPECT_EQ(c.globalLoads, uint64_t(blocks * threads));
    EXPECT_EQ(c.warpLoads, uint64_t(blocks * threads / 32));
    EXPECT_EQ(c.loadSectors,
              uint64_t(blocks * threads / 32 * 4)); // 128 B per warp
    EXPECT_DOUBLE_EQ(c.loadSectorEfficiency(), 1.0);
    EXPECT_EQ(c.globalStoreBytes, 4u * blocks);
    EXPECT_EQ(c.warpStores, uint64_t(blocks));
    EXPECT_EQ(c.storeSectors, uint64_t(blocks));
    EXPECT_EQ(c.barriers, uint64_t(blocks));
    EXPECT_EQ(c.sharedStoreBytes, 4u * blocks * threads / 32);
    EXPECT_EQ(c.threads, uint64_t(blocks * threads));
  }
}

TEST(SimtRuntime, MissingBarrierIsARace) {
  kvopt_simt_kernel k =
      makeKernel("reduce_nobar", reduceKernel, kRedVars, 2, 32 * 4 * 2 + 32);
  Aligned in(128), out(1);
  for (size_t i = 0; i < in.n; ++i)
    in.p[i] = 1.f;
  void *params[] = {&in.p, &out.p};
  gSkipBarrier = true;
  for (Schedule s : kSchedules) {
    LaunchResult r = launch(k, {}, {128, 1, 1}, 0, params, quiet(s));
    EXPECT_EQ(r.status, Status::Reported) << scheduleName(s);
    ASSERT_GE(r.count(ReportKind::SharedRace), 1u) << scheduleName(s);
    std::string msg = r.reports[0].message;
    EXPECT_NE(msg.find("kernel 'reduce_nobar' block (0,0,0) thread ("),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("'partial'[+"), std::string::npos) << msg;
    EXPECT_NE(msg.find("same barrier interval"), std::string::npos) << msg;
  }
  gSkipBarrier = false;
}

//===----------------------------------------------------------------------===//
// Barrier divergence and deadlock
//===----------------------------------------------------------------------===//

void divergentBarrierKernel(void **) {
  if (linearTid() < 32)
    __kv_simt_barrier(1);
}

TEST(SimtRuntime, BarrierInThreadDependentBranchIsDivergence) {
  kvopt_simt_kernel k = makeKernel("divbar", divergentBarrierKernel);
  for (Schedule s : kSchedules) {
    LaunchResult r = launch(k, {2, 1, 1}, {64, 1, 1}, 0, nullptr, quiet(s));
    EXPECT_EQ(r.status, Status::Reported);
    ASSERT_GE(r.count(ReportKind::BarrierDivergence), 1u) << scheduleName(s);
    EXPECT_NE(r.reports[0].message.find(
                  "exited while 32 threads wait at barrier site1"),
              std::string::npos)
        << r.reports[0].message;
  }
}

void twoBarriersKernel(void **) {
  if (linearTid() % 2)
    __kv_simt_barrier(1);
  else
    __kv_simt_barrier(2);
}

TEST(SimtRuntime, DifferentBarriersAreDivergence) {
  kvopt_simt_kernel k = makeKernel("twobar", twoBarriersKernel);
  LaunchResult r = launch(k, {}, {64, 1, 1}, 0, nullptr, quiet());
  ASSERT_EQ(r.count(ReportKind::BarrierDivergence), 1u) << r.text();
  EXPECT_NE(r.reports[0].message.find(
                "thread (1,0,0) [warp 0 lane 1] waits at barrier site1 while "
                "thread (0,0,0) waits at barrier site2"),
            std::string::npos)
      << r.reports[0].message;
}

void deadlockKernel(void **) {
  if (__kv_simt_sreg_laneid() == 0)
    __kv_simt_barrier(1);
  __kv_simt_shfl(KVOPT_SIMT_SHFL_IDX, ~0u, 1, 0, 31, 2);
  if (__kv_simt_sreg_laneid() != 0)
    __kv_simt_barrier(3);
}

TEST(SimtRuntime, BarrierVersusShuffleDeadlocks) {
  kvopt_simt_kernel k = makeKernel("dead", deadlockKernel);
  for (Schedule s : kSchedules) {
    LaunchResult r = launch(k, {4, 1, 1}, {32, 1, 1}, 0, nullptr, quiet(s));
    EXPECT_EQ(r.status, Status::Aborted);
    ASSERT_EQ(r.count(ReportKind::Deadlock), 1u) << r.text();
    EXPECT_NE(
        r.reports[0].message.find("32 of 32 threads cannot make progress"),
        std::string::npos)
        << r.reports[0].message;
    EXPECT_EQ(r.counters.threads, 32u)
        << "blocks after a deadlock must not run";
  }
}

//===----------------------------------------------------------------------===//
// Shuffle misuse
//===----------------------------------------------------------------------===//

void inactiveSourceKernel(void **params) {
  uint32_t lane = __kv_simt_sreg_laneid();
  auto *out = param<uint32_t>(params, 0);
  if (lane < 16) // lanes 0..15 read lane 20, outside their member mask
    out[lane] =
        uint32_t(__kv_simt_shfl(KVOPT_SIMT_SHFL_IDX, 0xFFFFu, lane, 20, 31, 3));
}

TEST(SimtRuntime, ShuffleFromInactiveLaneIsReported) {
  kvopt_simt_kernel k = makeKernel("inactive", inactiveSourceKernel);
  std::vector<uint32_t> out(32);
  uint32_t *po = out.data();
  void *params[] = {&po};
  LaunchResult r = launch(k, {}, {32, 1, 1}, 0, params, quiet());
  ASSERT_GE(r.count(ReportKind::ShuffleInactiveLane), 1u) << r.text();
  EXPECT_NE(r.reports[0].message.find(
                "reads lane 20, which is not in the member mask"),
            std::string::npos)
      << r.reports[0].message;
  EXPECT_EQ(out[0], 0xFFFFFFFFu); // poison
}

void wrongWidthKernel(void **params) {
  // A 32-lane reduction written with width 16: mask 0xffff, c = 15.
  auto *out = param<float>(params, 0);
  float v = float(__kv_simt_sreg_laneid());
  for (uint32_t off = 16; off; off /= 2)
    v += shflF(KVOPT_SIMT_SHFL_BFLY, 0xFFFFu, v, off, 15);
  out[__kv_simt_sreg_laneid()] = v;
}

TEST(SimtRuntime, ShuffleWithWrongWidthIsReported) {
  kvopt_simt_kernel k = makeKernel("width16", wrongWidthKernel);
  std::vector<float> out(32);
  float *po = out.data();
  void *params[] = {&po};
  for (Schedule s : kSchedules) {
    LaunchResult r = launch(k, {}, {32, 1, 1}, 0, params, quiet(s));
    ASSERT_GE(r.count(ReportKind::WarpMaskMismatch), 1u) << r.text();
    EXPECT_NE(r.text().find(
                  "with member mask 0x0000ffff, which excludes its own lane"),
              std::string::npos)
        << r.text();
    // The bug is real: lanes 0..15 never see 16..31 (the xor-16 step keeps
    // their own value), so lane 0 gets 2 * (0 + ... + 15), not 0 + ... + 31.
    EXPECT_EQ(out[0], 240.f);
  }
}

//===----------------------------------------------------------------------===//
// Bounds
//===----------------------------------------------------------------------===//

void sharedOobKernel(void **) {
  auto *smem = static_cast<float *>(__kv_simt_smem_base());
  uint32_t t = linearTid();
  sts(smem + t, 1.f, 0, 0); // 'partial' has 32 floats; t == 32 overflows
  float *other = smem + (32 * 4 + 32) / 4;
  sts(other + (t % 32), 2.f, 1, 1);
}

TEST(SimtRuntime, SharedIndexPastTheVariableIsReported) {
  kvopt_simt_kernel k =
      makeKernel("smem_oob", sharedOobKernel, kRedVars, 2, 32 * 4 * 2 + 32);
  LaunchResult r = launch(k, {}, {40, 1, 1}, 0, nullptr, quiet());
  ASSERT_GE(r.count(ReportKind::SharedOutOfBounds), 1u) << r.text();
  EXPECT_NE(r.reports[0].message.find(
                "thread (32,0,0) [warp 1 lane 0] writes 4 bytes at byte 128 of "
                "'partial' (128 bytes) at site0"),
            std::string::npos)
      << r.reports[0].message;
}

void globalOobKernel(void **params) {
  auto *in = param<float>(params, 0);
  auto *out = param<float>(params, 1);
  uint32_t t = linearTid();
  store(out + t, load(in + t, 0), 1); // launched with one thread too many
}

TEST(SimtRuntime, GlobalAccessPastTheBufferIsReported) {
  kvopt_simt_kernel k = makeKernel("copy", globalOobKernel);
  Aligned in(32), out(32);
  void *params[] = {&in.p, &out.p};
  LaunchOptions o = quiet();
  o.buffers = {{"in", in.p, 32 * 4}, {"out", out.p, 32 * 4}};
  LaunchResult r = launch(k, {}, {33, 1, 1}, 0, params, o);
  ASSERT_EQ(r.count(ReportKind::GlobalOutOfBounds), 2u) << r.text();
  EXPECT_NE(r.text().find(
                "thread (32,0,0) [warp 1 lane 0] reads 4 bytes at byte 128 of "
                "buffer 'in' (128 bytes), 4 bytes past its end at site0"),
            std::string::npos)
      << r.text();
  EXPECT_NE(r.text().find("writes 4 bytes at byte 128 of buffer 'out'"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Sectors
//===----------------------------------------------------------------------===//

uint32_t gStride, gOffset;

void stridedKernel(void **params) {
  auto *in = param<float>(params, 0);
  auto *out = param<float>(params, 1);
  uint32_t t = linearTid();
  store(out + t, load(in + gOffset + t * gStride, 0), 1);
}

TEST(SimtRuntime, SectorsOfStridedAndMisalignedLoads) {
  kvopt_simt_kernel k = makeKernel("strided", stridedKernel);
  Aligned in(64 * 33 + 8), out(64);
  void *params[] = {&in.p, &out.p};
  for (uint32_t stride : {1u, 2u, 4u, 8u, 16u, 33u})
    for (uint32_t offset : {0u, 1u, 7u}) {
      gStride = stride;
      gOffset = offset;
      LaunchResult r = launch(k, {}, {64, 1, 1}, 0, params, quiet());
      ASSERT_TRUE(r.ok());
      // Per warp: the distinct 32-byte sectors of 32 floats at
      // 4 * (offset + lane * stride).
      uint64_t expected = 0;
      for (uint32_t w = 0; w < 2; ++w) {
        std::vector<uint64_t> s;
        for (uint32_t l = 0; l < 32; ++l)
          s.push_back(4 * (offset + (w * 32 + l) * stride) / 32);
        std::sort(s.begin(), s.end());
        expected += uint64_t(std::unique(s.begin(), s.end()) - s.begin());
      }
      EXPECT_EQ(r.counters.loadSectors, expected) << stride << " " << offset;
      EXPECT_EQ(r.counters.warpLoads, 2u);
      EXPECT_EQ(r.counters.globalLoadBytes, 256u);
      EXPECT_EQ(r.counters.storeSectors, 8u);
    }
}

} // namespace
