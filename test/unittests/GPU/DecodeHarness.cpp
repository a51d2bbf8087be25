//===- DecodeHarness.cpp - run generated decode kernels on the emulator ---===//
//
// Implementation of DecodeHarness.h.
//
//===----------------------------------------------------------------------===//

#include "DecodeHarness.h"

#include "TargetInfo.h"
#include "kvopt/Codegen/KVToGPU/Passes.h"
#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/InitAll.h"
#include "kvopt/Reference/Numeric.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>

using namespace kvopt;
using namespace kvopt::gpu_test;
namespace ref = kvopt::reference;

const char *kvopt::gpu_test::typeName(ref::ScalarType t) {
  return t == ref::ScalarType::F16    ? "f16"
         : t == ref::ScalarType::BF16 ? "bf16"
                                      : "f32";
}

static const char *kindName(ref::QuantKind k) {
  switch (k) {
  case ref::QuantKind::Int8:
    return "int8";
  case ref::QuantKind::Fp8E4M3:
    return "fp8_e4m3";
  case ref::QuantKind::Int4:
    return "int4";
  case ref::QuantKind::Int2:
    return "int2";
  }
  return "?";
}

std::string kvopt::gpu_test::quantText(const Encoding &e) {
  std::ostringstream os;
  os << "#kv.quant<" << kindName(e.kind)
     << ", axis = " << (e.axis == ref::QuantAxis::Channel ? "channel" : "token")
     << ", group = " << e.group
     << ", symmetric = " << (e.symmetric ? "true" : "false")
     << ", scale = " << typeName(e.scale);
  if (e.recent)
    os << ", recent = " << e.recent;
  if (e.sinks)
    os << ", sinks = " << e.sinks;
  os << ">";
  return os.str();
}

ref::QuantEncoding kvopt::gpu_test::toReference(const Encoding &e) {
  ref::QuantEncoding q;
  q.kind = e.kind;
  q.axis = e.axis;
  q.group = e.group;
  q.symmetric = e.symmetric;
  q.scaleType = e.scale;
  q.recent = e.recent;
  q.sinks = e.sinks;
  return q;
}

std::string DecodeCase::describe() const {
  std::ostringstream os;
  os << "D=" << headDim << " G=" << group << " Hkv=" << kvHeads
     << " P=" << pageSize << " Tq=" << queryLen << " el=" << typeName(element)
     << " q=" << typeName(query) << " out=" << typeName(output);
  os << " K=" << (key ? quantText(*key) : "none");
  os << " V=" << (value ? quantText(*value) : "none");
  if (causal)
    os << " causal";
  if (window)
    os << " window=" << window << " sinks=" << sinks;
  os << " lens=[";
  for (size_t i = 0; i < lengths.size(); ++i)
    os << (i ? "," : "") << lengths[i];
  os << "] seed=" << seed;
  return os.str();
}

static int64_t maxLength(const DecodeCase &c) {
  return *std::max_element(c.lengths.begin(), c.lengths.end());
}

static int64_t pagesFor(const DecodeCase &c) {
  return std::max<int64_t>(1, (maxLength(c) + c.pageSize - 1) / c.pageSize);
}

