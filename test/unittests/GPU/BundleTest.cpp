//===- BundleTest.cpp - generated kernel bundles through the runtime ------===//
//
// kvopt-gpu-bundle wrote, at build time, the PTX bundles (sm_80, sm_90) and
// the simt-so bundle of bundleCase(). Here the runtime's KernelBundle::load
// checks their manifests (ABI, schema, cache layout against the pool's), the
// simt-so decode + merge kernels run through the "simt" launch backend with
// the manifest's launch rules against the reference, and the PTX runs on the
// CUDA backend where a driver and device exist (skipped otherwise).
//
//===----------------------------------------------------------------------===//

#include "BundleCase.h"

#include "kvopt/Codegen/KVToGPU/Bundle.h"
#include "kvopt/Reference/Numeric.h"
#include "kvopt/runtime/bundle.h"
#include "kvopt/runtime/graph.h"
#include "kvopt/runtime/memory.h"
#include "kvopt/simt/RuntimeBackend.h"

#include "llvm/Support/JSON.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

namespace {

const std::string kDir = KVOPT_GPU_BUNDLE_DIR;

std::string readFile(const std::string &path) {
  std::ifstream is(path);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

rt::CacheLayout bundleLayout() {
  rt::CacheLayout layout;
  rt::Status s =
      rt::CacheLayout::fromJson(readFile(kDir + "/layout.json"), layout);
  EXPECT_TRUE(s.isOk()) << s.toString();
  return layout;
}

/// launch.<target>.json's constant `key` of kernel `kernel`.
int64_t launchConstant(const std::string &target, const std::string &kernel,
                       const std::string &key) {
  auto json = llvm::json::parse(readFile(kDir + "/launch." + target + ".json"));
  if (!json) {
    ADD_FAILURE() << llvm::toString(json.takeError());
    return 0;
  }
  auto v = json->getAsObject()->getObject(kernel)->getInteger(key);
  EXPECT_TRUE(v.has_value()) << kernel << "." << key;
  return v.value_or(0);
}

/// Kernel arguments in the manifest's expanded order; each value in an
/// 8-byte slot (i32 in the low half), params[i] pointing at slot i.
class Params {
public:
  Params &ptr(uint64_t address) { return push(address); }
  Params &i64(int64_t v) { return push(uint64_t(v)); }
  Params &i32(int32_t v) { return push(uint64_t(uint32_t(v))); }
  /// A memref<?xT> descriptor: allocated, aligned, offset, size, stride.
  Params &memref(uint64_t address, int64_t elements) {
    return ptr(address).ptr(address).i64(0).i64(elements).i64(1);
  }
  size_t size() const { return slots.size(); }
  void **data() {
    pointers.clear();
    for (uint64_t &s : slots)
      pointers.push_back(&s);
    return pointers.data();
  }

private:
  Params &push(uint64_t v) {
    slots.push_back(v);
    return *this;
  }
  std::vector<uint64_t> slots;
  std::vector<void *> pointers;
};

const rt::KernelInfo *kernelStartingWith(const rt::Manifest &m,
                                         const std::string &prefix) {
  for (const rt::KernelInfo &k : m.kernels)
    if (k.name.rfind(prefix, 0) == 0)
      return &k;
  return nullptr;
}

/// Device buffers on a memory backend, released on destruction.
struct Buffers {
  explicit Buffers(rt::MemoryBackend &mem) : mem(mem) {}
  ~Buffers() {
    for (rt::DeviceAddress a : owned)
      mem.release(a);
  }
  template <typename T>
  rt::DeviceAddress upload(const std::vector<T> &host, size_t minBytes = 0) {
    size_t bytes = std::max(host.size() * sizeof(T), minBytes);
    rt::DeviceAddress a = 0;
    rt::Status s = mem.allocate(std::max<size_t>(bytes, 256), a);
    EXPECT_TRUE(s.isOk()) << s.toString();
    owned.push_back(a);
    if (!host.empty())
      EXPECT_TRUE(
          mem.copyFromHost(a, host.data(), host.size() * sizeof(T)).isOk());
    return a;
  }
  rt::MemoryBackend &mem;
  std::vector<rt::DeviceAddress> owned;
};

/// Runs the bundle's decode and merge kernels for `c` on `backend` with
/// buffers from `mem`, `chunkTokens` keys per split; returns the outputs.
DecodeRun runBundle(const rt::KernelBundle &bundle, rt::LaunchBackend &backend,
                    rt::MemoryBackend &mem, const DecodeCase &c,
                    const DecodeData &d, int64_t chunkTokens) {
  DecodeRun r;
  const rt::KernelInfo *decode =
      kernelStartingWith(bundle.manifest(), "decode_");
  const rt::KernelInfo *merge = kernelStartingWith(bundle.manifest(), "merge_");
  if (!decode || !merge) {
    ADD_FAILURE() << "bundle lacks decode_/merge_ kernels";
    return r;
  }
  int64_t B = c.lengths.size(), D = c.headDim,
          rows = B * c.kvHeads * c.group * c.queryLen;
  int64_t T = *std::max_element(c.lengths.begin(), c.lengths.end());
  r.chunkTokens = chunkTokens;
  r.splits = (T + chunkTokens - 1) / chunkTokens;

  Buffers buf(mem);
  bool q32 = c.query == ref::ScalarType::F32;
  rt::DeviceAddress q = q32 ? buf.upload(d.q) : buf.upload(d.q16);
  rt::DeviceAddress pool = buf.upload(d.pool);
  rt::DeviceAddress table = buf.upload(d.table);
  rt::DeviceAddress lens = buf.upload(d.lens);
  std::vector<float> nan(rows * r.splits * D, NAN);
  rt::DeviceAddress pout = buf.upload(nan);
  rt::DeviceAddress plse = buf.upload(std::vector<float>(rows * r.splits, NAN));
  bool o32 = c.output == ref::ScalarType::F32;
  int64_t outBytes = rows * D * (o32 ? 4 : 2);
  rt::DeviceAddress out = buf.upload(std::vector<uint8_t>(outBytes, 0xff));
  rt::DeviceAddress lse = buf.upload(std::vector<float>(rows, NAN));

  Params dp;
  dp.memref(q, q32 ? d.q.size() : d.q16.size())
      .memref(pool, d.pool.size())
      .memref(table, d.table.size())
      .memref(lens, d.lens.size())
      .memref(pout, nan.size())
      .memref(plse, rows * r.splits)
      .i32(int32_t(d.maxPages))
      .i32(int32_t(r.splits))
      .i32(int32_t(chunkTokens));
  EXPECT_EQ(dp.size(), decode->args.size()) << "decode ABI";
  rt::Status s = bundle.launch(decode->name, dp.data());
  EXPECT_TRUE(s.isOk()) << s.toString();
  Params mp;
  mp.memref(pout, nan.size())
      .memref(plse, rows * r.splits)
      .memref(out, rows * D)
      .memref(lse, rows)
      .i32(int32_t(r.splits));
  EXPECT_EQ(mp.size(), merge->args.size()) << "merge ABI";
  s = bundle.launch(merge->name, mp.data());
  EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_TRUE(backend.synchronize(nullptr).isOk());

  std::vector<uint8_t> outHost(outBytes);
  r.lse.assign(rows, 0.0f);
  EXPECT_TRUE(mem.copyToHost(outHost.data(), out, outBytes).isOk());
  EXPECT_TRUE(mem.copyToHost(r.lse.data(), lse, rows * 4).isOk());
  r.out = outputValues(outHost, c.output);
  return r;
}

/// Both schedules (one chunk; chunks of one tile through the merge) within
/// the reference tolerance.
void checkAgainstReference(const rt::KernelBundle &bundle,
                           rt::LaunchBackend &backend, rt::MemoryBackend &mem,
                           const std::string &target) {
  DecodeCase c = bundleCase();
  DecodeData d = makeDecodeData(c);
  const rt::KernelInfo *decode =
      kernelStartingWith(bundle.manifest(), "decode_");
  ASSERT_TRUE(decode);
  int64_t tile = launchConstant(target, decode->name, "tile_tokens");
  int64_t maxSplits = launchConstant(target, decode->name, "max_splits");
  ASSERT_GT(tile, 0);
  int64_t T = *std::max_element(c.lengths.begin(), c.lengths.end());
  for (int64_t chunk : {(T + tile - 1) / tile * tile, tile}) {
    ASSERT_LE((T + chunk - 1) / chunk, maxSplits);
    DecodeRun r = runBundle(bundle, backend, mem, c, d, chunk);
    std::string where;
    double worst = worstError(c, d, r, where);
    EXPECT_LE(worst, 1.0) << c.describe() << " chunk " << chunk << ": "
                          << where;
  }
}

/// The serving step's inputs: pages holding every sequence's first L - T
/// tokens and the last T tokens' rows [B, Hkv, T, D] in the element type.
struct GraphStep {
  DecodeCase c;
  DecodeData d;
  std::vector<uint8_t> pool, kRows, vRows;
  std::vector<int32_t> pos;

  explicit GraphStep(DecodeCase cs = bundleCase())
      : c(std::move(cs)), d(makeDecodeData(c)) {
    const int64_t B = c.lengths.size(), H = c.kvHeads, D = c.headDim,
                  T = c.appendTokens;
    std::vector<int64_t> before;
    for (int64_t L : c.lengths) {
      before.push_back(L - T);
      pos.push_back(int32_t(L - T));
    }
    ref::BlockTable table;
    table.batch = B;
    table.maxPages = d.maxPages;
    table.pages = d.table;
    pool.assign(d.pool.size(), 0);
    ref::writePagedCache(d.format, pool, table, d.k, d.v, before);
    int64_t w = ref::scalarBytes(c.element);
    kRows.resize(B * H * T * D * w);
    vRows.resize(kRows.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t e = 0; e < D; ++e) {
            int64_t at = ((b * H + h) * T + t) * D + e;
            ref::writeScalarBytes(c.element, d.k.at({b, h, before[b] + t, e}),
                                  &kRows[at * w]);
            ref::writeScalarBytes(c.element, d.v.at({b, h, before[b] + t, e}),
                                  &vRows[at * w]);
          }
  }
  int64_t rows() const {
    return int64_t(c.lengths.size()) * c.kvHeads * c.group * c.queryLen;
  }
};

/// The serving step's append: pages holding every sequence's first
/// L - T tokens, the bundle's append kernel (launched by the manifest's
/// grid rule over positions_size) writes the last T, and the pool must then
/// equal the reference's pages of all L tokens byte for byte.
void checkAppend(const rt::KernelBundle &bundle, rt::LaunchBackend &backend,
                 rt::MemoryBackend &mem) {
  GraphStep g;
  ASSERT_GT(g.c.appendTokens, 0);
  const DecodeData &d = g.d;
  const rt::KernelInfo *append =
      kernelStartingWith(bundle.manifest(), "append_");
  ASSERT_TRUE(append) << "bundle lacks an append_ kernel";
  const int64_t B = g.c.lengths.size(), H = g.c.kvHeads, D = g.c.headDim,
                T = g.c.appendTokens;
  std::vector<uint8_t> &pool = g.pool, &kRows = g.kRows, &vRows = g.vRows;
  std::vector<int32_t> &pos = g.pos;
  Buffers buf(mem);
  rt::DeviceAddress poolAt = buf.upload(pool);
  Params p;
  p.memref(poolAt, pool.size())
      .memref(buf.upload(pos), B)
      .memref(buf.upload(kRows), B * H * T * D)
      .memref(buf.upload(vRows), B * H * T * D)
      .memref(buf.upload(d.table), d.table.size())
      .i32(int32_t(d.maxPages));
  EXPECT_EQ(p.size(), append->args.size()) << "append ABI";
  rt::Status s = bundle.launch(append->name, p.data());
  ASSERT_TRUE(s.isOk()) << s.toString();
  ASSERT_TRUE(backend.synchronize(nullptr).isOk());
  std::vector<uint8_t> got(pool.size());
  ASSERT_TRUE(mem.copyToHost(got.data(), poolAt, got.size()).isOk());
  size_t misses = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != d.pool[i] && misses++ < 5)
      ADD_FAILURE() << "pool byte " << i << " = " << int(got[i])
                    << ", reference " << int(d.pool[i]);
  EXPECT_EQ(misses, 0u);
}

TEST(GpuBundle, SimtSoAppendMatchesReferencePages) {
  rt::CacheLayout layout = bundleLayout();
  size_t launches = 0, reports = 0;
  auto backend =
      simt::createRuntimeBackend({}, [&](const simt::LaunchResult &r) {
        ++launches;
        reports += r.reports.size();
        EXPECT_TRUE(r.ok()) << r.text();
      });
  std::unique_ptr<rt::KernelBundle> bundle;
  rt::Status s = rt::KernelBundle::load(kDir + "/manifest.simt.json", layout,
                                        *backend, bundle);
  ASSERT_TRUE(s.isOk()) << s.toString();
  auto mem = rt::createHostMemory();
  checkAppend(*bundle, *backend, *mem);
  EXPECT_EQ(launches, 1u);
  EXPECT_EQ(reports, 0u) << "race, divergence or bounds reports";
}

TEST(GpuBundle, SimtSoDecodeAndMergeMatchReference) {
  rt::CacheLayout layout = bundleLayout();
  size_t launches = 0, reports = 0;
  auto backend =
      simt::createRuntimeBackend({}, [&](const simt::LaunchResult &r) {
        ++launches;
        reports += r.reports.size();
        EXPECT_TRUE(r.ok()) << r.text();
      });
  std::unique_ptr<rt::KernelBundle> bundle;
  rt::Status s = rt::KernelBundle::load(kDir + "/manifest.simt.json", layout,
                                        *backend, bundle);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(bundle->manifest().target, "simt");
  auto mem = rt::createHostMemory();
  checkAgainstReference(*bundle, *backend, *mem, "simt");
  EXPECT_EQ(launches, 4u);
  EXPECT_EQ(reports, 0u) << "race, divergence or bounds reports";
}

struct SimtBundle {
  std::string dir;
  size_t launches = 0, reports = 0;
  std::unique_ptr<rt::LaunchBackend> backend =
      simt::createRuntimeBackend({}, [this](const simt::LaunchResult &r) {
        ++launches;
        reports += r.reports.size();
        EXPECT_TRUE(r.ok()) << r.text();
      });
  std::unique_ptr<rt::KernelBundle> bundle;
  std::unique_ptr<rt::MemoryBackend> mem = rt::createHostMemory();
  explicit SimtBundle(std::string d = kDir) : dir(std::move(d)) {
    rt::CacheLayout layout;
    rt::Status s =
        rt::CacheLayout::fromJson(readFile(dir + "/layout.json"), layout);
    EXPECT_TRUE(s.isOk()) << s.toString();
    s = rt::KernelBundle::load(dir + "/manifest.simt.json", layout, *backend,
                               bundle);
    EXPECT_TRUE(s.isOk()) << s.toString();
  }
};

/// Runs serving step `g` as the compiled graph's host side: `graphPath`'s
/// function @decode (append, then decode + merge or prefill) run by
/// rt::Graph from the function's argument and result buffers alone. The
/// pool must then hold the reference's pages of all L tokens byte for byte
/// and the output match the reference attention (the prefill kernel's
/// tolerance with `prefill`).
void runGraphStep(const rt::KernelBundle &bundle, rt::LaunchBackend &backend,
                  rt::MemoryBackend &mem, const std::string &graphPath,
                  GraphStep &g, bool prefill = false) {
  std::unique_ptr<rt::Graph> graph;
  rt::Status s = rt::Graph::load(graphPath, bundle, graph);
  ASSERT_TRUE(s.isOk()) << s.toString();
  ASSERT_EQ(graph->functions(), std::vector<std::string>{"decode"});

  Buffers buf(mem);
  rt::DeviceAddress poolAt = buf.upload(g.pool);
  int64_t rows = g.rows(), D = g.c.headDim;
  rt::DeviceAddress out = buf.upload(std::vector<uint16_t>(rows * D, 0xffff));
  rt::DeviceAddress lse = buf.upload(std::vector<float>(rows, NAN));
  // @decode(%q, %c, %lens, %bt, %pos, %k, %v) -> (%o, %l)
  std::vector<rt::GraphBuffer> args = {
      {buf.upload(g.d.q16), g.d.q16.size()},
      {poolAt, g.pool.size()},
      {buf.upload(g.d.lens), g.d.lens.size()},
      {buf.upload(g.d.table), g.d.table.size()},
      {buf.upload(g.pos), g.pos.size()},
      {buf.upload(g.kRows), g.kRows.size() / 2},
      {buf.upload(g.vRows), g.vRows.size() / 2}};
  std::vector<rt::GraphBuffer> results = {{out, uint64_t(rows * D)},
                                          {lse, uint64_t(rows)}};
  s = graph->run("decode", args, results, mem);
  ASSERT_TRUE(s.isOk()) << s.toString();

  std::vector<uint8_t> got(g.pool.size());
  ASSERT_TRUE(mem.copyToHost(got.data(), poolAt, got.size()).isOk());
  EXPECT_TRUE(got == g.d.pool) << "pages after the graph's append";
  DecodeRun r;
  std::vector<uint16_t> out16(rows * D);
  r.lse.assign(rows, 0);
  ASSERT_TRUE(mem.copyToHost(out16.data(), out, rows * D * 2).isOk());
  ASSERT_TRUE(mem.copyToHost(r.lse.data(), lse, rows * 4).isOk());
  for (uint16_t bits : out16)
    r.out.push_back(float(ref::fromScalarBits(g.c.output, bits)));
  std::string where;
  if (!prefill) {
    EXPECT_LE(worstError(g.c, g.d, r, where), 1.0) << where;
    return;
  }
  double tolOut = 0, tolLse = 0;
  prefillTolerance(g.c, g.d, tolOut, tolLse);
  std::vector<uint8_t> outBytes(rows * D * 2);
  std::memcpy(outBytes.data(), out16.data(), outBytes.size());
  EXPECT_LE(worstOutputError(outBytes, g.c.output, g.d.expected.out.values(),
                             tolOut, r.lse, g.d.expected.lse.values(), tolLse,
                             where),
            1.0)
      << where;
}

TEST(GpuBundle, SimtSoGraphRunsTheServingStep) {
  SimtBundle sb;
  ASSERT_TRUE(sb.bundle);
  GraphStep g;
  runGraphStep(*sb.bundle, *sb.backend, *sb.mem, sb.dir + "/graph.simt.json",
               g);
  EXPECT_EQ(sb.launches, 3u) << "append, decode, merge";
  EXPECT_EQ(sb.reports, 0u) << "race, divergence or bounds reports";
}

// A chunked-prefill step (16 new tokens appended, 16 causal query rows per
// head): the graph's prefill step runs the tensor-core kernel.
TEST(GpuBundle, SimtSoGraphRunsChunkedPrefill) {
  SimtBundle sb(KVOPT_GPU_PREFILL_BUNDLE_DIR);
  ASSERT_TRUE(sb.bundle);
  GraphStep g(prefillBundleCase());
  runGraphStep(*sb.bundle, *sb.backend, *sb.mem, sb.dir + "/graph.simt.json", g,
               /*prefill=*/true);
  EXPECT_EQ(sb.launches, 2u) << "append, prefill";
  EXPECT_EQ(sb.reports, 0u) << "race, divergence or bounds reports";
}

// MLA decode over a paged latent cache through the graph's mla step
// (mla_decode + merge with the runtime's split plan).
TEST(GpuBundle, SimtSoGraphRunsMLA) {
  SimtBundle sb(KVOPT_GPU_MLA_BUNDLE_DIR);
  ASSERT_TRUE(sb.bundle);
  std::unique_ptr<rt::Graph> graph;
  rt::Status s =
      rt::Graph::load(sb.dir + "/graph.simt.json", *sb.bundle, graph);
  ASSERT_TRUE(s.isOk()) << s.toString();
  ASSERT_EQ(graph->functions(), std::vector<std::string>{"mla"});
  MLACase c = mlaBundleCase();
  MLAData d = makeMLAData(c);
  int64_t rows = c.batch() * c.heads * c.queryLen,
          qb = ref::scalarBytes(c.query), ob = ref::scalarBytes(c.output);
  Buffers buf(*sb.mem);
  rt::DeviceAddress out =
      buf.upload(std::vector<uint8_t>(rows * c.latent * ob, 0xff));
  rt::DeviceAddress lse = buf.upload(std::vector<float>(rows, NAN));
  // @mla(%ql, %qr, %c, %lens, %bt) -> (%o, %l)
  std::vector<rt::GraphBuffer> args = {{buf.upload(d.ql), d.ql.size() / qb},
                                       {buf.upload(d.qr), d.qr.size() / qb},
                                       {buf.upload(d.pool), d.pool.size()},
                                       {buf.upload(d.lens), d.lens.size()},
                                       {buf.upload(d.table), d.table.size()}};
  std::vector<rt::GraphBuffer> results = {{out, uint64_t(rows * c.latent)},
                                          {lse, uint64_t(rows)}};
  s = graph->run("mla", args, results, *sb.mem);
  ASSERT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(sb.launches, 2u) << "mla_decode, merge";
  EXPECT_EQ(sb.reports, 0u);
  std::vector<uint8_t> outHost(rows * c.latent * ob);
  std::vector<float> lseHost(rows);
  ASSERT_TRUE(sb.mem->copyToHost(outHost.data(), out, outHost.size()).isOk());
  ASSERT_TRUE(sb.mem->copyToHost(lseHost.data(), lse, rows * 4).isOk());
  std::string where;
  EXPECT_LE(worstOutputError(outHost, c.output, d.expected.out.values(),
                             d.tol.out, lseHost, d.expected.lse.values(),
                             d.tol.lse, where),
            1.0)
      << where;
}

// Bad calls and bad graph files are errors naming what is wrong, and launch
// nothing.
TEST(GpuBundle, GraphRejectsBadCallsAndFiles) {
  SimtBundle sb;
  ASSERT_TRUE(sb.bundle);
  std::unique_ptr<rt::Graph> graph;
  ASSERT_TRUE(
      rt::Graph::load(kDir + "/graph.simt.json", *sb.bundle, graph).isOk());
  GraphStep g;
  Buffers buf(*sb.mem);
  std::vector<rt::GraphBuffer> args(7, rt::GraphBuffer{}), results(2);
  rt::Status s =
      graph->run("decode", std::vector<rt::GraphBuffer>(6), results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("expected 7 argument and 2 result"),
            std::string::npos)
      << s.toString();
  s = graph->run("prefill", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::NotFound) << s.toString();
  // A block table that is not batch x max_pages.
  args = {{buf.upload(g.d.q16), g.d.q16.size()},
          {buf.upload(g.pool), g.pool.size()},
          {buf.upload(g.d.lens), g.d.lens.size()},
          {buf.upload(g.d.table), g.d.table.size() - 1},
          {buf.upload(g.pos), g.pos.size()},
          {buf.upload(g.kRows), g.kRows.size() / 2},
          {buf.upload(g.vRows), g.vRows.size() / 2}};
  int64_t rows = g.rows(), D = g.c.headDim;
  results = {{buf.upload(std::vector<uint16_t>(rows * D)), uint64_t(rows * D)},
             {buf.upload(std::vector<float>(rows)), uint64_t(rows)}};
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("block_table has"), std::string::npos)
      << s.toString();
  // An output of the wrong size.
  args[3].elements = g.d.table.size();
  results[0].elements -= 1;
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("(the attention output) has"), std::string::npos)
      << s.toString();
  results[0].elements += 1;
  // Fewer queries than the batch's rows, and new keys of the wrong size.
  args[0].elements -= D;
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("q has"), std::string::npos) << s.toString();
  args[0].elements += D;
  args[5].elements -= 1;
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("keys has"), std::string::npos) << s.toString();
  args[5].elements += 1;
  // A pool that is not whole pages, or not 256-byte aligned.
  args[1].elements -= 1;
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  EXPECT_NE(s.message().find("whole pages"), std::string::npos) << s.toString();
  args[1].elements += 1;
  args[1].address += 8;
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
  args[1].address -= 8;
  EXPECT_EQ(sb.launches, 0u) << "nothing launched on a bad call";
  // And with every buffer right, the step runs.
  s = graph->run("decode", args, results, *sb.mem);
  EXPECT_TRUE(s.isOk()) << s.toString();
  EXPECT_EQ(sb.launches, 3u);

  // Files: an unknown step, a kernel the bundle lacks, an operand out of
  // range, a missing file.
  std::string text = readFile(kDir + "/graph.simt.json");
  auto loadText = [&](const std::string &t) {
    std::string path = ::testing::TempDir() + "graph-bad.json";
    std::ofstream(path) << t;
    std::unique_ptr<rt::Graph> bad;
    return rt::Graph::load(path, *sb.bundle, bad);
  };
  auto replaced = [&](const std::string &from, const std::string &to) {
    std::string t = text;
    size_t at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? t : t.replace(at, from.size(), to);
  };
  s = loadText(replaced("\"op\": \"append\"", "\"op\": \"copy\""));
  EXPECT_EQ(s.code(), rt::StatusCode::ParseError) << s.toString();
  EXPECT_NE(s.message().find("unknown step \"copy\""), std::string::npos)
      << s.toString();
  s = loadText(
      replaced("\"decode\": \"decode_0\"", "\"decode\": \"decode_9\""));
  EXPECT_EQ(s.code(), rt::StatusCode::NotFound) << s.toString();
  EXPECT_NE(s.message().find("no kernel decode_9"), std::string::npos)
      << s.toString();
  s = loadText(replaced("\"q\": 0", "\"q\": 7"));
  EXPECT_EQ(s.code(), rt::StatusCode::ParseError) << s.toString();
  EXPECT_NE(s.message().find("argument index 7 out of range"),
            std::string::npos)
      << s.toString();
  s = loadText(replaced("\"abi_version\": 1", "\"abi_version\": 2"));
  EXPECT_EQ(s.code(), rt::StatusCode::AbiMismatch) << s.toString();
  std::unique_ptr<rt::Graph> none;
  s = rt::Graph::load(kDir + "/no-such-graph.json", *sb.bundle, none);
  EXPECT_EQ(s.code(), rt::StatusCode::NotFound) << s.toString();
  EXPECT_FALSE(none);
}

