//===- BundleEntries.cpp - kv-cpu-bundle-entries --------------------------===//
//
// The runtime's CPU launch backend calls `void entry(void **params)`, with
// params[i] pointing at argument i of the expanded kernel ABI (the GPU
// kernels' convention: a memref is allocated pointer, aligned pointer,
// offset, sizes, strides). This pass gives every public function such an
// entry, which rebuilds the memref descriptors from the expanded values and
// calls the function; the descriptors are reconciled away when the module
// goes to LLVM dialect.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Codegen/KVToCPU/Passes.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace kvopt {
#define GEN_PASS_DEF_KVCPUBUNDLEENTRIES
#include "kvopt/Codegen/KVToCPU/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;

namespace {

/// One value of the expanded ABI.
struct AbiValue {
  std::string name;
  llvm::StringRef type; ///< manifest type: ptr, i32, i64, f32
  Type llvmType;
};

/// The manifest type of scalar `t`, or empty.
llvm::StringRef scalarAbiType(Type t) {
  if (t.isIndex() || t.isSignlessInteger(64))
    return "i64";
  if (t.isSignlessInteger(32))
    return "i32";
  if (t.isF32())
    return "f32";
  return {};
}

struct KVCPUBundleEntries
    : public kvopt::impl::KVCPUBundleEntriesBase<KVCPUBundleEntries> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    LLVMTypeConverter converter(&getContext());
    llvm::SmallVector<func::FuncOp> publics;
    for (auto f : module.getOps<func::FuncOp>())
      if (f.isPublic() && !f.isExternal() &&
          !f.getName().starts_with(kBundleEntryPrefix))
        publics.push_back(f);
    for (func::FuncOp f : publics)
      if (failed(addEntry(f, converter)))
        return signalPassFailure();
  }

  LogicalResult addEntry(func::FuncOp f, LLVMTypeConverter &converter) {
    MLIRContext *ctx = f.getContext();
    if (f.getNumResults() != 0)
      return f.emitError() << "bundle entry of @" << f.getName()
                           << ": the function returns " << f.getNumResults()
                           << " value(s); a bundle kernel writes its results "
                              "into memref out-parameters (buffer-results-to-"
                              "out-params moves memref results there; a "
                              "scalar result has to be returned in a tensor "
                              "or memref)";
    std::string entryName = (kBundleEntryPrefix + f.getName()).str();
    if (SymbolTable::lookupNearestSymbolFrom(f,
                                             StringAttr::get(ctx, entryName)))
      return f.emitError() << "bundle entry of @" << f.getName() << ": @"
                           << entryName << " already exists";

    // Names and types first, so that nothing is built for a function the
    // ABI cannot express.
    Type ptrTy = LLVM::LLVMPointerType::get(ctx);
    Type i64 = IntegerType::get(ctx, 64);
    llvm::SmallVector<AbiValue> abi;
    unsigned results = 0;
    for (auto [i, t] : llvm::enumerate(f.getArgumentTypes())) {
      std::string name = "arg" + std::to_string(i);
      if (f.getArgAttr(i, "bufferize.result"))
        name = "result" + std::to_string(results++);
      if (auto m = dyn_cast<MemRefType>(t)) {
        if (!m.isStrided() || m.getMemorySpace() || !converter.convertType(m))
          return f.emitError()
                 << "bundle entry of @" << f.getName() << ": argument " << i
                 << " has type " << t
                 << "; memrefs must have a strided layout in the default "
                    "memory space";
        int64_t rank = m.getRank();
        abi.push_back({name + "_alloc", "ptr", ptrTy});
        abi.push_back({name, "ptr", ptrTy});
        abi.push_back({name + "_offset", "i64", i64});
        for (const char *field : {"_size", "_stride"})
          for (int64_t d = 0; d < rank; ++d)
            abi.push_back({name + field + (rank == 1 ? "" : std::to_string(d)),
                           "i64", i64});
        continue;
      }
      llvm::StringRef type = scalarAbiType(t);
      if (type.empty())
        return f.emitError() << "bundle entry of @" << f.getName()
                             << ": argument " << i << " has type " << t
                             << ", which the kernel ABI cannot pass (memref, "
                                "i32, i64, index, f32)";
      abi.push_back({name, type,
                     type == "f32" ? Type(Float32Type::get(ctx))
                                   : Type(IntegerType::get(
                                         ctx, type == "i32" ? 32 : 64))});
    }

    OpBuilder b(f);
    b.setInsertionPointAfter(f);
    Location loc = f.getLoc();
    auto entry =
        func::FuncOp::create(b, loc, entryName, b.getFunctionType({ptrTy}, {}));
    llvm::SmallVector<Attribute> manifestArgs;
    for (const AbiValue &v : abi)
      manifestArgs.push_back(b.getDictionaryAttr(
          {b.getNamedAttr("name", b.getStringAttr(v.name)),
           b.getNamedAttr("type", b.getStringAttr(v.type))}));
    entry->setAttr("kv.bundle_kernel", b.getStringAttr(f.getName()));
    entry->setAttr("kv.bundle_args", b.getArrayAttr(manifestArgs));

    Block *body = entry.addEntryBlock();
    b.setInsertionPointToStart(body);
    Value params = body->getArgument(0);
    unsigned next = 0;
    // params[next] points at the value of the next expanded argument.
    auto load = [&]() -> Value {
      const AbiValue &v = abi[next];
      Value slot = LLVM::GEPOp::create(
          b, loc, ptrTy, ptrTy, params,
          llvm::ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(next)});
      Value at = LLVM::LoadOp::create(b, loc, ptrTy, slot);
      ++next;
      return LLVM::LoadOp::create(b, loc, v.llvmType, at);
    };
    llvm::SmallVector<Value> operands;
    for (Type t : f.getArgumentTypes()) {
      if (auto m = dyn_cast<MemRefType>(t)) {
        auto desc = MemRefDescriptor::poison(b, loc, converter.convertType(m));
        desc.setAllocatedPtr(b, loc, load());
        desc.setAlignedPtr(b, loc, load());
        desc.setOffset(b, loc, load());
        for (int64_t d = 0; d < m.getRank(); ++d)
          desc.setSize(b, loc, d, load());
        for (int64_t d = 0; d < m.getRank(); ++d)
          desc.setStride(b, loc, d, load());
        operands.push_back(
            UnrealizedConversionCastOp::create(b, loc, t, Value(desc))
                .getResult(0));
        continue;
      }
      Value v = load();
      if (t.isIndex())
        v = arith::IndexCastOp::create(b, loc, t, v);
      operands.push_back(v);
    }
    func::CallOp::create(b, loc, f, operands);
    func::ReturnOp::create(b, loc);
    return success();
  }
};

} // namespace
