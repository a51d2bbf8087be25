//===- KVOpsTest.cpp - building kv ops from C++ -------------------------===//
//
// Builds kv operations with the C++ API and checks verification and the
// helpers the ops expose.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Dialect/KV/KVOps.h"
#include "kvopt/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mlir;
using namespace kvopt::kv;

namespace {

class KVOpsTest : public ::testing::Test {
protected:
  KVOpsTest() {
    DialectRegistry registry;
    kvopt::registerAllDialects(registry);
    registry.insert<func::FuncDialect, tensor::TensorDialect>();
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
    module = ModuleOp::create(UnknownLoc::get(&ctx));
    b.setInsertionPointToEnd(module->getBody());
  }

  /// A function taking `inputs`, with the builder inside its body.
  func::FuncOp makeFunc(TypeRange inputs) {
    auto func = func::FuncOp::create(b, b.getUnknownLoc(), "f",
                                     b.getFunctionType(inputs, {}));
    Block *body = func.addEntryBlock();
    b.setInsertionPointToEnd(body);
    return func;
  }

  /// Verifies the module and returns the first diagnostic, if any.
  std::string verifyMessage() {
    std::string message;
    ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
      if (message.empty())
        message = diag.str();
      return success();
    });
    (void)verify(*module);
    return message;
  }

  MLIRContext ctx;
  OpBuilder b{&ctx};
  OwningOpRef<ModuleOp> module;
};

TEST_F(KVOpsTest, BuildGroupedAttention) {
  auto cache = CacheType::get(8, 128, 4096, b.getF16Type());
  auto q = RankedTensorType::get({2, 32, 1, 128}, b.getF16Type());
  auto lens = RankedTensorType::get({2}, b.getI32Type());
  func::FuncOp func = makeFunc({q, cache, lens});
  auto attention = AttentionOp::create(
      b, b.getUnknownLoc(), q, /*lse=*/Type(), func.getArgument(0),
      func.getArgument(1), func.getArgument(2), /*block_table=*/Value(),
      /*scale=*/FloatAttr(), /*causal=*/true, /*window=*/IntegerAttr(),
      /*sinks=*/IntegerAttr());
  func::ReturnOp::create(b, b.getUnknownLoc());
  EXPECT_EQ(verifyMessage(), "");
  EXPECT_EQ(attention.getGroupSize(), 4);
  EXPECT_FLOAT_EQ(attention.getScaleOrDefault(), 1.0f / std::sqrt(128.0f));
}

TEST_F(KVOpsTest, AttentionRejectsIndivisibleHeads) {
  auto cache = CacheType::get(8, 128, 4096, b.getF16Type());
  auto q = RankedTensorType::get({2, 30, 1, 128}, b.getF16Type());
  auto lens = RankedTensorType::get({2}, b.getI32Type());
  func::FuncOp func = makeFunc({q, cache, lens});
  AttentionOp::create(b, b.getUnknownLoc(), q, Type(), func.getArgument(0),
                      func.getArgument(1), func.getArgument(2), Value(),
                      FloatAttr(), false, IntegerAttr(), IntegerAttr());
  func::ReturnOp::create(b, b.getUnknownLoc());
  EXPECT_EQ(verifyMessage(), "'kv.attention' op query heads (30) must be a "
                             "multiple of the cache's KV heads (8)");
}

TEST_F(KVOpsTest, PagedAppendNeedsBlockTable) {
  auto cache = CacheType::get(8, 64, 256, b.getF32Type(),
                              LayoutAttr::get(&ctx, LayoutKind::Paged, 16));
  auto rows = RankedTensorType::get({1, 8, 1, 64}, b.getF32Type());
  auto pos = RankedTensorType::get({1}, b.getI32Type());
  auto table = RankedTensorType::get({1, 16}, b.getI32Type());
  func::FuncOp func = makeFunc({cache, pos, rows, table});
  auto append = AppendOp::create(b, b.getUnknownLoc(), func.getArgument(0),
                                 func.getArgument(1), func.getArgument(2),
                                 func.getArgument(2), Value(), FloatAttr());
  func::ReturnOp::create(b, b.getUnknownLoc());
  EXPECT_EQ(verifyMessage(), "'kv.append' op a paged cache needs a block "
                             "table");
  append.getBlockTableMutable().assign(func.getArgument(3));
  EXPECT_EQ(verifyMessage(), "");
}

} // namespace
