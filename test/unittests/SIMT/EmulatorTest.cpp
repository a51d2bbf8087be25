//===- EmulatorTest.cpp - gpu-dialect kernels under the SIMT emulator -----===//
//
// Each kernel in kernels/*.mlir goes through the upstream NVVM lowering (the
// IR ptxas would see), kv-simt-emulate and the ExecutionEngine, and runs
// under the fiber runtime against a plain C++ reference, in at least two
// thread schedules. Counters are checked against closed-form formulas and
// planted bugs must be reported.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/SIMT/EmulatorJIT.h"
#include "kvopt/Codegen/SIMT/NVVMMapping.h"
#include "kvopt/simt/Launch.h"
#include "kvopt/simt/Params.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <set>
#include <vector>

using namespace kvopt::simt;

namespace {

/// A 256-byte aligned host buffer, so that sector counts are exact.
template <class T> struct Buf {
  explicit Buf(size_t n, T fill = T()) : n(n) {
    p = static_cast<T *>(aligned_alloc(
        256, std::max<size_t>(256, (n * sizeof(T) + 255) / 256 * 256)));
    std::fill(p, p + n, fill);
  }
  ~Buf() { free(p); }
  Buf(const Buf &) = delete;
  T &operator[](size_t i) { return p[i]; }
  BufferRange range(const char *name) const { return {name, p, n * sizeof(T)}; }
  T *p;
  size_t n;
};

using Args = ParamPack;

/// Compiled once per file and shared by the tests. Never destroyed: JIT
/// engines must not outlive LLVM's own statics at process exit.
EmulatedModule &module(const std::string &file) {
  static auto *cache =
      new std::map<std::string, std::unique_ptr<EmulatedModule>>();
  auto &slot = (*cache)[file];
  if (!slot) {
    auto m = EmulatedModule::compileFile(std::string(KVOPT_SIMT_KERNELS_DIR) +
                                         "/" + file);
    if (!m) {
      ADD_FAILURE() << llvm::toString(m.takeError());
      abort();
    }
    slot = std::move(*m);
  }
  return *slot;
}

const kvopt_simt_kernel &kernel(const std::string &file, const char *name) {
  auto k = module(file).kernel(name);
  if (!k) {
    ADD_FAILURE() << llvm::toString(k.takeError());
    abort();
  }
  return **k;
}

LaunchOptions opts(Schedule s, std::vector<BufferRange> buffers = {}) {
  LaunchOptions o;
  o.schedule = s;
  o.seed = 42;
  o.printReports = false;
  o.buffers = std::move(buffers);
  return o;
}

const Schedule kTwo[] = {Schedule::Forward, Schedule::Reverse};
const Schedule kAll[] = {Schedule::Forward, Schedule::Reverse,
                         Schedule::Random};

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

TEST(SimtEmulator, BlockSumMatchesReferenceAndFormulas) {
  const kvopt_simt_kernel &k = kernel("reduce.mlir", "block_sum");
  EXPECT_EQ(k.num_params, 10u); // two memref<?xf32>: 5 slots each
  ASSERT_EQ(k.num_shared_vars, 1u);
  EXPECT_STREQ(k.shared_vars[0].name, "__wg_block_sum_0");
  EXPECT_EQ(k.shared_vars[0].size, 128u);
  for (uint32_t threads : {32u, 256u, 1024u}) {
    const uint32_t blocks = 3;
    Buf<float> in(blocks * threads), out(blocks);
    for (size_t i = 0; i < in.n; ++i)
      in[i] = float(int(i * 7919 % 201) - 100) / 16.f;
    uint64_t ops = 0;
    for (Schedule s : kAll) {
      std::fill(out.p, out.p + blocks, -1.f);
      Args a;
      a.memref(in.p, {int64_t(in.n)}).memref(out.p, {blocks});
      LaunchResult r = launch(k, {blocks, 1, 1}, {threads, 1, 1}, 0, a.data(),
                              opts(s, {in.range("in"), out.range("out")}));
      ASSERT_TRUE(r.ok()) << scheduleName(s) << "\n" << r.text();
      for (uint32_t b = 0; b < blocks; ++b) {
        double ref = 0;
        for (uint32_t t = 0; t < threads; ++t)
          ref += in[b * threads + t];
        EXPECT_NEAR(out[b], ref, 1e-3) << scheduleName(s) << " block " << b;
      }
      const Counters &c = r.counters;
      uint64_t n = uint64_t(blocks) * threads;
      EXPECT_EQ(c.globalLoadBytes, 4 * n);
      EXPECT_EQ(c.globalLoads, n);
      EXPECT_EQ(c.warpLoads, n / 32);
      EXPECT_EQ(c.loadSectors, n / 32 * 4); // 128 contiguous bytes per warp
      EXPECT_DOUBLE_EQ(c.loadSectorEfficiency(), 1.0);
      EXPECT_EQ(c.globalStoreBytes, 4u * blocks);
      EXPECT_EQ(c.storeSectors, uint64_t(blocks));
      EXPECT_EQ(c.barriers, uint64_t(blocks));
      EXPECT_EQ(c.sharedStoreBytes, 4 * n / 32);
      EXPECT_EQ(c.sharedLoadBytes, 4u * blocks * std::min(32u, threads / 32));
      EXPECT_EQ(c.warpCollectives, (n / 32 + blocks) * 5);
      // The executed operations do not depend on the schedule.
      EXPECT_GT(c.ops, 20 * n);
      if (ops)
        EXPECT_EQ(c.ops, ops);
      ops = c.ops;
    }
  }
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

TEST(SimtEmulator, DecodeAttentionMatchesReference) {
  const kvopt_simt_kernel &k = kernel("attention.mlir", "decode_attention");
  EXPECT_EQ(k.known_block[0], 128);
  const int64_t D = 64;
  struct Shape {
    int64_t b, n;
  };
  for (Shape sh : {Shape{1, 1}, Shape{2, 37}, Shape{3, 100}, Shape{2, 1000}}) {
    Buf<float> q(sh.b * D), kk(sh.b * sh.n * D), v(sh.b * sh.n * D),
        o(sh.b * D);
    uint64_t seed = 12345;
    auto rnd = [&] {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      return float(int64_t(seed >> 40) % 2001 - 1000) / 1000.f;
    };
    for (size_t i = 0; i < q.n; ++i)
      q[i] = rnd();
    for (size_t i = 0; i < kk.n; ++i)
      kk[i] = rnd();
    for (size_t i = 0; i < v.n; ++i)
      v[i] = rnd();
    const float scale = 0.125f;
    // Reference in double.
    std::vector<double> ref(sh.b * D);
    for (int64_t b = 0; b < sh.b; ++b) {
      std::vector<double> s(sh.n);
      double m = -INFINITY, sum = 0;
      for (int64_t r = 0; r < sh.n; ++r) {
        double d = 0;
        for (int64_t c = 0; c < D; ++c)
          d += double(q[b * D + c]) * kk[(b * sh.n + r) * D + c];
        s[r] = d * scale;
        m = std::max(m, s[r]);
      }
      for (int64_t r = 0; r < sh.n; ++r)
        sum += s[r] = std::exp(s[r] - m);
      for (int64_t c = 0; c < D; ++c) {
        double acc = 0;
        for (int64_t r = 0; r < sh.n; ++r)
          acc += s[r] * v[(b * sh.n + r) * D + c];
        ref[b * D + c] = acc / sum;
      }
    }
    for (Schedule s : kTwo) {
      std::fill(o.p, o.p + o.n, NAN);
      Args a;
      a.memref(q.p, {sh.b, D})
          .memref(kk.p, {sh.b, sh.n, D})
          .memref(v.p, {sh.b, sh.n, D})
          .memref(o.p, {sh.b, D})
          .scalar<int64_t>(sh.n)
          .scalar<float>(scale);
      ASSERT_EQ(a.size(), k.num_params);
      LaunchResult r = launch(
          k, {uint32_t(sh.b), 1, 1}, {128, 1, 1}, 0, a.data(),
          opts(s, {q.range("q"), kk.range("k"), v.range("v"), o.range("o")}));
      ASSERT_TRUE(r.ok()) << scheduleName(s) << "\n" << r.text();
      for (int64_t i = 0; i < sh.b * D; ++i)
        ASSERT_NEAR(o[i], ref[i], 1e-5 + 1e-4 * std::fabs(ref[i]))
            << "b,n = " << sh.b << "," << sh.n << " i " << i << " "
            << scheduleName(s);
      // q: 2 loads per lane of each of 4 warps; k: 64 floats per key; v: 64
      // floats per key (threads < 64). All rows 256-byte aligned.
      const Counters &c = r.counters;
      EXPECT_EQ(c.globalLoadBytes,
                uint64_t(sh.b) * (4 * 32 * 2 * 4 + 512 * sh.n));
      EXPECT_EQ(c.loadSectors, uint64_t(sh.b) * (4 * 8 + 16 * sh.n));
      EXPECT_DOUBLE_EQ(c.loadSectorEfficiency(), 1.0);
      EXPECT_EQ(c.globalStoreBytes, uint64_t(sh.b) * 256);
      EXPECT_EQ(c.barriers, uint64_t(sh.b) * 4);
    }
  }
}

//===----------------------------------------------------------------------===//
// Strided, misaligned and vector loads
//===----------------------------------------------------------------------===//

TEST(SimtEmulator, StridedAndMisalignedLoadSectors) {
  const kvopt_simt_kernel &k = kernel("loads.mlir", "strided");
  const uint32_t blocks = 2, threads = 64, n = blocks * threads;
  for (int64_t stride : {1, 2, 3, 8, 9, 32})
    for (int64_t offset : {0, 1, 5}) {
      Buf<float> in(offset + n * stride), out(n);
      for (size_t i = 0; i < in.n; ++i)
        in[i] = float(i);
      for (Schedule s : kTwo) {
        Args a;
        a.memref(in.p, {int64_t(in.n)})
            .memref(out.p, {n})
            .scalar(stride)
            .scalar(offset);
        LaunchResult r = launch(k, {blocks, 1, 1}, {threads, 1, 1}, 0, a.data(),
                                opts(s, {in.range("in"), out.range("out")}));
        ASSERT_TRUE(r.ok()) << r.text();
        for (uint32_t g = 0; g < n; ++g)
          ASSERT_EQ(out[g], float(offset + g * stride));
        // A warp reads 32 floats 4*stride bytes apart from byte
        // 4*(offset + 32*w*stride). Up to 8 floats apart no sector is
        // skipped: last - first + 1 sectors; further apart, one each.
        uint64_t sectors = 0;
        for (uint32_t w = 0; w < n / 32; ++w) {
          int64_t first = 4 * (offset + 32 * w * stride) / 32;
          int64_t last = 4 * (offset + (32 * w + 31) * stride) / 32;
          sectors += stride <= 8 ? uint64_t(last - first + 1) : 32;
        }
        const Counters &c = r.counters;
        EXPECT_EQ(c.loadSectors, sectors)
            << "stride " << stride << " offset " << offset;
        EXPECT_EQ(c.warpLoads, n / 32);
        EXPECT_EQ(c.globalLoadBytes, 4u * n);
        EXPECT_EQ(c.globalStoreBytes, 4u * n);
        EXPECT_EQ(c.storeSectors, n / 32 * 4);
        EXPECT_DOUBLE_EQ(c.loadSectorEfficiency(), 4.0 * n / (32.0 * sectors));
      }
    }
}

TEST(SimtEmulator, VectorLoadSectors) {
  const kvopt_simt_kernel &k = kernel("loads.mlir", "vec4");
  const uint32_t threads = 96, n = threads;
  for (int64_t offset : {0, 1, 8}) {
    Buf<float> in(offset + 4 * n), out(4 * n);
    for (size_t i = 0; i < in.n; ++i)
      in[i] = float(i) * 0.5f;
    for (Schedule s : kTwo) {
      Args a;
      a.memref(in.p, {int64_t(in.n)})
          .memref(out.p, {int64_t(out.n)})
          .scalar(offset);
      LaunchResult r = launch(k, {}, {threads, 1, 1}, 0, a.data(),
                              opts(s, {in.range("in"), out.range("out")}));
      ASSERT_TRUE(r.ok()) << r.text();
      for (uint32_t i = 0; i < 4 * n; ++i)
        ASSERT_EQ(out[i], in[offset + i]);
      // 512 contiguous bytes per warp from byte 4*(offset + 128 w).
      uint64_t sectors = 0;
      for (uint32_t w = 0; w < n / 32; ++w) {
        int64_t start = 4 * (offset + 128 * w);
        sectors += uint64_t((start + 511) / 32 - start / 32 + 1);
      }
      EXPECT_EQ(r.counters.loadSectors, sectors) << "offset " << offset;
      EXPECT_EQ(r.counters.globalLoads, uint64_t(n));
      EXPECT_EQ(r.counters.globalLoadBytes, 16u * n);
      EXPECT_EQ(r.counters.storeSectors, uint64_t(n / 32 * 16));
    }
  }
}

//===----------------------------------------------------------------------===//
// Warp operations and dynamic shared memory
//===----------------------------------------------------------------------===//

TEST(SimtEmulator, WarpScanWithShuffleUp) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "warp_scan");
  Buf<float> in(64), out(64);
  for (size_t i = 0; i < 64; ++i)
    in[i] = float(i % 7) - 2.f;
  for (Schedule s : kAll) {
    Args a;
    a.memref(in.p, {64}).memref(out.p, {64});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (int w = 0; w < 2; ++w) {
      float acc = 0;
      for (int l = 0; l < 32; ++l) {
        acc += in[w * 32 + l];
        EXPECT_EQ(out[w * 32 + l], acc)
            << "lane " << l << " " << scheduleName(s);
      }
    }
  }
}

