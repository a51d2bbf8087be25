//===- Passes.h - SIMT emulator passes --------------------------*- C++ -*-===//
//
// Declarations and registration of kv-simt-emulate.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_SIMT_PASSES_H
#define KVOPT_CODEGEN_SIMT_PASSES_H

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace kvopt {

#define GEN_PASS_DECL
#include "kvopt/Codegen/SIMT/Passes.h.inc"

// Generates registerSIMTPasses(), which registers every SIMT emulator pass
// with the global registry.
#define GEN_PASS_REGISTRATION
#include "kvopt/Codegen/SIMT/Passes.h.inc"

} // namespace kvopt

#endif // KVOPT_CODEGEN_SIMT_PASSES_H
