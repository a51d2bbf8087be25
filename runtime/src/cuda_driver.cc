//===- cuda_driver.cc - CUDA driver API loaded with dlopen ----------------===//
//
// Resolves the driver entry points with dlsym. A missing library or device
// is reported as a NoDevice status so binaries run on driverless machines.
//
//===----------------------------------------------------------------------===//

#include "cuda_driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

namespace kvopt {
namespace rt {
namespace cuda {

/// Resolves `name` into `fn`; returns false (and sets `missing`) if absent.
template <typename Fn>
static bool resolve(void *handle, const char *name, Fn &fn,
                    std::string &missing) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (!fn && missing.empty())
    missing = name;
  return fn != nullptr;
}

Status Driver::open(const char *path, std::shared_ptr<Driver> &out) {
  if (!path) {
    const char *env = std::getenv("KVOPT_CUDA_DRIVER");
    path = env && *env ? env : "libcuda.so.1";
  }
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    return Status::error(
        StatusCode::NoDevice,
        std::string("CUDA driver not available: cannot load ") + path + ": " +
            (why ? why : "unknown reason"));
  }
  std::shared_ptr<Driver> d(new Driver());
  d->handle_ = handle;
  std::string missing;
  resolve(handle, "cuInit", d->cuInit, missing);
  resolve(handle, "cuDeviceGetCount", d->cuDeviceGetCount, missing);
  resolve(handle, "cuDeviceGet", d->cuDeviceGet, missing);
  resolve(handle, "cuDevicePrimaryCtxRetain", d->cuDevicePrimaryCtxRetain,
          missing);
  resolve(handle, "cuDevicePrimaryCtxRelease_v2", d->cuDevicePrimaryCtxRelease,
          missing);
  resolve(handle, "cuCtxSetCurrent", d->cuCtxSetCurrent, missing);
  resolve(handle, "cuMemAlloc_v2", d->cuMemAlloc, missing);
  resolve(handle, "cuMemFree_v2", d->cuMemFree, missing);
  resolve(handle, "cuMemcpyDtoD_v2", d->cuMemcpyDtoD, missing);
  resolve(handle, "cuMemcpyHtoD_v2", d->cuMemcpyHtoD, missing);
  resolve(handle, "cuMemcpyDtoH_v2", d->cuMemcpyDtoH, missing);
  resolve(handle, "cuModuleLoadData", d->cuModuleLoadData, missing);
  resolve(handle, "cuModuleUnload", d->cuModuleUnload, missing);
  resolve(handle, "cuModuleGetFunction", d->cuModuleGetFunction, missing);
  resolve(handle, "cuLaunchKernel", d->cuLaunchKernel, missing);
  resolve(handle, "cuStreamCreate", d->cuStreamCreate, missing);
  resolve(handle, "cuStreamDestroy_v2", d->cuStreamDestroy, missing);
  resolve(handle, "cuStreamSynchronize", d->cuStreamSynchronize, missing);
  resolve(handle, "cuGetErrorName", d->cuGetErrorName, missing);
  resolve(handle, "cuGetErrorString", d->cuGetErrorString, missing);
  if (!missing.empty())
    return Status::error(StatusCode::NoDevice,
                         std::string("CUDA driver ") + path +
                             " lacks the entry point " + missing);
  CUresult r = d->cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE)
    return Status::error(StatusCode::NoDevice,
                         "CUDA driver loaded but cuInit reports no device");
  KVOPT_RT_RETURN_IF_ERROR(d->check(r, "cuInit"));
  int count = 0;
  KVOPT_RT_RETURN_IF_ERROR(
      d->check(d->cuDeviceGetCount(&count), "cuDeviceGetCount"));
  if (count <= 0)
    return Status::error(StatusCode::NoDevice,
                         "CUDA driver loaded but no CUDA device is present");
  out = std::move(d);
  return Status::ok();
}

Driver::~Driver() {
  if (handle_)
    dlclose(handle_);
}

Status Driver::check(CUresult result, const char *what) const {
  if (result == CUDA_SUCCESS)
    return Status::ok();
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName)
    cuGetErrorName(result, &name);
  if (cuGetErrorString)
    cuGetErrorString(result, &text);
  std::string message = std::string(what) +
                        " failed: " + (name ? name : "CUDA error") + " (" +
                        std::to_string(result) + ")";
  if (text)
    message += ": " + std::string(text);
  return Status::error(StatusCode::DriverError, std::move(message));
}

Status Context::retain(std::shared_ptr<Driver> driver, int ordinal,
                       std::shared_ptr<Context> &out) {
  int count = 0;
  KVOPT_RT_RETURN_IF_ERROR(
      driver->check(driver->cuDeviceGetCount(&count), "cuDeviceGetCount"));
  if (ordinal < 0 || ordinal >= count)
    return Status::error(StatusCode::NoDevice,
                         "CUDA device " + std::to_string(ordinal) +
                             " does not exist (" + std::to_string(count) +
                             " present)");
  CUdevice device = 0;
  KVOPT_RT_RETURN_IF_ERROR(
      driver->check(driver->cuDeviceGet(&device, ordinal), "cuDeviceGet"));
  CUcontext context = nullptr;
  KVOPT_RT_RETURN_IF_ERROR(
      driver->check(driver->cuDevicePrimaryCtxRetain(&context, device),
                    "cuDevicePrimaryCtxRetain"));
  std::shared_ptr<Context> c(new Context());
  c->driver_ = std::move(driver);
  c->device_ = device;
  c->context_ = context;
  c->ordinal_ = ordinal;
  out = std::move(c);
  return Status::ok();
}

Status Context::open(const char *driverPath, int ordinal,
                     std::shared_ptr<Context> &out) {
  std::shared_ptr<Driver> driver;
  KVOPT_RT_RETURN_IF_ERROR(Driver::open(driverPath, driver));
  return retain(std::move(driver), ordinal, out);
}

Context::~Context() {
  if (context_)
    driver_->cuDevicePrimaryCtxRelease(device_);
}

Status Context::makeCurrent() const {
  return driver_->check(driver_->cuCtxSetCurrent(context_), "cuCtxSetCurrent");
}

} // namespace cuda
} // namespace rt
} // namespace kvopt
