//===- InitAll.cpp - register everything kvopt provides -----------------===//
//
// Registers kvopt's dialects, passes and pipelines for the tools and plugin.
//
//===----------------------------------------------------------------------===//

#include "kvopt/InitAll.h"

#include "kvopt/Codegen/KVToCPU/Passes.h"
#include "kvopt/Codegen/KVToGPU/Passes.h"
#include "kvopt/Codegen/SIMT/Passes.h"
#include "kvopt/Dialect/KV/KVDialect.h"
#include "kvopt/Transforms/Passes.h"
#include "mlir/IR/DialectRegistry.h"

void kvopt::registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<kvopt::kv::KVDialect>();
}

void kvopt::registerAllPasses() {
  // The plugin may be loaded as a dialect and as a pass plugin in one
  // mlir-opt; registering a pipeline twice is a fatal error, so only once.
  static const bool registered = [] {
    registerTransformsPassesAndPipelines();
    registerSIMTPasses();
    registerKVToCPUPasses();
    registerKVToGPUPasses();
    return true;
  }();
  (void)registered;
}