TEST(SimtEmulator, WarpSumWithShuffleDownAndIdx) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "warp_sum_down");
  Buf<int32_t> in(96), out(96);
  for (size_t i = 0; i < 96; ++i)
    in[i] = int32_t(i * i % 13) - 6;
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {96}).memref(out.p, {96});
    LaunchResult r = launch(k, {}, {96, 1, 1}, 0, a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (int w = 0; w < 3; ++w) {
      int32_t sum = 0;
      for (int l = 0; l < 32; ++l)
        sum += in[w * 32 + l];
      for (int l = 0; l < 32; ++l)
        EXPECT_EQ(out[w * 32 + l], sum) << scheduleName(s);
    }
  }
}

TEST(SimtEmulator, HalfWarpShuffleWithWidth16) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "half_warp_sum");
  Buf<float> in(16), out(16);
  for (size_t i = 0; i < 16; ++i)
    in[i] = float(i + 1);
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {16}).memref(out.p, {16});
    LaunchResult r = launch(k, {}, {16, 1, 1}, 0, a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (int l = 0; l < 16; ++l)
      EXPECT_EQ(out[l], 136.f);
  }
}

TEST(SimtEmulator, Votes) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "votes");
  Buf<int32_t> in(64), out(256);
  // Warp 0: every third lane true; warp 1: all true.
  for (int i = 0; i < 64; ++i)
    in[i] = i < 32 ? (i % 3 == 0) : 5;
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {64}).memref(out.p, {256});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(uint32_t(out[4 * l]), 0x49249249u);
      EXPECT_EQ(out[4 * l + 1], 1);
      EXPECT_EQ(out[4 * l + 2], 0);
      EXPECT_EQ(out[4 * l + 3], 0);
      EXPECT_EQ(uint32_t(out[4 * (32 + l)]), 0xFFFFFFFFu);
      EXPECT_EQ(out[4 * (32 + l) + 1], 1);
      EXPECT_EQ(out[4 * (32 + l) + 2], 1);
      EXPECT_EQ(out[4 * (32 + l) + 3], 1);
    }
  }
}

