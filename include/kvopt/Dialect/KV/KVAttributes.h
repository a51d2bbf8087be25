//===- KVAttributes.h - kv layout and quantization attrs --------*- C++ -*-===//
//
// Enums (quantization kind, scale axis, layout kind) and the #kv.quant and
// #kv.layout attributes.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_DIALECT_KV_KVATTRIBUTES_H
#define KVOPT_DIALECT_KV_KVATTRIBUTES_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectImplementation.h"

#include "kvopt/Dialect/KV/KVEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "kvopt/Dialect/KV/KVAttributes.h.inc"

#endif // KVOPT_DIALECT_KV_KVATTRIBUTES_H
