//===- AppendTest.cpp - generated append kernels vs the reference ---------===//
//
// Every case: kv-gpu-kernels generates the kv.append kernel (RoPE + quantize
// + scatter), the SIMT emulator runs it over pages that already hold each
// sequence's earlier tokens (written by the reference's writePagedCache,
// shuffled placement, unused pages between them), in forward, reverse and
// random thread schedules. Without RoPE the whole pool must equal the
// reference's pages for the longer sequences byte for byte (codes, scales,
// zero points, untouched pages); with RoPE the rotated keys must decode to
// the double-precision rotation within its f32 bound and everything else
// must be exact. No emulator report may occur, and the bytes stored must be
// exactly the bytes the new rows own.
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
#include <numeric>
#include <random>
#include <sstream>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

namespace {

std::vector<uint64_t> seeds() { return testSeeds(); }

struct AppendCase {
  int64_t kvHeads = 2, headDim = 64, pageSize = 16, tokens = 1;
  /// Tokens already in each sequence (batch = start.size()).
  std::vector<int64_t> start;
  ref::ScalarType element = ref::ScalarType::F16;
  std::optional<Encoding> key, value;
  double ropeTheta = 0;
  uint64_t seed = 1;

  int64_t batch() const { return start.size(); }
  int64_t maxEnd() const {
    return *std::max_element(start.begin(), start.end()) + tokens;
  }
  int64_t maxPages() const { return (maxEnd() + pageSize - 1) / pageSize; }

  std::string describe() const {
    std::ostringstream os;
    os << "D=" << headDim << " Hkv=" << kvHeads << " P=" << pageSize
       << " T=" << tokens << " el=" << typeName(element)
       << " K=" << (key ? quantText(*key) : "none")
       << " V=" << (value ? quantText(*value) : "none") << " rope=" << ropeTheta
       << " start=[";
    for (size_t i = 0; i < start.size(); ++i)
      os << (i ? "," : "") << start[i];
    os << "] seed=" << seed;
    return os.str();
  }

  std::string cacheType() const {
    std::ostringstream os;
    os << "!kv.cache<kv_heads = " << kvHeads << ", head_dim = " << headDim
       << ", capacity = " << maxPages() * pageSize
       << ", element = " << typeName(element)
       << ", layout = #kv.layout<paged, page_size = " << pageSize << ">";
    if (key)
      os << ", key = " << quantText(*key);
    if (value)
      os << ", value = " << quantText(*value);
    os << ">";
    return os.str();
  }