TEST(SimtEmulator, SubgroupReduceBecomesRedux) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "subgroup_add");
  Buf<int32_t> in(64), out(64);
  for (int i = 0; i < 64; ++i)
    in[i] = (i * 37) % 101 - 50;
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {64}).memref(out.p, {64});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (int w = 0; w < 2; ++w) {
      int32_t sum = 0, mx = INT32_MIN;
      for (int l = 0; l < 32; ++l) {
        sum += in[w * 32 + l];
        mx = std::max(mx, in[w * 32 + l]);
      }
      for (int l = 0; l < 32; ++l)
        EXPECT_EQ(out[w * 32 + l], sum - mx);
    }
  }
}

TEST(SimtEmulator, DynamicSharedMemory) {
  const kvopt_simt_kernel &k = kernel("warp_ops.mlir", "dynamic_reverse");
  ASSERT_EQ(k.num_shared_vars, 1u);
  EXPECT_EQ(k.shared_vars[0].size, KVOPT_SIMT_DYNAMIC_SIZE);
  const uint32_t blocks = 2, threads = 64, n = blocks * threads;
  Buf<float> in(n), out(n);
  for (uint32_t i = 0; i < n; ++i)
    in[i] = float(i);
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {n}).memref(out.p, {n});
    LaunchResult r = launch(k, {blocks, 1, 1}, {threads, 1, 1}, 4 * threads,
                            a.data(), opts(s));
    ASSERT_TRUE(r.ok()) << r.text();
    for (uint32_t b = 0; b < blocks; ++b)
      for (uint32_t t = 0; t < threads; ++t)
        EXPECT_EQ(out[b * threads + t], in[b * threads + threads - 1 - t]);
  }
  // One float too little dynamic shared memory: the last thread's store is
  // out of bounds of the dynamic variable.
  Args a;
  a.memref(in.p, {n}).memref(out.p, {n});
  LaunchResult r = launch(k, {1, 1, 1}, {threads, 1, 1}, 4 * threads - 4,
                          a.data(), opts(Schedule::Forward));
  ASSERT_GE(r.count(ReportKind::SharedOutOfBounds), 1u) << r.text();
  EXPECT_NE(r.text().find("thread (63,0,0) [warp 1 lane 31] writes 4 bytes at "
                          "byte 252 of '__dynamic_shmem__0' (252 bytes)"),
            std::string::npos)
      << r.text();
}

