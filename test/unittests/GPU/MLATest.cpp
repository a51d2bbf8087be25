//===- MLATest.cpp - generated MLA decode kernels vs the reference --------===//
//
// Every case: kv-gpu-kernels generates the MLA decode + merge kernels for a
// kv.mla_attention over a paged latent cache, the SIMT emulator runs them
// over latent rows written in CacheLayout.md's page format (shuffled
// placement, token-axis quantization with the reference's codes and
// scales), in two schedules and split plans, and the result must be within
// docs/Numerics.md's f32 bound of the double-precision mlaLatentAttention,
// with no race, divergence or out-of-bounds report.
//
//===----------------------------------------------------------------------===//

#include "MLAHarness.h"

#include "TargetInfo.h"
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
#include <numeric>
#include <random>
#include <sstream>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

namespace {

std::vector<uint64_t> seeds() { return testSeeds(); }

struct CompiledMLA {
  std::unique_ptr<simt::EmulatedModule> module;
  const kvopt_simt_kernel *decode = nullptr, *merge = nullptr;
  int64_t threads = 0, mergeThreads = 0, tileTokens = 0, rowBlocks = 0;
  std::string gpuText; ///< the generated gpu.module
};

std::optional<CompiledMLA> compileMLA(const MLACase &c, std::string &error) {
  CompiledMLA k;
  k.module = compileKernels(
      c.moduleText(), "sm_80",
      [&](mlir::gpu::GPUFuncOp f) {
        auto block = f.getKnownBlockSizeAttr();
        if (f.getName().starts_with("mla_decode_")) {
          k.threads = block[0];
          k.tileTokens =
              f->getAttrOfType<mlir::IntegerAttr>("kv.tile_tokens").getInt();
          auto grid = f->getAttrOfType<mlir::ArrayAttr>("kv.grid");
          k.rowBlocks = mlir::cast<mlir::IntegerAttr>(grid[1]).getInt();
        } else {
          k.mergeThreads = block[0];
        }
      },
      error, &k.gpuText);
  if (!k.module || !(k.decode = findKernel(*k.module, "mla_decode_0", error)) ||
      !(k.merge = findKernel(*k.module, "merge_0", error)))
    return std::nullopt;
  return k;
}

void check(const MLACase &c) {
  SCOPED_TRACE(c.describe());
  std::string error;
  auto k = compileMLA(c, error);
  ASSERT_TRUE(k) << error;
  MLAData d = makeMLAData(c);
  const int64_t B = c.batch(), rows = B * c.heads * c.queryLen,
                T = c.maxLength(), Lat = c.latent;
  struct Plan {
    simt::Schedule schedule;
    int64_t chunk;
  } plans[] = {{simt::Schedule::Forward, 1 << 20},
               {simt::Schedule::Reverse, 2 * k->tileTokens}};
  for (const Plan &plan : plans) {
    int64_t splits = std::max<int64_t>(1, (T + plan.chunk - 1) / plan.chunk);
    SCOPED_TRACE(std::string("schedule ") + simt::scheduleName(plan.schedule) +
                 ", splits " + std::to_string(splits));
    std::vector<float> pout(rows * splits * Lat, NAN), plse(rows * splits, NAN);
    size_t poolBytes = (d.pool.size() + 255) / 256 * 256;
    std::unique_ptr<uint8_t, void (*)(void *)> pool(
        static_cast<uint8_t *>(std::aligned_alloc(256, poolBytes)), std::free);
    std::copy(d.pool.begin(), d.pool.end(), pool.get());
    std::vector<uint8_t> ql = d.ql, qr = d.qr;
    std::vector<int32_t> table = d.table, lens = d.lens;
    int64_t qb = ref::scalarBytes(c.query);
    simt::ParamPack p;
    p.memref(ql.data(), {int64_t(ql.size()) / qb})
        .memref(qr.data(), {int64_t(qr.size()) / qb})
        .memref(pool.get(), {int64_t(d.pool.size())})
        .memref(table.data(), {int64_t(table.size())})
        .memref(lens.data(), {int64_t(lens.size())})
        .memref(pout.data(), {int64_t(pout.size())})
        .memref(plse.data(), {int64_t(plse.size())})
        .scalar<int32_t>(int32_t(c.maxPages()))
        .scalar<int32_t>(int32_t(splits))
        .scalar<int32_t>(int32_t(plan.chunk));
    simt::LaunchOptions o;
    o.schedule = plan.schedule;
    o.seed = c.seed;
    o.printReports = false;
    o.buffers = {{"q_latent", ql.data(), ql.size()},
                 {"q_rope", qr.data(), qr.size()},
                 {"pool", pool.get(), d.pool.size()},
                 {"block_table", table.data(), table.size() * 4},
                 {"seq_lens", lens.data(), lens.size() * 4},
                 {"part_out", pout.data(), pout.size() * 4},
                 {"part_lse", plse.data(), plse.size() * 4}};
    simt::LaunchResult r = simt::launch(
        *k->decode, {uint32_t(splits), uint32_t(k->rowBlocks), uint32_t(B)},
        {uint32_t(k->threads), 1, 1}, 0, p.data(), o);
    ASSERT_TRUE(r.ok()) << r.text();

    bool o32 = c.output == ref::ScalarType::F32;
    std::vector<uint8_t> out(rows * Lat * (o32 ? 4 : 2), 0xff);
    std::vector<float> lse(rows, NAN);
    simt::ParamPack m;
    m.memref(pout.data(), {int64_t(pout.size())})
        .memref(plse.data(), {int64_t(plse.size())})
        .memref(out.data(), {rows * Lat})
        .memref(lse.data(), {rows})
        .scalar<int32_t>(int32_t(splits));
    o.buffers = {{"part_out", pout.data(), pout.size() * 4},
                 {"part_lse", plse.data(), plse.size() * 4},
                 {"out", out.data(), out.size()},
                 {"lse", lse.data(), lse.size() * 4}};
    simt::LaunchResult mr = simt::launch(
        *k->merge, {uint32_t(c.heads * c.queryLen), uint32_t(B), 1},
        {uint32_t(k->mergeThreads), 1, 1}, 0, m.data(), o);
    ASSERT_TRUE(mr.ok()) << mr.text();

    std::string where;
    double worst =
        worstOutputError(out, c.output, d.expected.out.values(), d.tol.out, lse,
                         d.expected.lse.values(), d.tol.lse, where);
    EXPECT_LE(worst, 1.0) << where;
  }
  // With a GPU, one split per sequence and two-tile chunks on the device.
  if (Device *device = cudaDevice()) {
    auto dk = DeviceKernels::load(*device, k->gpuText, "sm_80", error);
    ASSERT_TRUE(dk) << error;
    for (int64_t chunk : {int64_t(1) << 20, 2 * k->tileTokens}) {
      int64_t splits = std::max<int64_t>(1, (T + chunk - 1) / chunk);
      SCOPED_TRACE("real GPU, splits " + std::to_string(splits));
      bool o32 = c.output == ref::ScalarType::F32;
      std::vector<uint8_t> out(rows * Lat * (o32 ? 4 : 2));
      std::vector<float> lse(rows, NAN);
      int64_t qb = ref::scalarBytes(c.query);
      uint8_t *ql = dk->upload(d.ql.data(), d.ql.size());
      uint8_t *qr = dk->upload(d.qr.data(), d.qr.size());
      uint8_t *pool = dk->upload(d.pool.data(), d.pool.size());
      uint8_t *table = dk->upload(d.table.data(), d.table.size() * 4);
      uint8_t *lens = dk->upload(d.lens.data(), d.lens.size() * 4);
      uint8_t *pout = dk->upload(nullptr, rows * splits * Lat * 4);
      uint8_t *plse = dk->upload(nullptr, rows * splits * 4);
      uint8_t *dout = dk->upload(nullptr, out.size());
      uint8_t *dlse = dk->upload(nullptr, rows * 4);
      ASSERT_TRUE(ql && qr && pool && table && lens && pout && plse && dout &&
                  dlse)
          << dk->error();
      simt::ParamPack p, m;
      p.memref(ql, {int64_t(d.ql.size()) / qb})
          .memref(qr, {int64_t(d.qr.size()) / qb})
          .memref(pool, {int64_t(d.pool.size())})
          .memref(table, {int64_t(d.table.size())})
          .memref(lens, {int64_t(d.lens.size())})
          .memref(pout, {rows * splits * Lat})
          .memref(plse, {rows * splits})
          .scalar<int32_t>(int32_t(c.maxPages()))
          .scalar<int32_t>(int32_t(splits))
          .scalar<int32_t>(int32_t(chunk));
      m.memref(pout, {rows * splits * Lat})
          .memref(plse, {rows * splits})
          .memref(dout, {rows * Lat})
          .memref(dlse, {rows})
          .scalar<int32_t>(int32_t(splits));
      ASSERT_TRUE(
          dk->launch("mla_decode_0",
                     {uint32_t(splits), uint32_t(k->rowBlocks), uint32_t(B)},
                     {uint32_t(k->threads), 1, 1}, p.data()))
          << dk->error();
      ASSERT_TRUE(dk->launch("merge_0",
                             {uint32_t(c.heads * c.queryLen), uint32_t(B), 1},
                             {uint32_t(k->mergeThreads), 1, 1}, m.data()))
          << dk->error();
      ASSERT_TRUE(dk->download(out.data(), dout, out.size()) &&
                  dk->download(lse.data(), dlse, rows * 4))
          << dk->error();
      std::string where;
      EXPECT_LE(worstOutputError(out, c.output, d.expected.out.values(),
                                 d.tol.out, lse, d.expected.lse.values(),
                                 d.tol.lse, where),
                1.0)
          << where;
    }
  }
}

std::vector<int64_t> randomLengths(std::mt19937_64 &rng, int64_t batch,
                                   int64_t minLen, int64_t maxLen) {
  std::uniform_int_distribution<int64_t> d(minLen, maxLen);
  std::vector<int64_t> l;
  for (int64_t b = 0; b < batch; ++b)
    l.push_back(d(rng));
  return l;
}

using ref::QuantKind;
using ref::ScalarType;

Encoding tok(QuantKind k, int64_t g, bool sym, ScalarType s = ScalarType::F16) {
  return Encoding{k, ref::QuantAxis::Token, g, sym, s};
}

/// DeepSeek-V2/V3 shape: latent 512 + RoPE 64, 16 heads (one block row
/// group), bf16, page 64, full precision and int8 rows.
TEST(GpuMLA, DeepSeekShape) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 2; ++i) {
      MLACase c;
      c.lengths = randomLengths(rng, 2, 1, 150);
      // f32 output first (sensitive to kernel error), then bf16 + int8.
      c.output = i ? ScalarType::BF16 : ScalarType::F32;
      if (i)
        c.quant = tok(QuantKind::Int8, 0, true, ScalarType::F32);
      c.seed = seed + i;
      check(c);
    }
  }
}