  std::string moduleText() const {
    std::ostringstream rows, kt, vt, bt, pt;
    rows << batch() << "x" << kvHeads << "x" << tokens << "x" << headDim;
    kt << "tensor<" << rows.str() << "x" << typeName(element) << ">";
    vt << "tensor<" << rows.str() << "x" << typeName(element) << ">";
    bt << "tensor<" << batch() << "x" << maxPages() << "xi32>";
    pt << "tensor<" << batch() << "xi32>";
    std::string c = cacheType();
    std::ostringstream os;
    os << "func.func @append(%c: " << c << ", %pos: " << pt.str()
       << ", %k: " << kt.str() << ", %v: " << vt.str() << ", %bt: " << bt.str()
       << ") {\n  kv.append %c[%pos], %k, %v block_table %bt";
    if (ropeTheta > 0)
      os << " {rope_theta = " << std::showpoint << ropeTheta << std::noshowpoint
         << " : f64}";
    os << " : " << c << ", " << pt.str() << ", " << kt.str() << ", " << vt.str()
       << ", " << bt.str() << "\n  return\n}\n";
    return os.str();
  }
};

struct CompiledAppend {
  std::unique_ptr<simt::EmulatedModule> module;
  const kvopt_simt_kernel *kernel = nullptr;
  int64_t threads = 0, gridX = 0;
  std::string gpuText; ///< the generated gpu.module
};

/// kv-gpu-kernels{kernels-only} and the emulator JIT for `c`.
std::optional<CompiledAppend> compileAppend(const AppendCase &c,
                                            const std::string &chip,
                                            std::string &error) {
  CompiledAppend k;
  k.module = compileKernels(
      c.moduleText(), chip,
      [&](mlir::gpu::GPUFuncOp f) {
        k.threads = f.getKnownBlockSizeAttr()[0];
        auto grid = f->getAttrOfType<mlir::ArrayAttr>("kv.grid");
        k.gridX = mlir::cast<mlir::IntegerAttr>(grid[0]).getInt();
      },
      error, &k.gpuText);
  if (!k.module || !(k.kernel = findKernel(*k.module, "append_0", error)))
    return std::nullopt;
  return k;
}

ref::PagedCacheFormat formatOf(const AppendCase &c) {
  ref::PagedCacheFormat f;
  f.kvHeads = c.kvHeads;
  f.headDim = c.headDim;
  f.pageSize = c.pageSize;
  f.element = c.element;
  if (c.key)
    f.key = toReference(*c.key);
  if (c.value)
    f.value = toReference(*c.value);
  return f;
}

/// Stored bytes one token of one head owns in a page for component `e`.
int64_t rowBytes(const AppendCase &c, const std::optional<Encoding> &e) {
  if (!e)
    return c.headDim * ref::scalarBytes(c.element);
  int64_t g = e->group ? e->group : c.headDim;
  return c.headDim * ref::quantBits(e->kind) / 8 +
         (c.headDim / g) * ref::scalarBytes(e->scale) * (e->symmetric ? 1 : 2);
}

/// Little-endian bytes of `x` in `type`.
std::vector<uint8_t> encode(const ref::Tensor &x, ref::ScalarType type) {
  int64_t w = ref::scalarBytes(type);
  std::vector<uint8_t> out;
  for (double v : x.values()) {
    uint32_t bits = ref::toScalarBits(type, v);
    for (int64_t i = 0; i < w; ++i)
      out.push_back(uint8_t(bits >> (8 * i)));
  }
  return out;
}

void check(const AppendCase &c) {
  SCOPED_TRACE(c.describe());
  std::string error;
  auto k = compileAppend(c, "sm_80", error);
  ASSERT_TRUE(k) << error;

  std::mt19937_64 rng(c.seed);
  std::uniform_real_distribution<double> dist(-2.0, 2.0);
  const int64_t B = c.batch(), H = c.kvHeads, D = c.headDim, T = c.tokens,
                cap = c.maxPages() * c.pageSize;
  // Old tokens and new rows in the element type (kv.append's rows are).
  ref::Tensor kAll({B, H, cap, D}), vAll({B, H, cap, D});
  for (double &x : kAll.values())
    x = ref::roundToScalar(c.element, dist(rng));
  for (double &x : vAll.values())
    x = ref::roundToScalar(c.element, dist(rng));
  ref::Tensor kNew({B, H, T, D}), vNew({B, H, T, D});
  for (double &x : kNew.values())
    x = ref::roundToScalar(c.element, dist(rng));
  for (double &x : vNew.values())
    x = ref::roundToScalar(c.element, dist(rng));
  ref::Tensor kRot =
      c.ropeTheta > 0 ? ref::appendedRows(kNew, c.start, c.ropeTheta) : kNew;
  std::vector<int64_t> end;
  for (int64_t s : c.start)
    end.push_back(s + T);
  ref::Tensor kWant = kAll, vWant = vAll;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          kWant.at({b, h, c.start[b] + t, d}) =
              ref::roundToScalar(c.element, kRot.at({b, h, t, d}));
          vWant.at({b, h, c.start[b] + t, d}) =
              ref::roundToScalar(c.element, vNew.at({b, h, t, d}));
        }

  // Shuffled page placement with unused pages between the used ones.
  ref::PagedCacheFormat f = formatOf(c);
  ref::PageLayout layout = ref::computePageLayout(f);
  int64_t used = 0;
  for (int64_t e : end)
    used += (e + c.pageSize - 1) / c.pageSize;
  int64_t numPages = used + 3;
  std::vector<int32_t> perm(numPages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  ref::BlockTable table;
  table.batch = B;
  table.maxPages = c.maxPages();
  table.pages.assign(B * table.maxPages, -1);
  int64_t next = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < (end[b] + c.pageSize - 1) / c.pageSize; ++i)
      table.pages[b * table.maxPages + i] = perm[next++];
  std::vector<uint8_t> before(numPages * layout.pageBytes, 0);
  ref::writePagedCache(f, before, table, kAll, vAll, c.start);
  appendWindowRegion(before, c.element, H, D, c.key, c.value, kAll, vAll,
                     c.start);
  std::vector<uint8_t> want(numPages * layout.pageBytes, 0);
  ref::writePagedCache(f, want, table, kWant, vWant, end);
  appendWindowRegion(want, c.element, H, D, c.key, c.value, kWant, vWant, end);

