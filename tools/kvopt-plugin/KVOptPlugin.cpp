//===- KVOptPlugin.cpp - kvopt as an mlir-opt plugin --------------------===//
//
// Exposes the kv dialect and kvopt's passes to a stock mlir-opt through the
// dialect- and pass-plugin entry points.
//
//===----------------------------------------------------------------------===//

#include "kvopt/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/Compiler.h"

/// Dialect plugin entry: registers the dialects and, since mlir-opt parses
/// its pipeline after loading plugins, the passes too.
extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "KVOptDialect", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            kvopt::registerAllDialects(*registry);
            kvopt::registerAllPasses();
          }};
}

/// Pass plugin entry.
extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "KVOptPasses", LLVM_VERSION_STRING,
          []() { kvopt::registerAllPasses(); }};
}
