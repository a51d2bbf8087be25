//===- bundle_test.cc - Manifest parsing, bundle loading and launching ----===//
//
// Covers the manifest schema, the ABI and layout checks, CPU launches of a
// real shared object (also over pool memory through a block table), launch
// shape rules, and the backend registry with a custom backend standing in
// for a SIMT emulator.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/bundle.h"
#include "kvopt/runtime/cache_pool.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace kvopt::rt;
using namespace kvopt::rt::test;

namespace {

/// A manifest for the test kernels; `abi`, `layout` and `extra` are spliced
/// in so tests can break one thing at a time.
std::string manifestText(const CacheLayout &layout, int abi = 1,
                         const std::string &binary = KVOPT_RT_TEST_KERNELS,
                         const std::string &format = "so") {
  return R"({
  "abi_version": )" +
         std::to_string(abi) + R"(,
  "target": "cpu",
  "format": ")" +
         format + R"(",
  "binary": ")" +
         binary + R"(",
  "cache_layout": )" +
         layout.toJson() + R"(,
  "kernels": [
    {"name": "axpy", "symbol": "kvopt_test_axpy",
     "args": [{"name": "y", "type": "ptr"}, {"name": "x", "type": "ptr"},
              {"name": "a", "type": "f32"}, {"name": "n", "type": "i32"}],
     "launch": {"grid": [{"arg": "n", "ceil_div": 128}], "block": [128],
                "shared_bytes": 0}},
    {"name": "kvopt_test_gather_keys",
     "args": [{"name": "cache", "type": "ptr"},
              {"name": "block_table", "type": "ptr"},
              {"name": "seq_len", "type": "i32"},
              {"name": "page_size", "type": "i32"},
              {"name": "page_bytes", "type": "i64"},
              {"name": "row_bytes", "type": "i64"},
              {"name": "out", "type": "ptr"}],
     "launch": {"grid": [1, {"arg": "seq_len", "ceil_div": 4, "mul": 2}, 1],
                "block": [32, 1, 1]}}
  ]
})";
}

class BundleTest : public ::testing::Test {
protected:
  void SetUp() override {
    layout_ = smallLayout(4);
    backend_ = createCpuLaunchBackend();
  }
  Status load(const std::string &text, std::unique_ptr<KernelBundle> &out) {
    return KernelBundle::load(dir_.write("manifest.json", text), layout_,
                              *backend_, out);
  }
  CacheLayout layout_;
  std::unique_ptr<LaunchBackend> backend_;
  TempDir dir_;
};

TEST_F(BundleTest, ParsesManifest) {
  Manifest m;
  ASSERT_RT_OK(Manifest::parse(manifestText(layout_), m));
  EXPECT_EQ(m.abiVersion, kKernelAbiVersion);
  EXPECT_EQ(m.target, "cpu");
  EXPECT_EQ(m.format, "so");
  ASSERT_EQ(m.kernels.size(), 2u);
  EXPECT_EQ(m.kernels[0].symbol, "kvopt_test_axpy");
  EXPECT_EQ(m.kernels[1].symbol, "kvopt_test_gather_keys"); // defaults to name
  EXPECT_EQ(m.kernels[0].args[2].type, ArgType::F32);
  EXPECT_EQ(m.kernels[0].grid[0].argIndex, 3);
  EXPECT_EQ(m.kernels[0].grid[0].divisor, 128u);
  EXPECT_EQ(m.kernels[0].block[0].constant, 128u);
  EXPECT_EQ(m.kernels[0].block[1].constant, 1u);
  EXPECT_TRUE(m.layout.compare(layout_, "a", "b").isOk());
  const KernelInfo *k = nullptr;
  ASSERT_RT_OK(m.findKernel("axpy", k));
  EXPECT_EQ(m.findKernel("nope", k).code(), StatusCode::NotFound);
}

