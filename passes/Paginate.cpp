//===- Paginate.cpp - kv-paginate: paged KV caches ----------------------===//
//
// Turns contiguous caches into paged ones and threads a block table from the
// function signature to every op that touches each cache.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

namespace kvopt {
#define GEN_PASS_DEF_KVPAGINATE
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

/// The block table type for caches of `type`: one row per sequence of a
/// batch whose size is only known at run time.
RankedTensorType getBlockTableType(KVCacheTypeInterface type) {
  return RankedTensorType::get(
      {ShapedType::kDynamic, type.getMaxPagesPerSequence()},
      IntegerType::get(type.getContext(), 32));
}

bool isContiguousCache(Type type) {
  auto cache = dyn_cast<KVCacheTypeInterface>(type);
  return cache && !cache.isPaged();
}

/// Sets the block table operand of an op that reads or writes a cache.
/// Returns false for ops that do not take one.
bool setBlockTable(Operation *op, Value table) {
  if (auto append = dyn_cast<AppendOp>(op))
    append.getBlockTableMutable().assign(table);
  else if (auto view = dyn_cast<ViewOp>(op))
    view.getBlockTableMutable().assign(table);
  else if (auto attention = dyn_cast<AttentionOp>(op))
    attention.getBlockTableMutable().assign(table);
  else if (auto mla = dyn_cast<MLAAttentionOp>(op))
    mla.getBlockTableMutable().assign(table);
  else
    return false;
  return true;
}

struct PaginatePass : public kvopt::impl::KVPaginateBase<PaginatePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (pageSize < 1 || pageSize > 4096) {
      module.emitError() << "kv-paginate: option 'page-size' must be in "
                            "1..4096, got "
                         << int64_t(pageSize);
      return signalPassFailure();
    }
    if (failed(checkPreconditions(module)))
      return signalPassFailure();

    // Remember which caches are contiguous before their types change.
    llvm::SetVector<Value> roots;
    module.walk([&](func::FuncOp func) {
      for (BlockArgument arg : func.getArguments())
        if (isContiguousCache(arg.getType()))
          roots.insert(arg);
    });
    module.walk([&](AllocCacheOp alloc) {
      if (isContiguousCache(alloc.getType()))
        roots.insert(alloc.getResult());
    });
    if (roots.empty())
      return markAllAnalysesPreserved();

