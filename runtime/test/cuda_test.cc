//===- cuda_test.cc - CUDA memory and launch backends ---------------------===//
//
// Without a GPU these run the CUDA backends against a host-memory stand-in
// driver (fake_cuda_driver.cc), which checks the driver call sequence and
// that every allocation, context, module and stream is released. The
// RealGpu tests use the real libcuda.so.1 and skip when it is absent.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/bundle.h"
#include "kvopt/runtime/cache_pool.h"
#include "kvopt/runtime/memory.h"

#include "test_util.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace kvopt::rt;
using namespace kvopt::rt::test;

namespace {

const char *kFake = KVOPT_RT_FAKE_CUDA;

/// Counters kept by the fake driver.
struct FakeStats {
  int liveAllocations, retainedContexts, liveModules, liveStreams, launches;
  unsigned grid[3], block[3], shared;
  char kernel[64];
  uint64_t firstArg;
};

FakeStats fakeStats() {
  using Fn = void (*)(int *, int *, int *, int *, int *, unsigned *, unsigned *,
                      unsigned *, char *, uint64_t *);
  void *lib = dlopen(kFake, RTLD_NOW | RTLD_LOCAL);
  EXPECT_NE(lib, nullptr) << dlerror();
  FakeStats s{};
  if (!lib)
    return s;
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "fake_cuda_stats"));
  fn(&s.liveAllocations, &s.retainedContexts, &s.liveModules, &s.liveStreams,
     &s.launches, s.grid, s.block, &s.shared, s.kernel, &s.firstArg);
  dlclose(lib);
  return s;
}

std::string readFile(const char *path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

std::string ptxManifest(const CacheLayout &layout, const std::string &ptx) {
  return R"({"abi_version": 1, "target": "sm_80", "format": "ptx",
    "binary": ")" +
         ptx + R"(", "cache_layout": )" + layout.toJson() + R"(,
    "kernels": [{"name": "kvopt_add_one",
      "args": [{"name": "data", "type": "ptr"}, {"name": "n", "type": "u32"}],
      "launch": {"grid": [{"arg": "n", "ceil_div": 64}], "block": [64],
                 "shared_bytes": 16}}]})";
}

TEST(CudaTest, MissingDriverIsReportedAsNoDevice) {
  std::unique_ptr<MemoryBackend> memory;
  Status s = createCudaMemory(0, memory, "/nonexistent/libcuda.so.1");
  EXPECT_EQ(s.code(), StatusCode::NoDevice);
  EXPECT_NE(s.message().find("cannot load /nonexistent/libcuda.so.1"),
            std::string::npos)
      << s.message();
  std::unique_ptr<LaunchBackend> backend;
  EXPECT_EQ(createCudaLaunchBackend(0, backend, "/nonexistent/x.so").code(),
            StatusCode::NoDevice);
  EXPECT_EQ(memory, nullptr);
  EXPECT_EQ(backend, nullptr);
}

TEST(CudaTest, LibraryWithoutEntryPointsIsNoDevice) {
  std::unique_ptr<MemoryBackend> memory;
  Status s = createCudaMemory(0, memory, KVOPT_RT_TEST_KERNELS);
  EXPECT_EQ(s.code(), StatusCode::NoDevice);
  EXPECT_NE(s.message().find("lacks the entry point cuInit"), std::string::npos)
      << s.message();
}

TEST(CudaTest, DriverWithoutDeviceIsNoDevice) {
  setenv("FAKE_CUDA_NO_DEVICE", "1", 1);
  std::unique_ptr<MemoryBackend> memory;
  Status s = createCudaMemory(0, memory, kFake);
  unsetenv("FAKE_CUDA_NO_DEVICE");
  EXPECT_EQ(s.code(), StatusCode::NoDevice);
  EXPECT_NE(s.message().find("no device"), std::string::npos);
  s = createCudaMemory(3, memory, kFake);
  EXPECT_EQ(s.code(), StatusCode::NoDevice);
  EXPECT_NE(s.message().find("device 3 does not exist"), std::string::npos);
  EXPECT_EQ(fakeStats().retainedContexts, 0);
}

// The environment variable selects the driver when no path is given.
TEST(CudaTest, DriverPathFromEnvironment) {
  setenv("KVOPT_CUDA_DRIVER", kFake, 1);
  std::unique_ptr<MemoryBackend> memory;
  Status s = createCudaMemory(0, memory);
  unsetenv("KVOPT_CUDA_DRIVER");
  ASSERT_RT_OK(s);
  EXPECT_STREQ(memory->name(), "cuda");
  EXPECT_FALSE(memory->hostAccessible());
}