//===----------------------------------------------------------------------===//
// Planted bugs
//===----------------------------------------------------------------------===//

TEST(SimtEmulator, MissingBarrierIsReportedAsRace) {
  const kvopt_simt_kernel &k = kernel("bugs.mlir", "block_sum_nobar");
  Buf<float> in(256, 1.f), out(1);
  for (Schedule s : kAll) {
    Args a;
    a.memref(in.p, {256}).memref(out.p, {1});
    LaunchResult r = launch(k, {}, {256, 1, 1}, 0, a.data(), opts(s));
    EXPECT_EQ(r.status, Status::Reported);
    ASSERT_GE(r.count(ReportKind::SharedRace), 1u)
        << scheduleName(s) << r.text();
    const std::string &m = r.reports[0].message;
    EXPECT_NE(m.find("shared-memory race: kernel 'block_sum_nobar' block "
                     "(0,0,0) thread ("),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("'__wg_block_sum_nobar_0'[+"), std::string::npos) << m;
    EXPECT_NE(m.find("bugs.mlir:"), std::string::npos) << m;
  }
  // The same kernel with its barrier is clean.
  const kvopt_simt_kernel &good = kernel("reduce.mlir", "block_sum");
  Args a;
  a.memref(in.p, {256}).memref(out.p, {1});
  EXPECT_TRUE(
      launch(good, {}, {256, 1, 1}, 0, a.data(), opts(Schedule::Reverse)).ok());
}

