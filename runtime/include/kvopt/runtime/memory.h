//===- memory.h - Memory backends of the cache pool ---------------*- C++
//-*-===//
//
// A memory backend hands out one arena for the cache pool and copies bytes
// within it (copy-on-write of pages) and to/from the host. Host memory is
// built in; GPU memory goes through the CUDA driver API, loaded at run time.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_MEMORY_H
#define KVOPT_RUNTIME_MEMORY_H

#include "kvopt/runtime/status.h"

#include <cstdint>
#include <memory>

namespace kvopt {
namespace rt {

/// Addresses are 64-bit integers: host pointers for host memory, CUdeviceptr
/// values for GPU memory.
using DeviceAddress = uint64_t;

/// Where the cache pool's bytes live. Implementations must be safe to call
/// from several threads at once (the pool serializes its own calls, but
/// several pools may share a backend's driver).
class MemoryBackend {
public:
  virtual ~MemoryBackend();
  /// "host" or "cuda".
  virtual const char *name() const = 0;
  /// True when addresses are host pointers the CPU may dereference.
  virtual bool hostAccessible() const = 0;
  /// Allocates `bytes` (aligned to at least 256 bytes).
  virtual Status allocate(uint64_t bytes, DeviceAddress &address) = 0;
  /// Releases an allocation made by allocate().
  virtual void release(DeviceAddress address) = 0;
  /// Copies `bytes` between two addresses of this backend.
  virtual Status copy(DeviceAddress dst, DeviceAddress src, uint64_t bytes) = 0;
  virtual Status copyToHost(void *dst, DeviceAddress src, uint64_t bytes) = 0;
  virtual Status copyFromHost(DeviceAddress dst, const void *src,
                              uint64_t bytes) = 0;
};

/// Host memory (aligned_alloc).
std::unique_ptr<MemoryBackend> createHostMemory();

/// GPU memory of CUDA device `ordinal` through the driver API. `driverPath`
/// null means $KVOPT_CUDA_DRIVER if set, else "libcuda.so.1". Returns
/// NoDevice (with the loader's or driver's reason) when no driver or device
/// is present; never aborts.
Status createCudaMemory(int ordinal, std::unique_ptr<MemoryBackend> &out,
                        const char *driverPath = nullptr);

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_MEMORY_H
