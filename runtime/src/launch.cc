//===- launch.cc - CPU and CUDA launch backends and their registry --------===//
//
// The CPU backend dlopens shared objects and calls `void entry(void **)`;
// the CUDA backend loads PTX through the driver loaded at run time.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/launch.h"

#include "cuda_driver.h"

#include <dlfcn.h>

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>

namespace kvopt {
namespace rt {

LaunchBackend::~LaunchBackend() = default;

Status LaunchBackend::createStream(StreamHandle &out) {
  out = nullptr;
  return Status::ok();
}
Status LaunchBackend::destroyStream(StreamHandle) { return Status::ok(); }
Status LaunchBackend::synchronize(StreamHandle) { return Status::ok(); }

/// InvalidArgument when a launch dimension is zero.
static Status checkLaunchShape(Dim3 grid, Dim3 block) {
  if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z)
    return Status::error(StatusCode::InvalidArgument,
                         "launch: grid and block dimensions must be >= 1");
  return Status::ok();
}

namespace {

/// Calls CPU kernels in-process.
class CpuLaunchBackend final : public LaunchBackend {
public:
  const char *name() const override { return "cpu"; }
  bool acceptsFormat(const std::string &format) const override {
    return format == "so";
  }
  Status loadModule(const std::string &path, ModuleHandle &out) override {
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *why = dlerror();
      return Status::error(StatusCode::IoError,
                           "cannot load CPU kernels " + path + ": " +
                               (why ? why : "unknown reason"));
    }
    out = handle;
    return Status::ok();
  }
  void unloadModule(ModuleHandle module) override {
    if (module)
      dlclose(module);
  }
  Status getKernel(ModuleHandle module, const std::string &symbol,
                   KernelHandle &out) override {
    dlerror();
    void *fn = dlsym(module, symbol.c_str());
    if (!fn)
      return Status::error(StatusCode::NotFound,
                           "CPU kernel symbol " + symbol + " not found");
    out = fn;
    return Status::ok();
  }
  Status launch(KernelHandle kernel, Dim3 grid, Dim3 block, uint32_t,
                void **params, StreamHandle) override {
    KVOPT_RT_RETURN_IF_ERROR(checkLaunchShape(grid, block));
    if (!kernel)
      return Status::error(StatusCode::InvalidArgument, "launch: null kernel");
    using Entry = void (*)(void **);
    reinterpret_cast<Entry>(kernel)(params);
    return Status::ok();
  }
};

/// Runs PTX kernels through the CUDA driver.
class CudaLaunchBackend final : public LaunchBackend {
public:
  explicit CudaLaunchBackend(std::shared_ptr<cuda::Context> context)
      : context_(std::move(context)) {}
  const char *name() const override { return "cuda"; }
  bool acceptsFormat(const std::string &format) const override {
    return format == "ptx";
  }
  Status loadModule(const std::string &path, ModuleHandle &out) override {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return Status::error(StatusCode::IoError, "cannot read PTX " + path);
    std::string ptx((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    cuda::CUmodule module = nullptr;
    KVOPT_RT_RETURN_IF_ERROR(
        driver().check(driver().cuModuleLoadData(&module, ptx.c_str()),
                       ("cuModuleLoadData(" + path + ")").c_str()));
    out = module;
    return Status::ok();
  }
  void unloadModule(ModuleHandle module) override {
    if (module && context_->makeCurrent().isOk())
      driver().cuModuleUnload(static_cast<cuda::CUmodule>(module));
  }
  Status getKernel(ModuleHandle module, const std::string &symbol,
                   KernelHandle &out) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    cuda::CUfunction fn = nullptr;
    Status s = driver().check(
        driver().cuModuleGetFunction(&fn, static_cast<cuda::CUmodule>(module),
                                     symbol.c_str()),
        ("cuModuleGetFunction(" + symbol + ")").c_str());
    if (!s.isOk())
      return Status::error(StatusCode::NotFound, s.message());
    out = fn;
    return Status::ok();
  }
  Status launch(KernelHandle kernel, Dim3 grid, Dim3 block,
                uint32_t sharedBytes, void **params,
                StreamHandle stream) override {
    KVOPT_RT_RETURN_IF_ERROR(checkLaunchShape(grid, block));
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return driver().check(driver().cuLaunchKernel(
                              static_cast<cuda::CUfunction>(kernel), grid.x,
                              grid.y, grid.z, block.x, block.y, block.z,
                              sharedBytes, static_cast<cuda::CUstream>(stream),
                              params, nullptr),
                          "cuLaunchKernel");
  }
  Status createStream(StreamHandle &out) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    cuda::CUstream stream = nullptr;
    KVOPT_RT_RETURN_IF_ERROR(
        driver().check(driver().cuStreamCreate(&stream, 0), "cuStreamCreate"));
    out = stream;
    return Status::ok();
  }
  Status destroyStream(StreamHandle stream) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return driver().check(
        driver().cuStreamDestroy(static_cast<cuda::CUstream>(stream)),
        "cuStreamDestroy");
  }
  Status synchronize(StreamHandle stream) override {
    KVOPT_RT_RETURN_IF_ERROR(context_->makeCurrent());
    return driver().check(
        driver().cuStreamSynchronize(static_cast<cuda::CUstream>(stream)),
        "cuStreamSynchronize");
  }

private:
  const cuda::Driver &driver() const { return context_->driver(); }
  std::shared_ptr<cuda::Context> context_;
};

