//===- PrefillTest.cpp - tensor-core prefill kernels vs the reference -----===//
//
// Every case: kv-gpu-kernels picks the tensor-core prefill kernel for a
// kv.attention with many query rows per KV head (G x Tq >= 64, or fewer
// whose decode accumulators would not fit), the SIMT
// emulator runs it (its mma.sync in PTX's fragment layout) over pages
// written by the reference's writePagedCache (shuffled placement), in
// forward and reverse schedules, and the result must be within
// docs/Numerics.md's f32 bound of the double-precision reference plus the
// rounding of P to the multiplicand type, with no emulator report.
//
//===----------------------------------------------------------------------===//

#include "DecodeHarness.h"

#include "kvopt/Codegen/KVToGPU/Passes.h"
#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Reference/Numeric.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

namespace {

std::vector<uint64_t> seeds() { return testSeeds(); }

struct CompiledPrefill {
  std::unique_ptr<simt::EmulatedModule> module;
  const kvopt_simt_kernel *kernel = nullptr;
  int64_t threads = 0, rowBlocks = 0;
  std::string names;   ///< the generated kernels' names
  std::string gpuText; ///< the generated gpu.module
};

std::optional<CompiledPrefill> compilePrefill(const DecodeCase &c,
                                              std::string &error) {
  CompiledPrefill k;
  k.module = compileKernels(
      decodeModuleText(c), "sm_80",
      [&](mlir::gpu::GPUFuncOp f) {
        k.names += f.getName().str() + " ";
        k.threads = f.getKnownBlockSizeAttr()[0];
        auto grid = f->getAttrOfType<mlir::ArrayAttr>("kv.grid");
        k.rowBlocks = mlir::cast<mlir::IntegerAttr>(grid[0]).getInt();
      },
      error, &k.gpuText);
  if (!k.module)
    return std::nullopt;
  if (!(k.kernel = findKernel(*k.module, "prefill_0", error))) {
    error += " (kernels: " + k.names + ")";
    return std::nullopt;
  }
  return k;
}

void check(const DecodeCase &c) {
  SCOPED_TRACE(c.describe());
  std::string error;
  auto k = compilePrefill(c, error);
  ASSERT_TRUE(k) << error;
  DecodeData d = makeDecodeData(c);
  const int64_t B = c.lengths.size(), Hkv = c.kvHeads, D = c.headDim,
                rows = B * Hkv * c.group * c.queryLen;
  double tolOut = 0, tolLse = 0;
  prefillTolerance(c, d, tolOut, tolLse);
  for (simt::Schedule s : {simt::Schedule::Forward, simt::Schedule::Reverse}) {
    SCOPED_TRACE(std::string("schedule ") + simt::scheduleName(s));
    size_t poolBytes = (d.pool.size() + 255) / 256 * 256;
    std::unique_ptr<uint8_t, void (*)(void *)> pool(
        static_cast<uint8_t *>(std::aligned_alloc(256, poolBytes)), std::free);
    std::copy(d.pool.begin(), d.pool.end(), pool.get());
    std::vector<uint16_t> q = d.q16;
    std::vector<int32_t> table = d.table, lens = d.lens;
    bool o32 = c.output == ref::ScalarType::F32;
    std::vector<uint8_t> out(rows * D * (o32 ? 4 : 2), 0xff);
    std::vector<float> lse(rows, NAN);
    simt::ParamPack p;
    p.memref(q.data(), {int64_t(q.size())})
        .memref(pool.get(), {int64_t(d.pool.size())})
        .memref(table.data(), {int64_t(table.size())})
        .memref(lens.data(), {int64_t(lens.size())})
        .memref(out.data(), {rows * D})
        .memref(lse.data(), {rows})
        .scalar<int32_t>(int32_t(d.maxPages));
    simt::LaunchOptions o;
    o.schedule = s;
    o.seed = c.seed;
    o.printReports = false;
    o.buffers = {{"q", q.data(), q.size() * 2},
                 {"pool", pool.get(), d.pool.size()},
                 {"block_table", table.data(), table.size() * 4},
                 {"seq_lens", lens.data(), lens.size() * 4},
                 {"out", out.data(), out.size()},
                 {"lse", lse.data(), lse.size() * 4}};
    simt::LaunchResult r = simt::launch(
        *k->kernel, {uint32_t(k->rowBlocks), uint32_t(Hkv), uint32_t(B)},
        {uint32_t(k->threads), 1, 1}, 0, p.data(), o);
    ASSERT_TRUE(r.ok()) << r.text();
    std::string where;
    double worst =
        worstOutputError(out, c.output, d.expected.out.values(), tolOut, lse,
                         d.expected.lse.values(), tolLse, where);
    EXPECT_LE(worst, 1.0) << where;
  }
  // With a GPU, the same launch on the device.
  if (Device *device = cudaDevice()) {
    SCOPED_TRACE("real GPU");
    auto dk = DeviceKernels::load(*device, k->gpuText, "sm_80", error);
    ASSERT_TRUE(dk) << error;
    bool o32 = c.output == ref::ScalarType::F32;
    std::vector<uint8_t> out(rows * D * (o32 ? 4 : 2));
    std::vector<float> lse(rows, NAN);
    uint8_t *dq = dk->upload(d.q16.data(), d.q16.size() * 2);
    uint8_t *dpool = dk->upload(d.pool.data(), d.pool.size());
    uint8_t *dtable = dk->upload(d.table.data(), d.table.size() * 4);
    uint8_t *dlens = dk->upload(d.lens.data(), d.lens.size() * 4);
    uint8_t *dout = dk->upload(nullptr, out.size());
    uint8_t *dlse = dk->upload(nullptr, rows * 4);
    ASSERT_TRUE(dq && dpool && dtable && dlens && dout && dlse) << dk->error();
    simt::ParamPack p;
    p.memref(dq, {int64_t(d.q16.size())})
        .memref(dpool, {int64_t(d.pool.size())})
        .memref(dtable, {int64_t(d.table.size())})
        .memref(dlens, {int64_t(d.lens.size())})
        .memref(dout, {rows * D})
        .memref(dlse, {rows})
        .scalar<int32_t>(int32_t(d.maxPages));
    ASSERT_TRUE(dk->launch("prefill_0",
                           {uint32_t(k->rowBlocks), uint32_t(Hkv), uint32_t(B)},
                           {uint32_t(k->threads), 1, 1}, p.data()))
        << dk->error();
    ASSERT_TRUE(dk->download(out.data(), dout, out.size()) &&
                dk->download(lse.data(), dlse, rows * 4))
        << dk->error();
    std::string where;
    EXPECT_LE(worstOutputError(out, c.output, d.expected.out.values(), tolOut,
                               lse, d.expected.lse.values(), tolLse, where),
              1.0)
        << where;
  }
}

using ref::ScalarType;

DecodeCase prefillCase(int64_t D, int64_t G, int64_t Tq, int64_t P,
                       ScalarType el, std::vector<int64_t> lens,
                       uint64_t seed) {
  DecodeCase c;
  c.kvHeads = 2;
  c.headDim = D;
  c.group = G;
  c.queryLen = Tq;
  c.pageSize = P;
  c.element = el;
  c.query = el;
  c.output = ScalarType::F32;
  c.lengths = std::move(lens);
  c.seed = seed;
  return c;
}

/// Chunked prefill: Tq new tokens at the end of each sequence, causal, over
/// head dims 16..128, groups 1..8, pages 1..256, f16 and bf16, partial row
/// blocks (G x Tq not a multiple of 64) and lengths not multiples of the
/// 32-key tile.
TEST(GpuPrefill, CausalChunksMatchReference) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed);
    struct {
      int64_t D, G, Tq, P;
      ScalarType el;
    } grid[] = {{128, 4, 16, 16, ScalarType::F16},
                {64, 1, 70, 1, ScalarType::BF16},
                {128, 8, 9, 64, ScalarType::BF16},
                {32, 2, 40, 256, ScalarType::F16},
                {96, 16, 4, 16, ScalarType::F16},
                // Head dim 256: 2 warps (32 rows) and 16-key tiles.
                {256, 8, 9, 16, ScalarType::BF16},
                // 48 rows: below the 64-row threshold, but decode's
                // accumulators (48 x 4 per lane) would not fit.
                {128, 4, 12, 16, ScalarType::F16}};
    for (const auto &g : grid) {
      std::uniform_int_distribution<int64_t> extra(0, 90);
      std::vector<int64_t> lens = {g.Tq + extra(rng), g.Tq + extra(rng)};
      DecodeCase c = prefillCase(g.D, g.G, g.Tq, g.P, g.el, lens, seed);
      c.causal = true;
      check(c);
    }
  }
}