/// Head counts that do not fill a row block, several row blocks, causal
/// multi-row queries, other widths, pages 1..256, every encoding.
TEST(GpuMLA, ShapesAndEncodings) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 3);
    struct {
      int64_t latent, rope, heads, tq, page;
      ScalarType el, q, out;
      std::optional<Encoding> quant;
      bool causal;
    } grid[] = {
        {512, 64, 1, 1, 16, ScalarType::F16, ScalarType::F32, ScalarType::F32,
         std::nullopt, false},
        {512, 64, 40, 1, 1, ScalarType::BF16, ScalarType::BF16, ScalarType::F32,
         tok(QuantKind::Fp8E4M3, 64, true), false},
        {256, 64, 8, 2, 64, ScalarType::F32, ScalarType::F32, ScalarType::F32,
         std::nullopt, true},
        {128, 32, 6, 3, 256, ScalarType::F16, ScalarType::F16, ScalarType::F32,
         tok(QuantKind::Int4, 32, false), true},
        {512, 64, 16, 1, 16, ScalarType::BF16, ScalarType::BF16,
         ScalarType::F32, tok(QuantKind::Int2, 0, false, ScalarType::F32),
         false},
        {128, 64, 20, 1, 32, ScalarType::F16, ScalarType::F32, ScalarType::F16,
         tok(QuantKind::Int8, 96, false, ScalarType::BF16), false},
    };
    for (const auto &g : grid) {
      MLACase c;
      c.latent = g.latent;
      c.rope = g.rope;
      c.heads = g.heads;
      c.queryLen = g.tq;
      c.pageSize = g.page;
      c.element = g.el;
      c.query = g.q;
      c.output = g.out;
      c.quant = g.quant;
      c.causal = g.causal;
      c.lengths = randomLengths(rng, 1 + seed % 2 + (g.heads < 10), g.tq, 120);
      c.seed = seed;
      check(c);
    }
  }
}

