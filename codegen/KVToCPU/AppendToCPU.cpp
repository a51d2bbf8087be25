//===- AppendToCPU.cpp - kv.append and kv.rope on the CPU -----------------===//
//
// The fused RoPE + quantize + scatter append kernel, and the standalone
// rotary embedding.
//
//===----------------------------------------------------------------------===//
//
// Append: one scf.parallel task per (sequence, KV head); its tokens are
// written in order because a per-channel group is quantized when its last
// token arrives, from the full-precision copies of the earlier tokens in the
// recent ring (the verifier guarantees recent >= group - 1), so that codes,
// scales and zero points equal the reference's bit for bit.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace kvopt;
using namespace kvopt::cpu;

namespace {
/// Everything static about one append kernel.
struct AppendSpec {
  CacheLayout layout;
  int64_t tokens = 0;
  double ropeTheta = 0;
  /// Latent caches rotate only the last `ropeDim` elements of the row.
  int64_t ropeDim = 0;
  Type keyElement, valueElement;
  bool values = false;

  std::string str() const {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << "paged=" << layout.paged << " page=" << layout.pageSize
       << " bytes=" << layout.pageBytes << " win=" << layout.windowBytes
       << " latent=" << layout.latent << " T=" << tokens
       << " theta=" << ropeTheta << " rope=" << ropeDim << " k=" << keyElement
       << " v=" << valueElement << " values=" << values;
    for (const ComponentLayout *c : {&layout.key, &layout.value}) {
      os << " [" << c->element << " ";
      if (c->quant)
        os << c->quant;
      os << " " << c->heads << "x" << c->dim << " " << c->dataOffset << ","
         << c->scaleOffset << "," << c->zeroOffset << "," << c->windowOffset
         << "]";
    }
    return s;
  }
};

/// Code of one append task.
struct AppendKernel {
  const AppendSpec &spec;
  KB &k;
  ImplicitLocOpBuilder &b;
  CacheAccess cache;
  Value positions, keys, values;

  AppendKernel(const AppendSpec &spec, KB &k, ValueRange args)
      : spec(spec), k(k), b(k.b) {
    unsigned a = 0;
    cache.layout = spec.layout;
    cache.bytes = args[a++];
    positions = args[a++];
    keys = args[a++];
    if (spec.values)
      values = args[a++];
    if (spec.layout.paged)
      cache.blockTable = args[a++];
  }

  /// Input row t of head h of sequence bi as f32.
  Value loadInput(Value input, const ComponentLayout &c, Value bi, Value h,
                  Value t) {
    Type element = cast<MemRefType>(input.getType()).getElementType();
    SmallVector<Value> index = spec.layout.latent
                                   ? SmallVector<Value>{bi, t, k.idx(0)}
                                   : SmallVector<Value>{bi, h, t, k.idx(0)};
    return k.toF32(
        vector::LoadOp::create(b, k.vec(c.dim, element), input, index));
  }

  /// Byte offset of window slot `slot` of (head) in component c.
  Value windowSlot(const ComponentLayout &c, Value winBase, Value slot,
                   Value head) {
    Value row = k.add(k.mul(slot, c.heads), head);
    return k.add(k.add(winBase, c.windowOffset),
                 k.mul(row, c.dim * c.elementBytes));
  }

