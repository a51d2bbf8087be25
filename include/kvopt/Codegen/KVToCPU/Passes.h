//===- Passes.h - kv to CPU lowering passes and pipeline -------*- C++ -*-===//
//
// Declarations of kv-cpu-to-loops, the kv-lower-to-cpu pipeline and their
// registration.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOCPU_PASSES_H
#define KVOPT_CODEGEN_KVTOCPU_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"

namespace kvopt {

#define GEN_PASS_DECL
#include "kvopt/Codegen/KVToCPU/Passes.h.inc"

/// Options of the `kv-lower-to-cpu` pipeline.
struct KVToCPUPipelineOptions
    : public mlir::PassPipelineOptions<KVToCPUPipelineOptions> {
  Option<int64_t> splits{*this, "kv-splits",
                         llvm::cl::desc("parallel key splits per sequence and "
                                        "KV head; 0 = automatic"),
                         llvm::cl::init(0)};
  Option<int64_t> splitTokens{*this, "split-tokens",
                              llvm::cl::desc("fewest keys one split processes"),
                              llvm::cl::init(128)};
  Option<int64_t> blockTokens{
      *this, "block-tokens",
      llvm::cl::desc("keys scored per online-softmax step"),
      llvm::cl::init(16)};
  Option<int64_t> vectorBits{
      *this, "vector-bits",
      llvm::cl::desc("f32 vector width the attention kernels are tiled for "
                     "(128, 256, 512); 0 = the host CPU's widest"),
      llvm::cl::init(0)};
  Option<bool> intDots{
      *this, "int-dots",
      llvm::cl::desc("fixed-point (16-bit) dot products for token-axis "
                     "integer K/V codes"),
      llvm::cl::init(true)};
  Option<unsigned> threads{
      *this, "threads",
      llvm::cl::desc("parallel blocks for scf.parallel loops on the async "
                     "runtime (libmlir_async_runtime.so, whose pool has a "
                     "thread per hardware thread); 0 or 1 = run them "
                     "sequentially, no runtime library needed"),
      llvm::cl::init(0)};
  Option<bool> emitCInterface{
      *this, "emit-c-interface",
      llvm::cl::desc("mark public functions llvm.emit_c_interface"),
      llvm::cl::init(true)};
  Option<bool> bundleEntries{
      *this, "bundle-entries",
      llvm::cl::desc("turn function results into out-parameters and add "
                     "the runtime's `void kvopt_entry_<f>(void **)` entry of "
                     "every public function (kv-cpu-bundle-entries), as "
                     "kernel bundles of format so need; implies "
                     "emit-c-interface=false"),
      llvm::cl::init(false)};
};

/// Appends kv-cpu-to-loops, one-shot bufferization, buffer deallocation and
/// the standard CPU lowering to LLVM dialect; the result is ready for
/// mlir::ExecutionEngine or mlir-translate --mlir-to-llvmir. Invalid option
/// values are reported by kv-cpu-to-loops when the pipeline runs.
void buildKVToCPUPipeline(mlir::OpPassManager &pm,
                          const KVToCPUPipelineOptions &options);

/// Prefix of the entry kv-cpu-bundle-entries adds for public function `f`.
constexpr llvm::StringLiteral kBundleEntryPrefix = "kvopt_entry_";

/// Registers kv-cpu-to-loops and the kv-lower-to-cpu pipeline.
void registerKVToCPUPasses();

} // namespace kvopt

#endif // KVOPT_CODEGEN_KVTOCPU_PASSES_H