  // Bytes the append must store: each new row's page bytes (a channel-axis
  // group's codes and scales by its last token) and window copies.
  uint64_t storeBytes = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      int64_t pos = c.start[b] + t;
      for (const std::optional<Encoding> *e : {&c.key, &c.value}) {
        if (!*e || (*e)->axis == ref::QuantAxis::Token)
          storeBytes += H * rowBytes(c, *e);
        else if (pos % (*e)->group == (*e)->group - 1)
          storeBytes += H * ((*e)->group * D * ref::quantBits((*e)->kind) / 8 +
                             D * ref::scalarBytes((*e)->scale) *
                                 ((*e)->symmetric ? 1 : 2));
        // The ring slot is written by the last new token that takes it.
        if (*e)
          storeBytes += H * D * ref::scalarBytes(c.element) *
                        ((pos < (*e)->sinks) +
                         ((*e)->recent > 0 && t + (*e)->recent >= T));
      }
    }

  // The pool after the append against the reference's pages: byte for
  // byte, or (RoPE) the rotated keys within their bound.
  auto verify = [&](const std::vector<uint8_t> &got) {
    if (c.ropeTheta <= 0) {
      size_t misses = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (got[i] != want[i] && misses++ < 5)
          ADD_FAILURE() << "byte " << i << " (page " << i / layout.pageBytes
                        << ", offset " << i % layout.pageBytes
                        << ") = " << int(got[i]) << ", reference "
                        << int(want[i]);
      EXPECT_EQ(misses, 0u);
      return;
    }
    // RoPE: f32 angle (position x rounded inverse frequency, 2u pos), f32
    // products (4u), one rounding to the element type on each side.
    ref::KVTensors g = ref::readPagedCache(f, got, table, end);
    ref::KVTensors w = ref::readPagedCache(f, want, table, end);
    double u = std::ldexp(1.0, -24);
    double elemU = c.element == ref::ScalarType::F32   ? u
                   : c.element == ref::ScalarType::F16 ? std::ldexp(1.0, -11)
                                                       : std::ldexp(1.0, -8);
    double pair = 2.0 * std::sqrt(2.0); // |(x_i, x_{i+D/2})| <= 2 sqrt 2
    double tol = pair * (2 * u * cap + 8 * u) + 2 * elemU * pair;
    if (c.key) {
      // A rotated value within tol of a rounding boundary may take the next
      // code: one quantization step (the group's scale) more, and the
      // scale itself moves with the group's range.
      double levels = c.key->symmetric ? ref::quantMax(c.key->kind, true)
                                       : ref::quantMax(c.key->kind, false);
      double step = (c.key->symmetric ? pair : 2 * pair) / levels;
      tol = 3 * tol + 1.01 * step;
    }
    double worst = 0;
    for (size_t i = 0; i < g.k.values().size(); ++i)
      worst = std::max(worst, std::fabs(g.k.values()[i] - w.k.values()[i]));
    EXPECT_LE(worst, tol) << "rotated keys";
    EXPECT_EQ(g.v.values(), w.v.values()) << "values";
  };
  struct Run {
    simt::Schedule schedule;
  } runs[] = {{simt::Schedule::Forward},
              {simt::Schedule::Reverse},
              {simt::Schedule::Random}};
  for (const Run &run : runs) {
    SCOPED_TRACE(std::string("schedule ") + simt::scheduleName(run.schedule));
    // The pool is 256-byte aligned as the runtime allocates it.
    size_t poolBytes = (before.size() + 255) / 256 * 256;
    std::unique_ptr<uint8_t, void (*)(void *)> pool(
        static_cast<uint8_t *>(std::aligned_alloc(256, poolBytes)), std::free);
    std::copy(before.begin(), before.end(), pool.get());
    std::vector<int32_t> pos(c.start.begin(), c.start.end());
    std::vector<int32_t> bt = table.pages;
    std::vector<uint8_t> kb = encode(kNew, c.element),
                         vb = encode(vNew, c.element);
    simt::ParamPack p;
    p.memref(pool.get(), {int64_t(before.size())})
        .memref(pos.data(), {B})
        .memref(kb.data(), {int64_t(kNew.values().size())})
        .memref(vb.data(), {int64_t(vNew.values().size())})
        .memref(bt.data(), {int64_t(bt.size())})
        .scalar<int32_t>(int32_t(table.maxPages));
    simt::LaunchOptions o;
    o.schedule = run.schedule;
    o.seed = c.seed;
    o.printReports = false;
    o.buffers = {{"pool", pool.get(), before.size()},
                 {"positions", pos.data(), pos.size() * 4},
                 {"keys", kb.data(), kb.size()},
                 {"values", vb.data(), vb.size()},
                 {"block_table", bt.data(), bt.size() * 4}};
    simt::LaunchResult r =
        simt::launch(*k->kernel, {uint32_t(k->gridX), uint32_t(B), 1},
                     {uint32_t(k->threads), 1, 1}, 0, p.data(), o);
    ASSERT_TRUE(r.ok()) << r.text();
    // Each byte the new rows own is stored once, nothing else.
    EXPECT_EQ(r.counters.globalStoreBytes, storeBytes);

    std::vector<uint8_t> got(pool.get(), pool.get() + before.size());
    verify(got);
  }
  // With a GPU, the same append on the device.
  if (Device *device = cudaDevice()) {
    SCOPED_TRACE("real GPU");
    std::string err;
    auto dk = DeviceKernels::load(*device, k->gpuText, "sm_80", err);
    ASSERT_TRUE(dk) << err;
    std::vector<int32_t> pos(c.start.begin(), c.start.end());
    std::vector<uint8_t> kb = encode(kNew, c.element),
                         vb = encode(vNew, c.element);
    uint8_t *dpool = dk->upload(before.data(), before.size());
    uint8_t *dpos = dk->upload(pos.data(), pos.size() * 4);
    uint8_t *dk_ = dk->upload(kb.data(), kb.size());
    uint8_t *dv = dk->upload(vb.data(), vb.size());
    uint8_t *dbt = dk->upload(table.pages.data(), table.pages.size() * 4);
    ASSERT_TRUE(dpool && dpos && dk_ && dv && dbt) << dk->error();
    simt::ParamPack p;
    p.memref(dpool, {int64_t(before.size())})
        .memref(dpos, {B})
        .memref(dk_, {int64_t(kNew.values().size())})
        .memref(dv, {int64_t(vNew.values().size())})
        .memref(dbt, {int64_t(table.pages.size())})
        .scalar<int32_t>(int32_t(table.maxPages));
    ASSERT_TRUE(dk->launch("append_0", {uint32_t(k->gridX), uint32_t(B), 1},
                           {uint32_t(k->threads), 1, 1}, p.data()))
        << dk->error();
    std::vector<uint8_t> got(before.size());
    ASSERT_TRUE(dk->download(got.data(), dpool, got.size())) << dk->error();
    verify(got);
  }
}

