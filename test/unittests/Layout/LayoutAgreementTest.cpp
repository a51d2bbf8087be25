//===- LayoutAgreementTest.cpp - compiler and runtime agree on bytes ----===//
//
// Random cache types go through kv-export-layout into the runtime's layout
// parser; bytes per token, fixed bytes and page bytes must agree exactly.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVOps.h"
#include "kvopt/InitAll.h"
#include "kvopt/Transforms/Passes.h"
#include "kvopt/runtime/layout.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "gtest/gtest.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

using namespace mlir;
using namespace kvopt::kv;

namespace {

class LayoutAgreementTest : public ::testing::TestWithParam<uint64_t> {
protected:
  LayoutAgreementTest() {
    DialectRegistry registry;
    kvopt::registerAllDialects(registry);
    registry.insert<func::FuncDialect>();
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }

  template <typename T> T pick(std::mt19937_64 &rng, std::vector<T> values) {
    return values[rng() % values.size()];
  }

  /// A random valid encoding for rows of `rowWidth` elements in pages of
  /// `pageSize` tokens, or null (full precision).
  QuantAttr randomQuant(std::mt19937_64 &rng, int64_t rowWidth,
                        int64_t pageSize) {
    if (rng() % 4 == 0)
      return {};
    auto kind =
        pick(rng, std::vector<QuantKind>{QuantKind::Int8, QuantKind::FP8E4M3,
                                         QuantKind::Int4, QuantKind::Int2});
    Type scale = pick(rng, std::vector<Type>{b.getF16Type(), b.getBF16Type(),
                                             b.getF32Type()});
    bool symmetric = kind == QuantKind::FP8E4M3 || rng() % 2;
    int64_t sinks = pick(rng, std::vector<int64_t>{0, 0, 4});
    if (rng() % 2) {
      // Per channel: the token group divides the page, the recent window
      // holds an incomplete group.
      std::vector<int64_t> groups;
      for (int64_t g = 1; g <= pageSize; ++g)
        if (pageSize % g == 0)
          groups.push_back(g);
      int64_t group = pick(rng, groups);
      return QuantAttr::get(&ctx, kind, ScaleAxis::Channel, group, symmetric,
                            scale, group - 1 + int64_t(rng() % 3), sinks);
    }
    std::vector<int64_t> groups{0};
    for (int64_t g = 4; g <= rowWidth; g *= 2)
      if (rowWidth % g == 0)
        groups.push_back(g);
    return QuantAttr::get(&ctx, kind, ScaleAxis::Token, pick(rng, groups),
                          symmetric, scale, int64_t(rng() % 40), sinks);
  }

  /// Runs kv-export-layout on a module with `layers` arguments of `type`
  /// and parses the result with the runtime.
  kvopt::rt::CacheLayout exportLayout(Type type, int layers) {
    OpBuilder builder(&ctx);
    auto module = ModuleOp::create(builder.getUnknownLoc());
    builder.setInsertionPointToEnd(module.getBody());
    SmallVector<Type> inputs(layers, type);
    auto func = func::FuncOp::create(builder, builder.getUnknownLoc(), "f",
                                     builder.getFunctionType(inputs, {}));
    func.addEntryBlock();
    builder.setInsertionPointToEnd(&func.front());
    func::ReturnOp::create(builder, builder.getUnknownLoc());

    std::string path = testing::TempDir() + "kvopt-layout-" +
                       std::to_string(GetParam()) + ".json";
    PassManager pm(&ctx);
    kvopt::KVExportLayoutOptions options;
    options.output = path;
    pm.addPass(kvopt::createKVExportLayout(options));
    EXPECT_TRUE(succeeded(pm.run(module)));
    module->erase();
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    kvopt::rt::CacheLayout layout;
    kvopt::rt::Status status =
        kvopt::rt::CacheLayout::fromJson(text.str(), layout);
    EXPECT_TRUE(status.isOk()) << status.toString() << "\n" << text.str();
    return layout;
  }

  MLIRContext ctx;
  Builder b{&ctx};
};

TEST_P(LayoutAgreementTest, RandomCachesAgree) {
  std::mt19937_64 rng(GetParam());
  for (int iteration = 0; iteration < 40; ++iteration) {
    int64_t pageSize = pick(rng, std::vector<int64_t>{1, 16, 32, 64, 256});
    auto layout = LayoutAttr::get(&ctx, LayoutKind::Paged, pageSize);
    Type element = pick(rng, std::vector<Type>{b.getF16Type(), b.getBF16Type(),
                                               b.getF32Type()});
    Type type;
    if (rng() % 3 == 0) {
      int64_t latent = pick(rng, std::vector<int64_t>{128, 512});
      int64_t rope = pick(rng, std::vector<int64_t>{0, 64});
      type = LatentCacheType::get(latent, rope, 4096, element, layout,
                                  randomQuant(rng, latent + rope, pageSize));
    } else {
      int64_t heads = pick(rng, std::vector<int64_t>{1, 2, 8, 32});
      int64_t dim = pick(rng, std::vector<int64_t>{64, 80, 96, 128, 256});
      type = CacheType::get(heads, dim, 4096, element, layout,
                            randomQuant(rng, dim, pageSize),
                            randomQuant(rng, dim, pageSize));
    }
    auto cache = cast<KVCacheTypeInterface>(type);
    int layers = 1 + int(rng() % 3);
    std::string typeText;
    llvm::raw_string_ostream(typeText) << type;
    SCOPED_TRACE(testing::Message()
                 << "seed " << GetParam() << " type " << typeText);
    kvopt::rt::CacheLayout rt = exportLayout(type, layers);
    EXPECT_EQ(rt.numCaches(), uint32_t(layers));
    EXPECT_DOUBLE_EQ(rt.cacheBytesPerToken(), cache.getBytesPerToken());
    EXPECT_EQ(int64_t(rt.cacheFixedBytesPerSequence()),
              cache.getFixedBytesPerSequence());
    EXPECT_DOUBLE_EQ(double(rt.pageBytes()),
                     double(pageSize) * cache.getBytesPerToken());
  }
}

/// Fixed seeds, plus one from KVOPT_TEST_SEED when set.
std::vector<uint64_t> seeds() {
  std::vector<uint64_t> result{1, 2, 3};
  if (const char *env = std::getenv("KVOPT_TEST_SEED"))
    result.push_back(std::strtoull(env, nullptr, 10));
  return result;
}

INSTANTIATE_TEST_SUITE_P(Seeds, LayoutAgreementTest,
                         ::testing::ValuesIn(seeds()));

} // namespace
