//===- KVTypesTest.cpp - cache type queries -----------------------------===//
//
// Bytes per token and related queries of the cache types, checked against
// values computed by hand from docs/CacheLayout.md.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVOps.h"
#include "kvopt/InitAll.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"

#include "gtest/gtest.h"

using namespace mlir;
using namespace kvopt::kv;

namespace {

class KVTypesTest : public ::testing::Test {
protected:
  KVTypesTest() {
    DialectRegistry registry;
    kvopt::registerAllDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }

  QuantAttr quant(QuantKind kind, ScaleAxis axis, int64_t group, bool symmetric,
                  Type scale, int64_t recent = 0, int64_t sinks = 0) {
    return QuantAttr::get(&ctx, kind, axis, group, symmetric, scale, recent,
                          sinks);
  }

  LayoutAttr paged(int64_t pageSize) {
    return LayoutAttr::get(&ctx, LayoutKind::Paged, pageSize);
  }

  MLIRContext ctx;
  Builder b{&ctx};
};

TEST_F(KVTypesTest, FullPrecisionBytesPerToken) {
  // Llama-2-7B layer: 32 KV heads x 128, f16: 2 * 32 * 128 * 2.
  EXPECT_EQ(CacheType::get(32, 128, 4096, b.getF16Type()).getBytesPerToken(),
            16384.0);
  // Llama-3-8B layer: 8 KV heads x 128, f16.
  EXPECT_EQ(CacheType::get(8, 128, 8192, b.getF16Type()).getBytesPerToken(),
            4096.0);
  // MQA, f32: 2 * 1 * 64 * 4.
  EXPECT_EQ(CacheType::get(1, 64, 16, b.getF32Type()).getBytesPerToken(),
            512.0);
  // Paging does not change the per-token cost.
  EXPECT_EQ(CacheType::get(8, 128, 8192, b.getBF16Type(), paged(16))
                .getBytesPerToken(),
            4096.0);
}

TEST_F(KVTypesTest, KiviInt4BytesPerToken) {
  // K int4 per channel, 32-token groups, f16 asymmetric:
  //   data 1024 * 4 / 8 = 512, scales + zeros 1024 * 2 * 2 / 32 = 128.
  // V int4 per token, 32-channel groups, f16 asymmetric:
  //   data 512, scales + zeros (1024 / 32) * 2 * 2 = 128.
  auto k =
      quant(QuantKind::Int4, ScaleAxis::Channel, 32, false, b.getF16Type());
  auto v = quant(QuantKind::Int4, ScaleAxis::Token, 32, false, b.getF16Type());
  auto type = CacheType::get(8, 128, 4096, b.getF16Type(), paged(32), k, v);
  EXPECT_EQ(type.getBytesPerToken(), 1280.0);
  EXPECT_EQ(type.getFixedBytesPerSequence(), 0);
}

TEST_F(KVTypesTest, Int8WholeHeadScales) {
  // int8 per token, one f32 scale per head: 2 * (1024 + 8 * 4).
  auto q = quant(QuantKind::Int8, ScaleAxis::Token, 0, true, b.getF32Type());
  EXPECT_EQ(
      CacheType::get(8, 128, 4096, b.getF16Type(), {}, q, q).getBytesPerToken(),
      2112.0);
}

TEST_F(KVTypesTest, FractionalPerChannelScales) {
  // int2 keys per channel over 3-token groups, bf16 symmetric scales:
  // data 2 * 64 * 2 / 8 = 32, scales 128 * 2 / 3; values full bf16: 256.
  auto k = quant(QuantKind::Int2, ScaleAxis::Channel, 3, true, b.getBF16Type());
  auto type = CacheType::get(2, 64, 99, b.getBF16Type(), {}, k, {});
  EXPECT_DOUBLE_EQ(type.getBytesPerToken(), 32.0 + 256.0 / 3.0 + 256.0);
}

TEST_F(KVTypesTest, FullPrecisionWindowsAreFixedPerSequence) {
  // 128 recent + 4 sink tokens of K and of V in f16: 2 * 132 * 1024 * 2.
  auto q = quant(QuantKind::Int4, ScaleAxis::Token, 64, true, b.getF16Type(),
                 128, 4);
  auto type = CacheType::get(8, 128, 4096, b.getF16Type(), {}, q, q);
  EXPECT_EQ(type.getFixedBytesPerSequence(), 2 * 132 * 1024 * 2);
  EXPECT_EQ(type.getBytesPerToken(), 2.0 * (512 + 16 * 2));
}

TEST_F(KVTypesTest, LatentBytesPerToken) {
  // DeepSeek MLA: 512 + 64, bf16.
  auto mla = LatentCacheType::get(512, 64, 4096, b.getBF16Type());
  EXPECT_EQ(mla.getBytesPerToken(), 1152.0);
  EXPECT_EQ(mla.getRowWidth(), 576);
  // fp8 with one f32 scale per row: 576 + 4.
  auto fp8 =
      quant(QuantKind::FP8E4M3, ScaleAxis::Token, 0, true, b.getF32Type());
  EXPECT_EQ(mla.cloneWithQuant(fp8).getBytesPerToken(), 580.0);
}

TEST_F(KVTypesTest, PagesPerSequence) {
  auto type = cast<KVCacheTypeInterface>(
      Type(CacheType::get(8, 128, 100, b.getF16Type(), paged(16))));
  EXPECT_TRUE(type.isPaged());
  EXPECT_EQ(type.getPageSize(), 16);
  EXPECT_EQ(type.getMaxPagesPerSequence(), 7);
  auto contiguous =
      type.cloneWithLayout(LayoutAttr::get(&ctx, LayoutKind::Contiguous, 0));
  EXPECT_FALSE(contiguous.isPaged());
  EXPECT_EQ(contiguous.getMaxPagesPerSequence(), 0);
}

TEST_F(KVTypesTest, QuantStorageTypes) {
  auto f16 = b.getF16Type();
  EXPECT_TRUE(quant(QuantKind::Int8, ScaleAxis::Token, 0, true, f16)
                  .getStorageType()
                  .isInteger(8));
  EXPECT_TRUE(isa<Float8E4M3FNType>(
      quant(QuantKind::FP8E4M3, ScaleAxis::Token, 0, true, f16)
          .getStorageType()));
  EXPECT_TRUE(quant(QuantKind::Int4, ScaleAxis::Token, 0, true, f16)
                  .getStorageType()
                  .isInteger(4));
  EXPECT_EQ(quant(QuantKind::Int2, ScaleAxis::Token, 0, true, f16).getBits(),
            2u);
}

TEST_F(KVTypesTest, ParsePrintRoundTrip) {
  const char *text =
      "!kv.cache<kv_heads = 4, head_dim = 64, capacity = 1000, element = f16, "
      "layout = #kv.layout<paged, page_size = 8>, key = #kv.quant<int4, axis "
      "= channel, group = 8, symmetric = false, recent = 8>, value = "
      "#kv.quant<int8, "
      "scale = f32>>";
  Type type = parseType(text, &ctx);
  ASSERT_TRUE(type);
  std::string printed;
  llvm::raw_string_ostream os(printed);
  os << type;
  EXPECT_EQ(printed, text);
  EXPECT_EQ(parseType(printed, &ctx), type);
}

TEST_F(KVTypesTest, VerifierRejectsBadGroups) {
  std::string message;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  Type bad = parseType("!kv.cache<kv_heads = 8, head_dim = 128, capacity = "
                       "64, element = f16, value = #kv.quant<int8, group = "
                       "48>>",
                       &ctx);
  EXPECT_FALSE(bad);
  EXPECT_EQ(message, "value encoding group size 48 does not divide head dim "
                     "128");
}

} // namespace
