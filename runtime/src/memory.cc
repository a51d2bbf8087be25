//===- memory.cc - Host and CUDA memory backends --------------------------===//
//
// Host memory uses aligned_alloc; CUDA memory uses the driver loaded at run
// time, with the device's primary context made current on every call.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/memory.h"

#include "cuda_driver.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace kvopt {
namespace rt {

MemoryBackend::~MemoryBackend() = default;

namespace {

/// Plain host memory; addresses are host pointers.
class HostMemory final : public MemoryBackend {
public:
  const char *name() const override { return "host"; }
  bool hostAccessible() const override { return true; }

  Status allocate(uint64_t bytes, DeviceAddress &address) override {
    constexpr uint64_t kAlign = 256;
    uint64_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void *p = rounded ? std::aligned_alloc(kAlign, rounded) : nullptr;
    if (!p && rounded)
      return Status::error(StatusCode::OutOfMemory, "host allocation of " +
                                                        std::to_string(bytes) +
                                                        " bytes failed");
    address = reinterpret_cast<uintptr_t>(p);
    return Status::ok();
  }
  void release(DeviceAddress address) override {
    std::free(reinterpret_cast<void *>(address));
  }
  Status copy(DeviceAddress dst, DeviceAddress src, uint64_t bytes) override {
    std::memmove(reinterpret_cast<void *>(dst),
                 reinterpret_cast<const void *>(src), bytes);
    return Status::ok();
  }
  Status copyToHost(void *dst, DeviceAddress src, uint64_t bytes) override {
    return copy(reinterpret_cast<uintptr_t>(dst), src, bytes);
  }
  Status copyFromHost(DeviceAddress dst, const void *src,
                      uint64_t bytes) override {
    return copy(dst, reinterpret_cast<uintptr_t>(src), bytes);
  }
};

/// Device memory of one CUDA device.
class CudaMemory final : public MemoryBackend {
public:
  explicit CudaMemory(std::shared_ptr<cuda::Context> context)
      : context_(std::move(context)) {}
  const char *name() const override { return "cuda"; }
  bool hostAccessible() const override { return false; }

  Status allocate(uint64_t bytes, DeviceAddress &address) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    cuda::CUdeviceptr p = 0;
    Status s = context_->driver().check(
        context_->driver().cuMemAlloc(&p, bytes ? bytes : 1), "cuMemAlloc");
    if (!s.isOk())
      return Status::error(StatusCode::OutOfMemory, s.message());
    address = p;
    return Status::ok();
  }
  void release(DeviceAddress address) override {
    if (context_->makeCurrent().isOk())
      context_->driver().cuMemFree(address);
  }
  Status copy(DeviceAddress dst, DeviceAddress src, uint64_t bytes) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return context_->driver().check(
        context_->driver().cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD");
  }
  Status copyToHost(void *dst, DeviceAddress src, uint64_t bytes) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return context_->driver().check(
        context_->driver().cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH");
  }
  Status copyFromHost(DeviceAddress dst, const void *src,
                      uint64_t bytes) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return context_->driver().check(
        context_->driver().cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD");
  }

private:
  std::shared_ptr<cuda::Context> context_;
};

} // namespace

std::unique_ptr<MemoryBackend> createHostMemory() {
  return std::make_unique<HostMemory>();
}

Status createCudaMemory(int ordinal, std::unique_ptr<MemoryBackend> &out,
                        const char *driverPath) {
  std::shared_ptr<cuda::Context> context;
  KVOPT_RT_RETURN_IF_ERROR(cuda::Context::open(driverPath, ordinal, context));
  out = std::make_unique<CudaMemory>(std::move(context));
  return Status::ok();
}

} // namespace rt
} // namespace kvopt