std::string kvopt::gpu_test::decodeModuleText(const DecodeCase &c) {
  int64_t B = c.lengths.size(), Hq = c.kvHeads * c.group;
  int64_t maxPages = pagesFor(c);
  std::ostringstream cache;
  cache << "!kv.cache<kv_heads = " << c.kvHeads << ", head_dim = " << c.headDim
        << ", capacity = " << maxPages * c.pageSize
        << ", element = " << typeName(c.element)
        << ", layout = #kv.layout<paged, page_size = " << c.pageSize << ">";
  if (c.key)
    cache << ", key = " << quantText(*c.key);
  if (c.value)
    cache << ", value = " << quantText(*c.value);
  cache << ">";
  std::ostringstream qt, ot, lt, bt;
  qt << "tensor<" << B << "x" << Hq << "x" << c.queryLen << "x" << c.headDim
     << "x" << typeName(c.query) << ">";
  ot << "tensor<" << B << "x" << Hq << "x" << c.queryLen << "x" << c.headDim
     << "x" << typeName(c.output) << ">";
  lt << "tensor<" << B << "x" << Hq << "x" << c.queryLen << "xf32>";
  bt << "tensor<" << B << "x" << maxPages << "xi32>";
  std::ostringstream attrs;
  if (c.causal || c.window) {
    attrs << " {";
    if (c.causal)
      attrs << "causal";
    if (c.window)
      attrs << (c.causal ? ", " : "") << "window = " << c.window
            << ", sinks = " << c.sinks;
    attrs << "}";
  }
  std::ostringstream os, appendArgs, append;
  if (c.appendTokens > 0) {
    std::ostringstream rows;
    rows << "tensor<" << B << "x" << c.kvHeads << "x" << c.appendTokens << "x"
         << c.headDim << "x" << typeName(c.element) << ">";
    appendArgs << ", %pos: tensor<" << B << "xi32>, %k: " << rows.str()
               << ", %v: " << rows.str();
    append << "  kv.append %c[%pos], %k, %v block_table %bt : " << cache.str()
           << ", tensor<" << B << "xi32>, " << rows.str() << ", " << rows.str()
           << ", " << bt.str() << "\n";
  }
  os << "func.func @decode(%q: " << qt.str() << ", %c: " << cache.str()
     << ", %lens: tensor<" << B << "xi32>, %bt: " << bt.str()
     << appendArgs.str() << ") -> (" << ot.str() << ", " << lt.str() << ") {\n"
     << append.str() << "  %o, %l = kv.attention %q, %c, %lens block_table %bt"
     << attrs.str() << " : (" << qt.str() << ", " << cache.str() << ", tensor<"
     << B << "xi32>, " << bt.str() << ") -> (" << ot.str() << ", " << lt.str()
     << ")\n"
     << "  return %o, %l : " << ot.str() << ", " << lt.str() << "\n}\n";
  return os.str();
}

std::vector<uint64_t> kvopt::gpu_test::testSeeds() {
  std::vector<uint64_t> s = {1};
  if (const char *env = std::getenv("KVOPT_TEST_SEED"))
    s.push_back(std::strtoull(env, nullptr, 10));
  return s;
}

std::unique_ptr<simt::EmulatedModule> kvopt::gpu_test::compileKernels(
    const std::string &moduleText, const std::string &chip,
    const std::function<void(mlir::gpu::GPUFuncOp)> &visit, std::string &error,
    std::string *gpuText) {
  mlir::DialectRegistry registry;
  registry.insert<kv::KVDialect, mlir::func::FuncDialect,
                  mlir::tensor::TensorDialect>();
  mlir::MLIRContext ctx(registry);
  std::string diags;
  llvm::raw_string_ostream dos(diags);
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    dos << d << "\n";
    return mlir::success();
  });
  auto module = mlir::parseSourceString<mlir::ModuleOp>(moduleText, &ctx);
  if (!module) {
    error = "parse failed: " + diags;
    return nullptr;
  }
  mlir::PassManager pm(&ctx);
  KVGPUKernelsOptions opts;
  opts.chip = chip;
  opts.kernelsOnly = true;
  pm.addPass(createKVGPUKernels(opts));
  if (mlir::failed(pm.run(*module))) {
    error = "kv-gpu-kernels failed: " + diags;
    return nullptr;
  }
  module->walk([&](mlir::gpu::GPUFuncOp f) { visit(f); });
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  if (gpuText)
    *gpuText = text;
  auto m = simt::EmulatedModule::compile(text, {}, "kernels.mlir");
  if (!m) {
    error = "emulator compile failed: " + llvm::toString(m.takeError());
    return nullptr;
  }
  return std::move(*m);
}

const kvopt_simt_kernel *
kvopt::gpu_test::findKernel(simt::EmulatedModule &module,
                            const std::string &name, std::string &error) {
  auto k = module.kernel(name);
  if (!k) {
    error = name + ": " + llvm::toString(k.takeError());
    return nullptr;
  }
  return *k;
}

double kvopt::gpu_test::worstOutputError(const std::vector<uint8_t> &out,
                                         ref::ScalarType type,
                                         const std::vector<double> &expectedOut,
                                         double tolOut,
                                         const std::vector<float> &lse,
                                         const std::vector<double> &expectedLse,
                                         double tolLse, std::string &where) {
  double worst = 0;
  int64_t w = ref::scalarBytes(type);
  for (size_t i = 0; i < expectedOut.size(); ++i) {
    uint32_t bits = 0;
    std::memcpy(&bits, &out[i * w], w);
    double got = ref::fromScalarBits(type, bits);
    double err = std::fabs(got - expectedOut[i]) / tolOut;
    if (!(err <= worst)) {
      worst = std::isnan(err) ? INFINITY : err;
      where = "out[" + std::to_string(i) + "] = " + std::to_string(got) +
              " expected " + std::to_string(expectedOut[i]);
    }
  }
  for (size_t i = 0; i < expectedLse.size(); ++i) {
    double err = std::isinf(expectedLse[i])
                     ? (std::isinf(lse[i]) && lse[i] < 0 ? 0 : INFINITY)
                     : std::fabs(double(lse[i]) - expectedLse[i]) / tolLse;
    if (!(err <= worst)) {
      worst = std::isnan(err) ? INFINITY : err;
      where = "lse[" + std::to_string(i) + "] = " + std::to_string(lse[i]) +
              " expected " + std::to_string(expectedLse[i]);
    }
  }
  return worst;
}

