//===- NVVMMapping.h - The nvvm op -> SIMT runtime table --------*- C++ -*-===//
//
// The one table from nvvm op name to the SIMT runtime function that
// implements it; kv-simt-emulate rejects every nvvm op without a row.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_SIMT_NVVMMAPPING_H
#define KVOPT_CODEGEN_SIMT_NVVMMAPPING_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

namespace kvopt::simt {

/// How an nvvm op becomes runtime calls.
enum class NVVMLowering {
  SpecialRegister, // () -> i32/i64
  Barrier,         // (site)
  Shuffle,  // (mode, mask, value, b, c, site) -> i64 (value | pval << 32)
  Vote,     // (kind, mask, pred, site) -> i32
  Redux,    // (kind, flags, mask, value, site) -> i32
  WarpSync, // (mask, site)
  Unary,    // (f32) -> f32
  Mma,      // (kind, frags*, d*, site): mma.sync, fragments through memory
};

/// One row of the mapping table.
struct NVVMMapping {
  llvm::StringLiteral opName;
  NVVMLowering lowering;
  llvm::StringLiteral symbol;
};

/// The table: every nvvm op the emulator supports, and its runtime symbol.
llvm::ArrayRef<NVVMMapping> nvvmMappingTable();

/// The row for `opName`, or null when the emulator does not support it.
const NVVMMapping *lookupNVVMMapping(llvm::StringRef opName);

} // namespace kvopt::simt

#endif // KVOPT_CODEGEN_SIMT_NVVMMAPPING_H
