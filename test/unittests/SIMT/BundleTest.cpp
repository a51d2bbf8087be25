//===- BundleTest.cpp - A kernel bundle on the emulator backend ---------===//
//
// The runtime's bundle loader and launcher, unchanged, run a bundle of
// emulated kernels through the "simt" launch backend: the same host code
// that would launch PTX through the CUDA driver.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/bundle.h"
#include "kvopt/simt/RuntimeBackend.h"

#include "gtest/gtest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

using namespace kvopt;

namespace {

/// A layout the bundle and the pool agree on (block_sum ignores it).
const char *kLayoutJson =
    R"({"kind": "kv", "kv_heads": 2, "head_dim": 64, "element": "f16",
        "layout": "paged", "page_size": 16, "num_layers": 1,
        "layer_to_cache": [0]})";

/// Writes a manifest for block_sum(in, out: memref<?xf32>) next to a copy
/// of the emulated library, with `abi` as ABI version and `n` threads per
/// block; returns its path.
std::string writeBundle(const std::string &dir, int abi, int blockThreads) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(KVOPT_SIMT_REDUCE_SO, dir + "/reduce.simt.so",
                             std::filesystem::copy_options::overwrite_existing);
  // Each memref<?xf32> is five launch arguments: allocated and aligned
  // pointers, offset, size, stride.
  std::string memrefArgs;
  for (const char *name : {"in", "out"}) {
    if (!memrefArgs.empty())
      memrefArgs += ", ";
    memrefArgs += std::string(R"({"name": ")") + name +
                  R"(_alloc", "type": "ptr"}, {"name": ")" + name +
                  R"(", "type": "ptr"}, {"name": ")" + name +
                  R"(_offset", "type": "i64"}, {"name": ")" + name +
                  R"(_size", "type": "i64"}, {"name": ")" + name +
                  R"(_stride", "type": "i64"})";
  }
  std::string manifest =
      "{\"abi_version\": " + std::to_string(abi) +
      ", \"target\": \"simt\", \"format\": \"simt-so\", \"binary\": "
      "\"reduce.simt.so\", \"cache_layout\": " +
      kLayoutJson + R"(, "kernels": [{"name": "block_sum", "args": [)" +
      memrefArgs +
      R"(], "launch": {"grid": [{"arg": "out_size"}], "block": [)" +
      std::to_string(blockThreads) + "]}}]}";
  std::ofstream(dir + "/manifest.json") << manifest;
  return dir + "/manifest.json";
}

class SimtBundleTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(rt::CacheLayout::fromJson(kLayoutJson, layout).isOk());
    dir = testing::TempDir() + "kvopt-simt-bundle-" +
          std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  }
  rt::CacheLayout layout;
  std::string dir;
};

/// One host argument array for block_sum over `blocks` x `threads` floats.
struct BlockSumArgs {
  BlockSumArgs(std::vector<float> &in, std::vector<float> &out)
      : inPtr(in.data()), outPtr(out.data()), inSize(in.size()),
        outSize(out.size()) {}
  void **params() { return slots; }

  float *inPtr, *outPtr;
  int64_t zero = 0, one = 1, inSize, outSize;
  void *slots[10] = {&inPtr,  &inPtr,  &zero, &inSize,  &one,
                     &outPtr, &outPtr, &zero, &outSize, &one};
};

TEST_F(SimtBundleTest, RunsThroughTheRuntimeLoader) {
  ASSERT_TRUE(simt::registerRuntimeBackend().isOk());
  ASSERT_TRUE(simt::registerRuntimeBackend().isOk()) << "idempotent";
  std::unique_ptr<rt::LaunchBackend> backend;
  ASSERT_TRUE(rt::createLaunchBackend("simt", 0, backend).isOk());
  std::unique_ptr<rt::KernelBundle> bundle;
  rt::Status status = rt::KernelBundle::load(writeBundle(dir, 1, 128), layout,
                                             *backend, bundle);
  ASSERT_TRUE(status.isOk()) << status.toString();

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int blocks = 5, threads = 128;
  std::vector<float> in(blocks * threads), out(blocks, 0.0f);
  for (float &x : in)
    x = dist(rng);
  BlockSumArgs args(in, out);
  status = bundle->launch("block_sum", args.params());
  ASSERT_TRUE(status.isOk()) << status.toString();
  for (int b = 0; b < blocks; ++b) {
    double expected = 0;
    for (int t = 0; t < threads; ++t)
      expected += in[b * threads + t];
    EXPECT_NEAR(out[b], expected, 1e-4) << "block " << b;
  }
}

TEST_F(SimtBundleTest, CountersReachTheObserver) {
  uint64_t loaded = 0;
  auto backend =
      simt::createRuntimeBackend({}, [&](const simt::LaunchResult &r) {
        loaded += r.counters.globalLoadBytes;
      });
  std::unique_ptr<rt::KernelBundle> bundle;
  ASSERT_TRUE(
      rt::KernelBundle::load(writeBundle(dir, 1, 64), layout, *backend, bundle)
          .isOk());
  std::vector<float> in(3 * 64, 1.0f), out(3, 0.0f);
  BlockSumArgs args(in, out);
  ASSERT_TRUE(bundle->launch("block_sum", args.params()).isOk());
  // Every thread loads its own float once; the partials live in shared
  // memory.
  EXPECT_EQ(loaded, in.size() * sizeof(float));
  EXPECT_FLOAT_EQ(out[2], 64.0f);
}

TEST_F(SimtBundleTest, WrongAbiIsRefusedBeforeLoading) {
  auto backend = simt::createRuntimeBackend();
  std::unique_ptr<rt::KernelBundle> bundle;
  rt::Status status = rt::KernelBundle::load(writeBundle(dir, 99, 64), layout,
                                             *backend, bundle);
  EXPECT_EQ(status.code(), rt::StatusCode::AbiMismatch) << status.toString();
  EXPECT_FALSE(bundle);
}

TEST_F(SimtBundleTest, BadLaunchShapeIsAnError) {
  auto backend = simt::createRuntimeBackend();
  std::unique_ptr<rt::KernelBundle> bundle;
  // block_sum needs a multiple of 32 threads per block and at most 1024;
  // 2048 threads is not a launch a GPU would accept either.
  ASSERT_TRUE(rt::KernelBundle::load(writeBundle(dir, 1, 2048), layout,
                                     *backend, bundle)
                  .isOk());
  std::vector<float> in(2048, 1.0f), out(1, 0.0f);
  BlockSumArgs args(in, out);
  rt::Status status = bundle->launch("block_sum", args.params());
  EXPECT_FALSE(status.isOk());
  EXPECT_EQ(status.code(), rt::StatusCode::InvalidArgument)
      << status.toString();
}

TEST_F(SimtBundleTest, MissingKernelSymbolIsNotFound) {
  auto backend = simt::createRuntimeBackend();
  rt::ModuleHandle module = nullptr;
  ASSERT_TRUE(backend->loadModule(KVOPT_SIMT_REDUCE_SO, module).isOk());
  rt::KernelHandle kernel = nullptr;
  rt::Status status = backend->getKernel(module, "no_such_kernel", kernel);
  EXPECT_EQ(status.code(), rt::StatusCode::NotFound);
  EXPECT_NE(status.message().find("no_such_kernel_emu_desc"),
            std::string::npos);
  backend->unloadModule(module);
}

} // namespace
