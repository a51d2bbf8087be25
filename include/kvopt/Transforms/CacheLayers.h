//===- CacheLayers.h - the layers and caches of a module --------*- C++ -*-===//
//
// Finds which layer owns which cache and which layers share, for the
// analyses that report on or export a module's KV caches.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TRANSFORMS_CACHELAYERS_H
#define KVOPT_TRANSFORMS_CACHELAYERS_H

#include "kvopt/Dialect/KV/KVOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <optional>
#include <vector>

namespace kvopt {

/// One layer: the cache it owns, or the layer whose cache it reads.
struct CacheLayer {
  int64_t layer;
  kv::KVCacheTypeInterface type;
  /// Set for layers reading another layer's cache through kv.share_cache
  /// (-1 when the owner is not a known layer).
  std::optional<int64_t> sharesLayer;
};

/// Lists the module's layers sorted by layer number: function arguments of
/// cache type (layer from a `kv.layer` argument attribute, else their
/// position among caches), kv.alloc_cache results (their `layer` attribute),
/// and kv.share_cache views.
std::vector<CacheLayer> collectCacheLayers(mlir::ModuleOp module);

} // namespace kvopt

#endif // KVOPT_TRANSFORMS_CACHELAYERS_H