  /// Writes the quantized codes of row x (token in `slot`) for token-axis
  /// encodings, group by group.
  void storeTokenAxis(const ComponentLayout &c, Value x, Value pageBase,
                      Value slot, Value head) {
    int64_t d = c.dim, g = c.group();
    Value row = k.add(k.mul(slot, c.heads), head);
    Value data = k.add(
        pageBase, k.add(k.mul(row, d * c.bits() / 8), k.idx(c.dataOffset)));
    Value scales = k.add(pageBase, k.add(k.mul(row, (d / g) * c.scaleBytes()),
                                         k.idx(c.scaleOffset)));
    Value zeros = k.add(pageBase, k.add(k.mul(row, (d / g) * c.scaleBytes()),
                                        k.idx(c.zeroOffset)));
    for (int64_t gi = 0; gi < d / g; ++gi) {
      Value xg = vector::ExtractStridedSliceOp::create(
          b, x, ArrayRef<int64_t>{gi * g}, ArrayRef<int64_t>{g},
          ArrayRef<int64_t>{1});
      QuantParams p = computeQuantParams(k, c.quant, k.minOf(xg), k.maxOf(xg));
      Value codes = packCodes(k, c.quant, encodeCodes(k, c.quant, xg, p));
      k.storeBytes(codes, cache.bytes, k.add(data, gi * g * c.bits() / 8));
      k.storeBytes(k.fromF32(p.scale, c.scaleType()), cache.bytes,
                   k.add(scales, gi * c.scaleBytes()));
      if (!c.quant.getSymmetric())
        k.storeBytes(k.fromF32(p.zero, c.scaleType()), cache.bytes,
                     k.add(zeros, gi * c.scaleBytes()));
    }
  }

  /// When token `pos` completes a channel group, quantizes the group: its
  /// earlier tokens come from the recent ring, the last one is `x`.
  void storeChannelAxis(const ComponentLayout &c, Value x, Value pos,
                        Value pageBase, Value slot, Value head, Value winBase) {
    int64_t d = c.dim, g = c.group();
    auto f32 = b.getF32Type();
    Value complete = arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                           k.rem(pos, g), k.idx(g - 1));
    k.ifThen(complete, [&] {
      Value rows = memref::AllocaOp::create(b, MemRefType::get({g, d}, f32));
      Value zero = k.idx(0);
      Value first = k.sub(pos, k.idx(g - 1));
      k.forLoop(0, g - 1, [&](Value u) {
        Value token = k.add(first, u);
        Value ring = k.add(k.rem(token, c.recent()), c.sinks());
        Value at = windowSlot(c, winBase, ring, head);
        Value row = k.toF32(k.loadBytes(cache.bytes, at, k.vec(d, c.element)));
        vector::StoreOp::create(b, row, rows, ValueRange{u, zero});
      });
      vector::StoreOp::create(b, x, rows, ValueRange{k.idx(g - 1), zero});
      auto range = scf::ForOp::create(
          b, zero, k.idx(g), k.idx(1), ValueRange{x, x},
          [&](OpBuilder &nested, Location, Value u, ValueRange it) {
            OpBuilder::InsertionGuard guard(b);
            b.setInsertionPoint(nested.getInsertionBlock(),
                                nested.getInsertionPoint());
            Value row = vector::LoadOp::create(b, k.vec(d, f32), rows,
                                               ValueRange{u, zero});
            scf::YieldOp::create(
                b, ValueRange{arith::MinimumFOp::create(b, it[0], row),
                              arith::MaximumFOp::create(b, it[1], row)});
          });
      QuantParams p = computeQuantParams(k, c.quant, range.getResult(0),
                                         range.getResult(1));
      Value firstSlot = k.sub(slot, k.idx(g - 1));
      k.forLoop(0, g, [&](Value u) {
        Value row =
            vector::LoadOp::create(b, k.vec(d, f32), rows, ValueRange{u, zero});
        Value codes = packCodes(k, c.quant, encodeCodes(k, c.quant, row, p));
        Value r = k.add(k.mul(k.add(firstSlot, u), c.heads), head);
        k.storeBytes(codes, cache.bytes,
                     k.add(pageBase, k.add(k.mul(r, d * c.bits() / 8),
                                           k.idx(c.dataOffset))));
      });
      Value scaleRow = k.mul(k.add(k.mul(k.div(slot, g), c.heads), head),
                             d * c.scaleBytes());
      k.storeBytes(k.fromF32(p.scale, c.scaleType()), cache.bytes,
                   k.add(pageBase, k.add(scaleRow, k.idx(c.scaleOffset))));
      if (!c.quant.getSymmetric())
        k.storeBytes(k.fromF32(p.zero, c.scaleType()), cache.bytes,
                     k.add(pageBase, k.add(scaleRow, k.idx(c.zeroOffset))));
    });
  }