TEST(SimtEmulator, BarrierInThreadDependentBranchIsDivergence) {
  const kvopt_simt_kernel &k = kernel("bugs.mlir", "divergent_barrier");
  Buf<float> out(64);
  for (Schedule s : kAll) {
    Args a;
    a.memref(out.p, {64});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_EQ(r.count(ReportKind::BarrierDivergence), 1u)
        << scheduleName(s) << r.text();
    EXPECT_NE(
        r.reports[0].message.find("exited while 32 threads wait at barrier "
                                  "barrier at bugs.mlir:"),
        std::string::npos)
        << r.reports[0].message;
  }
}

TEST(SimtEmulator, SharedIndexOutOfBoundsIsReported) {
  const kvopt_simt_kernel &k = kernel("bugs.mlir", "shared_out_of_bounds");
  Buf<float> out(64);
  for (Schedule s : kTwo) {
    Args a;
    a.memref(out.p, {64});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_GE(r.count(ReportKind::SharedOutOfBounds), 1u) << r.text();
    EXPECT_EQ(r.count(ReportKind::SharedRace), 0u) << r.text();
    // Forward: thread 32 overflows first, one element past the end;
    // reverse: thread 63, 32 elements past.
    std::string at =
        s == Schedule::Forward
            ? "thread (32,0,0) [warp 1 lane 0] writes 4 bytes at byte 128"
            : "thread (63,0,0) [warp 1 lane 31] writes 4 bytes at byte 252";
    EXPECT_NE(r.text().find(at +
                            " of '__wg_shared_out_of_bounds_0' (128 bytes) "
                            "at store shared at bugs.mlir:"),
              std::string::npos)
        << r.text();
    // The overflowing stores were redirected: the neighbouring variable
    // still holds what warp 0 wrote.
    for (int t = 0; t < 64; ++t)
      EXPECT_EQ(out[t], float(t % 32)) << t;
  }
}