TEST(GpuBundle, AbiVersionMatchesTheRuntime) {
  EXPECT_EQ(uint64_t(gpugen::kBundleAbiVersion),
            uint64_t(rt::kKernelAbiVersion));
}

/// Number of .param entries of `.entry name(` in PTX text.
int64_t ptxParams(const std::string &ptx, const std::string &name) {
  size_t at = ptx.find(".entry " + name + "(");
  if (at == std::string::npos)
    return -1;
  size_t end = ptx.find(')', at);
  int64_t n = 0;
  for (size_t p = ptx.find(".param", at); p < end;
       p = ptx.find(".param", p + 1))
    ++n;
  return n;
}

TEST(GpuBundle, PtxManifestsPassSchemaAndLayoutChecks) {
  rt::CacheLayout layout = bundleLayout();
  auto simtBackend = simt::createRuntimeBackend();
  for (std::string chip : {"sm_80", "sm_90"}) {
    SCOPED_TRACE(chip);
    std::string path = kDir + "/manifest." + chip + ".json";
    rt::Manifest m;
    rt::Status s = rt::Manifest::parse(readFile(path), m);
    ASSERT_TRUE(s.isOk()) << s.toString();
    EXPECT_EQ(m.target, chip);
    EXPECT_EQ(m.format, "ptx");
    EXPECT_TRUE(m.layout.compare(layout, "bundle", "pool").isOk());
    ASSERT_EQ(m.kernels.size(), 3u); // append, decode, merge
    // The manifest's argument lists are the kernel ABI of the PTX.
    std::string ptx = readFile(kDir + "/" + m.binary);
    for (const rt::KernelInfo &k : m.kernels)
      EXPECT_EQ(ptxParams(ptx, k.name), int64_t(k.args.size())) << k.name;
    // ABI, schema and layout pass; only the format stops the simt backend.
    std::unique_ptr<rt::KernelBundle> bundle;
    s = rt::KernelBundle::load(path, layout, *simtBackend, bundle);
    EXPECT_EQ(s.code(), rt::StatusCode::InvalidArgument) << s.toString();
    EXPECT_NE(s.message().find("cannot run bundle format \"ptx\""),
              std::string::npos)
        << s.toString();
    // A pool with another page size is refused by the layout check.
    rt::CacheLayout other = layout;
    other.pageSize *= 2;
    s = rt::KernelBundle::load(path, other, *simtBackend, bundle);
    EXPECT_EQ(s.code(), rt::StatusCode::LayoutMismatch) << s.toString();
    EXPECT_FALSE(bundle);
  }
}

