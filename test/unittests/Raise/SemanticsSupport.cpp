//===- SemanticsSupport.cpp - run model graphs before/after kvopt ---------===//
//
// Implementation of SemanticsSupport.h.
//
//===----------------------------------------------------------------------===//

#include "SemanticsSupport.h"

#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Dialect/KV/KVTypes.h"
#include "kvopt/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace mlir;
using namespace kvopt;
using namespace kvopt::semtest;
using kvopt::reference::ScalarType;

namespace {
/// One context for parsing and transforming (never destroyed, like the
/// compiled modules).
MLIRContext &context() {
  static MLIRContext *ctx = [] {
    DialectRegistry registry;
    kvopt::registerAllDialects(registry);
    mlir::registerAllDialects(registry);
    mlir::registerAllExtensions(registry);
    kvopt::registerAllPasses();
    auto *c = new MLIRContext(registry);
    c->disableMultithreading();
    return c;
  }();
  return *ctx;
}

/// Parses `source`, collecting diagnostics into `diagnostics`.
OwningOpRef<ModuleOp> parse(const std::string &source,
                            std::string &diagnostics) {
  llvm::raw_string_ostream os(diagnostics);
  ScopedDiagnosticHandler handler(&context(), [&](Diagnostic &d) {
    os << d.getLocation() << ": " << d << "\n";
    return success();
  });
  return parseSourceString<ModuleOp>(source, &context());
}

/// Generic form: kv.append on a latent cache with a block table does not
/// round-trip through its custom syntax (the block table's type is read as
/// the absent values' type).
std::string print(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os, OpPrintingFlags().printGenericOpForm());
  return text;
}

ScalarType scalarOf(Type t) {
  if (t.isF16())
    return ScalarType::F16;
  if (t.isBF16())
    return ScalarType::BF16;
  return ScalarType::F32;
}

std::optional<reference::QuantEncoding> encodingOf(kv::QuantAttr q) {
  if (!q)
    return std::nullopt;
  reference::QuantEncoding e;
  switch (q.getKind()) {
  case kv::QuantKind::Int8:
    e.kind = reference::QuantKind::Int8;
    break;
  case kv::QuantKind::FP8E4M3:
    e.kind = reference::QuantKind::Fp8E4M3;
    break;
  case kv::QuantKind::Int4:
    e.kind = reference::QuantKind::Int4;
    break;
  case kv::QuantKind::Int2:
    e.kind = reference::QuantKind::Int2;
    break;
  }
  e.axis = q.getAxis() == kv::ScaleAxis::Token ? reference::QuantAxis::Token
                                               : reference::QuantAxis::Channel;
  e.group = q.getGroup();
  e.symmetric = q.getSymmetric();
  e.scaleType = scalarOf(q.getScale());
  e.recent = q.getRecent();
  e.sinks = q.getSinks();
  return e;
}

int64_t pageSizeOf(kv::LayoutAttr layout) {
  if (!layout || layout.getKind() != kv::LayoutKind::Paged)
    return 0;
  return layout.getPageSize();
}
} // namespace

std::string kvopt::semtest::loadGraph(const std::string &name) {
  std::ifstream in(std::string(KVOPT_EXAMPLE_GRAPHS) + "/" + name);
  EXPECT_TRUE(in.good()) << "cannot read examples/graphs/" << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string kvopt::semtest::transform(const std::string &source,
                                      const std::string &pipeline) {
  std::string diagnostics;
  OwningOpRef<ModuleOp> module = parse(source, diagnostics);
  if (!module) {
    ADD_FAILURE() << "cannot parse:\n" << diagnostics;
    return "";
  }
  PassManager pm(&context(), ModuleOp::getOperationName());
  std::string errors;
  llvm::raw_string_ostream errorOS(errors);
  // The elements of the module's pipeline (a "builtin.module(...)" wrapper
  // here would nest a second module level).
  if (failed(parsePassPipeline(pipeline, pm, errorOS))) {
    ADD_FAILURE() << "bad pipeline '" << pipeline << "': " << errors;
    return "";
  }
  llvm::raw_string_ostream os(diagnostics);
  ScopedDiagnosticHandler handler(&context(), [&](Diagnostic &d) {
    os << d.getLocation() << ": " << d << "\n";
    return success();
  });
  if (failed(pm.run(*module))) {
    ADD_FAILURE() << "pipeline '" << pipeline << "' failed:\n" << diagnostics;
    return "";
  }
  return print(*module);
}

std::string kvopt::semtest::prepareOriginal(const std::string &source) {
  std::string diagnostics;
  OwningOpRef<ModuleOp> module = parse(source, diagnostics);
  if (!module) {
    ADD_FAILURE() << "cannot parse:\n" << diagnostics;
    return "";
  }
  SmallVector<linalg::AggregatedOpInterface> aggregated;
  module->walk([&](linalg::AggregatedOpInterface op) {
    aggregated.push_back(op);
  });
  for (linalg::AggregatedOpInterface op : aggregated) {
    OpBuilder b(op);
    FailureOr<SmallVector<Value>> values = op.decomposeOperation(b);
    if (failed(values)) {
      ADD_FAILURE() << "cannot decompose " << op->getName().getStringRef().str();
      return "";
    }
    op->replaceAllUsesWith(*values);
    op->erase();
  }
  return print(*module);
}

Signature kvopt::semtest::signature(const std::string &source) {
  std::string diagnostics;
  OwningOpRef<ModuleOp> module = parse(source, diagnostics);
  Signature sig;
  if (!module) {
    ADD_FAILURE() << "cannot parse:\n" << diagnostics;
    return sig;
  }
  func::FuncOp func;
  module->walk([&](func::FuncOp f) {
    if (f.isPublic())
      func = f;
  });
  sig.name = func.getName().str();
  for (Type type : func.getResultTypes())
  {
    ArrayRef<int64_t> shape = cast<RankedTensorType>(type).getShape();
    sig.results.emplace_back(shape.begin(), shape.end());
  }
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    ArgInfo info;
    if (auto layer = func.getArgAttrOfType<IntegerAttr>(i, "kv.layer"))
      info.layer = layer.getInt();
    if (auto cache = dyn_cast<kv::CacheType>(type)) {
      info.kind = ArgInfo::CacheArg;
      info.spec.kvHeads = cache.getKvHeads();
      info.spec.headDim = cache.getHeadDim();
      info.spec.capacity = cache.getCapacity();
      info.spec.element = scalarOf(cache.getElementType());
      info.spec.key = encodingOf(cache.getKeyQuant());
      info.spec.value = encodingOf(cache.getValueQuant());
      info.spec.pageSize = pageSizeOf(cache.getLayout());
    } else if (auto latent = dyn_cast<kv::LatentCacheType>(type)) {
      info.kind = ArgInfo::LatentCacheArg;
      info.spec.kvHeads = 1;
      info.spec.headDim = latent.getRowWidth();
      info.latentDim = latent.getLatentDim();
      info.spec.capacity = latent.getCapacity();
      info.spec.element = scalarOf(latent.getElementType());
      info.spec.key = encodingOf(latent.getQuant());
      info.spec.pageSize = pageSizeOf(latent.getLayout());
    } else if (auto tensor = dyn_cast<RankedTensorType>(type)) {
      info.kind = tensor.getElementType().isInteger(32) ? ArgInfo::TableArg
                                                        : ArgInfo::TensorArg;
      for (int64_t d : tensor.getShape())
        info.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    } else {
      ADD_FAILURE() << "unexpected argument type";
    }
    sig.args.push_back(info);
  }
  return sig;
}

