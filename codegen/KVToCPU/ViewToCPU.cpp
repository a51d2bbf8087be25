//===- ViewToCPU.cpp - kv.view and kv.gather_pages on the CPU -------------===//
//
// Dense reads of a cache (dequantized through the same row loader as
// attention) and the gather of token-major page tensors.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

namespace {
/// kv.view -> every slot of every sequence, dequantized. The op has no
/// lengths, so a recent window cannot be located: quantized tokens read
/// their stored codes, sink tokens their full-precision copy.
struct ViewLowering : OpConversionPattern<kv::ViewOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::ViewOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto cacheType = cast<kv::KVCacheTypeInterface>(op.getCache().getType());
    auto keysType = cast<RankedTensorType>(op.getKeys().getType());
    if (keysType.getNumDynamicDims() > 1 ||
        (keysType.getNumDynamicDims() == 1 && !keysType.isDynamicDim(0)))
      return rewriter.notifyMatchFailure(op, "only the batch may be dynamic");
    CacheLayout layout = computeCacheLayout(cacheType);
    Location loc = op.getLoc();
    SmallVector<Value> args = {adaptor.getCache()};
    Value batch;
    if (op.getBlockTable()) {
      args.push_back(toBuffer(rewriter, loc, op.getBlockTable()));
      batch = memref::DimOp::create(rewriter, loc, args.back(), 0);
    } else if (keysType.isDynamicDim(0)) {
      return op.emitOpError("the CPU lowering needs a static batch for a "
                            "contiguous cache view");
    } else {
      batch =
          arith::ConstantIndexOp::create(rewriter, loc, keysType.getDimSize(0));
    }
    SmallVector<Value> dyn;
    if (keysType.isDynamicDim(0))
      dyn.push_back(batch);
    SmallVector<Value> outs;
    for (Value r : op->getResults()) {
      outs.push_back(allocLike(rewriter, loc, r.getType(), dyn));
      args.push_back(outs.back());
    }
    std::string config;
    llvm::raw_string_ostream os(config);
    os << cacheType;
    int64_t capacity = cacheType.getCapacity();
    callKernel(rewriter, loc, op->getParentOfType<ModuleOp>(), "view", config,
               args, [&](ImplicitLocOpBuilder &b, ValueRange a) {
                 KB k(b);
                 CacheAccess cache;
                 cache.layout = layout;
                 cache.bytes = a[0];
                 unsigned next = 1;
                 if (layout.paged)
                   cache.blockTable = a[next++];
                 Value out0 = a[next++];
                 Value out1 = next < a.size() ? a[next] : Value();
                 Value nb = memref::DimOp::create(b, out0, 0);
                 cache.batch = nb;
                 Value zero = k.idx(0);
                 int64_t heads = layout.key.heads;
                 parallelLoop(b, {nb, k.idx(heads)}, [&](ValueRange ivs) {
                   Value bi = ivs[0], h = ivs[1];
                   Value winBase = cache.windowBase(k, bi);
                   // No lengths: only sinks resolve to the window.
                   Value noRecent = k.idx(std::numeric_limits<int32_t>::max());
                   k.forLoop(0, capacity, [&](Value t) {
                     auto [pageBase0, slot0] = cache.page(k, bi, t);
                     Value pageBase = pageBase0, slot = slot0;
                     auto emit = [&](const ComponentLayout &c, Value out) {
                       Value row = cache.loadRow(k, c, pageBase, slot, winBase,
                                                 t, h, noRecent);
                       Type e =
                           cast<MemRefType>(out.getType()).getElementType();
                       SmallVector<Value> idx =
                           layout.latent ? SmallVector<Value>{bi, t, zero}
                                         : SmallVector<Value>{bi, h, t, zero};
                       vector::StoreOp::create(b, k.fromF32(row, e), out, idx);
                     };
                     emit(layout.key, out0);
                     if (out1)
                       emit(layout.value, out1);
                   });
                 });
               });
    replaceWithBuffers(rewriter, op, outs);
    return success();
  }
};

/// kv.gather_pages -> copy token rows [N, P, H, D] -> [B, H, M * P, D].
struct GatherPagesLowering : OpConversionPattern<kv::GatherPagesOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::GatherPagesOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto pagesType = cast<RankedTensorType>(op.getPages().getType());
    auto outType = cast<RankedTensorType>(op.getResult().getType());
    if (!pagesType.hasStaticShape() || !outType.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    Location loc = op.getLoc();
    Value pages = toBuffer(rewriter, loc, op.getPages());
    Value table = toBuffer(rewriter, loc, op.getBlockTable());
    Value out = allocLike(rewriter, loc, outType);
    int64_t p = pagesType.getDimSize(1), h = pagesType.getDimSize(2),
            d = pagesType.getDimSize(3), tokens = outType.getDimSize(2);
    Type element = pagesType.getElementType();
    callKernel(
        rewriter, loc, op->getParentOfType<ModuleOp>(), "gather_pages", "",
        {pages, table, out}, [&](ImplicitLocOpBuilder &b, ValueRange a) {
          KB k(b);
          Value zero = k.idx(0);
          parallelLoop(b, {k.idx(outType.getDimSize(0)), k.idx(tokens)},
                       [&](ValueRange ivs) {
                         Value bi = ivs[0], t = ivs[1];
                         Value page = k.loadIndex(a[1], {bi, k.div(t, p)});
                         Value slot = k.rem(t, p);
                         k.forLoop(0, h, [&](Value hi) {
                           Value row = vector::LoadOp::create(
                               b, k.vec(d, element), a[0],
                               ValueRange{page, slot, hi, zero});
                           vector::StoreOp::create(b, row, a[2],
                                                   ValueRange{bi, hi, t, zero});
                         });
                       });
        });
    replaceWithBuffers(rewriter, op, {out});
    return success();
  }
};
} // namespace

void kvopt::cpu::populateViewToCPUPatterns(TypeConverter &converter,
                                           RewritePatternSet &patterns) {
  patterns.add<ViewLowering, GatherPagesLowering>(converter,
                                                  patterns.getContext());
}