TEST(SimtEmulator, ShuffleWithWrongWidthIsReported) {
  const kvopt_simt_kernel &k = kernel("bugs.mlir", "block_sum_width16");
  Buf<float> in(64, 1.f), out(1);
  for (Schedule s : kTwo) {
    Args a;
    a.memref(in.p, {64}).memref(out.p, {1});
    LaunchResult r = launch(k, {}, {64, 1, 1}, 0, a.data(), opts(s));
    ASSERT_GE(r.count(ReportKind::WarpMaskMismatch), 1u) << r.text();
    // Lanes 16..31 run the shuffle with a mask that excludes them.
    EXPECT_NE(r.text().find("executes shfl.sync.bfly with member mask "
                            "0x0000ffff, which excludes its own lane"),
              std::string::npos)
        << r.text();
    if (s == Schedule::Forward) // lanes 0..15 wait; lane 16 is next to run
      EXPECT_NE(r.text().find("[warp 0 lane 16] executes shfl.sync.bfly"),
                std::string::npos);
    EXPECT_EQ(r.count(ReportKind::ShuffleInactiveLane), 0u) << r.text();
  }
}

TEST(SimtEmulator, GlobalOutOfBoundsIsReported) {
  const kvopt_simt_kernel &k = kernel("bugs.mlir", "copy");
  Buf<float> in(63, 2.f), out(63);
  Args a;
  a.memref(in.p, {63}).memref(out.p, {63});
  LaunchResult r =
      launch(k, {}, {64, 1, 1}, 0, a.data(),
             opts(Schedule::Reverse, {in.range("in"), out.range("out")}));
  ASSERT_EQ(r.count(ReportKind::GlobalOutOfBounds), 2u) << r.text();
  EXPECT_NE(r.text().find(
                "kernel 'copy' block (0,0,0) thread (63,0,0) [warp 1 lane 31] "
                "reads 4 bytes at byte 252 of buffer 'in' (252 bytes), 4 bytes "
                "past its end at load global at bugs.mlir:"),
            std::string::npos)
      << r.text();
  for (int i = 0; i < 63; ++i)
    EXPECT_EQ(out[i], 2.f);
}

