//===- Bundle.h - kernel-bundle manifests for generated kv kernels -*- C++
//-*-===//
//
// The kernels kv-gpu-kernels builds carry their launch contract as
// attributes (`kv.arg_names`, `kv.grid`, `known_block_size`). This file turns
// them into the kernel entries of the runtime's bundle manifest
// (docs/Runtime.md, ABI version 1): arguments as the kernel ABI expands them
// (a memref descriptor is allocated pointer, aligned pointer, offset, sizes,
// strides) and launch rules over those arguments.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOGPU_BUNDLE_H
#define KVOPT_CODEGEN_KVTOGPU_BUNDLE_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/JSON.h"

#include <string>

namespace kvopt::gpugen {

/// The manifest ABI version the generated bundles are written for; must
/// equal the runtime's kKernelAbiVersion (checked by the bundle tests).
constexpr int64_t kBundleAbiVersion = 1;

/// One launch-grid dimension: a constant, or ceil(arg / ceilDiv) * mul for an
/// integer argument of the expanded kernel ABI (e.g. "seq_lens_size").
struct GridDim {
  std::string arg; ///< empty: constant
  int64_t value = 1, ceilDiv = 1, mul = 1;

  static GridDim constant(int64_t v) {
    GridDim d;
    d.value = v;
    return d;
  }
  static GridDim ofArg(llvm::StringRef name, int64_t ceilDiv = 1,
                       int64_t mul = 1) {
    GridDim d;
    d.arg = name.str();
    d.ceilDiv = ceilDiv;
    d.mul = mul;
    return d;
  }
};

/// Records `dims` on `kernel` as its `kv.grid` attribute.
void setLaunchGrid(mlir::gpu::GPUFuncOp kernel, llvm::ArrayRef<GridDim> dims);

/// The manifest's `kernels` array for every kernel of `module`, or a
/// diagnostic on a kernel whose contract is incomplete or whose argument
/// types the manifest cannot express.
mlir::FailureOr<llvm::json::Array>
manifestKernels(mlir::gpu::GPUModuleOp module);

/// Per kernel, the launch constants host code needs beside the manifest
/// (the manifest schema has no field for them): every integer `kv.*`
/// attribute, e.g. {"decode_0": {"tile_tokens": 32, "max_splits": 128,
/// "shared_bytes": 9292}} (chunk_tokens must be a multiple of tile_tokens,
/// splits at most max_splits; shared_bytes is static shared memory).
llvm::json::Object kernelConstants(mlir::gpu::GPUModuleOp module);

/// A whole manifest: abi_version, target, format, binary, cache_layout (the
/// JSON kv-export-layout writes) and kernels.
llvm::json::Object makeManifest(llvm::StringRef target, llvm::StringRef format,
                                llvm::StringRef binary,
                                llvm::json::Value cacheLayout,
                                llvm::json::Array kernels);

/// The graph schedule (docs/Runtime.md, graph.<chip>.json) of `module`
/// after kv-gpu-kernels (not kernels-only): per function whose kv ops were
/// annotated with kernels, the launches in program order with each kernel
/// operand bound to a function argument and each kv.attention output to a
/// function result, and the decode split plan's constants. Functions the
/// runner cannot run (host computation) are reported
/// to `skipped` with the reason and left out.
llvm::json::Object graphSchedule(
    mlir::ModuleOp module,
    llvm::function_ref<void(llvm::StringRef function, llvm::StringRef why)>
        skipped);

} // namespace kvopt::gpugen

#endif // KVOPT_CODEGEN_KVTOGPU_BUNDLE_H
