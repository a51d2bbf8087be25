//===- RaisePasses.h - raising attention out of model graphs ----*- C++ -*-===//
//
// Declarations and registration of kv-raise-attention and kv-absorb-mla.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TRANSFORMS_RAISEPASSES_H
#define KVOPT_TRANSFORMS_RAISEPASSES_H

#include "kvopt/Dialect/KV/KVOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace kvopt {

#define GEN_PASS_DECL
#include "kvopt/Transforms/RaisePasses.h.inc"

/// Registers kv-raise-attention and kv-absorb-mla with the global registry.
void registerKVRaisePasses();

} // namespace kvopt

#endif // KVOPT_TRANSFORMS_RAISEPASSES_H
