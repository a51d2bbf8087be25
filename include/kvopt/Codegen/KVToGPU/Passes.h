//===- Passes.h - kv to GPU kernel generation and pipeline ------*- C++ -*-===//
//
// Declarations of kv-gpu-kernels, the kv-lower-to-gpu pipeline and their
// registration.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_PASSES_H
#define KVOPT_CODEGEN_KVTOGPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"

namespace kvopt {

#define GEN_PASS_DECL
#include "kvopt/Codegen/KVToGPU/Passes.h.inc"

/// Options of the `kv-lower-to-gpu` pipeline.
struct KVToGPUPipelineOptions
    : public mlir::PassPipelineOptions<KVToGPUPipelineOptions> {
  Option<std::string> chip{*this, "chip", llvm::cl::desc("sm_80 or sm_90"),
                           llvm::cl::init("sm_80")};
  Option<bool> kernelsOnly{*this, "kernels-only",
                           llvm::cl::desc("keep only the generated gpu.module"),
                           llvm::cl::init(false)};
  Option<std::string> toolkit{
      *this, "toolkit",
      llvm::cl::desc("CUDA toolkit folder holding nvvm/libdevice (math "
                     "functions are linked from it); empty: MLIR's default"),
      llvm::cl::init("")};
};

/// Appends kv-gpu-kernels, the NVVM lowering of the gpu.module
/// (convert-scf-to-cf, convert-gpu-to-nvvm, canonicalize, cse,
/// reconcile-unrealized-casts), nvvm-attach-target{chip} and
/// gpu-module-to-binary{format=isa}: the kernels end up as PTX text in a
/// gpu.binary.
void buildKVToGPUPipeline(mlir::OpPassManager &pm,
                          const KVToGPUPipelineOptions &options);

/// Appends only the gpu.module lowering to NVVM (the IR ptxas and the SIMT
/// emulator see), without target attachment.
void buildGPUToNVVMPipeline(mlir::OpPassManager &pm);

/// The part of kv-lower-to-gpu after kv-gpu-kernels: NVVM lowering of the
/// gpu.modules, nvvm-attach-target{chip} and gpu-module-to-binary{isa}.
void buildKernelsToPTXPipeline(mlir::OpPassManager &pm, llvm::StringRef chip,
                               llvm::StringRef toolkit);

/// Registers kv-gpu-kernels and the kv-lower-to-gpu pipeline.
void registerKVToGPUPasses();

} // namespace kvopt

#endif // KVOPT_CODEGEN_KVTOGPU_PASSES_H