std::optional<CompiledDecode>
kvopt::gpu_test::compileDecode(const DecodeCase &c, const std::string &chip,
                               std::string &error) {
  CompiledDecode k;
  k.module = compileKernels(
      decodeModuleText(c), chip,
      [&](mlir::gpu::GPUFuncOp f) {
        auto block = f.getKnownBlockSizeAttr();
        if (f.getName().starts_with("decode_")) {
          k.threads = block[0];
          k.tileTokens =
              f->getAttrOfType<mlir::IntegerAttr>("kv.tile_tokens").getInt();
          k.maxSplits =
              f->getAttrOfType<mlir::IntegerAttr>("kv.max_splits").getInt();
        } else {
          k.mergeThreads = block[0];
        }
      },
      error, &k.gpuText);
  if (!k.module)
    return std::nullopt;
  auto d = k.module->kernel("decode_0");
  auto g = k.module->kernel("merge_0");
  if (!d || !g) {
    error = "kernels not found";
    if (!d)
      llvm::consumeError(d.takeError());
    if (!g)
      llvm::consumeError(g.takeError());
    return std::nullopt;
  }
  k.decode = *d;
  k.merge = *g;
  return k;
}

/// Bytes one component stores per token of one sequence (data plus token
/// axis scales) and per channel group (channel-axis scales).
static void componentBytes(const DecodeCase &c,
                           const std::optional<Encoding> &e, int64_t length,
                           int64_t &bytes) {
  int64_t W = c.kvHeads * c.headDim;
  if (!e) {
    bytes += length * W * ref::scalarBytes(c.element);
    return;
  }
  int64_t bits = ref::quantBits(e->kind);
  int64_t z = e->symmetric ? 1 : 2;
  int64_t sb = ref::scalarBytes(e->scale);
  bytes += length * W * bits / 8;
  if (e->axis == ref::QuantAxis::Token) {
    int64_t g = e->group ? e->group : c.headDim;
    bytes += length * (W / g) * sb * z;
  } else {
    bytes += ((length + e->group - 1) / e->group) * W * sb * z;
  }
}

int64_t kvopt::gpu_test::windowBytes(reference::ScalarType element,
                                     int64_t kvHeads, int64_t headDim,
                                     const std::optional<Encoding> &key,
                                     const std::optional<Encoding> &value) {
  int64_t bytes = 0;
  for (const std::optional<Encoding> *e : {&key, &value})
    if (*e)
      bytes += ((*e)->sinks + (*e)->recent) * kvHeads * headDim *
               ref::scalarBytes(element);
  return bytes;
}

void kvopt::gpu_test::appendWindowRegion(
    std::vector<uint8_t> &pool, reference::ScalarType element, int64_t Hkv,
    int64_t D, const std::optional<Encoding> &key,
    const std::optional<Encoding> &value, const reference::Tensor &k,
    const reference::Tensor &v, const std::vector<int64_t> &lengths) {
  int64_t perSeq = windowBytes(element, Hkv, D, key, value);
  if (!perSeq)
    return;
  int64_t B = lengths.size(), esize = ref::scalarBytes(element);
  int64_t base = pool.size();
  pool.resize(base + B * perSeq, 0);
  int64_t offset = 0;
  for (int side = 0; side < 2; ++side) {
    const std::optional<Encoding> &e = side ? value : key;
    if (!e || e->sinks + e->recent == 0)
      continue;
    const ref::Tensor &src = side ? v : k;
    for (int64_t b = 0; b < B; ++b) {
      auto put = [&](int64_t slot, int64_t t) {
        for (int64_t hh = 0; hh < Hkv; ++hh)
          for (int64_t x = 0; x < D; ++x) {
            uint64_t bits = ref::toScalarBits(element, src.at({b, hh, t, x}));
            std::memcpy(pool.data() + base + b * perSeq + offset +
                            ((slot * Hkv + hh) * D + x) * esize,
                        &bits, esize);
          }
      };
      for (int64_t t = 0; t < std::min(e->sinks, lengths[b]); ++t)
        put(t, t);
      if (e->recent > 0)
        for (int64_t t = std::max<int64_t>(0, lengths[b] - e->recent);
             t < lengths[b]; ++t)
          put(e->sinks + t % e->recent, t);
    }
    offset += (e->sinks + e->recent) * Hkv * D * esize;
  }
}

