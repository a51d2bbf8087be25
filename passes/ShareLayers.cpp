//===- ShareLayers.cpp - kv-share-layers: cross-layer KV sharing --------===//
//
// Lets groups of layers read one cache: later layers of a group get a
// kv.share_cache view of the owner's cache and stop appending.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/MapVector.h"

namespace kvopt {
#define GEN_PASS_DEF_KVSHARELAYERS
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

/// A layer's own cache: a function argument tagged `kv.layer` or a
/// kv.alloc_cache with a `layer` attribute.
struct LayerCache {
  Value cache;
  func::FuncOp func;
};

struct ShareLayersPass
    : public kvopt::impl::KVShareLayersBase<ShareLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<llvm::MapVector<int64_t, LayerCache>> layers =
        collectLayers(module);
    if (failed(layers))
      return signalPassFailure();
    FailureOr<llvm::DenseMap<int64_t, int64_t>> owners =
        computeOwners(module, *layers);
    if (failed(owners))
      return signalPassFailure();
    if (failed(checkGroups(module, *layers, *owners)))
      return signalPassFailure();
    for (auto &[layer, entry] : *layers) {
      int64_t owner = owners->lookup(layer);
      if (owner != layer)
        shareCache(layer, entry, (*layers)[owner]);
    }
  }

  FailureOr<llvm::MapVector<int64_t, LayerCache>>
  collectLayers(ModuleOp module) {
    llvm::MapVector<int64_t, LayerCache> layers;
    auto add = [&](int64_t layer, Value cache, func::FuncOp func,
                   Operation *where) -> LogicalResult {
      if (cast<KVCacheTypeInterface>(cache.getType()).isPaged())
        return where->emitError("kv-share-layers: layer ")
               << layer << "'s cache is already paged; run kv-share-layers "
               << "before kv-paginate";
      if (!layers.insert({layer, LayerCache{cache, func}}).second)
        return where->emitError("kv-share-layers: layer ")
               << layer << " has two caches";
      return success();
    };
    for (auto func : module.getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      for (BlockArgument arg : func.getArguments()) {
        if (!isa<KVCacheTypeInterface>(arg.getType()))
          continue;
        auto attr =
            func.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(), "kv.layer");
        if (!attr)
          continue;
        if (failed(add(attr.getInt(), arg, func, func)))
          return failure();
      }
      WalkResult result = func.walk([&](AllocCacheOp alloc) {
        if (alloc.getLayer() &&
            failed(add(*alloc.getLayer(), alloc.getResult(), func, alloc)))
          return WalkResult::interrupt();
        return WalkResult::advance();
      });
      if (result.wasInterrupted())
        return failure();
    }
    return layers;
  }

  /// Layer -> owner layer, from `group-size` or `map`.
  FailureOr<llvm::DenseMap<int64_t, int64_t>>
  computeOwners(ModuleOp module,
                const llvm::MapVector<int64_t, LayerCache> &layers) {
    llvm::DenseMap<int64_t, int64_t> owners;
    bool hasMap = !map.empty();
    if ((groupSize != 0) == hasMap)
      return module.emitError(
          "kv-share-layers: give exactly one of the options 'group-size' "
          "and 'map'");
    if (groupSize < 0)
      return module.emitError("kv-share-layers: option 'group-size' must be "
                              "positive, got ")
             << int64_t(groupSize);
    if (!hasMap) {
      for (auto &entry : layers)
        owners[entry.first] = entry.first / groupSize * groupSize;
      return owners;
    }
    if (map.size() != layers.size())
      return module.emitError("kv-share-layers: option 'map' has ")
             << map.size() << " entries but the module has " << layers.size()
             << " layers";
    for (auto [layer, owner] : llvm::enumerate(map)) {
      if (!layers.count(layer))
        return module.emitError("kv-share-layers: option 'map' lists layer ")
               << layer << ", which the module does not have";
      if (!layers.count(owner))
        return module.emitError("kv-share-layers: option 'map' maps layer ")
               << layer << " to layer " << owner
               << ", which the module does not have";
      owners[layer] = owner;
    }
    return owners;
  }

  /// Checks each owner owns itself and that a group's caches are alike.
  LogicalResult checkGroups(ModuleOp module,
                            llvm::MapVector<int64_t, LayerCache> &layers,
                            const llvm::DenseMap<int64_t, int64_t> &owners) {
    for (auto &[layer, entry] : layers) {
      int64_t owner = owners.lookup(layer);
      if (owner == layer)
        continue;
      if (!owners.count(owner))
        return module.emitError("kv-share-layers: layer ")
               << layer << " would share layer " << owner
               << ", which the module does not have";
      if (owners.lookup(owner) != owner)
        return module.emitError("kv-share-layers: option 'map' maps layer ")
               << layer << " to layer " << owner
               << ", which itself reads the cache of layer "
               << owners.lookup(owner);
      LayerCache &own = layers[owner];
      if (own.func != entry.func)
        return module.emitError("kv-share-layers: layers ")
               << owner << " and " << layer
               << " are in different functions; pass the shared cache in";
      if (own.cache.getType() != entry.cache.getType())
        return module.emitError("kv-share-layers: layer ")
               << layer << " cannot share the cache of layer " << owner
               << ": their cache types differ";
      if (owner > layer)
        return module.emitError("kv-share-layers: layer ")
               << layer << " would share the cache of the later layer " << owner
               << "; a cache's owner must come first";
    }
    return success();
  }

  /// Points `entry`'s readers at a view of `owner`'s cache, drops its
  /// appends, and removes its cache.
  void shareCache(int64_t layer, LayerCache &entry, LayerCache &owner) {
    Value cache = entry.cache;
    OpBuilder builder(cache.getContext());
    if (auto arg = dyn_cast<BlockArgument>(owner.cache))
      builder.setInsertionPointToStart(arg.getOwner());
    else
      builder.setInsertionPointAfterValue(owner.cache);
    auto view =
        ShareCacheOp::create(builder, cache.getLoc(), cache.getType(),
                             owner.cache, builder.getI64IntegerAttr(layer));
    for (OpOperand &use : llvm::make_early_inc_range(cache.getUses())) {
      if (auto append = dyn_cast<AppendOp>(use.getOwner()))
        append.erase();
      else
        use.set(view);
    }
    if (auto alloc = cache.getDefiningOp<AllocCacheOp>()) {
      alloc.erase();
      return;
    }
    eraseCacheArgument(entry.func, cast<BlockArgument>(cache));
  }

  /// Removes a now unused cache argument and the matching call operands.
  void eraseCacheArgument(func::FuncOp func, BlockArgument arg) {
    unsigned index = arg.getArgNumber();
    if (auto uses = SymbolTable::getSymbolUses(func, getOperation()))
      for (const SymbolTable::SymbolUse &use : *uses)
        if (auto call = dyn_cast<func::CallOp>(use.getUser()))
          call->eraseOperand(index);
    (void)func.eraseArgument(index);
  }
};

} // namespace
