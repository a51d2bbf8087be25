//===- EmulatorJIT.h - JIT gpu-dialect kernels for the SIMT emulator -*- C++
//-*-===//
//
// Compiles gpu-dialect kernels the way they go to ptxas (upstream
// convert-gpu-to-nvvm), then through kv-simt-emulate and MLIR's
// ExecutionEngine into host code; hands out the kernel descriptors that
// kvopt::simt::launch takes. Used by the emulator tests and the bench.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_SIMT_EMULATORJIT_H
#define KVOPT_CODEGEN_SIMT_EMULATORJIT_H

#include "kvopt/simt/ABI.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace mlir {
class ExecutionEngine;
class MLIRContext;
class ModuleOp;
class OpPassManager;
} // namespace mlir

namespace kvopt::simt {

struct EmulatorOptions {
  bool countOps = true;
  bool instrumentGlobal = true;
  bool instrumentShared = true;
  /// convert-gpu-to-nvvm's index-bitwidth (0: 64 bits).
  unsigned indexBitwidth = 0;
  /// LLVM optimization level of the JIT.
  unsigned optLevel = 2;
};

/// Adds the lowering from gpu dialect to emulator-ready LLVM dialect:
/// gpu.module(convert-scf-to-cf, convert-gpu-to-nvvm{has-redux}, canonicalize,
/// cse, reconcile-unrealized-casts), then kv-simt-emulate.
void buildEmulatorPipeline(mlir::OpPassManager &pm,
                           const EmulatorOptions &options);

/// One JIT-compiled module of emulated kernels.
class EmulatedModule {
public:
  ~EmulatedModule();
  /// Parses, lowers and JIT-compiles `source` (a module holding
  /// gpu.modules); `bufferName` is the file name reports show.
  static llvm::Expected<std::unique_ptr<EmulatedModule>>
  compile(llvm::StringRef source, const EmulatorOptions &options = {},
          llvm::StringRef bufferName = "kernel.mlir");
  /// Same, reading the source from `path`.
  static llvm::Expected<std::unique_ptr<EmulatedModule>>
  compileFile(llvm::StringRef path, const EmulatorOptions &options = {});

  /// The descriptor of kernel `name` (symbol `name` + "_emu_desc").
  llvm::Expected<const kvopt_simt_kernel *> kernel(llvm::StringRef name);
  /// The LLVM-dialect module after kv-simt-emulate, as text.
  const std::string &emulatedIR() const { return ir; }

private:
  EmulatedModule();
  std::unique_ptr<mlir::MLIRContext> context;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  std::string ir;
};

} // namespace kvopt::simt

#endif // KVOPT_CODEGEN_SIMT_EMULATORJIT_H