void kvopt::gpu_test::prefillTolerance(const DecodeCase &c, const DecodeData &d,
                                       double &tolOut, double &tolLse) {
  // P is rounded to the multiplicand type before P V: at most one unit
  // roundoff of each weight, so u_h * max|v| on the normalized output.
  double uh = c.element == ref::ScalarType::BF16 ? 0x1p-8 : 0x1p-11;
  double maxV = 0;
  for (double x : d.v.values())
    maxV = std::max(maxV, std::fabs(x));
  tolOut = d.tol.out + uh * maxV;
  tolLse = d.tol.lse;
  if (c.key || c.value) {
    // Dequantized K and V are rounded to the element type in shared memory
    // (the reference reads them exact): scores move by at most
    // delta = u_h * max scale * sum |q k| and the softmax weights by a
    // factor within e^(2 delta), so out by 2 delta max|v| more, plus u_h
    // max|v| for V's own rounding, and lse by delta. Dequantized values stay
    // within 10% of the inputs' range here.
    double maxQ = 0;
    for (float x : d.q)
      maxQ = std::max(maxQ, double(std::fabs(x)));
    double D = double(c.headDim);
    double delta = uh * (1.0 / std::sqrt(D)) * D * maxQ * 2.2;
    tolOut += (uh + 2 * delta) * 1.1 * maxV;
    tolLse += delta;
  }
}

DecodeData kvopt::gpu_test::makeDecodeData(const DecodeCase &c) {
  DecodeData d;
  int64_t B = c.lengths.size(), Hkv = c.kvHeads, D = c.headDim,
          Hq = Hkv * c.group, Tq = c.queryLen, T = maxLength(c);
  std::mt19937_64 rng(c.seed);
  std::uniform_real_distribution<double> dist(-2.0, 2.0);
  ref::Tensor q({B, Hq, Tq, D}), k({B, Hkv, T, D}), v({B, Hkv, T, D});
  for (double &x : q.values())
    x = ref::roundToScalar(c.query, dist(rng));
  for (double &x : k.values())
    x = ref::roundToScalar(c.element, dist(rng));
  for (double &x : v.values())
    x = ref::roundToScalar(c.element, dist(rng));

  ref::PagedCacheFormat f;
  f.kvHeads = Hkv;
  f.headDim = D;
  f.pageSize = c.pageSize;
  f.element = c.element;
  if (c.key)
    f.key = toReference(*c.key);
  if (c.value)
    f.value = toReference(*c.value);
  ref::PageLayout layout = ref::computePageLayout(f);

  // Shuffled page placement plus unused pages between them.
  d.maxPages = pagesFor(c);
  int64_t used = 0;
  for (int64_t L : c.lengths)
    used += (L + c.pageSize - 1) / c.pageSize;
  int64_t numPages = used + 3;
  std::vector<int32_t> perm(numPages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  ref::BlockTable table;
  table.batch = B;
  table.maxPages = d.maxPages;
  table.pages.assign(B * d.maxPages, -1);
  int64_t next = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < (c.lengths[b] + c.pageSize - 1) / c.pageSize; ++i)
      table.pages[b * d.maxPages + i] = perm[next++];
  d.pool.assign(numPages * layout.pageBytes, 0);
  ref::writePagedCache(f, d.pool, table, k, v, c.lengths);
  // readPagedCache decodes the stored codes of every token.
  ref::KVTensors kv = ref::readPagedCache(f, d.pool, table, c.lengths);

  // Full-precision windows at the end of the pool; attention sees those
  // tokens exactly.
  appendWindowRegion(d.pool, c.element, Hkv, D, c.key, c.value, k, v,
                     c.lengths);
  for (int side = 0; side < 2; ++side) {
    const std::optional<Encoding> &e = side ? c.value : c.key;
    if (!e || e->sinks + e->recent == 0)
      continue;
    ref::QuantEncoding enc = toReference(*e);
    const ref::Tensor &src = side ? v : k;
    ref::Tensor &seen = side ? kv.v : kv.k;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < c.lengths[b]; ++t)
        if (ref::isFullPrecisionToken(enc, t, c.lengths[b]))
          for (int64_t hh = 0; hh < Hkv; ++hh)
            for (int64_t x = 0; x < D; ++x)
              seen.at({b, hh, t, x}) = src.at({b, hh, t, x});
  }
  d.k = k;
  d.v = v;
  d.format = f;
  d.table = table.pages;
  for (int64_t L : c.lengths)
    d.lens.push_back(int32_t(L));

  d.q.assign(q.values().begin(), q.values().end());
  if (c.query != ref::ScalarType::F32)
    for (double x : q.values())
      d.q16.push_back(uint16_t(ref::toScalarBits(c.query, x)));

  ref::AttentionOptions opts;
  opts.scale = double(1.0f / std::sqrt(float(D)));
  opts.causal = c.causal;
  opts.window = c.window;
  opts.sinks = c.sinks;
  d.expected = ref::attention(q, kv.k, kv.v, c.lengths, opts);

  double maxQ = 0, maxK = 0, maxV = 0, maxLse = 0;
  for (double x : q.values())
    maxQ = std::max(maxQ, std::fabs(x));
  for (double x : kv.k.values())
    maxK = std::max(maxK, std::fabs(x));
  for (double x : kv.v.values())
    maxV = std::max(maxV, std::fabs(x));
  for (double x : d.expected.lse.values())
    if (std::isfinite(x))
      maxLse = std::max(maxLse, std::fabs(x));
  bool deq = c.key || c.value;
  d.tol = ref::fp32AttentionTolerance(D, T, opts.scale * D * maxQ * maxK, maxV,
                                      maxLse, deq, c.output);
  // One more level: the split-KV merge (4u V) and its lse.
  d.tol.out += 4 * 0x1p-24 * maxV;
  d.tol.lse += 4 * 0x1p-24 * (maxLse + 1);

  int64_t minimal = 0;
  for (int64_t L : c.lengths) {
    componentBytes(c, c.key, L, minimal);
    componentBytes(c, c.value, L, minimal);
    minimal += (L + c.pageSize - 1) / c.pageSize * 4;
  }
  minimal += B * Hq * Tq * D * ref::scalarBytes(c.query) + B * 4;
  d.minimalBytes = minimal;
  return d;
}

