//===- FuseAppend.cpp - kv-fuse-append: RoPE + quantize + append --------===//
//
// Folds rotary embedding of appended keys into kv.append, so rotation,
// quantization and the page scatter run as one kernel.
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kvopt {
#define GEN_PASS_DEF_KVFUSEAPPEND
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

/// True when two position vectors are known to be equal: the same value, or
/// equal constants.
bool samePositions(Value a, Value b) {
  if (a == b)
    return true;
  DenseElementsAttr ca, cb;
  return matchPattern(a, m_Constant(&ca)) && matchPattern(b, m_Constant(&cb)) &&
         ca == cb;
}

/// kv.append(kv.rope(k, pos){theta}) at pos -> kv.append(k) {rope_theta}.
struct FoldRopeIntoAppend : public OpRewritePattern<AppendOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AppendOp append,
                                PatternRewriter &rewriter) const override {
    if (append.getRopeTheta())
      return rewriter.notifyMatchFailure(append, "already rotates its keys");
    auto rope = append.getKeys().getDefiningOp<RopeOp>();
    if (!rope)
      return rewriter.notifyMatchFailure(append, "keys are not from kv.rope");
    if (!rope->hasOneUse())
      return rewriter.notifyMatchFailure(append, "rotated keys used elsewhere");
    if (!samePositions(rope.getPositions(), append.getPositions()))
      return rewriter.notifyMatchFailure(append, "rope at other positions");
    // A latent cache rotates only the rope part of each row; kv.rope rotates
    // whole rows, so only per-head caches fold.
    if (!isa<CacheType>(append.getCache().getType()))
      return rewriter.notifyMatchFailure(append, "not a per-head cache");
    rewriter.modifyOpInPlace(append, [&] {
      append.getKeysMutable().assign(rope.getInput());
      append.setRopeThetaAttr(rope.getThetaAttr());
    });
    rewriter.eraseOp(rope);
    return success();
  }
};

struct FuseAppendPass : public kvopt::impl::KVFuseAppendBase<FuseAppendPass> {
  using Base::Base;

  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FoldRopeIntoAppend>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