  /// Stores row x (f32, already rotated and rounded) of token `pos`.
  void storeRow(const ComponentLayout &c, Value x, Value pos, Value pageBase,
                Value slot, Value head, Value winBase) {
    int64_t d = c.dim;
    if (!c.quant) {
      Value row = k.add(k.mul(slot, c.heads), head);
      k.storeBytes(k.fromF32(x, c.element), cache.bytes,
                   k.add(pageBase, k.add(k.mul(row, d * c.elementBytes),
                                         k.idx(c.dataOffset))));
      return;
    }
    if (c.channelAxis())
      storeChannelAxis(c, x, pos, pageBase, slot, head, winBase);
    else
      storeTokenAxis(c, x, pageBase, slot, head);
    if (!c.hasWindow())
      return;
    Value element = k.fromF32(x, c.element);
    if (c.sinks() > 0)
      k.ifThen(k.lt(pos, k.idx(c.sinks())), [&] {
        k.storeBytes(element, cache.bytes, windowSlot(c, winBase, pos, head));
      });
    if (c.recent() > 0) {
      Value ring = k.add(k.rem(pos, c.recent()), c.sinks());
      k.storeBytes(element, cache.bytes, windowSlot(c, winBase, ring, head));
    }
  }

  void buildTask(Value bi, Value h) {
    Value start = k.loadIndex(positions, {bi});
    Value winBase = cache.windowBase(k, bi);
    k.forLoop(0, spec.tokens, [&](Value t) {
      Value pos = k.add(start, t);
      auto [pageBase0, slot0] = cache.page(k, bi, pos);
      Value pageBase = pageBase0, slot = slot0;
      const ComponentLayout &kc = spec.layout.key;
      Value x = loadInput(keys, kc, bi, h, t);
      if (spec.ropeTheta > 0) {
        Value fpos = arith::UIToFPOp::create(
            b, b.getF32Type(),
            arith::IndexCastOp::create(b, b.getI64Type(), pos));
        if (spec.ropeDim == kc.dim) {
          x = applyRope(k, x, fpos, spec.ropeTheta);
        } else {
          int64_t off = kc.dim - spec.ropeDim;
          Value part = vector::ExtractStridedSliceOp::create(
              b, x, ArrayRef<int64_t>{off}, ArrayRef<int64_t>{spec.ropeDim},
              ArrayRef<int64_t>{1});
          part = applyRope(k, part, fpos, spec.ropeTheta);
          x = vector::InsertStridedSliceOp::create(
              b, part, x, ArrayRef<int64_t>{off}, ArrayRef<int64_t>{1});
        }
      }
      x = k.roundTrip(x, kc.element);
      storeRow(kc, x, pos, pageBase, slot, h, winBase);
      if (spec.values) {
        const ComponentLayout &vc = spec.layout.value;
        Value v = k.roundTrip(loadInput(values, vc, bi, h, t), vc.element);
        storeRow(vc, v, pos, pageBase, slot, h, winBase);
      }
    });
  }
};