TEST(SimtEmulator, LaunchOutsideKnownBlockSizeIsRefused) {
  const kvopt_simt_kernel &k = kernel("attention.mlir", "decode_attention");
  Args a;
  LaunchResult r =
      launch(k, {}, {64, 1, 1}, 0, a.data(), opts(Schedule::Forward));
  EXPECT_EQ(r.status, Status::InvalidLaunch);
  EXPECT_NE(
      r.text().find("compiled for block (128,1,1), launched with (64,1,1)"),
      std::string::npos)
      << r.text();
}

//===----------------------------------------------------------------------===//
// The mapping table
//===----------------------------------------------------------------------===//

/// Every runtime function the pass can emit a call to exists in the
/// runtime library loaded into this process, and op names are unique.
//===----------------------------------------------------------------------===//
// Tensor cores: nvvm.mma.sync
//===----------------------------------------------------------------------===//

/// IEEE binary16 / bfloat16 bits of `x` (exact for the values used).
uint16_t halfBits(float x, bool bf16) {
  uint32_t f;
  std::memcpy(&f, &x, 4);
  if (bf16)
    return uint16_t(f >> 16);
  if (x == 0.0f)
    return uint16_t((f >> 16) & 0x8000);
  int e = int((f >> 23) & 0xFF) - 127 + 15;
  return uint16_t(((f >> 16) & 0x8000) | (e << 10) | ((f >> 13) & 0x3FF));
}

/// D = A B + C for `blocks` independent 16 x K x 8 products, each by one
/// warp. Values are multiples of 1/4 in [-2, 2], so every product and sum is
/// exact in f32 and D must equal the double reference bit for bit whatever
/// the summation order.
void checkMma(const char *name, int K, bool bf16) {
  const kvopt_simt_kernel &k = kernel("mma.mlir", name);
  const int blocks = 3;
  std::srand(K * 7 + bf16);
  Buf<uint16_t> a(blocks * 16 * K), b(blocks * K * 8);
  Buf<float> c(blocks * 128), d(blocks * 128, NAN);
  std::vector<float> av(a.n), bv(b.n);
  auto pick = [] { return float(std::rand() % 17 - 8) / 4.0f; };
  for (size_t i = 0; i < a.n; ++i)
    a[i] = halfBits(av[i] = pick(), bf16);
  for (size_t i = 0; i < b.n; ++i)
    b[i] = halfBits(bv[i] = pick(), bf16);
  for (size_t i = 0; i < c.n; ++i)
    c[i] = pick();
  for (Schedule s : kAll) {
    Args args;
    args.memref(a.p, {int64_t(a.n)})
        .memref(b.p, {int64_t(b.n)})
        .memref(c.p, {int64_t(c.n)})
        .memref(d.p, {int64_t(d.n)});
    LaunchResult r = launch(
        k, {blocks, 1, 1}, {32, 1, 1}, 0, args.data(),
        opts(s, {a.range("a"), b.range("b"), c.range("c"), d.range("d")}));
    ASSERT_TRUE(r.ok()) << r.text();
    EXPECT_EQ(r.counters.warpCollectives, uint64_t(blocks)) << name;
    for (int blk = 0; blk < blocks; ++blk)
      for (int row = 0; row < 16; ++row)
        for (int col = 0; col < 8; ++col) {
          double want = c[blk * 128 + row * 8 + col];
          for (int kk = 0; kk < K; ++kk)
            want += double(av[blk * 16 * K + row * K + kk]) *
                    double(bv[blk * K * 8 + kk * 8 + col]);
          EXPECT_EQ(double(d[blk * 128 + row * 8 + col]), want)
              << name << " block " << blk << " D[" << row << "][" << col << "] "
              << scheduleName(s);
        }
  }
}