Encoding enc(ref::QuantKind k, int64_t g, bool sym,
             ref::ScalarType s = ref::ScalarType::F16) {
  return Encoding{k, ref::QuantAxis::Token, g, sym, s};
}

std::vector<int64_t> randomStarts(std::mt19937_64 &rng, int64_t batch,
                                  int64_t maxStart) {
  std::uniform_int_distribution<int64_t> d(0, maxStart);
  std::vector<int64_t> s;
  for (int64_t b = 0; b < batch; ++b)
    s.push_back(d(rng));
  return s;
}

using ref::QuantKind;
using ref::ScalarType;

TEST(GpuAppend, FullPrecisionLayouts) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed);
    struct {
      int64_t D, H, P, T;
      ScalarType el;
    } grid[] = {{64, 2, 16, 1, ScalarType::F16},
                {128, 8, 1, 3, ScalarType::BF16},
                {80, 1, 64, 17, ScalarType::F32},
                {256, 2, 256, 5, ScalarType::F16},
                {96, 3, 16, 2, ScalarType::BF16}};
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = g.H;
      c.pageSize = g.P;
      c.tokens = g.T;
      c.element = g.el;
      c.start = randomStarts(rng, 1 + seed % 3, 70);
      c.seed = seed;
      check(c);
    }
  }
}

