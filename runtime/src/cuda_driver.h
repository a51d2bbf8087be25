//===- cuda_driver.h - CUDA driver API loaded with dlopen -----------------===//
//
// The handful of driver entry points the runtime uses, resolved at run time
// from libcuda.so.1 so that nothing links against the driver. Prototypes are
// declared here (types only), matching cuda.h of CUDA 12/13.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_SRC_CUDA_DRIVER_H
#define KVOPT_RUNTIME_SRC_CUDA_DRIVER_H

#include "kvopt/runtime/status.h"

#include <cstddef>
#include <cstdint>
#include <memory>

// Opaque driver handle types, declared at global scope as in cuda.h so that
// function types match the driver's (and a stand-in driver's) exactly.
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;

namespace kvopt {
namespace rt {
namespace cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = ::CUctx_st *;
using CUmodule = ::CUmod_st *;
using CUfunction = ::CUfunc_st *;
using CUstream = ::CUstream_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;

/// The loaded driver library and its entry points. Immutable after open(),
/// so it may be shared by threads and objects (shared_ptr keeps it loaded).
class Driver {
public:
  /// Loads `path` (null: $KVOPT_CUDA_DRIVER, else "libcuda.so.1"), resolves
  /// the entry points and calls cuInit(0). NoDevice when the library is
  /// missing, cuInit reports no device, or no device exists.
  static Status open(const char *path, std::shared_ptr<Driver> &out);
  ~Driver();
  Driver(const Driver &) = delete;
  Driver &operator=(const Driver &) = delete;

  /// Ok, or DriverError "<what>: <CUDA_ERROR_NAME> (<description>)".
  Status check(CUresult result, const char *what) const;

  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGetCount)(int *) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *, int) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = nullptr;
  CUresult (*cuMemFree)(CUdeviceptr) = nullptr;
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t) = nullptr;
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t) = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule *, const void *) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule,
                                  const char *) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, CUstream, void **,
                             void **) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned) = nullptr;
  CUresult (*cuStreamDestroy)(CUstream) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char **) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char **) = nullptr;

private:
  Driver() = default;
  void *handle_ = nullptr;
};

/// The retained primary context of one device (CUDA 13 has no cuCtxCreate
/// in the form older code used; the primary context is the supported path).
class Context {
public:
  static Status retain(std::shared_ptr<Driver> driver, int ordinal,
                       std::shared_ptr<Context> &out);
  /// Driver::open(driverPath) followed by retain(ordinal).
  static Status open(const char *driverPath, int ordinal,
                     std::shared_ptr<Context> &out);
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  /// Makes the context current on the calling thread (cheap; called before
  /// every driver call since the pool may be used from any thread).
  Status makeCurrent() const;
  const Driver &driver() const { return *driver_; }
  int ordinal() const { return ordinal_; }

private:
  Context() = default;
  std::shared_ptr<Driver> driver_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  int ordinal_ = 0;
};

} // namespace cuda
} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_SRC_CUDA_DRIVER_H
