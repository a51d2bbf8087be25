//===- QuantizeToCPU.cpp - kv.quantize and kv.dequantize on the CPU -------===//
//
// Standalone quantization of token rows with a cache encoding, and its
// inverse, over tensors of the encoding's storage type (one element per
// code, not packed).
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

/// A [N][T][C] view of a rank >= 2 buffer (leading dims collapsed, or a unit
/// dim added).
static Value asRank3(OpBuilder &b, Location loc, Value m) {
  auto type = cast<MemRefType>(m.getType());
  int64_t rank = type.getRank();
  if (rank == 3)
    return m;
  if (rank == 2) {
    SmallVector<int64_t> shape = {1, type.getDimSize(0), type.getDimSize(1)};
    return memref::ExpandShapeOp::create(
        b, loc, MemRefType::get(shape, type.getElementType()), m,
        ArrayRef<ReassociationIndices>{{0, 1}, {2}});
  }
  ReassociationIndices lead;
  for (int64_t i = 0; i < rank - 2; ++i)
    lead.push_back(i);
  return memref::CollapseShapeOp::create(
      b, loc, m, ArrayRef<ReassociationIndices>{lead, {rank - 2}, {rank - 1}});
}

/// Stores code vector<n x i8> element by element into a storage-typed
/// memref [N][T][C] row (i8, f8E4M3FN, i4, i2 are one byte each there).
static void storeCodes(KB &k, Value codes, Value data, Value nIdx, Value t,
                       Value c0, int64_t n) {
  ImplicitLocOpBuilder &b = k.b;
  Type element = cast<MemRefType>(data.getType()).getElementType();
  k.forLoop(0, n, [&](Value e) {
    Value code = vector::ExtractOp::create(b, codes, ArrayRef<OpFoldResult>{e});
    Value v;
    if (element.isInteger(8))
      v = code;
    else if (element.isInteger())
      v = arith::TruncIOp::create(b, element, code);
    else
      v = arith::BitcastOp::create(b, element, code);
    memref::StoreOp::create(b, v, data, ValueRange{nIdx, t, k.add(c0, e)});
  });
}

/// The number one stored element stands for before scaling (f32).
static Value codeToF32(KB &k, kv::QuantAttr quant, Value code) {
  ImplicitLocOpBuilder &b = k.b;
  auto f32 = b.getF32Type();
  if (quant.getKind() == kv::QuantKind::FP8E4M3) {
    // Same bit trick as the cache decoder: magnitude bits * 2^120.
    Value i = arith::ExtUIOp::create(
        b, b.getI32Type(), arith::BitcastOp::create(b, b.getI8Type(), code));
    Value mag = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, i, k.i32(0x7F)), k.i32(20));
    Value sign = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, i, k.i32(0x80)), k.i32(24));
    Value f =
        arith::BitcastOp::create(b, f32, arith::OrIOp::create(b, mag, sign));
    return arith::MulFOp::create(b, f, k.f32(std::ldexp(1.0, 120)));
  }
  if (quant.getSymmetric())
    return arith::SIToFPOp::create(b, f32, code);
  return arith::UIToFPOp::create(b, f32, code);
}