TEST(GpuAppend, EveryEncodingBitExact) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 7);
    struct {
      int64_t D, P;
      Encoding k, v;
    } grid[] = {
        // int8 / fp8 whole-head scales (one row group over 32 lanes).
        {128, 16, enc(QuantKind::Int8, 0, true, ScalarType::F32),
         enc(QuantKind::Fp8E4M3, 0, true, ScalarType::F32)},
        // int4 groups of 32 over 8 lanes, zero points, f16 and bf16 scales.
        {128, 16, enc(QuantKind::Int4, 32, false),
         enc(QuantKind::Int4, 32, false, ScalarType::BF16)},
        // int2 groups of 8 (two lanes per group) and of 128.
        {128, 1, enc(QuantKind::Int2, 8, true),
         enc(QuantKind::Int2, 0, false, ScalarType::F32)},
        // Several groups per lane (int8 groups of 2, fp8 groups of 4).
        {128, 64, enc(QuantKind::Int8, 2, false),
         enc(QuantKind::Fp8E4M3, 4, true, ScalarType::BF16)},
        // Head dim 96, groups of 32: three lanes of 32 channels.
        {96, 16, enc(QuantKind::Int4, 32, true),
         enc(QuantKind::Int8, 48, false)},
        // Head dim 80: whole-head int4 groups over 8 lanes of 10.
        {80, 256, enc(QuantKind::Int4, 0, false),
         enc(QuantKind::Int2, 0, true)},
        // Head dim 256, groups of 16, page 256.
        {256, 256, enc(QuantKind::Int4, 16, false, ScalarType::F32),
         enc(QuantKind::Int8, 64, true)},
        // Head dim 64, page 1, fp8 keys and asymmetric int2 values.
        {64, 1, enc(QuantKind::Fp8E4M3, 16, true),
         enc(QuantKind::Int2, 32, false)},
    };
    int i = 0;
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = 1 + i % 3;
      c.pageSize = g.P;
      c.tokens = std::vector<int64_t>{1, 3, 17, 2}[i % 4];
      c.element = std::vector<ScalarType>{ScalarType::F16, ScalarType::BF16,
                                          ScalarType::F32}[i % 3];
      c.key = g.k;
      c.value = g.v;
      c.start = randomStarts(rng, 1 + (seed + i) % 3, 60);
      c.seed = seed;
      check(c);
      ++i;
    }
  }
}

TEST(GpuAppend, FusedRope) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 13);
    struct {
      int64_t D, P, T;
      double theta;
      ScalarType el;
      std::optional<Encoding> v;
    } grid[] = {
        {128, 16, 1, 10000.0, ScalarType::F16, std::nullopt},
        {64, 1, 4, 500000.0, ScalarType::F32, enc(QuantKind::Int4, 32, false)},
        {256, 64, 3, 10000.0, ScalarType::BF16,
         enc(QuantKind::Int8, 0, true, ScalarType::F32)},
        {96, 16, 2, 1000000.0, ScalarType::F16, std::nullopt},
        // Head dim 2: two lanes of one channel each.
        {2, 16, 5, 10000.0, ScalarType::F32, std::nullopt},
    };
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = 2;
      c.pageSize = g.P;
      c.tokens = g.T;
      c.element = g.el;
      c.value = g.v;
      c.ropeTheta = g.theta;
      // Positions up to a few thousand: large angles exercise the reduction.
      c.start = randomStarts(rng, 2, 3000);
      c.seed = seed;
      check(c);
    }
  }
}

TEST(GpuAppend, FusedRopeQuantizedKeys) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 17);
    struct {
      int64_t D, P, T;
      Encoding k;
    } grid[] = {
        // int4 groups of 32 over 8 lanes: the lane path.
        {128, 16, 2, enc(QuantKind::Int4, 32, false)},
        // int2 head dim 4: one lane holds the whole row (both halves).
        {4, 16, 3, enc(QuantKind::Int2, 0, true, ScalarType::F32)},
        {64, 1, 1, enc(QuantKind::Int8, 0, true, ScalarType::F32)},
    };
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = 2;
      c.pageSize = g.P;
      c.tokens = g.T;
      c.key = g.k;
      c.ropeTheta = 10000.0;
      c.start = randomStarts(rng, 2, 2000);
      c.seed = seed;
      check(c);
    }
  }
}

} // namespace

