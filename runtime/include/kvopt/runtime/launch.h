//===- launch.h - Pluggable kernel launch backends ----------------*- C++
//-*-===//
//
// One host argument array (`void **params`, cuLaunchKernel's kernelParams
// convention: params[i] points at the value of argument i) drives every
// executor: CPU kernels called in-process, GPU kernels through the CUDA
// driver, and executors registered later (e.g. a SIMT emulator).
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_LAUNCH_H
#define KVOPT_RUNTIME_LAUNCH_H

#include "kvopt/runtime/status.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kvopt {
namespace rt {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

/// Backend-specific opaque handles.
using ModuleHandle = void *;
using KernelHandle = void *;
/// A stream (queue) of launches; nullptr is the backend's default stream.
using StreamHandle = void *;

/// An executor of kernels. Implementations must be callable from several
/// threads at once (launches on one stream are ordered by the caller).
class LaunchBackend {
public:
  virtual ~LaunchBackend();
  /// Registry name ("cpu", "cuda", ...).
  virtual const char *name() const = 0;
  /// True if this backend runs binaries of manifest format `format`
  /// ("so": CPU shared object, "ptx": PTX text).
  virtual bool acceptsFormat(const std::string &format) const = 0;
  /// Loads the binary at `path`.
  virtual Status loadModule(const std::string &path, ModuleHandle &out) = 0;
  virtual void unloadModule(ModuleHandle module) = 0;
  /// Resolves kernel `symbol` in `module`; NotFound names the symbol.
  virtual Status getKernel(ModuleHandle module, const std::string &symbol,
                           KernelHandle &out) = 0;
  /// Launches `kernel` over `grid` x `block` threads with `sharedBytes` of
  /// dynamic shared memory; `params` as in cuLaunchKernel.
  virtual Status launch(KernelHandle kernel, Dim3 grid, Dim3 block,
                        uint32_t sharedBytes, void **params,
                        StreamHandle stream) = 0;
  /// Streams; the defaults model a synchronous backend with one stream.
  virtual Status createStream(StreamHandle &out);
  virtual Status destroyStream(StreamHandle stream);
  /// Waits for all work queued on `stream`.
  virtual Status synchronize(StreamHandle stream);
};

/// In-process CPU executor: loads shared objects with dlopen and calls the
/// entry `void entry(void **params)` once per launch, synchronously. The
/// entry loops over its own work; grid and block are checked (non-zero) but
/// not passed, since the entry signature has no room for them.
std::unique_ptr<LaunchBackend> createCpuLaunchBackend();

/// CUDA driver executor on device `ordinal`: modules from PTX
/// (cuModuleLoadData), cuLaunchKernel, driver streams. NoDevice without a
/// driver. `driverPath` as in createCudaMemory.
Status createCudaLaunchBackend(int ordinal, std::unique_ptr<LaunchBackend> &out,
                               const char *driverPath = nullptr);

/// Creates a backend for a device ordinal (ignored by host executors).
using LaunchBackendFactory =
    std::function<Status(int device, std::unique_ptr<LaunchBackend> &out)>;

/// Registers `factory` under `name` (process-wide, thread-safe).
/// InvalidArgument if the name is taken or empty. "cpu" and "cuda" are
/// registered from the start.
Status registerLaunchBackend(const std::string &name,
                             LaunchBackendFactory factory);
/// Creates the backend registered as `name`; NotFound lists known names.
Status createLaunchBackend(const std::string &name, int device,
                           std::unique_ptr<LaunchBackend> &out);
/// Names of registered backends, sorted.
std::vector<std::string> launchBackendNames();

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_LAUNCH_H
