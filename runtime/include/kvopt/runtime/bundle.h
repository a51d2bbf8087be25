//===- bundle.h - Kernel bundles: manifest, loader, launch --------*- C++
//-*-===//
//
// A kernel bundle is what the compiler emits: one kernel binary (PTX for the
// GPU or a shared object for the CPU) plus a JSON manifest naming the
// kernels, their arguments, launch shape rules, the cache layout they expect
// and the ABI version. The loader checks ABI and layout against the pool's
// before loading anything. Schema: docs/Runtime.md.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_BUNDLE_H
#define KVOPT_RUNTIME_BUNDLE_H

#include "kvopt/runtime/launch.h"
#include "kvopt/runtime/layout.h"
#include "kvopt/runtime/status.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvopt {
namespace rt {

/// Version of the kernel ABI (manifest schema + parameter conventions) that
/// this runtime implements. Bundles must carry exactly this version.
constexpr uint32_t kKernelAbiVersion = 1;

/// Kernel argument types; params[i] points at a value of this type.
enum class ArgType { Ptr, I32, I64, U32, U64, F32 };

struct KernelArg {
  std::string name;
  ArgType type = ArgType::Ptr;
};

/// One launch dimension: `constant`, or ceil(arg / divisor) * multiplier for
/// an integer argument `argIndex`.
struct DimRule {
  int argIndex = -1; ///< -1: constant
  uint64_t constant = 1;
  uint64_t divisor = 1;
  uint64_t multiplier = 1;
};

struct KernelInfo {
  std::string name;   ///< what callers launch by
  std::string symbol; ///< symbol in the binary (defaults to name)
  std::vector<KernelArg> args;
  DimRule grid[3];
  DimRule block[3];
  uint32_t sharedBytes = 0;
};

/// The parsed manifest.
struct Manifest {
  uint32_t abiVersion = 0;
  std::string target; ///< informational: "cpu", "sm_80", "sm_90", ...
  std::string format; ///< "so" or "ptx": which backends can run the binary
  std::string binary; ///< path, relative to the manifest's folder
  CacheLayout layout;
  std::vector<KernelInfo> kernels;

  /// Parses manifest text. The ABI version is read and checked first, so a
  /// bundle of another version fails with AbiMismatch, not a schema error.
  static Status parse(const std::string &text, Manifest &out);
  /// Finds a kernel by name; NotFound otherwise.
  Status findKernel(const std::string &name, const KernelInfo *&out) const;
  /// Evaluates the launch rules of `kernel` on `params`.
  static Status launchShape(const KernelInfo &kernel, void **params, Dim3 &grid,
                            Dim3 &block);
};

/// A loaded bundle. The backend must outlive the bundle.
class KernelBundle {
public:
  /// Reads the manifest at `manifestPath`, checks its ABI version and cache
  /// layout against `poolLayout` (AbiMismatch / LayoutMismatch naming the
  /// field), checks that `backend` runs its format, loads the binary and
  /// resolves every kernel. Nothing stays loaded on error.
  static Status load(const std::string &manifestPath,
                     const CacheLayout &poolLayout, LaunchBackend &backend,
                     std::unique_ptr<KernelBundle> &out);
  ~KernelBundle();
  KernelBundle(const KernelBundle &) = delete;
  KernelBundle &operator=(const KernelBundle &) = delete;

  const Manifest &manifest() const { return manifest_; }
  /// Launches kernel `name` with grid/block from its rules.
  Status launch(const std::string &name, void **params,
                StreamHandle stream = nullptr) const;
  /// Waits for the work queued on `stream` of the bundle's backend.
  Status synchronize(StreamHandle stream = nullptr) const;

private:
  KernelBundle() = default;
  Manifest manifest_;
  LaunchBackend *backend_ = nullptr;
  ModuleHandle module_ = nullptr;
  std::vector<KernelHandle> handles_; ///< [kernels] resolved entry points
};

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_BUNDLE_H