namespace {
/// std::allocator with 256-byte alignment.
template <class T> struct Aligned256 {
  using value_type = T;
  Aligned256() = default;
  template <class U> Aligned256(const Aligned256<U> &) {}
  T *allocate(size_t n) {
    size_t bytes = std::max<size_t>(256, (n * sizeof(T) + 255) / 256 * 256);
    return static_cast<T *>(std::aligned_alloc(256, bytes));
  }
  void deallocate(T *p, size_t) { std::free(p); }
  template <class U> bool operator==(const Aligned256<U> &) const {
    return true;
  }
  template <class U> bool operator!=(const Aligned256<U> &) const {
    return false;
  }
};
template <class T> using Aligned = std::vector<T, Aligned256<T>>;
} // namespace

DecodeRun
kvopt::gpu_test::runDecode(const DecodeCase &c, const CompiledDecode &k,
                           const DecodeData &d, simt::Schedule schedule,
                           int64_t chunkTokens, const std::string &chip) {
  int64_t B = c.lengths.size(), Hkv = c.kvHeads, D = c.headDim,
          Hq = Hkv * c.group, Tq = c.queryLen, T = maxLength(c);
  DecodeRun r;
  if (chunkTokens <= 0) {
    auto target = gpugen::getTargetInfo(chip);
    auto plan = gpugen::planDecodeSplits(*target, B, Hkv, T, k.tileTokens);
    r.splits = plan.splits;
    r.chunkTokens = plan.chunkTokens;
  } else {
    r.chunkTokens = chunkTokens;
    r.splits = std::max<int64_t>(1, (T + chunkTokens - 1) / chunkTokens);
  }
  int64_t rows = B * Hq * Tq;
  Aligned<float> pout(rows * r.splits * D, NAN), plse(rows * r.splits, NAN);
  // The pool is 256-byte aligned as the runtime allocates it.
  size_t poolBytes = (d.pool.size() + 255) / 256 * 256;
  std::unique_ptr<uint8_t, void (*)(void *)> pool(
      static_cast<uint8_t *>(std::aligned_alloc(256, poolBytes)), std::free);
  std::copy(d.pool.begin(), d.pool.end(), pool.get());
  // Every buffer 256-byte aligned as the runtime allocates device memory,
  // so that sector counts do not depend on where malloc put them.
  Aligned<int32_t> table(d.table.begin(), d.table.end()),
      lens(d.lens.begin(), d.lens.end());
  Aligned<float> q(d.q.begin(), d.q.end());
  Aligned<uint16_t> q16(d.q16.begin(), d.q16.end());

  simt::ParamPack p;
  bool q32 = c.query == ref::ScalarType::F32;
  if (q32)
    p.memref(q.data(), {int64_t(q.size())});
  else
    p.memref(q16.data(), {int64_t(q16.size())});
  p.memref(pool.get(), {int64_t(d.pool.size())})
      .memref(table.data(), {int64_t(table.size())})
      .memref(lens.data(), {int64_t(lens.size())})
      .memref(pout.data(), {int64_t(pout.size())})
      .memref(plse.data(), {int64_t(plse.size())})
      .scalar<int32_t>(int32_t(d.maxPages))
      .scalar<int32_t>(int32_t(r.splits))
      .scalar<int32_t>(int32_t(r.chunkTokens));
  simt::LaunchOptions o;
  o.schedule = schedule;
  o.seed = c.seed;
  o.printReports = false;
  o.buffers = {{"q", q32 ? (void *)q.data() : (void *)q16.data(),
                q32 ? q.size() * 4 : q16.size() * 2},
               {"pool", pool.get(), d.pool.size()},
               {"block_table", table.data(), table.size() * 4},
               {"seq_lens", lens.data(), lens.size() * 4},
               {"part_out", pout.data(), pout.size() * 4},
               {"part_lse", plse.data(), plse.size() * 4}};
  r.decode =
      simt::launch(*k.decode, {uint32_t(r.splits), uint32_t(Hkv), uint32_t(B)},
                   {uint32_t(k.threads), 1, 1}, 0, p.data(), o);

  bool o32 = c.output == ref::ScalarType::F32;
  std::vector<float> out32(o32 ? rows * D : 0);
  std::vector<uint16_t> out16(o32 ? 0 : rows * D);
  r.lse.assign(rows, NAN);
  simt::ParamPack m;
  m.memref(pout.data(), {int64_t(pout.size())})
      .memref(plse.data(), {int64_t(plse.size())});
  if (o32)
    m.memref(out32.data(), {int64_t(out32.size())});
  else
    m.memref(out16.data(), {int64_t(out16.size())});
  m.memref(r.lse.data(), {int64_t(r.lse.size())})
      .scalar<int32_t>(int32_t(r.splits));
  o.buffers = {{"part_out", pout.data(), pout.size() * 4},
               {"part_lse", plse.data(), plse.size() * 4},
               {"out", o32 ? (void *)out32.data() : (void *)out16.data(),
                size_t(rows * D * (o32 ? 4 : 2))},
               {"lse", r.lse.data(), r.lse.size() * 4}};
  r.merge = simt::launch(*k.merge, {uint32_t(Hq * Tq), uint32_t(B), 1},
                         {uint32_t(k.mergeThreads), 1, 1}, 0, m.data(), o);
  if (o32) {
    r.out = out32;
  } else {
    for (uint16_t bits : out16)
      r.out.push_back(float(ref::fromScalarBits(c.output, bits)));
  }
  return r;
}

