//===- CPUJit.h - compile kv modules for the host CPU -----------*- C++ -*-===//
//
// Runs the kv-lower-to-cpu pipeline on a module and JIT-compiles it with
// mlir::ExecutionEngine, for tests, the bench and embedders.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_CODEGEN_KVTOCPU_CPUJIT_H
#define KVOPT_CODEGEN_KVTOCPU_CPUJIT_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <string>

namespace kvopt {

/// What the CPU compile needs besides the module.
struct CPUCompileOptions {
  int64_t splits = 0;        ///< kv-splits (0 = automatic)
  int64_t splitTokens = 128; ///< split-tokens
  int64_t blockTokens = 16;  ///< block-tokens
  int64_t vectorBits = 0;    ///< vector-bits (0 = the host's widest)
  bool intDots = true;       ///< int-dots
  unsigned threads = 0;      ///< async parallel blocks (0 or 1 = sequential)
  unsigned optLevel = 3;     ///< LLVM -O level
  bool keepObject = false;   ///< allow dumpObject()
};

/// A JIT-compiled module. Every public function `f` of the source module is
/// callable as `void _mlir__mlir_ciface_f(void **params)`: params[i] points
/// to argument i, and a memref argument is a pointer to its
/// StridedMemRefType descriptor. (Runtime bundles use the expanded ABI
/// instead, one value per descriptor field: writeCPUBundle.)
class CPUModule {
public:
  ~CPUModule();
  /// Parses `source` (kv dialect and upstream IR), lowers it with
  /// kv-lower-to-cpu and compiles it; errors carry the MLIR diagnostics.
  static llvm::Expected<std::unique_ptr<CPUModule>>
  compile(llvm::StringRef source, const CPUCompileOptions &options);

  /// The packed entry point of public function `name`.
  llvm::Expected<void (*)(void **)> entry(llvm::StringRef name);
  /// Calls public function `name` with `args` (see above).
  llvm::Error invoke(llvm::StringRef name, llvm::MutableArrayRef<void *> args);
  /// Writes the compiled object file (needs keepObject).
  void dumpObject(llvm::StringRef path);
  /// The lowered LLVM-dialect module, printed.
  const std::string &loweredIR() const { return lowered; }

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
  std::string lowered;
};

/// The manifest ABI version writeCPUBundle writes; must equal the runtime's
/// kKernelAbiVersion (checked by the bundle tests).
constexpr int64_t kCPUBundleAbiVersion = 1;

/// Where writeCPUBundle writes, and with what it links.
struct CPUBundleOptions {
  std::string outDir;
  /// C++ compiler driver that links the shared object; empty = the one
  /// kvopt was built with.
  std::string linker;
};

/// Writes a runtime kernel bundle of format "so" (docs/Runtime.md) for the
/// host CPU into `bundle.outDir`: layout.json (kv-export-layout; the module
/// needs caches of one layout), kernels.cpu.o, kernels.cpu.so and
/// manifest.cpu.json. `source` is lowered with
/// kv-lower-to-cpu{bundle-entries} (`options` as for CPUModule::compile),
/// so every public function `f` becomes kernel `f` with entry
/// `kvopt_entry_f(void **params)` over the expanded kernel ABI, results as
/// trailing out-parameters, launched on a 1x1x1 grid (the function runs its
/// own loops, on `options.threads` async-runtime workers if any). Returns
/// the manifest's path; errors carry the MLIR diagnostics or the linker's
/// exit status.
llvm::Expected<std::string> writeCPUBundle(llvm::StringRef source,
                                           const CPUCompileOptions &options,
                                           const CPUBundleOptions &bundle);

} // namespace kvopt

#endif // KVOPT_CODEGEN_KVTOCPU_CPUJIT_H