TEST(SimtEmulator, MmaSyncF16K16MatchesReference) {
  checkMma("mma_f16_k16", 16, false);
}
TEST(SimtEmulator, MmaSyncBF16K16MatchesReference) {
  checkMma("mma_bf16_k16", 16, true);
}
TEST(SimtEmulator, MmaSyncF16K8MatchesReference) {
  checkMma("mma_f16_k8", 8, false);
}

TEST(SimtEmulator, MmaSyncInDivergentBranchIsReported) {
  const kvopt_simt_kernel &k = kernel("mma.mlir", "mma_divergent");
  Buf<uint16_t> a(32, halfBits(1.0f, false));
  Buf<float> d(32, 0.0f);
  for (Schedule s : kTwo) {
    Args args;
    args.memref(a.p, {32}).memref(d.p, {32});
    LaunchResult r = launch(k, {}, {32, 1, 1}, 0, args.data(), opts(s));
    EXPECT_FALSE(r.ok());
    // Forward: lanes 0..15 wait in the mma while 16..31 exit; reverse:
    // 16..31 exit first and lane 15 enters a half-dead warp.
    ASSERT_GE(r.count(ReportKind::WarpMaskMismatch), 1u) << r.text();
    EXPECT_TRUE(r.text().find("exited without joining the warp collective "
                              "at mma.sync") != std::string::npos ||
                r.text().find("mma.sync needs all 32 lanes") !=
                    std::string::npos)
        << r.text();
    // The half warp's product is undefined: NaN, never a plausible number.
    for (int l = 0; l < 16; ++l)
      EXPECT_TRUE(std::isnan(d[l])) << "lane " << l;
  }
}

TEST(SimtEmulator, MmaSyncAtTwoSitesIsReported) {
  const kvopt_simt_kernel &k = kernel("mma.mlir", "mma_two_sites");
  Buf<uint16_t> a(32, halfBits(1.0f, false));
  Buf<float> d(32, 0.0f);
  for (Schedule s : kTwo) {
    Args args;
    args.memref(a.p, {32}).memref(d.p, {32});
    LaunchResult r = launch(k, {}, {32, 1, 1}, 0, args.data(), opts(s));
    ASSERT_GE(r.count(ReportKind::WarpMaskMismatch), 1u) << r.text();
    EXPECT_NE(r.text().find("mma.sync.aligned needs every lane at the same "
                            "instruction"),
              std::string::npos)
        << r.text();
    for (int l = 0; l < 32; ++l)
      EXPECT_TRUE(std::isnan(d[l])) << "lane " << l;
  }
}

TEST(SimtEmulator, EveryMappedRuntimeSymbolExists) {
  std::set<std::string> ops;
  for (const NVVMMapping &m : nvvmMappingTable()) {
    EXPECT_TRUE(ops.insert(m.opName.str()).second) << m.opName.str();
    EXPECT_NE(dlsym(RTLD_DEFAULT, m.symbol.str().c_str()), nullptr)
        << m.opName.str() << " -> " << m.symbol.str();
    EXPECT_EQ(lookupNVVMMapping(m.opName), &m);
  }
  EXPECT_EQ(lookupNVVMMapping("nvvm.nanosleep"), nullptr);
  for (const char *hook :
       {"__kv_simt_ld_global", "__kv_simt_st_global", "__kv_simt_ld_shared",
        "__kv_simt_st_shared", "__kv_simt_ld_generic", "__kv_simt_st_generic",
        "__kv_simt_atomic", "__kv_simt_smem_base", "__kv_simt_ops", "__nv_expf",
        "__nv_powif"})
    EXPECT_NE(dlsym(RTLD_DEFAULT, hook), nullptr) << hook;
}

} // namespace