/// Non-causal rows (a whole prompt attending to a cached prefix), f16/bf16
/// outputs, and a sliding window with sinks.
TEST(GpuPrefill, OutputsAndMasks) {
  for (uint64_t seed : seeds()) {
    DecodeCase c =
        prefillCase(64, 4, 16, 16, ScalarType::F16, {37, 100}, seed + 1);
    c.output = ScalarType::F16;
    check(c);
    c = prefillCase(128, 2, 32, 16, ScalarType::BF16, {50, 77}, seed + 2);
    c.output = ScalarType::BF16;
    c.causal = true;
    check(c);
    c = prefillCase(64, 4, 20, 32, ScalarType::F16, {120, 70}, seed + 3);
    c.causal = true;
    c.window = 24;
    c.sinks = 3;
    check(c);
  }
}

/// Quantized caches: token-axis codes dequantized while the tile is
/// staged (int8, fp8, int4 and int2, groups, zero points, scale types).
TEST(GpuPrefill, QuantizedCaches) {
  using ref::QuantAxis;
  using ref::QuantKind;
  for (uint64_t seed : seeds()) {
    struct {
      int64_t D, G, Tq, P;
      ScalarType el;
      Encoding k, v;
    } grid[] = {
        {128, 4, 16, 16, ScalarType::F16,
         Encoding{QuantKind::Int8, QuantAxis::Token, 0, true, ScalarType::F32},
         Encoding{QuantKind::Int4, QuantAxis::Token, 32, false,
                  ScalarType::F16}},
        {64, 8, 8, 1, ScalarType::F16,
         Encoding{QuantKind::Fp8E4M3, QuantAxis::Token, 16, true,
                  ScalarType::BF16},
         Encoding{QuantKind::Int2, QuantAxis::Token, 4, false,
                  ScalarType::F32}},
        // Groups of 12 and 6 straddle the 8-channel staging chunks.
        {96, 4, 16, 16, ScalarType::F16,
         Encoding{QuantKind::Int8, QuantAxis::Token, 12, false,
                  ScalarType::F16},
         Encoding{QuantKind::Int8, QuantAxis::Token, 6, true, ScalarType::F32}},
        {32, 2, 40, 64, ScalarType::BF16,
         Encoding{QuantKind::Int4, QuantAxis::Token, 0, true, ScalarType::F16},
         Encoding{QuantKind::Int8, QuantAxis::Token, 16, false,
                  ScalarType::BF16}},
    };
    for (const auto &g : grid) {
      DecodeCase c = prefillCase(g.D, g.G, g.Tq, g.P, g.el,
                                 {g.Tq + 37, g.Tq + 70}, seed + g.D);
      c.key = g.k;
      c.value = g.v;
      c.causal = true;
      check(c);
    }
  }
}