Buffer kvopt::semtest::f32Buffer(const Tensor &t) {
  return {cputest::encode(t, ScalarType::F32), t.shape()};
}

Buffer kvopt::semtest::tableBuffer(const reference::BlockTable &table) {
  Buffer b;
  b.bytes.resize(table.pages.size() * sizeof(int32_t));
  std::memcpy(b.bytes.data(), table.pages.data(), b.bytes.size());
  b.shape = {table.batch, table.maxPages};
  return b;
}

Buffer kvopt::semtest::cacheBuffer(std::vector<uint8_t> bytes) {
  Buffer b;
  b.shape = {static_cast<int64_t>(bytes.size())};
  b.bytes = std::move(bytes);
  return b;
}

std::vector<Tensor> kvopt::semtest::run(CPUModule &module,
                                        const Signature &sig,
                                        std::vector<Buffer> &args) {
  // _mlir_ciface_f(results *, args *...): the results, one memref descriptor
  // each (allocated, aligned, offset, sizes[r], strides[r], all 8-byte
  // words), come back through a struct whose address is the first packed
  // parameter.
  int64_t words = 0;
  for (const auto &shape : sig.results)
    words += 3 + 2 * static_cast<int64_t>(shape.size());
  std::vector<int64_t> resultWords(words, 0);
  void *resultPtr = resultWords.data();
  std::vector<cputest::Desc> descs;
  for (Buffer &b : args)
    descs.push_back(cputest::makeDesc(b.bytes.data(), b.shape));
  std::vector<void *> pointers, params;
  for (cputest::Desc &d : descs)
    pointers.push_back(&d);
  params.push_back(&resultPtr);
  for (void *&p : pointers)
    params.push_back(&p);
  std::vector<Tensor> out;
  llvm::Error error = module.invoke(sig.name, params);
  if (error) {
    ADD_FAILURE() << llvm::toString(std::move(error));
    return out;
  }
  const int64_t *word = resultWords.data();
  for (const auto &shape : sig.results) {
    int64_t rank = static_cast<int64_t>(shape.size());
    const float *aligned = reinterpret_cast<const float *>(word[1]);
    int64_t offset = word[2];
    const int64_t *sizes = word + 3, *strides = word + 3 + rank;
    Tensor t(std::vector<int64_t>(shape.begin(), shape.end()));
    for (int64_t d = 0; d < rank; ++d)
      EXPECT_EQ(sizes[d], shape[d]);
    for (int64_t i = 0; i < t.numel(); ++i) {
      int64_t rest = i, at = offset;
      for (int64_t d = rank - 1; d >= 0; --d) {
        at += (rest % shape[d]) * strides[d];
        rest /= shape[d];
      }
      t.data()[i] = aligned[at];
    }
    out.push_back(std::move(t));
    // The results are fresh allocations owned by the caller (identity-layout
    // function boundaries copy views); the model-sized buffers are left to
    // the process.
    word += 3 + 2 * rank;
  }
  return out;
}

double kvopt::semtest::worstRatio(const Tensor &got, const Tensor &want,
                                  const Tensor &tol, int64_t *worst) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape())
    return INFINITY;
  double ratio = 0.0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double r = std::fabs(got.data()[i] - want.data()[i]) / tol.data()[i];
    if (!(r <= ratio)) {
      ratio = std::isnan(r) ? INFINITY : r;
      if (worst)
        *worst = i;
    }
  }
  return ratio;
}