Device *kvopt::gpu_test::cudaDevice(std::string *why) {
  static std::string reason;
  static std::unique_ptr<Device> device = [] {
    auto dev = std::make_unique<Device>();
    rt::Status s = rt::createCudaMemory(0, dev->memory);
    if (s.isOk())
      s = rt::createCudaLaunchBackend(0, dev->launch);
    if (!s.isOk()) {
      reason = s.toString();
      dev.reset();
    }
    return dev;
  }();
  if (why)
    *why = reason;
  return device.get();
}

std::optional<std::string>
kvopt::gpu_test::kernelsToPTX(const std::string &gpuText,
                              const std::string &chip, std::string &error,
                              const std::string &toolkit) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  kvopt::registerAllDialects(registry);
  mlir::MLIRContext ctx(registry);
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &diag) {
    os << diag << "\n";
    return mlir::success();
  });
  auto module = mlir::parseSourceString<mlir::ModuleOp>(gpuText, &ctx);
  if (!module) {
    error = "cannot parse the kernels: " + diagnostics;
    return std::nullopt;
  }
  (*module)->setAttr(mlir::gpu::GPUDialect::getContainerModuleAttrName(),
                     mlir::UnitAttr::get(&ctx));
  const char *home = std::getenv("CUDA_HOME");
  std::string tk = !toolkit.empty() ? toolkit
                   : home           ? std::string(home)
                                    : std::string("/usr/local/cuda");
  mlir::PassManager pm(&ctx);
  kvopt::buildKernelsToPTXPipeline(pm, chip, tk);
  if (failed(pm.run(*module))) {
    error = "PTX lowering failed: " + diagnostics;
    return std::nullopt;
  }
  for (auto bin : module->getOps<mlir::gpu::BinaryOp>())
    for (mlir::Attribute a : bin.getObjects())
      return mlir::cast<mlir::gpu::ObjectAttr>(a).getObject().getValue().str();
  error = "gpu-module-to-binary produced no PTX";
  return std::nullopt;
}

