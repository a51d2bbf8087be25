//===- MLAToCPU.cpp - kv.mla_project and kv.mla_attention on the CPU ------===//
//
// MLA: the down-projection to the cached latent row, and latent attention
// with absorbed weights (the attention kernel in MQA form over the latent
// cache, each latent row read once for all query heads).
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

namespace {
/// kv.mla_attention -> the attention kernel with key width latent + rope and
/// values the latent prefix of the same row.
struct MLAAttentionLowering : OpConversionPattern<kv::MLAAttentionOp> {
  MLAAttentionLowering(TypeConverter &converter, MLIRContext *ctx,
                       const KernelOptions &options)
      : OpConversionPattern(converter, ctx), options(options) {}

  LogicalResult
  matchAndRewrite(kv::MLAAttentionOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto cacheType = cast<kv::LatentCacheType>(op.getCache().getType());
    auto qType = cast<RankedTensorType>(op.getQLatent().getType());
    if (qType.getNumDynamicDims() > 1 ||
        (qType.getNumDynamicDims() == 1 && !qType.isDynamicDim(0)))
      return rewriter.notifyMatchFailure(op, "only the batch may be dynamic");
    AttentionSpec spec;
    spec.layout = computeCacheLayout(cacheType);
    spec.queryHeads = qType.getDimSize(1);
    spec.queryRows = qType.getDimSize(2);
    spec.kvHeads = 1;
    spec.mla = true;
    spec.latentDim = cacheType.getLatentDim();
    spec.keyDim = cacheType.getRowWidth();
    spec.valueDim = cacheType.getLatentDim();
    spec.queryElement = qType.getElementType();
    spec.outputElement =
        cast<RankedTensorType>(op.getOutput().getType()).getElementType();
    spec.lse = static_cast<bool>(op.getLse());
    spec.causal = op.getCausal();
    spec.scale = op.getScale().convertToDouble();
    spec.splits = chooseSplits(options, cacheType.getCapacity());
    spec.splitTokens = options.splitTokens;
    spec.blockTokens = options.blockTokens;
    spec.vectorBits = options.vectorBits;
    spec.intDots = options.intDots;
    if (cast<RankedTensorType>(op.getQRope().getType()).getElementType() !=
        spec.queryElement)
      return op.emitOpError("the CPU lowering needs q_latent and q_rope of "
                            "one element type");
    SmallVector<Value> results = emitAttentionCall(
        rewriter, op.getLoc(), op->getParentOfType<ModuleOp>(), spec,
        {op.getQLatent(), op.getQRope()}, adaptor.getCache(), op.getSeqLens(),
        op.getBlockTable(), op->getResultTypes());
    rewriter.replaceOp(op, results);
    return success();
  }

  KernelOptions options;
};

/// kv.mla_project -> per token, concat(h . W_dkv, h . W_kr) with f32
/// accumulation vectorized along the output row.
struct MLAProjectLowering : OpConversionPattern<kv::MLAProjectOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::MLAProjectOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto hType = cast<RankedTensorType>(op.getHidden().getType());
    auto dType = cast<RankedTensorType>(op.getWDkv().getType());
    auto rType = cast<RankedTensorType>(op.getWKr().getType());
    auto outType = cast<RankedTensorType>(op.getRow().getType());
    if (!dType.hasStaticShape() || !rType.hasStaticShape() ||
        hType.getNumDynamicDims() > 1 ||
        (hType.getNumDynamicDims() == 1 && !hType.isDynamicDim(0)))
      return rewriter.notifyMatchFailure(op, "only the batch may be dynamic");
    int64_t tokens = hType.getDimSize(1), hidden = hType.getDimSize(2);
    int64_t latent = dType.getDimSize(1), rope = rType.getDimSize(1);
    Location loc = op.getLoc();
    Value h = toBuffer(rewriter, loc, op.getHidden());
    Value wd = toBuffer(rewriter, loc, op.getWDkv());
    Value wr = toBuffer(rewriter, loc, op.getWKr());
    SmallVector<Value> dyn;
    if (hType.isDynamicDim(0))
      dyn.push_back(memref::DimOp::create(rewriter, loc, h, 0));
    Value out = allocLike(rewriter, loc, outType, dyn);
    callKernel(
        rewriter, loc, op->getParentOfType<ModuleOp>(), "mla_project", "",
        {h, wd, wr, out}, [&](ImplicitLocOpBuilder &b, ValueRange a) {
          KB k(b);
          Value batch = memref::DimOp::create(b, a[0], 0);
          Value zero = k.idx(0);
          parallelLoop(b, {batch, k.idx(tokens)}, [&](ValueRange ivs) {
            Value bi = ivs[0], t = ivs[1];
            auto sums = scf::ForOp::create(
                b, zero, k.idx(hidden), k.idx(1),
                ValueRange{k.splat(k.f32(0), latent), k.splat(k.f32(0), rope)},
                [&](OpBuilder &inner, Location, Value i, ValueRange it) {
                  OpBuilder::InsertionGuard g2(b);
                  b.setInsertionPoint(inner.getInsertionBlock(),
                                      inner.getInsertionPoint());
                  Value x = k.toF32(
                      memref::LoadOp::create(b, a[0], ValueRange{bi, t, i}));
                  Value d = k.toF32(vector::LoadOp::create(
                      b, k.vec(latent, dType.getElementType()), a[1],
                      ValueRange{i, zero}));
                  Value r = k.toF32(vector::LoadOp::create(
                      b, k.vec(rope, rType.getElementType()), a[2],
                      ValueRange{i, zero}));
                  scf::YieldOp::create(
                      b,
                      ValueRange{
                          math::FmaOp::create(b, k.splat(x, latent), d, it[0]),
                          math::FmaOp::create(b, k.splat(x, rope), r, it[1])});
                });
            Type e = outType.getElementType();
            vector::StoreOp::create(b, k.fromF32(sums.getResult(0), e), a[3],
                                    ValueRange{bi, t, zero});
            vector::StoreOp::create(b, k.fromF32(sums.getResult(1), e), a[3],
                                    ValueRange{bi, t, k.idx(latent)});
          });
        });
    replaceWithBuffers(rewriter, op, {out});
    return success();
  }
};
} // namespace

void kvopt::cpu::populateMLAToCPUPatterns(TypeConverter &converter,
                                          RewritePatternSet &patterns,
                                          const KernelOptions &options) {
  patterns.add<MLAAttentionLowering>(converter, patterns.getContext(), options);
  patterns.add<MLAProjectLowering>(converter, patterns.getContext());
}