// A pool on (fake) device memory: copy-on-write goes through cuMemcpyDtoD
// and everything is released with the pool.
TEST(CudaTest, PoolOnDeviceMemory) {
  {
    std::unique_ptr<MemoryBackend> memory;
    ASSERT_RT_OK(createCudaMemory(0, memory, kFake));
    MemoryBackend *mem = memory.get();
    std::unique_ptr<CachePool> pool;
    PoolOptions o;
    o.numPages = 8;
    ASSERT_RT_OK(CachePool::create(smallLayout(4), o, std::move(memory), pool));
    EXPECT_EQ(fakeStats().liveAllocations, 1);
    SequenceId parent, child;
    ASSERT_RT_OK(pool->createSequence(parent));
    ASSERT_RT_OK(pool->appendTokens(parent, 3));
    SlotAddress slot;
    ASSERT_RT_OK(pool->slotAddress(parent, 2, 0, Component::Key, slot));
    std::vector<uint8_t> row(slot.dataBytes, 42), back(slot.dataBytes, 0);
    ASSERT_RT_OK(mem->copyFromHost(slot.data, row.data(), row.size()));
    ASSERT_RT_OK(pool->fork(parent, child));
    ASSERT_RT_OK(pool->appendTokens(child, 1)); // copy-on-write
    SlotAddress childSlot;
    ASSERT_RT_OK(pool->slotAddress(child, 2, 0, Component::Key, childSlot));
    EXPECT_NE(childSlot.data, slot.data);
    ASSERT_RT_OK(mem->copyToHost(back.data(), childSlot.data, back.size()));
    EXPECT_EQ(back, row);
  }
  FakeStats s = fakeStats();
  EXPECT_EQ(s.liveAllocations, 0);
  EXPECT_EQ(s.retainedContexts, 0);
}

TEST(CudaTest, DeviceOutOfMemoryIsReported) {
  std::unique_ptr<MemoryBackend> memory;
  ASSERT_RT_OK(createCudaMemory(0, memory, kFake));
  std::unique_ptr<CachePool> pool;
  PoolOptions o;
  o.numPages = 1u << 24; // 2 GiB of 128-byte pages: over the fake's limit
  Status s = CachePool::create(smallLayout(4), o, std::move(memory), pool);
  EXPECT_EQ(s.code(), StatusCode::OutOfMemory);
  EXPECT_NE(s.message().find("CUDA_ERROR_OUT_OF_MEMORY"), std::string::npos)
      << s.message();
  EXPECT_EQ(fakeStats().retainedContexts, 0);
}

TEST(CudaTest, BundleLaunchThroughDriver) {
  TempDir dir;
  CacheLayout layout = smallLayout(4);
  dir.write("k.ptx", readFile(KVOPT_RT_TEST_PTX));
  std::string manifest =
      dir.write("manifest.json", ptxManifest(layout, "k.ptx"));
  {
    std::unique_ptr<LaunchBackend> backend;
    ASSERT_RT_OK(createCudaLaunchBackend(0, backend, kFake));
    EXPECT_TRUE(backend->acceptsFormat("ptx"));
    EXPECT_FALSE(backend->acceptsFormat("so"));
    std::unique_ptr<KernelBundle> bundle;
    ASSERT_RT_OK(KernelBundle::load(manifest, layout, *backend, bundle));
    EXPECT_EQ(fakeStats().liveModules, 1);
    StreamHandle stream = nullptr;
    ASSERT_RT_OK(backend->createStream(stream));
    uint64_t data = 0x1234;
    uint32_t n = 130;
    void *params[] = {&data, &n};
    int before = fakeStats().launches;
    ASSERT_RT_OK(bundle->launch("kvopt_add_one", params, stream));
    ASSERT_RT_OK(backend->synchronize(stream));
    ASSERT_RT_OK(backend->destroyStream(stream));
    FakeStats s = fakeStats();
    EXPECT_EQ(s.launches, before + 1);
    EXPECT_STREQ(s.kernel, "kvopt_add_one");
    EXPECT_EQ(s.grid[0], 3u);
    EXPECT_EQ(s.block[0], 64u);
    EXPECT_EQ(s.shared, 16u);
    EXPECT_EQ(s.firstArg, 0x1234u);
    EXPECT_EQ(s.liveStreams, 0);
  }
  FakeStats s = fakeStats();
  EXPECT_EQ(s.liveModules, 0);
  EXPECT_EQ(s.retainedContexts, 0);
}

