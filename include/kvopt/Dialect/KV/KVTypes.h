//===- KVTypes.h - kv cache types -------------------------------*- C++ -*-===//
//
// The !kv.cache and !kv.latent_cache types and the KVCacheTypeInterface that
// answers layout and byte-size questions about them.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVTYPES_H
#define KVOPT_DIALECT_KV_KVTYPES_H

#include "kvopt/Dialect/KV/KVAttributes.h"
#include "mlir/IR/Types.h"

#include "kvopt/Dialect/KV/KVTypeInterfaces.h.inc"

#define GET_TYPEDEF_CLASSES
#include "kvopt/Dialect/KV/KVOpsTypes.h.inc"

namespace kvopt::kv {
/// Bytes one token adds to a component row of `width` elements stored with
/// `quant` (or in full precision `element` when `quant` is null). This is the
/// formula of docs/CacheLayout.md; `tokenGroupWidth` is the width a per-token
/// group of 0 stands for (the head dim, or the whole latent row).
double getComponentBytesPerToken(int64_t width, int64_t tokenGroupWidth,
                                 mlir::Type element, QuantAttr quant);
/// Bytes of one element of a full-precision float type.
unsigned getElementBytes(mlir::Type element);
} // namespace kvopt::kv

#endif // KVOPT_DIALECT_KV_KVTYPES_H
