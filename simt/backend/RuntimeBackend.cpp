//===- RuntimeBackend.cpp - The emulator as a runtime launch backend ----===//
//
// dlopen/dlsym of emulated kernel libraries and launches through
// kvopt::simt::launch, behind the runtime's LaunchBackend interface.
//
//===----------------------------------------------------------------------===//

#include "kvopt/simt/RuntimeBackend.h"

#include <dlfcn.h>
#include <mutex>

namespace kvopt::simt {
namespace {

using rt::KernelHandle;
using rt::ModuleHandle;
using rt::StatusCode;
using rt::StreamHandle;

class SimtLaunchBackend final : public rt::LaunchBackend {
public:
  SimtLaunchBackend(LaunchOptions options, LaunchObserver observer)
      : options_(std::move(options)), observer_(std::move(observer)) {}

  const char *name() const override { return "simt"; }

  bool acceptsFormat(const std::string &format) const override {
    return format == "simt-so";
  }

  rt::Status loadModule(const std::string &path, ModuleHandle &out) override {
    void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      return rt::Status::error(StatusCode::IoError,
                               "cannot load emulated kernels '" + path +
                                   "': " + dlerror());
    out = handle;
    return rt::Status::ok();
  }

  void unloadModule(ModuleHandle module) override {
    if (module)
      dlclose(module);
  }

  rt::Status getKernel(ModuleHandle module, const std::string &symbol,
                       KernelHandle &out) override {
    std::string descriptor = descriptorSymbol(symbol);
    void *address = dlsym(module, descriptor.c_str());
    if (!address)
      return rt::Status::error(StatusCode::NotFound,
                               "no emulated kernel '" + symbol + "' (symbol '" +
                                   descriptor + "')");
    out = address;
    return rt::Status::ok();
  }

  rt::Status launch(KernelHandle kernel, rt::Dim3 grid, rt::Dim3 block,
                    uint32_t sharedBytes, void **params,
                    StreamHandle) override {
    const auto &desc = *static_cast<const kvopt_simt_kernel *>(kernel);
    LaunchResult result = simt::launch(desc, {grid.x, grid.y, grid.z},
                                       {block.x, block.y, block.z}, sharedBytes,
                                       params, options_);
    if (observer_)
      observer_(result);
    switch (result.status) {
    case simt::Status::Ok:
      return rt::Status::ok();
    case simt::Status::InvalidLaunch:
      return rt::Status::error(StatusCode::InvalidArgument,
                               "emulated launch refused: " + result.text());
    case simt::Status::Reported:
    case simt::Status::Aborted:
      break;
    }
    return rt::Status::error(StatusCode::Internal,
                             "emulated kernel reported: " + result.text());
  }

private:
  LaunchOptions options_;
  LaunchObserver observer_;
};

} // namespace

std::unique_ptr<rt::LaunchBackend>
createRuntimeBackend(LaunchOptions options, LaunchObserver observer) {
  return std::make_unique<SimtLaunchBackend>(std::move(options),
                                             std::move(observer));
}

rt::Status registerRuntimeBackend() {
  static std::once_flag once;
  static rt::Status status = rt::Status::ok();
  std::call_once(once, [] {
    status = rt::registerLaunchBackend(
        "simt", [](int, std::unique_ptr<rt::LaunchBackend> &out) {
          out = createRuntimeBackend();
          return rt::Status::ok();
        });
  });
  return status;
}

} // namespace kvopt::simt
