//===- RaiseRopeTest.cpp - executed check of raising RoPE -----------------===//
//
// examples/graphs/llama-rope-layer.mlir as written (linalg RoPE tables,
// concatenated past K/V) and after kv-optimize (kv.rope on the queries,
// the key rotation fused into kv.append {rope_theta}, kv.attention over a
// cache) run on the CPU on the same random inputs; the layer output and the
// present keys/values must agree to fp32 accuracy.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToCPU/CPUJit.h"
#include "kvopt/Dialect/KV/KVOps.h"
#include "kvopt/InitAll.h"
#include "kvopt/Reference/PagedCache.h"
#include "kvopt/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/CRunnerUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>
#include <sstream>

using namespace mlir;
using namespace kvopt;

namespace {

constexpr int64_t kBatch = 2, kKVHeads = 2, kDim = 16, kPast = 7, kHidden = 64,
                  kQHeads = 8;

std::string readExample() {
  auto buffer = llvm::MemoryBuffer::getFile(
      KVOPT_SOURCE_DIR "/examples/graphs/llama-rope-layer.mlir");
  if (!buffer)
    return "";
  return (*buffer)->getBuffer().str();
}

std::string print(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  type.print(os);
  return s;
}

std::string memrefOf(RankedTensorType type) {
  std::string s = print(type);
  return "memref" + s.substr(std::string("tensor").size());
}

/// A public `@run` that takes every tensor argument of `callee` as a memref
/// (caches as they are) and writes its results to trailing memrefs: the
/// form CPUModule calls.
std::string wrapper(func::FuncOp callee) {
  std::ostringstream src, body;
  FunctionType type = callee.getFunctionType();
  src << "func.func @run(";
  std::vector<std::string> operands;
  for (auto [i, t] : llvm::enumerate(type.getInputs())) {
    src << (i ? ", " : "") << "%a" << i << ": ";
    if (auto tensor = dyn_cast<RankedTensorType>(t)) {
      src << memrefOf(tensor);
      body << "  %t" << i << " = bufferization.to_tensor %a" << i
           << " restrict : " << memrefOf(tensor) << " to " << print(tensor)
           << "\n";
      operands.push_back("%t" + std::to_string(i));
    } else {
      src << print(t);
      operands.push_back("%a" + std::to_string(i));
    }
  }
  for (auto [i, t] : llvm::enumerate(type.getResults()))
    src << ", %o" << i << ": " << memrefOf(cast<RankedTensorType>(t));
  src << ") {\n"
      << body.str() << "  %r:" << type.getNumResults() << " = func.call @"
      << callee.getSymName().str() << "(";
  for (size_t i = 0; i < operands.size(); ++i)
    src << (i ? ", " : "") << operands[i];
  src << ") : " << print(type) << "\n";
  for (auto [i, t] : llvm::enumerate(type.getResults()))
    src << "  bufferization.materialize_in_destination %r#" << i
        << " in restrict writable %o" << i << " : (" << print(t) << ", "
        << memrefOf(cast<RankedTensorType>(t)) << ") -> ()\n";
  src << "  return\n}\n";
  return src.str();
}

/// `module`'s text with the wrapper of its only function appended.
std::string withWrapper(ModuleOp module) {
  auto funcs = module.getOps<func::FuncOp>();
  EXPECT_EQ(std::distance(funcs.begin(), funcs.end()), 1);
  std::string text;
  llvm::raw_string_ostream os(text);
  for (Operation &op : *module.getBody())
    op.print(os);
  os << "\n" << wrapper(*funcs.begin());
  return text;
}

/// A row-major descriptor over `data` (kept alive by the caller).
template <int N> struct Desc {
  StridedMemRefType<char, N> d;
  Desc(void *data, std::array<int64_t, N> shape) {
    d.basePtr = d.data = static_cast<char *>(data);
    d.offset = 0;
    int64_t stride = 1;
    for (int i = N - 1; i >= 0; --i) {
      d.sizes[i] = shape[i];
      d.strides[i] = stride;
      stride *= shape[i];
    }
  }
};

/// Calls `name` with one descriptor per argument: the packed form takes a
/// pointer to each argument, and a memref argument is a descriptor pointer.
llvm::Error invoke(CPUModule &module, llvm::StringRef name,
                   llvm::ArrayRef<void *> descriptors) {
  std::vector<void *> pointers(descriptors.begin(), descriptors.end()), args;
  for (void *&p : pointers)
    args.push_back(&p);
  return module.invoke(name, args);
}

struct Inputs {
  std::vector<float> x, pastK, pastV, wq, wk, wv, wo;
};

std::vector<float> uniform(std::mt19937_64 &rng, size_t n, double scale) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float &f : v)
    f = float(dist(rng) * scale);
  return v;
}

