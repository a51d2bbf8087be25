//===- KVDialect.h - the kv dialect -----------------------------*- C++ -*-===//
//
// Declares the kv dialect and pulls in its attributes, types and operations.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVDIALECT_H
#define KVOPT_DIALECT_KV_KVDIALECT_H

#include "mlir/IR/Dialect.h"

#include "kvopt/Dialect/KV/KVOpsDialect.h.inc"

#endif // KVOPT_DIALECT_KV_KVDIALECT_H
