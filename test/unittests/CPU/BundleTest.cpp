//===- BundleTest.cpp - CPU kernels as runtime kernel bundles -------------===//
//
// writeCPUBundle's shared objects and manifests, loaded by the runtime's
// KernelBundle on its "cpu" launch backend: attention, append and MLA
// against the reference through the bundle (Executor::Bundle), results as
// out-parameters, the manifest's contract, and the errors of modules the
// kernel ABI cannot express.
//
//===----------------------------------------------------------------------===//

#include "AttentionCases.h"

#include "kvopt/runtime/bundle.h"

#include "llvm/Support/JSON.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace kvopt;
using namespace kvopt::cputest;

namespace {

std::string readText(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string tempDir(const std::string &what) {
  return testing::TempDir() + "kvopt-cpu-bundle-" + what + "-" +
         std::to_string(getpid());
}

/// The error text of writeCPUBundle on `source`, or "" if it succeeded.
std::string bundleError(const std::string &source,
                        const std::string &linker = "") {
  CPUBundleOptions where;
  where.outDir = tempDir("bad");
  where.linker = linker;
  auto manifest = writeCPUBundle(source, {}, where);
  if (manifest)
    return "";
  return llvm::toString(manifest.takeError());
}

} // namespace

TEST(CPUBundle, AttentionMatchesReference) {
  // Shuffled pages of 16 and of 1, lengths not a multiple of the page,
  // quantized and full-precision caches, GQA, causal prefill rows.
  AttentionCase c;
  c.executor = Executor::Bundle;
  c.cache.kvHeads = 2;
  c.cache.headDim = 128;
  c.cache.capacity = 150;
  c.cache.pageSize = 16;
  c.batch = 3;
  c.queryHeads = 8;
  for (auto &[name, q] : encodingZoo(128)) {
    if (name != "int8_tok" && name != "int4_tok_g_asym" &&
        name != "int4_ch16_asym_recent")
      continue;
    SCOPED_TRACE(name);
    c.cache.key = c.cache.value = q;
    for (uint64_t seed : testSeeds())
      runAttention(c, seed);
  }
  c.cache.key.reset();
  c.cache.value.reset();
  c.cache.pageSize = 1;
  c.cache.headDim = 64;
  c.queryRows = 3;
  c.causal = true;
  for (uint64_t seed : testSeeds())
    runAttention(c, seed);
}

TEST(CPUBundle, SplitKVOnWorkerThreads) {
  // The function runs its own split-KV tasks on the async runtime's
  // workers inside one launch.
  AttentionCase c;
  c.executor = Executor::Bundle;
  c.cache.kvHeads = 2;
  c.cache.headDim = 64;
  c.cache.capacity = 1000;
  c.cache.pageSize = 64;
  c.batch = 2;
  c.lengths = {999, 333};
  c.compile.splits = 4;
  c.compile.threads = 2;
  for (uint64_t seed : testSeeds())
    runAttention(c, seed);
}

TEST(CPUBundle, AppendWritesReferencePages) {
  AppendCase c;
  c.executor = Executor::Bundle;
  c.cache.kvHeads = 2;
  c.cache.headDim = 64;
  c.cache.capacity = 96;
  c.cache.pageSize = 16;
  c.cache.key = c.cache.value = encodingZoo(64)[0].second;
  c.tokens = 5;
  for (uint64_t seed : testSeeds())
    runAppend(c, seed);
}

TEST(CPUBundle, LatentAttentionMatchesReference) {
  MLACase c;
  c.executor = Executor::Bundle;
  c.capacity = 130;
  c.pageSize = 16;
  c.batch = 2;
  c.heads = 8;
  for (uint64_t seed : testSeeds())
    runMLA(c, seed);
}

TEST(CPUBundle, ResultsBecomeOutParameters) {
  // @attn returns its output; @attn_dps writes into an argument. Both are
  // kernels of one bundle, and on the same inputs write the same bytes
  // (@attn_dps's path is checked against the reference above).
  CacheSpec cs;
  cs.kvHeads = 2;
  cs.headDim = 64;
  cs.capacity = 64;
  cs.pageSize = 16;
  cs.key = cs.value = encodingZoo(64)[0].second;
  int64_t b = 2, hq = 4, d = 64;
  std::string q = "2x4x1x64xf16", cache = cs.mlirType();
  std::ostringstream src;
  src << "func.func @attn(%q: tensor<" << q << ">, %c: " << cache
      << ", %lens: tensor<2xi32>, %bt: tensor<2x4xi32>) -> tensor<" << q
      << "> {\n"
      << "  %o = kv.attention %q, %c, %lens block_table %bt : (tensor<" << q
      << ">, " << cache << ", tensor<2xi32>, tensor<2x4xi32>) -> tensor<" << q
      << ">\n  return %o : tensor<" << q << ">\n}\n"
      << "func.func @attn_dps(%q: memref<" << q << ">, %c: " << cache
      << ", %lens: memref<2xi32>, %bt: memref<2x4xi32>, %out: memref<" << q
      << ">) {\n"
      << "  %qt = bufferization.to_tensor %q restrict : memref<" << q
      << "> to tensor<" << q << ">\n"
      << "  %lt = bufferization.to_tensor %lens restrict : memref<2xi32> to "
         "tensor<2xi32>\n"
      << "  %bt2 = bufferization.to_tensor %bt restrict : memref<2x4xi32> to "
         "tensor<2x4xi32>\n"
      << "  %o = kv.attention %qt, %c, %lt block_table %bt2 : (tensor<" << q
      << ">, " << cache << ", tensor<2xi32>, tensor<2x4xi32>) -> tensor<" << q
      << ">\n"
      << "  bufferization.materialize_in_destination %o in restrict writable "
         "%out : (tensor<"
      << q << ">, memref<" << q << ">) -> ()\n  return\n}\n";

  CPUBundleOptions where;
  where.outDir = tempDir("out-params");
  auto manifestPath = writeCPUBundle(src.str(), {}, where);
  ASSERT_TRUE(static_cast<bool>(manifestPath))
      << llvm::toString(manifestPath.takeError());

  // The manifest: ABI version, format, one kernel per public function, the
  // expanded arguments named after their function argument or result.
  auto manifest = llvm::json::parse(readText(*manifestPath));
  ASSERT_TRUE(static_cast<bool>(manifest))
      << llvm::toString(manifest.takeError());
  const llvm::json::Object &m = *manifest->getAsObject();
  EXPECT_EQ(*m.getInteger("abi_version"), int64_t(rt::kKernelAbiVersion));
  EXPECT_EQ(kCPUBundleAbiVersion, int64_t(rt::kKernelAbiVersion));
  EXPECT_EQ(*m.getString("format"), "so");
  EXPECT_TRUE(m.getString("target")->starts_with("cpu-"));
  std::map<std::string, std::vector<std::string>> argNames;
  for (const llvm::json::Value &k : *m.getArray("kernels")) {
    const llvm::json::Object &kernel = *k.getAsObject();
    std::string name = kernel.getString("name")->str();
    EXPECT_EQ(kernel.getString("symbol")->str(), "kvopt_entry_" + name);
    for (const llvm::json::Value &a : *kernel.getArray("args"))
      argNames[name].push_back(a.getAsObject()->getString("name")->str());
  }
  ASSERT_EQ(argNames.size(), 2u);
  // q (rank 4: 11 values), cache (5), lens (5), block table (7), result0.
  std::vector<std::string> &attn = argNames["attn"];
  ASSERT_EQ(attn.size(), 11u + 5 + 5 + 7 + 11);
  EXPECT_EQ(attn[0], "arg0_alloc");
  EXPECT_EQ(attn[1], "arg0");
  EXPECT_EQ(attn[3], "arg0_size0");
  EXPECT_EQ(attn[10], "arg0_stride3");
  EXPECT_EQ(attn[11], "arg1_alloc");
  EXPECT_EQ(attn[15], "arg1_stride");
  EXPECT_EQ(attn[28], "result0_alloc");
  EXPECT_EQ(argNames["attn_dps"][28], "arg4_alloc");

  rt::CacheLayout layout;
  ASSERT_TRUE(
      rt::CacheLayout::fromJson(readText(where.outDir + "/layout.json"), layout)
          .isOk());
  auto backend = rt::createCpuLaunchBackend();
  std::unique_ptr<rt::KernelBundle> bundle;
  // A pool of another page size is refused before anything is loaded.
  rt::CacheLayout other = layout;
  other.pageSize = 32;
  rt::Status s = rt::KernelBundle::load(*manifestPath, other, *backend, bundle);
  EXPECT_EQ(s.code(), rt::StatusCode::LayoutMismatch) << s.toString();
  EXPECT_FALSE(bundle);
  s = rt::KernelBundle::load(*manifestPath, layout, *backend, bundle);
  ASSERT_TRUE(s.isOk()) << s.toString();

  std::mt19937_64 rng(11);
  BlockTable table = makeTable(rng, cs, b);
  Tensor k = randomTensor(rng, {b, cs.kvHeads, cs.capacity, d}, cs.element);
  Tensor v = randomTensor(rng, {b, cs.kvHeads, cs.capacity, d}, cs.element);
  std::vector<int64_t> lengths = {61, 17};
  CachePool pool = writeCache(cs, table, k, v, lengths);
  std::vector<uint8_t> qBytes = encode(
      randomTensor(rng, {b, hq, 1, d}, ScalarType::F16), ScalarType::F16);
  std::vector<int32_t> lens(lengths.begin(), lengths.end());
  std::vector<uint8_t> returned(qBytes.size(), 0xFF),
      written(qBytes.size(), 0xEE);
  auto launch = [&](const std::string &name, std::vector<uint8_t> &out) {
    std::vector<Desc> descs = {
        makeDesc(qBytes.data(), {b, hq, 1, d}),
        makeDesc(pool.bytes.data(), {int64_t(pool.bytes.size())}),
        makeDesc(lens.data(), {b}),
        makeDesc(pool.tableData.data(), {b, table.maxPages}),
        makeDesc(out.data(), {b, hq, 1, d})};
    std::vector<uint64_t> values;
    std::vector<void *> params = expandedParams(descs, values);
    rt::Status st = bundle->launch(name, params.data());
    EXPECT_TRUE(st.isOk()) << st.toString();
  };
  launch("attn", returned);
  launch("attn_dps", written);
  EXPECT_EQ(returned, written);
  EXPECT_NE(returned, std::vector<uint8_t>(qBytes.size(), 0xFF));
  s = bundle->launch("attention", nullptr);
  EXPECT_EQ(s.code(), rt::StatusCode::NotFound) << s.toString();
}

TEST(CPUBundle, RejectsWhatTheKernelAbiCannotPass) {
  const char *cache =
      "!kv.cache<kv_heads = 1, head_dim = 64, capacity = 64, element = f16>";
  std::string f64Arg =
      std::string("func.func @f(%c: ") + cache + ", %x: f64) {\n  return\n}\n";
  EXPECT_NE(bundleError(f64Arg).find(
                "argument 1 has type 'f64', which the kernel ABI cannot pass"),
            std::string::npos)
      << bundleError(f64Arg);
  std::string unranked = std::string("func.func @f(%c: ") + cache +
                         ", %x: memref<*xf32>) {\n  return\n}\n";
  EXPECT_NE(bundleError(unranked).find(
                "argument 1 has type 'memref<*xf32>', which the kernel ABI "
                "cannot pass"),
            std::string::npos)
      << bundleError(unranked);
  EXPECT_NE(bundleError("func.func @f(%x: memref<4xf32>) {\n  return\n}\n")
                .find("the module has no KV cache"),
            std::string::npos);
  EXPECT_NE(bundleError("func.func @f(").find("cannot parse the module"),
            std::string::npos);
  std::string ok =
      std::string("func.func @f(%c: ") + cache + ") {\n  return\n}\n";
  EXPECT_EQ(bundleError(ok), "");
  EXPECT_NE(bundleError(ok, "kvopt-no-such-compiler")
                .find("C++ compiler 'kvopt-no-such-compiler' not found"),
            std::string::npos);
  // Attributes only the pass may set, malformed in the input.
  std::string spoofed = std::string("func.func @f(%c: ") + cache +
                        ") {\n  return\n}\nllvm.func @x() attributes "
                        "{kv.bundle_kernel = \"x\", kv.bundle_args = "
                        "[{type = \"ptr\"}]} {\n  llvm.return\n}\n";
  EXPECT_NE(bundleError(spoofed).find(
                "@x: kv.bundle_kernel must be a string and kv.bundle_args "
                "an array of {name, type} strings"),
            std::string::npos)
      << bundleError(spoofed);
  std::string onlyPrivate =
      std::string("func.func private @f(%c: ") + cache + ") {\n  return\n}\n";
  EXPECT_NE(bundleError(onlyPrivate).find("no public function"),
            std::string::npos)
      << bundleError(onlyPrivate);
}

TEST(CPUBundle, FailedWriteKeepsTheEarlierBundle) {
  // The files are renamed into place only when the whole bundle is built:
  // a later failure (here the linker) leaves the earlier bundle intact.
  const char *cache =
      "!kv.cache<kv_heads = 1, head_dim = 64, capacity = 64, element = f16>";
  std::string ok =
      std::string("func.func @f(%c: ") + cache + ") {\n  return\n}\n";
  CPUBundleOptions where;
  where.outDir = tempDir("keep");
  std::filesystem::remove_all(where.outDir);
  auto first = writeCPUBundle(ok, {}, where);
  ASSERT_TRUE(static_cast<bool>(first)) << llvm::toString(first.takeError());
  std::string manifest = readText(*first);
  std::string layout = readText(where.outDir + "/layout.json");
  std::string so = readText(where.outDir + "/kernels.cpu.so");
  ASSERT_FALSE(so.empty());

  std::string other = std::string("func.func @g(%c: ") +
                      "!kv.cache<kv_heads = 2, head_dim = 64, capacity = 64, "
                      "element = f16>) {\n  return\n}\n";
  where.linker = "false";
  auto second = writeCPUBundle(other, {}, where);
  ASSERT_FALSE(static_cast<bool>(second));
  std::string error = llvm::toString(second.takeError());
  EXPECT_NE(error.find("linking"), std::string::npos) << error;
  EXPECT_EQ(readText(*first), manifest);
  EXPECT_EQ(readText(where.outDir + "/layout.json"), layout);
  EXPECT_EQ(readText(where.outDir + "/kernels.cpu.so"), so);

  // And the same folder takes the next good bundle.
  where.linker.clear();
  auto third = writeCPUBundle(other, {}, where);
  ASSERT_TRUE(static_cast<bool>(third)) << llvm::toString(third.takeError());
  EXPECT_NE(readText(*third).find("kvopt_entry_g"), std::string::npos);
  EXPECT_NE(readText(where.outDir + "/layout.json"), layout);
}