TEST(CudaTest, DriverErrorsAreNamed) {
  TempDir dir;
  CacheLayout layout = smallLayout(4);
  std::unique_ptr<LaunchBackend> backend;
  ASSERT_RT_OK(createCudaLaunchBackend(0, backend, kFake));
  std::unique_ptr<KernelBundle> bundle;
  dir.write("bad.ptx", "this is not ptx");
  Status s =
      KernelBundle::load(dir.write("bad.json", ptxManifest(layout, "bad.ptx")),
                         layout, *backend, bundle);
  EXPECT_EQ(s.code(), StatusCode::DriverError);
  EXPECT_NE(s.message().find("CUDA_ERROR_INVALID_PTX (218): a PTX JIT"),
            std::string::npos)
      << s.message();
  dir.write("other.ptx", ".version 7.0\n.visible .entry other()\n{ ret; }\n");
  s = KernelBundle::load(
      dir.write("other.json", ptxManifest(layout, "other.ptx")), layout,
      *backend, bundle);
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_NE(s.message().find("kernel kvopt_add_one"), std::string::npos);
  s = KernelBundle::load(
      dir.write("none.json", ptxManifest(layout, "none.ptx")), layout, *backend,
      bundle);
  EXPECT_EQ(s.code(), StatusCode::IoError);
  EXPECT_EQ(fakeStats().liveModules, 0); // failed loads unload the module
}

/// Creates real-GPU backends, or explains why not.
Status openRealGpu(std::unique_ptr<MemoryBackend> &memory,
                   std::unique_ptr<LaunchBackend> &backend) {
  KVOPT_RT_RETURN_IF_ERROR(createCudaMemory(0, memory, "libcuda.so.1"));
  return createCudaLaunchBackend(0, backend, "libcuda.so.1");
}

// Real driver: runs the PTX kernel on the GPU and checks its result, and
// copy-on-write in device memory.
TEST(CudaTest, RealGpu) {
  std::unique_ptr<MemoryBackend> memory;
  std::unique_ptr<LaunchBackend> backend;
  Status s = openRealGpu(memory, backend);
  if (s.code() == StatusCode::NoDevice)
    GTEST_SKIP() << "no CUDA driver or device: " << s.message();
  ASSERT_RT_OK(s);
  MemoryBackend *mem = memory.get();
  CacheLayout layout = smallLayout(4);
  std::unique_ptr<CachePool> pool;
  PoolOptions o;
  o.numPages = 16;
  ASSERT_RT_OK(CachePool::create(layout, o, std::move(memory), pool));
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  SlotAddress slot;
  ASSERT_RT_OK(pool->slotAddress(parent, 5, 0, Component::Key, slot));
  std::vector<int32_t> values(slot.dataBytes / 4, 41);
  ASSERT_RT_OK(mem->copyFromHost(slot.data, values.data(), slot.dataBytes));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->appendTokens(child, 1));
  SlotAddress childSlot;
  ASSERT_RT_OK(pool->slotAddress(child, 5, 0, Component::Key, childSlot));
  ASSERT_NE(childSlot.data, slot.data);

  TempDir dir;
  dir.write("k.ptx", readFile(KVOPT_RT_TEST_PTX));
  std::unique_ptr<KernelBundle> bundle;
  ASSERT_RT_OK(
      KernelBundle::load(dir.write("m.json", ptxManifest(layout, "k.ptx")),
                         layout, *backend, bundle));
  uint64_t data = childSlot.data;
  uint32_t n = uint32_t(values.size());
  void *params[] = {&data, &n};
  StreamHandle stream = nullptr;
  ASSERT_RT_OK(backend->createStream(stream));
  ASSERT_RT_OK(bundle->launch("kvopt_add_one", params, stream));
  ASSERT_RT_OK(backend->synchronize(stream));
  ASSERT_RT_OK(backend->destroyStream(stream));
  std::vector<int32_t> childValues(values.size()), parentValues(values.size());
  ASSERT_RT_OK(
      mem->copyToHost(childValues.data(), childSlot.data, slot.dataBytes));
  ASSERT_RT_OK(mem->copyToHost(parentValues.data(), slot.data, slot.dataBytes));
  EXPECT_EQ(childValues, std::vector<int32_t>(values.size(), 42));
  EXPECT_EQ(parentValues, values); // copy-on-write kept the parent intact
}

} // namespace