std::unique_ptr<DeviceKernels> DeviceKernels::load(Device &device,
                                                   const std::string &gpuText,
                                                   const std::string &chip,
                                                   std::string &error) {
  auto ptx = kernelsToPTX(gpuText, chip, error);
  if (!ptx)
    return nullptr;
  llvm::SmallString<128> path;
  if (llvm::sys::fs::createTemporaryFile("kvopt-kernels", "ptx", path)) {
    error = "cannot create a temporary file";
    return nullptr;
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    os << *ptx;
  }
  std::unique_ptr<DeviceKernels> k(new DeviceKernels(device));
  rt::Status s = device.launch->loadModule(std::string(path), k->module_);
  llvm::sys::fs::remove(path);
  if (!s.isOk()) {
    error = "loading the PTX: " + s.toString();
    return nullptr;
  }
  return k;
}

DeviceKernels::~DeviceKernels() {
  for (rt::DeviceAddress a : owned_)
    device_.memory->release(a);
  if (module_)
    device_.launch->unloadModule(module_);
}

uint8_t *DeviceKernels::upload(const void *data, size_t bytes) {
  rt::DeviceAddress a = 0;
  rt::Status s = device_.memory->allocate(std::max<size_t>(bytes, 256), a);
  if (s.isOk())
    owned_.push_back(a);
  if (s.isOk() && data && bytes)
    s = device_.memory->copyFromHost(a, data, bytes);
  if (!s.isOk()) {
    error_ = "device buffer: " + s.toString();
    return nullptr;
  }
  return reinterpret_cast<uint8_t *>(static_cast<uintptr_t>(a));
}

bool DeviceKernels::download(void *dst, const uint8_t *src, size_t bytes) {
  rt::Status s = device_.memory->copyToHost(
      dst, rt::DeviceAddress(reinterpret_cast<uintptr_t>(src)), bytes);
  if (!s.isOk())
    error_ = "download: " + s.toString();
  return s.isOk();
}

bool DeviceKernels::launch(const std::string &name, rt::Dim3 grid,
                           rt::Dim3 block, void **params) {
  rt::KernelHandle kernel = nullptr;
  rt::Status s = device_.launch->getKernel(module_, name, kernel);
  if (s.isOk())
    s = device_.launch->launch(kernel, grid, block, 0, params, nullptr);
  rt::Status waited = device_.launch->synchronize(nullptr);
  if (s.isOk())
    s = waited;
  if (!s.isOk())
    error_ = "launch " + name + ": " + s.toString();
  return s.isOk();
}