TEST(GpuBundle, CudaBackendWithoutDriverSaysNoDevice) {
  std::unique_ptr<rt::LaunchBackend> cuda;
  rt::Status s = rt::createCudaLaunchBackend(0, cuda);
  if (s.isOk())
    // A driver and device exist: GpuBundle.RealGpuMatchesReference runs the
    // PTX there instead.
    GTEST_SKIP()
        << "a CUDA driver is present; RealGpuMatchesReference covers it";
  EXPECT_EQ(s.code(), rt::StatusCode::NoDevice) << s.toString();
  EXPECT_NE(s.message().find("CUDA"), std::string::npos) << s.toString();
  EXPECT_FALSE(cuda);
}

TEST(GpuBundle, RealGpuMatchesReference) {
  std::unique_ptr<rt::LaunchBackend> cuda;
  rt::Status s = rt::createCudaLaunchBackend(0, cuda);
  if (!s.isOk())
    // No driver or no device on this machine: nothing to run the PTX on.
    GTEST_SKIP() << "no CUDA driver/device: " << s.toString();
  std::unique_ptr<rt::MemoryBackend> mem;
  s = rt::createCudaMemory(0, mem);
  ASSERT_TRUE(s.isOk()) << s.toString();
  rt::CacheLayout layout = bundleLayout();
  // sm_80 PTX runs on every chip from sm_80 on (the driver JIT-compiles it).
  std::unique_ptr<rt::KernelBundle> bundle;
  s = rt::KernelBundle::load(kDir + "/manifest.sm_80.json", layout, *cuda,
                             bundle);
  ASSERT_TRUE(s.isOk()) << s.toString();
  checkAppend(*bundle, *cuda, *mem);
  checkAgainstReference(*bundle, *cuda, *mem, "sm_80");
  // The host side: the same serving step through graph.sm_80.json.
  GraphStep g;
  runGraphStep(*bundle, *cuda, *mem, kDir + "/graph.sm_80.json", g);
}

} // namespace