// Full-precision windows: the window tokens staged exactly from their
// slots, the others dequantized (token-axis values; KIVI per-channel keys
// where the page allows); short sequences inside the window, page size 1.
TEST(GpuPrefill, FullPrecisionWindows) {
  using ref::QuantAxis;
  using ref::QuantKind;
  for (uint64_t seed : seeds()) {
    struct {
      int64_t D, G, Tq, P, recent, sinks;
    } grid[] = {{128, 4, 16, 16, 16, 4},
                {64, 8, 8, 1, 7, 0},
                {64, 4, 16, 32, 0, 5},
                {128, 4, 16, 64, 16, 0}};
    for (const auto &g : grid) {
      DecodeCase c = prefillCase(g.D, g.G, g.Tq, g.P, ScalarType::F16,
                                 {g.Tq + 41, g.Tq + 2, g.Tq}, seed + g.P);
      c.key = Encoding{QuantKind::Int8, QuantAxis::Token, 0,      true,
                       ScalarType::F32, g.recent,         g.sinks};
      // KIVI keys (per channel over 16 tokens) where the page allows.
      if (g.P % 16 == 0 && g.recent >= 15)
        c.key = Encoding{QuantKind::Int4, QuantAxis::Channel, 16,     false,
                         ScalarType::F16, g.recent,           g.sinks};
      c.value = Encoding{QuantKind::Int4, QuantAxis::Token, 32,     false,
                         ScalarType::F16, g.recent,         g.sinks};
      c.causal = true;
      check(c);
    }
  }
}

} // namespace