/// Process-wide name -> factory table.
struct Registry {
  std::mutex mutex;
  std::map<std::string, LaunchBackendFactory> factories;

  static Registry &get() {
    static Registry *registry = [] {
      auto *r = new Registry();
      r->factories["cpu"] = [](int, std::unique_ptr<LaunchBackend> &out) {
        out = createCpuLaunchBackend();
        return Status::ok();
      };
      r->factories["cuda"] = [](int device,
                                std::unique_ptr<LaunchBackend> &out) {
        return createCudaLaunchBackend(device, out);
      };
      return r;
    }();
    return *registry;
  }
};

} // namespace

std::unique_ptr<LaunchBackend> createCpuLaunchBackend() {
  return std::make_unique<CpuLaunchBackend>();
}

Status createCudaLaunchBackend(int ordinal, std::unique_ptr<LaunchBackend> &out,
                               const char *driverPath) {
  std::shared_ptr<cuda::Context> context;
  KVOPT_RT_RETURN_IF_ERROR(cuda::Context::open(driverPath, ordinal, context));
  out = std::make_unique<CudaLaunchBackend>(std::move(context));
  return Status::ok();
}

Status registerLaunchBackend(const std::string &name,
                             LaunchBackendFactory factory) {
  if (name.empty() || !factory)
    return Status::error(StatusCode::InvalidArgument,
                         "register backend: empty name or factory");
  Registry &r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.factories.emplace(name, std::move(factory)).second)
    return Status::error(StatusCode::InvalidArgument,
                         "register backend: " + name +
                             " is already registered");
  return Status::ok();
}

Status createLaunchBackend(const std::string &name, int device,
                           std::unique_ptr<LaunchBackend> &out) {
  LaunchBackendFactory factory;
  {
    Registry &r = Registry::get();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.factories.find(name);
    if (it == r.factories.end()) {
      std::string known;
      for (const auto &entry : r.factories)
        known += (known.empty() ? "" : ", ") + entry.first;
      return Status::error(StatusCode::NotFound, "no launch backend named " +
                                                     name +
                                                     " (known: " + known + ")");
    }
    factory = it->second;
  }
  std::unique_ptr<LaunchBackend> backend;
  KVOPT_RT_RETURN_IF_ERROR(factory(device, backend));
  if (!backend)
    return Status::error(StatusCode::Internal,
                         "backend factory " + name + " returned nothing");
  out = std::move(backend);
  return Status::ok();
}

std::vector<std::string> launchBackendNames() {
  Registry &r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto &entry : r.factories)
    names.push_back(entry.first);
  return names;
}

} // namespace rt
} // namespace kvopt