TEST_F(BundleTest, LaunchShapeRules) {
  Manifest m;
  ASSERT_RT_OK(Manifest::parse(manifestText(layout_), m));
  int32_t seqLen = 9;
  void *params[7] = {nullptr, nullptr, &seqLen};
  Dim3 grid, block;
  ASSERT_RT_OK(Manifest::launchShape(m.kernels[1], params, grid, block));
  EXPECT_EQ(grid.x, 1u);
  EXPECT_EQ(grid.y, 6u); // ceil(9 / 4) * 2
  EXPECT_EQ(block.x, 32u);
  seqLen = 0;
  Status s = Manifest::launchShape(m.kernels[1], params, grid, block);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("grid.y evaluates to 0"), std::string::npos);
  seqLen = -3;
  s = Manifest::launchShape(m.kernels[1], params, grid, block);
  EXPECT_NE(s.message().find("seq_len is negative"), std::string::npos);
  params[2] = nullptr;
  EXPECT_EQ(Manifest::launchShape(m.kernels[1], params, grid, block).code(),
            StatusCode::InvalidArgument);
}

TEST_F(BundleTest, WrongAbiIsRejectedFirst) {
  std::unique_ptr<KernelBundle> bundle;
  // Even with a broken layout, the ABI error is reported.
  CacheLayout other = layout_;
  other.pageSize = 8;
  Status s = load(manifestText(other, 2), bundle);
  EXPECT_EQ(s.code(), StatusCode::AbiMismatch);
  EXPECT_EQ(s.message(), "bundle ABI version 2 does not match the runtime's "
                         "ABI version 1");
  EXPECT_EQ(bundle, nullptr);
  s = load(R"({"abi_version": "1"})", bundle);
  EXPECT_EQ(s.code(), StatusCode::ParseError);
}

TEST_F(BundleTest, LayoutMismatchNamesTheField) {
  std::unique_ptr<KernelBundle> bundle;
  CacheLayout other = layout_;
  other.headDim = 8;
  Status s = load(manifestText(other), bundle);
  EXPECT_EQ(s.code(), StatusCode::LayoutMismatch);
  EXPECT_EQ(s.message(), "cache layout mismatch: head_dim is 8 in the bundle "
                         "but 4 in the pool");
  other = layout_;
  other.value = QuantEncoding();
  s = load(manifestText(other), bundle);
  EXPECT_NE(s.message().find("value is quantized in the bundle but null"),
            std::string::npos)
      << s.message();
}

TEST_F(BundleTest, LoadErrors) {
  std::unique_ptr<KernelBundle> bundle;
  Status s = KernelBundle::load(dir_.path() + "/missing.json", layout_,
                                *backend_, bundle);
  EXPECT_EQ(s.code(), StatusCode::IoError);
  s = load(manifestText(layout_, 1, "no-such-kernels.so"), bundle);
  EXPECT_EQ(s.code(), StatusCode::IoError);
  EXPECT_NE(s.message().find(dir_.path() + "/no-such-kernels.so"),
            std::string::npos)
      << s.message(); // relative to the manifest's folder
  s = load(manifestText(layout_, 1, KVOPT_RT_TEST_KERNELS, "ptx"), bundle);
  EXPECT_EQ(s.code(), StatusCode::InvalidArgument);
  EXPECT_NE(s.message().find("cpu cannot run bundle format \"ptx\""),
            std::string::npos);
  std::string text = manifestText(layout_);
  text.replace(text.find("kvopt_test_axpy"), 15, "kvopt_test_nope");
  s = load(text, bundle);
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_EQ(s.message(),
            "kernel axpy: CPU kernel symbol kvopt_test_nope not found");
  EXPECT_EQ(bundle, nullptr);
}

struct BadManifest {
  const char *from;
  const char *to;
  const char *messagePart;
};

class ManifestErrorTest : public ::testing::TestWithParam<BadManifest> {};

