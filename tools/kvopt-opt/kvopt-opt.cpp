//===- kvopt-opt.cpp - the kvopt optimizer driver -----------------------===//
//
// MlirOptMain with the kv dialect, kvopt's passes and pipelines, and the
// upstream dialects, passes and translations the pipelines need.
//
//===----------------------------------------------------------------------===//

#include "kvopt/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  mlir::registerAllPasses();
  kvopt::registerAllDialects(registry);
  kvopt::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "kvopt optimizer driver: KV-cache techniques for attention\n",
      registry));
}