namespace {
struct QuantizeLowering : OpConversionPattern<kv::QuantizeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::QuantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = cast<RankedTensorType>(op.getInput().getType());
    if (!type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    kv::QuantAttr quant = op.getEncoding();
    Location loc = op.getLoc();
    Value input =
        asRank3(rewriter, loc, toBuffer(rewriter, loc, op.getInput()));
    SmallVector<Value> outs, args = {input};
    for (Value r : op->getResults()) {
      outs.push_back(allocLike(rewriter, loc, r.getType()));
      args.push_back(asRank3(rewriter, loc, outs.back()));
    }
    auto in3 = cast<MemRefType>(input.getType());
    int64_t n = in3.getDimSize(0), t = in3.getDimSize(1), c = in3.getDimSize(2);
    bool channel = quant.getAxis() == kv::ScaleAxis::Channel;
    int64_t g =
        channel ? quant.getGroup() : (quant.getGroup() ? quant.getGroup() : c);
    std::string config;
    llvm::raw_string_ostream os(config);
    os << quant;
    callKernel(
        rewriter, loc, op->getParentOfType<ModuleOp>(), "quantize", config,
        args, [&](ImplicitLocOpBuilder &b, ValueRange a) {
          KB k(b);
          auto f32 = b.getF32Type();
          Type inElement = in3.getElementType();
          Type scaleElement = cast<MemRefType>(a[2].getType()).getElementType();
          bool zeros = a.size() > 3;
          auto storeParam = [&](Value v, Value mem, ValueRange idx) {
            v = k.fromF32(v, scaleElement);
            if (isa<VectorType>(v.getType()))
              vector::StoreOp::create(b, v, mem, idx);
            else
              memref::StoreOp::create(b, v, mem, idx);
          };
          k.forLoop(0, n, [&](Value ni) {
            Value zero = k.idx(0);
            if (!channel) {
              k.forLoop(0, t, [&](Value ti) {
                for (int64_t gi = 0; gi < c / g; ++gi) {
                  Value x = k.toF32(vector::LoadOp::create(
                      b, k.vec(g, inElement), a[0],
                      ValueRange{ni, ti, k.idx(gi * g)}));
                  QuantParams p =
                      computeQuantParams(k, quant, k.minOf(x), k.maxOf(x));
                  storeCodes(k, encodeCodes(k, quant, x, p), a[1], ni, ti,
                             k.idx(gi * g), g);
                  storeParam(p.scale, a[2], {ni, ti, k.idx(gi)});
                  if (zeros)
                    storeParam(p.zero, a[3], {ni, ti, k.idx(gi)});
                }
              });
              return;
            }
            // Channel axis: groups of g tokens, the last one partial.
            for (int64_t gi = 0; gi * g < t; ++gi) {
              int64_t first = gi * g, count = std::min(g, t - first);
              Value lo, hi;
              for (int64_t u = 0; u < count; ++u) {
                Value x = k.toF32(vector::LoadOp::create(
                    b, k.vec(c, inElement), a[0],
                    ValueRange{ni, k.idx(first + u), zero}));
                lo = u ? Value(arith::MinimumFOp::create(b, lo, x)) : x;
                hi = u ? Value(arith::MaximumFOp::create(b, hi, x)) : x;
              }
              QuantParams p = computeQuantParams(k, quant, lo, hi);
              k.forLoop(first, first + count, [&](Value ti) {
                Value x = k.toF32(vector::LoadOp::create(
                    b, k.vec(c, inElement), a[0], ValueRange{ni, ti, zero}));
                storeCodes(k, encodeCodes(k, quant, x, p), a[1], ni, ti, zero,
                           c);
              });
              storeParam(p.scale, a[2], {ni, k.idx(gi), zero});
              if (zeros)
                storeParam(p.zero, a[3], {ni, k.idx(gi), zero});
            }
            (void)f32;
          });
        });
    replaceWithBuffers(rewriter, op, outs);
    return success();
  }
};

struct DequantizeLowering : OpConversionPattern<kv::DequantizeOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(kv::DequantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto type = cast<RankedTensorType>(op.getResult().getType());
    if (!type.hasStaticShape())
      return rewriter.notifyMatchFailure(op, "needs static shapes");
    kv::QuantAttr quant = op.getEncoding();
    Location loc = op.getLoc();
    SmallVector<Value> args;
    for (Value v : op->getOperands())
      args.push_back(asRank3(rewriter, loc, toBuffer(rewriter, loc, v)));
    Value out = allocLike(rewriter, loc, type);
    args.push_back(asRank3(rewriter, loc, out));
    auto out3 = cast<MemRefType>(args.back().getType());
    int64_t n = out3.getDimSize(0), t = out3.getDimSize(1),
            c = out3.getDimSize(2);
    bool channel = quant.getAxis() == kv::ScaleAxis::Channel;
    int64_t g =
        channel ? quant.getGroup() : (quant.getGroup() ? quant.getGroup() : c);
    bool zeros = static_cast<bool>(op.getZeroPoints());
    std::string config;
    llvm::raw_string_ostream os(config);
    os << quant;
    callKernel(
        rewriter, loc, op->getParentOfType<ModuleOp>(), "dequantize", config,
        args, [&](ImplicitLocOpBuilder &b, ValueRange a) {
          KB k(b);
          Value result = a.back();
          Type element = out3.getElementType();
          k.forLoop(0, n, [&](Value ni) {
            k.forLoop(0, t, [&](Value ti) {
              k.forLoop(0, c, [&](Value ci) {
                Value code =
                    memref::LoadOp::create(b, a[0], ValueRange{ni, ti, ci});
                SmallVector<Value> si =
                    channel ? SmallVector<Value>{ni, k.div(ti, g), ci}
                            : SmallVector<Value>{ni, ti, k.div(ci, g)};
                Value x = arith::MulFOp::create(
                    b, codeToF32(k, quant, code),
                    k.toF32(memref::LoadOp::create(b, a[1], si)));
                if (zeros)
                  x = arith::AddFOp::create(
                      b, x, k.toF32(memref::LoadOp::create(b, a[2], si)));
                memref::StoreOp::create(b, k.fromF32(x, element), result,
                                        ValueRange{ni, ti, ci});
              });
            });
          });
        });
    replaceWithBuffers(rewriter, op, {out});
    return success();
  }
};
} // namespace

void kvopt::cpu::populateQuantizeToCPUPatterns(TypeConverter &converter,
                                               RewritePatternSet &patterns) {
  patterns.add<QuantizeLowering, DequantizeLowering>(converter,
                                                     patterns.getContext());
}