// Schema errors name the path of the bad field.
TEST_P(ManifestErrorTest, Rejected) {
  std::string text = manifestText(smallLayout(4));
  size_t at = text.find(GetParam().from);
  ASSERT_NE(at, std::string::npos) << GetParam().from;
  text.replace(at, std::strlen(GetParam().from), GetParam().to);
  Manifest m;
  Status s = Manifest::parse(text, m);
  EXPECT_EQ(s.code(), StatusCode::ParseError);
  EXPECT_NE(s.message().find(GetParam().messagePart), std::string::npos)
      << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Schema, ManifestErrorTest,
    ::testing::Values(
        BadManifest{"\"target\": \"cpu\",", "", "manifest.target: missing"},
        BadManifest{"\"target\": \"cpu\",",
                    "\"target\": \"cpu\", \"targte\": 1,",
                    "manifest.targte: unknown field"},
        BadManifest{"\"type\": \"f32\"", "\"type\": \"f64\"",
                    "kernels[0].args[2].type: \"f64\" is not one of"},
        BadManifest{"{\"name\": \"x\", \"type\": \"ptr\"}",
                    "{\"name\": \"y\", \"type\": \"ptr\"}",
                    "args[1].name: duplicate argument y"},
        BadManifest{"\"name\": \"kvopt_test_gather_keys\"",
                    "\"name\": \"axpy\"",
                    "kernels[1].name: duplicate kernel axpy"},
        BadManifest{"{\"arg\": \"n\", \"ceil_div\": 128}", "{\"arg\": \"a\"}",
                    "launch.grid[0]: argument a is not an integer"},
        BadManifest{"{\"arg\": \"n\", \"ceil_div\": 128}", "{\"arg\": \"m\"}",
                    "launch.grid[0]: no argument named m"},
        BadManifest{"{\"arg\": \"n\", \"ceil_div\": 128}",
                    "{\"arg\": \"n\", \"ceil_div\": 0}", "must be >= 1"},
        BadManifest{"\"block\": [128]", "\"block\": [0]",
                    "launch.block[0]: constant must be in"},
        BadManifest{"\"block\": [128]", "\"block\": [1, 1, 1, 1]",
                    "launch.block: expected an array of 1 to 3"},
        BadManifest{"\"page_size\":4", "\"page_size\":\"4\"",
                    "manifest.cache_layout.page_size"},
        BadManifest{"\"kernels\": [", "\"kernels\": [], \"x\": [",
                    "manifest.x: unknown field"},
        BadManifest{"\"binary\": \"", "\"binary\": \"\", \"b\": \"",
                    "manifest.b: unknown field"}));

TEST_F(BundleTest, CpuLaunchRunsTheKernel) {
  std::unique_ptr<KernelBundle> bundle;
  ASSERT_RT_OK(load(manifestText(layout_), bundle));
  std::vector<float> y(300, 1.0f), x(300);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i);
  float *yp = y.data();
  const float *xp = x.data();
  float a = 2.0f;
  int32_t n = 300;
  void *params[] = {&yp, &xp, &a, &n};
  ASSERT_RT_OK(bundle->launch("axpy", params));
  for (size_t i = 0; i < y.size(); ++i)
    ASSERT_EQ(y[i], 1.0f + 2.0f * float(i));
  EXPECT_EQ(bundle->launch("nope", params).code(), StatusCode::NotFound);
  EXPECT_EQ(bundle->launch("axpy", nullptr).code(),
            StatusCode::InvalidArgument);
  StreamHandle stream = nullptr;
  ASSERT_RT_OK(backend_->createStream(stream));
  ASSERT_RT_OK(bundle->launch("axpy", params, stream));
  ASSERT_RT_OK(backend_->synchronize(stream));
  ASSERT_RT_OK(backend_->destroyStream(stream));
  EXPECT_EQ(y[1], 5.0f);
}

// A CPU kernel reads K rows of a sequence through the pool's block table,
// after a fork and copy-on-write shuffled its pages.
TEST_F(BundleTest, CpuKernelReadsPoolThroughBlockTable) {
  auto pool = makePool(layout_, 8);
  std::unique_ptr<KernelBundle> bundle;
  ASSERT_RT_OK(load(manifestText(layout_), bundle));
  SequenceId parent, child;
  ASSERT_RT_OK(pool->createSequence(parent));
  ASSERT_RT_OK(pool->appendTokens(parent, 6));
  ASSERT_RT_OK(pool->fork(parent, child));
  ASSERT_RT_OK(pool->appendTokens(child, 5));
  uint32_t len = 0;
  ASSERT_RT_OK(pool->length(child, len));
  SlotAddress slot;
  for (uint32_t t = 0; t < len; ++t) {
    ASSERT_RT_OK(pool->slotAddress(child, t, 0, Component::Key, slot));
    std::memset(reinterpret_cast<void *>(slot.data), int(t + 1),
                slot.dataBytes);
  }
  std::vector<int32_t> table;
  ASSERT_RT_OK(pool->blockTable(child, table));
  void *base = reinterpret_cast<void *>(pool->pageAddress(0, 0));
  const int32_t *tableData = table.data();
  int32_t seqLen = int32_t(len), pageSize = 4;
  int64_t pageBytes = int64_t(pool->cachePageBytes());
  int64_t rowBytes = int64_t(slot.dataBytes);
  std::vector<uint8_t> out(len * rowBytes);
  uint8_t *outData = out.data();
  void *params[] = {&base,      &tableData, &seqLen, &pageSize,
                    &pageBytes, &rowBytes,  &outData};
  ASSERT_RT_OK(bundle->launch("kvopt_test_gather_keys", params));
  for (uint32_t t = 0; t < len; ++t)
    for (int64_t b = 0; b < rowBytes; ++b)
      ASSERT_EQ(out[t * rowBytes + b], t + 1) << "token " << t;
}