struct Outputs {
  std::vector<float> y, k, v;
};

Outputs newOutputs() {
  return {std::vector<float>(kBatch * kHidden),
          std::vector<float>(kBatch * kKVHeads * (kPast + 1) * kDim),
          std::vector<float>(kBatch * kKVHeads * (kPast + 1) * kDim)};
}

class RaiseRope : public ::testing::Test {
protected:
  void SetUp() override {
    kvopt::registerAllDialects(registry);
    mlir::registerAllDialects(registry);
    mlir::registerAllExtensions(registry);
    context = std::make_unique<MLIRContext>(registry);
    source = readExample();
    ASSERT_FALSE(source.empty()) << "cannot read the example graph";
  }

  OwningOpRef<ModuleOp> parse() {
    return parseSourceString<ModuleOp>(source, context.get());
  }

  DialectRegistry registry;
  std::unique_ptr<MLIRContext> context;
  std::string source;
};

TEST_F(RaiseRope, OptimizedGraphMatchesTheOriginalOnTheCPU) {
  OwningOpRef<ModuleOp> original = parse();
  ASSERT_TRUE(original);
  OwningOpRef<ModuleOp> optimized = parse();
  PassManager pm(context.get());
  OptimizePipelineOptions options;
  options.pageSize = 0;
  options.report = false;
  buildOptimizePipeline(pm, options);
  ASSERT_TRUE(succeeded(pm.run(*optimized)));

  // The structure under test: the query rotation is kv.rope, the key
  // rotation is fused into the append, nothing of the linalg RoPE is left.
  int ropes = 0, fused = 0, concats = 0;
  optimized->walk([&](Operation *op) {
    StringRef name = op->getName().getStringRef();
    ropes += name == "kv.rope";
    fused += name == "kv.append" && op->hasAttr("rope_theta");
    concats += name == "tensor.concat";
  });
  EXPECT_EQ(ropes, 1);
  EXPECT_EQ(fused, 1);
  EXPECT_EQ(concats, 0);

  CPUCompileOptions compileOptions;
  auto reference = CPUModule::compile(withWrapper(*original), compileOptions);
  ASSERT_TRUE(bool(reference)) << llvm::toString(reference.takeError());
  auto lowered = CPUModule::compile(withWrapper(*optimized), compileOptions);
  ASSERT_TRUE(bool(lowered)) << llvm::toString(lowered.takeError());

  // The cache argument's type fixes its capacity.
  auto func = *optimized->getOps<func::FuncOp>().begin();
  auto cacheType = dyn_cast<kv::CacheType>(func.getArgumentTypes()[1]);
  ASSERT_TRUE(cacheType);
  int64_t capacity = cacheType.getCapacity();

  for (uint64_t seed : {1u, 2u, 3u}) {
    std::mt19937_64 rng(seed);
    int64_t pastElems = kBatch * kKVHeads * kPast * kDim;
    Inputs in{uniform(rng, kBatch * kHidden, 1.0),
              uniform(rng, pastElems, 1.0),
              uniform(rng, pastElems, 1.0),
              uniform(rng, kHidden * kQHeads * kDim, 0.125),
              uniform(rng, kHidden * kKVHeads * kDim, 0.125),
              uniform(rng, kHidden * kKVHeads * kDim, 0.125),
              uniform(rng, kQHeads * kDim * kHidden, 0.125)};
    Desc<3> x(in.x.data(), {kBatch, 1, kHidden});
    Desc<4> pk(in.pastK.data(), {kBatch, kKVHeads, kPast, kDim});
    Desc<4> pv(in.pastV.data(), {kBatch, kKVHeads, kPast, kDim});
    Desc<2> wq(in.wq.data(), {kHidden, kQHeads * kDim});
    Desc<2> wk(in.wk.data(), {kHidden, kKVHeads * kDim});
    Desc<2> wv(in.wv.data(), {kHidden, kKVHeads * kDim});
    Desc<2> wo(in.wo.data(), {kQHeads * kDim, kHidden});

    // Original: past K/V as tensors.
    Outputs want = newOutputs();
    Desc<3> y0(want.y.data(), {kBatch, 1, kHidden});
    Desc<4> k0(want.k.data(), {kBatch, kKVHeads, kPast + 1, kDim});
    Desc<4> v0(want.v.data(), {kBatch, kKVHeads, kPast + 1, kDim});
    std::vector<void *> args0 = {&x.d,  &pk.d, &pv.d, &wq.d, &wk.d,
                                 &wv.d, &wo.d, &y0.d, &k0.d, &v0.d};
    if (llvm::Error err = invoke(**reference, "run", args0))
      FAIL() << llvm::toString(std::move(err));

    // Optimized: past K/V written into the contiguous cache (one page of
    // `capacity` tokens per sequence, docs/CPU.md "Storage").
    reference::PagedCacheFormat format;
    format.kvHeads = kKVHeads;
    format.headDim = kDim;
    format.pageSize = capacity;
    format.element = reference::ScalarType::F32;
    int64_t pageBytes = reference::computePageLayout(format).pageBytes;
    std::vector<uint8_t> pool(kBatch * pageBytes, 0);
    reference::BlockTable table;
    table.batch = kBatch;
    table.maxPages = 1;
    for (int64_t b = 0; b < kBatch; ++b)
      table.pages.push_back(int32_t(b));
    reference::Tensor kt({kBatch, kKVHeads, kPast, kDim}),
        vt({kBatch, kKVHeads, kPast, kDim});
    for (int64_t i = 0; i < pastElems; ++i) {
      kt.data()[i] = in.pastK[i];
      vt.data()[i] = in.pastV[i];
    }
    reference::writePagedCache(format, pool, table, kt, vt,
                               std::vector<int64_t>(kBatch, kPast));
    Desc<1> cache(pool.data(), {int64_t(pool.size())});
    Outputs got = newOutputs();
    Desc<3> y1(got.y.data(), {kBatch, 1, kHidden});
    Desc<4> k1(got.k.data(), {kBatch, kKVHeads, kPast + 1, kDim});
    Desc<4> v1(got.v.data(), {kBatch, kKVHeads, kPast + 1, kDim});
    std::vector<void *> args1 = {&x.d,  &cache.d, &wq.d, &wk.d, &wv.d,
                                 &wo.d, &y1.d,    &k1.d, &v1.d};
    if (llvm::Error err = invoke(**lowered, "run", args1))
      FAIL() << llvm::toString(std::move(err));

    auto compare = [&](const std::vector<float> &a, const std::vector<float> &b,
                       const char *what) {
      ASSERT_EQ(a.size(), b.size());
      double worst = 0.0;
      for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_TRUE(std::isfinite(a[i]) && std::isfinite(b[i]));
        worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
        ASSERT_NEAR(b[i], a[i], 2e-5 * (1.0 + std::fabs(a[i])))
            << what << " element " << i << " seed " << seed;
      }
      RecordProperty(std::string(what) + "_max_abs_diff_seed" +
                         std::to_string(seed),
                     std::to_string(worst));
    };
    compare(want.y, got.y, "output");
    compare(want.k, got.k, "present_keys");
    compare(want.v, got.v, "present_values");
  }
}

} // namespace
