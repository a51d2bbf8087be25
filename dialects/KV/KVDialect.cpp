//===- KVDialect.cpp - kv dialect registration --------------------------===//
//
// Registers the kv dialect's attributes, types and operations.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Dialect/KV/KVOps.h"

#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace kvopt::kv;

#include "kvopt/Dialect/KV/KVOpsDialect.cpp.inc"

namespace {
/// Prints cache types and encodings once, as aliases at the top of a module
/// (`!kv_cache`, `#kv_quant`), since they are long and repeated on every op.
struct KVOpAsmInterface : public OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;

  AliasResult getAlias(Type type, raw_ostream &os) const override {
    if (isa<CacheType>(type)) {
      os << "kv_cache";
      return AliasResult::OverridableAlias;
    }
    if (isa<LatentCacheType>(type)) {
      os << "kv_latent_cache";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }

  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<QuantAttr>(attr)) {
      os << "kv_quant";
      return AliasResult::OverridableAlias;
    }
    return AliasResult::NoAlias;
  }
};
} // namespace

void KVDialect::initialize() {
  addInterfaces<KVOpAsmInterface>();
  registerAttributes();
  registerTypes();
  addOperations<
#define GET_OP_LIST
#include "kvopt/Dialect/KV/KVOps.cpp.inc"
      >();
}