/// Records launches instead of running them: stands in for an executor
/// registered from outside the runtime (e.g. the SIMT emulator).
class RecordingBackend final : public LaunchBackend {
public:
  static int launches;
  static Dim3 lastGrid;
  const char *name() const override { return "recording"; }
  bool acceptsFormat(const std::string &f) const override {
    return f == "simt";
  }
  Status loadModule(const std::string &, ModuleHandle &out) override {
    out = this;
    return Status::ok();
  }
  void unloadModule(ModuleHandle) override {}
  Status getKernel(ModuleHandle, const std::string &symbol,
                   KernelHandle &out) override {
    out = reinterpret_cast<KernelHandle>(symbol.size());
    return Status::ok();
  }
  Status launch(KernelHandle, Dim3 grid, Dim3, uint32_t, void **,
                StreamHandle) override {
    ++launches;
    lastGrid = grid;
    return Status::ok();
  }
};
int RecordingBackend::launches = 0;
Dim3 RecordingBackend::lastGrid;

TEST_F(BundleTest, RegistryAcceptsNewBackends) {
  std::unique_ptr<LaunchBackend> backend;
  Status s = createLaunchBackend("simt-test", 0, backend);
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_NE(s.message().find("known: cpu, cuda"), std::string::npos);
  ASSERT_RT_OK(registerLaunchBackend(
      "simt-test", [](int, std::unique_ptr<LaunchBackend> &out) {
        out = std::make_unique<RecordingBackend>();
        return Status::ok();
      }));
  EXPECT_EQ(registerLaunchBackend("simt-test",
                                  [](int, std::unique_ptr<LaunchBackend> &) {
                                    return Status::ok();
                                  })
                .code(),
            StatusCode::InvalidArgument);
  EXPECT_EQ(registerLaunchBackend("", nullptr).code(),
            StatusCode::InvalidArgument);
  ASSERT_RT_OK(createLaunchBackend("simt-test", 0, backend));
  std::unique_ptr<KernelBundle> bundle;
  ASSERT_RT_OK(KernelBundle::load(
      dir_.write("simt.json", manifestText(layout_, 1, "k.bin", "simt")),
      layout_, *backend, bundle));
  int32_t n = 1000;
  void *params[] = {nullptr, nullptr, nullptr, &n};
  ASSERT_RT_OK(bundle->launch("axpy", params));
  EXPECT_EQ(RecordingBackend::launches, 1);
  EXPECT_EQ(RecordingBackend::lastGrid.x, 8u);
  std::vector<std::string> names = launchBackendNames();
  EXPECT_EQ(names, (std::vector<std::string>{"cpu", "cuda", "simt-test"}));
  std::unique_ptr<LaunchBackend> cpu;
  ASSERT_RT_OK(createLaunchBackend("cpu", 0, cpu));
  EXPECT_STREQ(cpu->name(), "cpu");
}

TEST_F(BundleTest, CpuBackendRejectsBadLaunches) {
  KernelHandle kernel = nullptr;
  EXPECT_EQ(
      backend_
          ->launch(kernel, Dim3{1, 1, 1}, Dim3{1, 1, 1}, 0, nullptr, nullptr)
          .code(),
      StatusCode::InvalidArgument);
  EXPECT_EQ(
      backend_
          ->launch(kernel, Dim3{0, 1, 1}, Dim3{1, 1, 1}, 0, nullptr, nullptr)
          .code(),
      StatusCode::InvalidArgument);
}

} // namespace