std::optional<DecodeRun>
kvopt::gpu_test::runDecodeOnDevice(DeviceKernels &device, const DecodeCase &c,
                                   const CompiledDecode &k, const DecodeData &d,
                                   int64_t chunkTokens, const std::string &chip,
                                   std::string &error) {
  DeviceKernels *dk = &device;
  int64_t B = c.lengths.size(), Hkv = c.kvHeads, D = c.headDim,
          Hq = Hkv * c.group, Tq = c.queryLen, T = maxLength(c);
  DecodeRun r;
  if (chunkTokens <= 0) {
    auto plan = gpugen::planDecodeSplits(*gpugen::getTargetInfo(chip), B, Hkv,
                                         T, k.tileTokens);
    r.splits = plan.splits;
    r.chunkTokens = plan.chunkTokens;
  } else {
    r.chunkTokens = chunkTokens;
    r.splits = std::max<int64_t>(1, (T + chunkTokens - 1) / chunkTokens);
  }
  int64_t rows = B * Hq * Tq;
  bool q32 = c.query == ref::ScalarType::F32,
       o32 = c.output == ref::ScalarType::F32;
  uint8_t *q = q32 ? dk->upload(d.q.data(), d.q.size() * 4)
                   : dk->upload(d.q16.data(), d.q16.size() * 2);
  uint8_t *pool = dk->upload(d.pool.data(), d.pool.size());
  uint8_t *table = dk->upload(d.table.data(), d.table.size() * 4);
  uint8_t *lens = dk->upload(d.lens.data(), d.lens.size() * 4);
  uint8_t *pout = dk->upload(nullptr, rows * r.splits * D * 4);
  uint8_t *plse = dk->upload(nullptr, rows * r.splits * 4);
  uint8_t *out = dk->upload(nullptr, rows * D * (o32 ? 4 : 2));
  uint8_t *lse = dk->upload(nullptr, rows * 4);
  if (!q || !pool || !table || !lens || !pout || !plse || !out || !lse) {
    error = dk->error();
    return std::nullopt;
  }
  simt::ParamPack p, m;
  p.memref(q, {int64_t(q32 ? d.q.size() : d.q16.size())})
      .memref(pool, {int64_t(d.pool.size())})
      .memref(table, {int64_t(d.table.size())})
      .memref(lens, {int64_t(d.lens.size())})
      .memref(pout, {rows * r.splits * D})
      .memref(plse, {rows * r.splits})
      .scalar<int32_t>(int32_t(d.maxPages))
      .scalar<int32_t>(int32_t(r.splits))
      .scalar<int32_t>(int32_t(r.chunkTokens));
  m.memref(pout, {rows * r.splits * D})
      .memref(plse, {rows * r.splits})
      .memref(out, {rows * D})
      .memref(lse, {rows})
      .scalar<int32_t>(int32_t(r.splits));
  std::vector<uint8_t> outHost(rows * D * (o32 ? 4 : 2));
  r.lse.assign(rows, NAN);
  if (!dk->launch("decode_0", {uint32_t(r.splits), uint32_t(Hkv), uint32_t(B)},
                  {uint32_t(k.threads), 1, 1}, p.data()) ||
      !dk->launch("merge_0", {uint32_t(Hq * Tq), uint32_t(B), 1},
                  {uint32_t(k.mergeThreads), 1, 1}, m.data()) ||
      !dk->download(outHost.data(), out, outHost.size()) ||
      !dk->download(r.lse.data(), lse, rows * 4)) {
    error = dk->error();
    return std::nullopt;
  }
  r.out = outputValues(outHost, c.output);
  return r;
}

std::vector<float>
kvopt::gpu_test::outputValues(const std::vector<uint8_t> &bytes,
                              ref::ScalarType type) {
  std::vector<float> out;
  int64_t w = ref::scalarBytes(type);
  for (size_t at = 0; at + w <= bytes.size(); at += w) {
    if (type == ref::ScalarType::F32) {
      float v;
      std::memcpy(&v, &bytes[at], 4);
      out.push_back(v);
    } else {
      uint16_t bits;
      std::memcpy(&bits, &bytes[at], 2);
      out.push_back(float(ref::fromScalarBits(type, bits)));
    }
  }
  return out;
}

double kvopt::gpu_test::worstError(const DecodeCase &c, const DecodeData &d,
                                   const DecodeRun &r, std::string &where) {
  double worst = 0;
  const auto &eo = d.expected.out.values();
  const auto &el = d.expected.lse.values();
  for (size_t i = 0; i < eo.size(); ++i) {
    double err = std::fabs(double(r.out[i]) - eo[i]) / d.tol.out;
    if (!(err <= worst)) { // NaN counts as worst
      worst = std::isnan(err) ? INFINITY : err;
      where = "out[" + std::to_string(i) + "] = " + std::to_string(r.out[i]) +
              " expected " + std::to_string(eo[i]);
    }
  }
  for (size_t i = 0; i < el.size(); ++i) {
    double err;
    if (std::isinf(el[i]))
      err = (std::isinf(r.lse[i]) && r.lse[i] < 0) ? 0 : INFINITY;
    else
      err = std::fabs(double(r.lse[i]) - el[i]) / d.tol.lse;
    if (!(err <= worst)) {
      worst = std::isnan(err) ? INFINITY : err;
      where = "lse[" + std::to_string(i) + "] = " + std::to_string(r.lse[i]) +
              " expected " + std::to_string(el[i]);
    }
  }
  return worst;
}