    if (failed(rewriteCacheTypes(module)))
      return signalPassFailure();
    llvm::DenseMap<Value, Value> tables = addBlockTableArguments(module, roots);
    if (failed(useBlockTables(module, tables)))
      return signalPassFailure();
  }

  /// Rejects IR whose caches flow where the pass cannot follow them.
  LogicalResult checkPreconditions(ModuleOp module) {
    WalkResult result = module.walk([&](Operation *op) -> WalkResult {
      if (isa<func::ReturnOp>(op) &&
          llvm::any_of(op->getOperandTypes(), isContiguousCache))
        return op->emitError("kv-paginate: functions returning caches are not "
                             "supported; pass caches in as arguments");
      if (isa<KVDialect>(op->getDialect()) || isa<func::CallOp>(op) ||
          isa<func::ReturnOp>(op))
        return WalkResult::advance();
      if (llvm::any_of(op->getOperandTypes(), isContiguousCache))
        return op->emitError() << "kv-paginate: cannot follow a cache into '"
                               << op->getName() << "'";
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }

  /// Every contiguous cache type in the module (signatures, values, nested
  /// attributes) becomes paged.
  LogicalResult rewriteCacheTypes(ModuleOp module) {
    MLIRContext *ctx = module.getContext();
    auto layout = LayoutAttr::getChecked(
        [&] { return module.emitError("kv-paginate: option 'page-size': "); },
        ctx, LayoutKind::Paged, int64_t(pageSize));
    bool invalid = false;
    AttrTypeReplacer replacer;
    replacer.addReplacement([&](Type type) -> std::optional<Type> {
      auto cache = dyn_cast<KVCacheTypeInterface>(type);
      if (!cache || cache.isPaged())
        return std::nullopt;
      KVCacheTypeInterface paged = cache.cloneWithLayout(layout);
      // Re-verify: a per-channel token group must divide the page size.
      if (failed(verifyCacheType(paged, module))) {
        invalid = true;
        return std::nullopt;
      }
      return Type(paged);
    });
    replacer.recursivelyReplaceElementsIn(module, /*replaceAttrs=*/true,
                                          /*replaceLocs=*/false,
                                          /*replaceTypes=*/true);
    return failure(invalid);
  }

  LogicalResult verifyCacheType(KVCacheTypeInterface type, ModuleOp module) {
    auto emit = [&] {
      return module.emitError()
             << "kv-paginate: option 'page-size' = " << int64_t(pageSize)
             << " does not fit " << Type(type) << ": ";
    };
    if (auto cache = dyn_cast<CacheType>(type))
      return CacheType::verify(emit, cache.getKvHeads(), cache.getHeadDim(),
                               cache.getCapacity(), cache.getElementType(),
                               cache.getLayout(), cache.getKeyQuant(),
                               cache.getValueQuant());
    auto latent = cast<LatentCacheType>(type);
    return LatentCacheType::verify(
        emit, latent.getLatentDim(), latent.getRopeDim(), latent.getCapacity(),
        latent.getElementType(), latent.getLayout(), latent.getQuant());
  }

  /// Adds one block table argument per newly paged cache: right after a
  /// cache argument, or at the end of the function for a kv.alloc_cache.
  llvm::DenseMap<Value, Value>
  addBlockTableArguments(ModuleOp module, llvm::SetVector<Value> &roots) {
    llvm::DenseMap<Value, Value> tables;
    module.walk([&](func::FuncOp func) {
      // Walk argument positions from the back so indices stay valid.
      for (int64_t i = func.getNumArguments() - 1; i >= 0; --i) {
        BlockArgument arg = func.getArgument(i);
        if (!roots.contains(arg))
          continue;
        auto type =
            getBlockTableType(cast<KVCacheTypeInterface>(arg.getType()));
        if (failed(func.insertArgument(i + 1, type, {}, arg.getLoc())))
          continue;
        tables[func.getArgument(i)] = func.getArgument(i + 1);
      }
      func.walk([&](AllocCacheOp alloc) {
        if (!roots.contains(alloc.getResult()))
          return;
        auto type = getBlockTableType(alloc.getType());
        unsigned index = func.getNumArguments();
        if (failed(func.insertArgument(index, type, {}, alloc.getLoc())))
          return;
        tables[alloc.getResult()] = func.getArgument(index);
      });
    });
    return tables;
  }

  /// Points every cache op at its cache's block table and forwards block
  /// tables through calls to functions whose signature grew.
  LogicalResult useBlockTables(ModuleOp module,
                               llvm::DenseMap<Value, Value> &tables) {
    auto rootOf = [](Value cache) {
      if (auto share = cache.getDefiningOp<ShareCacheOp>())
        return share.getOwningCache();
      return cache;
    };
    WalkResult result = module.walk([&](Operation *op) -> WalkResult {
      if (auto call = dyn_cast<func::CallOp>(op)) {
        auto callee = module.lookupSymbol<func::FuncOp>(call.getCalleeAttr());
        if (!callee || callee.getNumArguments() == call.getNumOperands())
          return WalkResult::advance();
        SmallVector<Value> operands;
        for (Value operand : call.getOperands()) {
          operands.push_back(operand);
          if (!isa<KVCacheTypeInterface>(operand.getType()))
            continue;
          Value table = tables.lookup(rootOf(operand));
          if (!table)
            return call.emitError("kv-paginate: no block table for a cache "
                                  "passed to @")
                   << call.getCallee();
          operands.push_back(table);
        }
        if (operands.size() != callee.getNumArguments())
          return call.emitError("kv-paginate: cannot match the new signature "
                                "of @")
                 << call.getCallee();
        call->setOperands(operands);
        return WalkResult::advance();
      }
      // Look the table up first: setting it grows the operand list.
      Value table;
      for (Value operand : op->getOperands())
        if (isa<KVCacheTypeInterface>(operand.getType()))
          table = tables.lookup(rootOf(operand));
      if (table)
        setBlockTable(op, table);
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }
};

} // namespace
