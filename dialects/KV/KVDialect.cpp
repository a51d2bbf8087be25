//===- KVDialect.cpp - kv dialect registration --------------------------===//
//
// Registers the kv dialect's attributes, types and operations.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Dialect/KV/KVOps.h"

using namespace mlir;
using namespace kvopt::kv;

#include "kvopt/Dialect/KV/KVOpsDialect.cpp.inc"

void KVDialect::initialize() {
  registerAttributes();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "kvopt/Dialect/KV/KVOps.cpp.inc"
      >();
}