/// kv.append -> the append kernel of its configuration.
struct AppendLowering : OpConversionPattern<kv::AppendOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::AppendOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto cacheType = cast<kv::KVCacheTypeInterface>(op.getCache().getType());
    auto keysType = cast<RankedTensorType>(op.getKeys().getType());
    AppendSpec spec;
    spec.layout = computeCacheLayout(cacheType);
    spec.tokens = keysType.getDimSize(keysType.getRank() - 2);
    if (ShapedType::isDynamic(spec.tokens))
      return rewriter.notifyMatchFailure(op, "dynamic token count");
    spec.ropeTheta =
        op.getRopeTheta() ? op.getRopeTheta()->convertToDouble() : 0.0;
    spec.keyElement = keysType.getElementType();
    spec.values = static_cast<bool>(op.getValues());
    if (spec.values)
      spec.valueElement =
          cast<RankedTensorType>(op.getValues().getType()).getElementType();
    if (auto latent = dyn_cast<kv::LatentCacheType>(cacheType))
      spec.ropeDim = latent.getRopeDim();
    else
      spec.ropeDim = spec.layout.key.dim;
    if (spec.ropeTheta > 0 && spec.ropeDim % 2)
      return op.emitOpError("RoPE needs an even number of rotated channels");
    Location loc = op.getLoc();
    SmallVector<Value> args = {adaptor.getCache(),
                               toBuffer(rewriter, loc, op.getPositions()),
                               toBuffer(rewriter, loc, op.getKeys())};
    if (spec.values)
      args.push_back(toBuffer(rewriter, loc, op.getValues()));
    if (op.getBlockTable())
      args.push_back(toBuffer(rewriter, loc, op.getBlockTable()));
    int64_t heads = spec.layout.key.heads;
    callKernel(rewriter, loc, op->getParentOfType<ModuleOp>(), "append",
               spec.str(), args, [&](ImplicitLocOpBuilder &b, ValueRange a) {
                 KB k(b);
                 AppendKernel kernel(spec, k, a);
                 Value batch = memref::DimOp::create(b, kernel.positions, 0);
                 kernel.cache.batch = batch;
                 parallelLoop(b, {batch, k.idx(heads)}, [&](ValueRange ivs) {
                   kernel.buildTask(ivs[0], ivs[1]);
                 });
               });
    rewriter.eraseOp(op);
    return success();
  }
};

/// kv.rope -> rotate every row of [B, H, T, D].
struct RopeLowering : OpConversionPattern<kv::RopeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::RopeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = cast<RankedTensorType>(op.getInput().getType());
    if (type.getRank() != 4 || type.getNumDynamicDims() > 1 ||
        (type.getNumDynamicDims() == 1 && !type.isDynamicDim(0)))
      return rewriter.notifyMatchFailure(op, "needs [B, H, T, D]");
    int64_t heads = type.getDimSize(1), tokens = type.getDimSize(2),
            dim = type.getDimSize(3);
    double theta = op.getTheta().convertToDouble();
    Location loc = op.getLoc();
    Value input = toBuffer(rewriter, loc, op.getInput());
    Value positions = toBuffer(rewriter, loc, op.getPositions());
    SmallVector<Value> dyn;
    if (type.isDynamicDim(0))
      dyn.push_back(memref::DimOp::create(rewriter, loc, input, 0));
    Value out = allocLike(rewriter, loc, type, dyn);
    std::string config;
    llvm::raw_string_ostream os(config);
    os << theta;
    callKernel(
        rewriter, loc, op->getParentOfType<ModuleOp>(), "rope", config,
        {input, positions, out}, [&](ImplicitLocOpBuilder &b, ValueRange a) {
          KB k(b);
          Value batch = memref::DimOp::create(b, a[1], 0);
          parallelLoop(b, {batch, k.idx(heads)}, [&](ValueRange ivs) {
            Value bi = ivs[0], h = ivs[1];
            Value start = k.loadIndex(a[1], {bi});
            k.forLoop(0, tokens, [&](Value t) {
              Value zero = k.idx(0);
              Value x = k.toF32(
                  vector::LoadOp::create(b, k.vec(dim, type.getElementType()),
                                         a[0], ValueRange{bi, h, t, zero}));
              Value pos = arith::UIToFPOp::create(
                  b, b.getF32Type(),
                  arith::IndexCastOp::create(b, b.getI64Type(),
                                             k.add(start, t)));
              Value y = applyRope(k, x, pos, theta);
              vector::StoreOp::create(b, k.fromF32(y, type.getElementType()),
                                      a[2], ValueRange{bi, h, t, zero});
            });
          });
        });
    replaceWithBuffers(rewriter, op, {out});
    return success();
  }
};
} // namespace

void kvopt::cpu::populateAppendToCPUPatterns(TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<AppendLowering, RopeLowering>(converter, patterns.getContext());
}
