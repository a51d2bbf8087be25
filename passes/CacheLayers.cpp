//===- CacheLayers.cpp - the layers and caches of a module --------------===//
//
// Shared by kv-memory-report and kv-export-layout.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/CacheLayers.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

std::vector<CacheLayer> kvopt::collectCacheLayers(ModuleOp module) {
  std::vector<CacheLayer> layers;
  llvm::DenseMap<Value, int64_t> layerOf;
  auto nextLayer = [&] { return int64_t(layers.size()); };
  // Pre-order, so that a function's arguments are known before the
  // kv.share_cache views in its body.
  module.walk<WalkOrder::PreOrder>([&](Operation *op) {
    if (auto func = dyn_cast<func::FuncOp>(op)) {
      for (BlockArgument arg : func.getArguments()) {
        auto type = dyn_cast<KVCacheTypeInterface>(arg.getType());
        if (!type)
          continue;
        int64_t layer = nextLayer();
        if (auto attr = func.getArgAttrOfType<IntegerAttr>(arg.getArgNumber(),
                                                           "kv.layer"))
          layer = attr.getInt();
        layerOf[arg] = layer;
        layers.push_back({layer, type, std::nullopt});
      }
    } else if (auto alloc = dyn_cast<AllocCacheOp>(op)) {
      int64_t layer =
          alloc.getLayer() ? int64_t(*alloc.getLayer()) : nextLayer();
      layerOf[alloc.getResult()] = layer;
      layers.push_back({layer, alloc.getType(), std::nullopt});
    } else if (auto share = dyn_cast<ShareCacheOp>(op)) {
      auto it = layerOf.find(share.getOwningCache());
      int64_t owner = it == layerOf.end() ? -1 : it->second;
      layers.push_back({int64_t(share.getLayer()),
                        cast<KVCacheTypeInterface>(share.getType()), owner});
    }
  });
  llvm::stable_sort(layers, [](const CacheLayer &a, const CacheLayer &b) {
    return a.layer < b.layer;
  });
  return layers;
}
