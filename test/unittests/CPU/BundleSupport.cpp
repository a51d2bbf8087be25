//===- BundleSupport.cpp - CPU kernels through runtime bundles ------------===//
//
// The Executor::Bundle path of the CPU tests: writeCPUBundle writes the
// case's module as a kernel bundle of format "so", the runtime loads it with
// KernelBundle::load on its "cpu" launch backend (layout checked against the
// bundle's own layout.json) and launches the kernel with the expanded ABI
// built from the case's descriptors.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#ifdef KVOPT_CPU_TESTS_WITH_RUNTIME
#include "kvopt/runtime/bundle.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>
#endif

using namespace kvopt;
using namespace kvopt::cputest;

void kvopt::cputest::run(Executor executor, const std::string &source,
                         const CPUCompileOptions &options,
                         const std::string &name, std::vector<Desc> &descs) {
  if (executor == Executor::Bundle)
    return callBundle(source, options, name, descs);
  call(compiled(source, options), name, descs);
}

#ifdef KVOPT_CPU_TESTS_WITH_RUNTIME

namespace {

struct LoadedBundle {
  std::string dir;
  std::unique_ptr<rt::KernelBundle> bundle;
};

rt::LaunchBackend &cpuBackend() {
  // Never destroyed, like the bundles loaded with it.
  static rt::LaunchBackend *backend = rt::createCpuLaunchBackend().release();
  return *backend;
}

LoadedBundle &loaded(const std::string &source,
                     const CPUCompileOptions &options) {
  static auto &cache = *new std::map<std::string, LoadedBundle>();
  LoadedBundle &slot = cache[compileKey(source, options)];
  if (slot.bundle)
    return slot;
  slot.dir = testing::TempDir() + "kvopt-cpu-bundle-" +
             std::to_string(getpid()) + "-" + std::to_string(cache.size());
  CPUBundleOptions where;
  where.outDir = slot.dir;
  auto manifest = writeCPUBundle(source, options, where);
  if (!manifest) {
    ADD_FAILURE() << llvm::toString(manifest.takeError()) << "\n" << source;
    std::abort();
  }
  std::ifstream in(slot.dir + "/layout.json");
  std::stringstream text;
  text << in.rdbuf();
  rt::CacheLayout layout;
  rt::Status s = rt::CacheLayout::fromJson(text.str(), layout);
  if (s.isOk())
    s = rt::KernelBundle::load(*manifest, layout, cpuBackend(), slot.bundle);
  if (!s.isOk()) {
    ADD_FAILURE() << s.toString();
    std::abort();
  }
  return slot;
}

} // namespace

void kvopt::cputest::callBundle(const std::string &source,
                                const CPUCompileOptions &options,
                                const std::string &name,
                                std::vector<Desc> &descs) {
  LoadedBundle &b = loaded(source, options);
  std::vector<uint64_t> values;
  std::vector<void *> params = expandedParams(descs, values);
  const rt::KernelInfo *kernel = nullptr;
  ASSERT_TRUE(b.bundle->manifest().findKernel(name, kernel).isOk());
  ASSERT_EQ(kernel->args.size(), params.size())
      << "the manifest's expanded arguments of " << name;
  rt::Status s = b.bundle->launch(name, params.data());
  ASSERT_TRUE(s.isOk()) << s.toString();
}

#else

void kvopt::cputest::callBundle(const std::string &, const CPUCompileOptions &,
                                const std::string &, std::vector<Desc> &) {
  ADD_FAILURE() << "kvopt-cpu-tests was built without the runtime "
                   "(KVOPT_BUILD_RUNTIME=OFF): no bundle executor";
}

#endif