// Full-precision windows of the latent rows: recent ring, sinks, sequences
// shorter than the window, page size 1, several causal query rows.
TEST(GpuMLA, FullPrecisionWindows) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 5);
    struct {
      int64_t page, tq, recent, sinks;
      Encoding quant;
    } grid[] = {
        {64, 1, 16, 0, tok(QuantKind::Int8, 0, true, ScalarType::F32)},
        {16, 1, 7, 3, tok(QuantKind::Int4, 64, false)},
        {1, 2, 5, 2, tok(QuantKind::Fp8E4M3, 0, true)},
        // Per-channel scales over 16 tokens (pages of 64: 4 groups), the
        // incomplete last group in the recent window.
        {64, 1, 16, 0,
         Encoding{QuantKind::Int4, ref::QuantAxis::Channel, 16, false,
                  ScalarType::F16}},
        {32, 2, 7, 2,
         Encoding{QuantKind::Int8, ref::QuantAxis::Channel, 8, true,
                  ScalarType::F32}},
    };
    for (const auto &g : grid) {
      MLACase c;
      c.heads = 16;
      c.queryLen = g.tq;
      c.causal = g.tq > 1;
      c.pageSize = g.page;
      c.quant = g.quant;
      c.quant->recent = g.recent;
      c.quant->sinks = g.sinks;
      c.lengths = randomLengths(rng, 2, g.tq, 150);
      c.lengths.push_back(std::max<int64_t>(g.tq, 3));
      c.seed = seed;
      check(c);
    }
  }
}

} // namespace
