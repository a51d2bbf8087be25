//===- KVOps.h - kv dialect operations --------------------------*- C++ -*-===//
//
// Declares the kv operations and the memory resource they act on.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVOPS_H
#define KVOPT_DIALECT_KV_KVOPS_H

#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Dialect/KV/KVTypes.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace kvopt::kv {
/// The memory of KV caches, as one side-effect resource: appends write it,
/// views and attention read it.
struct CacheResource : public mlir::SideEffects::Resource::Base<CacheResource> {
  llvm::StringRef getName() final { return "KVCache"; }
};
} // namespace kvopt::kv

#define GET_OP_CLASSES
#include "kvopt/Dialect/KV/KVOps.h.inc"

#endif // KVOPT_DIALECT_KV_KVOPS_H