Encoding windowedEnc(Encoding e, int64_t recent, int64_t sinks) {
  e.recent = recent;
  e.sinks = sinks;
  return e;
}

/// Starts such that every sequence ends on a multiple of `align` (so that
/// every channel-axis group is complete and final after the append).
std::vector<int64_t> alignedStarts(std::mt19937_64 &rng, int64_t batch,
                                   int64_t tokens, int64_t align,
                                   int64_t maxEnd) {
  std::uniform_int_distribution<int64_t> d(1, maxEnd / align);
  std::vector<int64_t> s;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t end = d(rng) * align;
    while (end < tokens)
      end += align;
    s.push_back(end - tokens);
  }
  return s;
}

// Full-precision windows, token axis: every new row is also copied, rounded
// to the element, to its sink slot (t < sinks) and recent-ring slot, byte
// for byte as the reference's window region.
TEST(GpuAppend, TokenAxisWindows) {
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 29);
    struct {
      int64_t D, P, T;
      Encoding k, v;
    } grid[] = {
        {128, 16, 1, windowedEnc(enc(QuantKind::Int4, 32, false), 16, 0),
         windowedEnc(enc(QuantKind::Int8, 0, true), 8, 4)},
        {64, 1, 5, windowedEnc(enc(QuantKind::Int8, 0, true), 0, 6),
         enc(QuantKind::Int2, 32, false)},
        // More new tokens than the ring holds: later ones overwrite.
        {64, 16, 23, windowedEnc(enc(QuantKind::Fp8E4M3, 0, true), 7, 2),
         windowedEnc(enc(QuantKind::Int4, 16, false, ScalarType::BF16), 5, 0)},
    };
    int i = 0;
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = 1 + i % 2;
      c.pageSize = g.P;
      c.tokens = g.T;
      c.element = i % 2 ? ScalarType::BF16 : ScalarType::F16;
      c.key = g.k;
      c.value = g.v;
      c.start = randomStarts(rng, 3, 40);
      c.start.push_back(0); // the first tokens: sinks
      c.seed = seed;
      check(c);
      ++i;
    }
  }
}

// KIVI keys: channel-axis groups of g tokens quantized per channel when the
// group's last token arrives, from the recent-ring copies of its earlier
// tokens and the new rows of the same append (one block per sequence orders
// the ring overwrites after the reads). Bit-exact against the reference's
// pages and window region; several groups per append, T > recent, sinks.
TEST(GpuAppend, ChannelAxisGroups) {
  using A = ref::QuantAxis;
  for (uint64_t seed : seeds()) {
    std::mt19937_64 rng(seed + 31);
    struct {
      int64_t D, P, T, G;
      Encoding k, v;
    } grid[] = {
        {128, 16, 1, 16,
         windowedEnc(
             Encoding{QuantKind::Int4, A::Channel, 16, false, ScalarType::F16},
             16, 0),
         windowedEnc(enc(QuantKind::Int4, 32, false), 16, 0)},
        {64, 32, 10, 8,
         windowedEnc(
             Encoding{QuantKind::Int8, A::Channel, 8, true, ScalarType::F32}, 7,
             3),
         windowedEnc(
             Encoding{QuantKind::Int2, A::Channel, 4, false, ScalarType::BF16},
             5, 0)},
        // Groups of one token need no window: each token is its own group.
        {64, 16, 3, 1,
         Encoding{QuantKind::Int8, A::Channel, 1, true, ScalarType::F32},
         enc(QuantKind::Int8, 0, true)},
        {96, 16, 3, 4,
         windowedEnc(
             Encoding{QuantKind::Int2, A::Channel, 4, false, ScalarType::F16},
             3, 0),
         enc(QuantKind::Int8, 0, true)},
    };
    int i = 0;
    for (const auto &g : grid) {
      AppendCase c;
      c.headDim = g.D;
      c.kvHeads = 2 + i % 2;
      c.pageSize = g.P;
      c.tokens = g.T;
      c.element = i % 2 ? ScalarType::BF16 : ScalarType::F16;
      c.key = g.k;
      c.value = g.v;
      c.start = alignedStarts(rng, 3, g.T, g.G, 96);
      c.seed = seed;
      check(c);
      ++i;
    }
  }
}
