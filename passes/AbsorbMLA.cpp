//===- AbsorbMLA.cpp - kv-absorb-mla: attention on the latent cache ------===//
//
// Rewrites naive MLA attention (keys and values up-projected from a latent
// cache view) into kv.mla_attention on the absorbed query, followed by the
// per-head value up-projection.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "kvopt/Transforms/RaisePasses.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

namespace kvopt {
#define GEN_PASS_DEF_KVABSORBMLA
#include "kvopt/Transforms/RaisePasses.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;
using namespace kvopt::raise;

namespace {

/// A column range [offset, offset + size) of the rows of a latent cache
/// view, for the first `tokens` tokens.
struct LatentSlice {
  ViewOp view;
  int64_t offset = 0, size = 0, tokens = 0;
};

/// Follows static unit-stride extract_slices that keep the batch whole and
/// start at token 0 back to a kv.view of a latent cache.
FailureOr<LatentSlice> matchLatentSlice(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || type.getRank() != 3 || !type.hasStaticShape())
    return failure();
  LatentSlice s;
  s.size = type.getDimSize(2);
  s.tokens = type.getDimSize(1);
  while (auto slice = value.getDefiningOp<tensor::ExtractSliceOp>()) {
    ArrayRef<int64_t> offsets = slice.getStaticOffsets();
    ArrayRef<int64_t> strides = slice.getStaticStrides();
    if (slice.getSourceType().getRank() != 3 ||
        slice.getResultType().getRank() != 3 ||
        llvm::any_of(offsets, ShapedType::isDynamic) ||
        llvm::any_of(strides, [](int64_t s) { return s != 1; }) ||
        offsets[0] != 0 || offsets[1] != 0 ||
        slice.getResultType().getDimSize(0) !=
            slice.getSourceType().getDimSize(0))
      return failure();
    s.offset += offsets[2];
    value = slice.getSource();
  }
  s.view = value.getDefiningOp<ViewOp>();
  if (!s.view || !isa<LatentCacheType>(s.view.getCache().getType()))
    return failure();
  return s;
}

/// A per-head up-projection `W [L, H*d]` of latent columns: the trace of a
/// `[B, H, T, d]` operand ends at `linalg.matmul(collapse(c), W)` whose
/// result is `[B*T, H*d]` in the attention's digits.
struct UpProjection {
  Value weight; // [L, H*d]
  LatentSlice latent;
};

FailureOr<UpProjection> matchUpProjection(const AttentionMatch &m,
                                          const LayoutTrace &trace,
                                          Digit dimDigit, std::string &why) {
  auto matmul = trace.value.getDefiningOp<linalg::MatmulOp>();
  if (!matmul || matmul.hasUserDefinedMaps() ||
      !matmul.hasPureTensorSemantics() || !trace.dropped.empty()) {
    why = "keys/values are not a plain linalg.matmul up-projection";
    return failure();
  }
  auto digits = [](std::initializer_list<Digit> list) {
    DimDigits d;
    for (Digit x : list)
      if (x.extent > 1)
        d.push_back(x);
    return d;
  };
  Layout expected = {digits({m.batchDigit, Digit{Role::KeyTok, 1, m.kvLen}}),
                     digits({m.headDigit, dimDigit})};
  if (trace.dims != expected) {
    why = "the up-projection is not [B*T, L] x [L, H*d] in the attention's "
          "batch, token and head order";
    return failure();
  }
  Value lhs = matmul.getInputs()[0];
  auto collapse = lhs.getDefiningOp<tensor::CollapseShapeOp>();
  if (!collapse || collapse.getSrcType().getRank() != 3 ||
      collapse.getReassociationIndices().size() != 2 ||
      collapse.getReassociationIndices()[0].size() != 2) {
    why = "the up-projection does not read [B, T, L] latent rows";
    return failure();
  }
  auto latent = matchLatentSlice(collapse.getSrc());
  if (failed(latent)) {
    why = "the up-projection does not read a kv.view of a latent cache";
    return failure();
  }
  return UpProjection{matmul.getInputs()[1], *latent};
}

/// `w [L, H*d]` as `[L, H, d]`.
Value perHead(OpBuilder &b, Location loc, Value w, int64_t heads) {
  auto type = cast<RankedTensorType>(w.getType());
  auto shaped = RankedTensorType::get(
      {type.getDimSize(0), heads, type.getDimSize(1) / heads},
      type.getElementType());
  return tensor::ExpandShapeOp::create(
      b, loc, shaped, w, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
}

/// out[b, h, t, j] = sum_i x[b, h, t, i] * w[..] with the weight map given
/// over (b, h, t, j, i).
Value headContraction(OpBuilder &b, Location loc, Value x, Value w,
                      AffineMap wMap, int64_t outDim) {
  auto xType = cast<RankedTensorType>(x.getType());
  Type element = xType.getElementType();
  auto outType = RankedTensorType::get(
      {xType.getDimSize(0), xType.getDimSize(1), xType.getDimSize(2), outDim},
      element);
  MLIRContext *ctx = b.getContext();
  AffineExpr bb, h, t, j, i;
  bindDims(ctx, bb, h, t, j, i);
  auto xMap = AffineMap::get(5, 0, {bb, h, t, i}, ctx);
  auto outMap = AffineMap::get(5, 0, {bb, h, t, j}, ctx);
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
  Value empty = tensor::EmptyOp::create(b, loc, outType, ValueRange{});
  Value init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  return linalg::GenericOp::create(
             b, loc, outType, ValueRange{x, w}, init,
             ArrayRef<AffineMap>{xMap, wMap, outMap},
             ArrayRef<utils::IteratorType>{
                 utils::IteratorType::parallel, utils::IteratorType::parallel,
                 utils::IteratorType::parallel, utils::IteratorType::parallel,
                 utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nloc, ValueRange args) {
               Value mul = arith::MulFOp::create(nb, nloc, args[0], args[1]);
               Value sum = arith::AddFOp::create(nb, nloc, args[2], mul);
               linalg::YieldOp::create(nb, nloc, sum);
             })
      .getResult(0);
}

/// `x[..., offset : offset + size]` along the last dimension.
Value lastDimSlice(OpBuilder &b, Location loc, Value x, int64_t offset,
                   int64_t size) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  SmallVector<OpFoldResult> sizes;
  for (int64_t d : type.getShape())
    sizes.push_back(b.getIndexAttr(d));
  offsets.back() = b.getIndexAttr(offset);
  sizes.back() = b.getIndexAttr(size);
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = size;
  return tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get(shape, type.getElementType()), x, offsets,
      sizes, strides);
}

struct AbsorbMLAPass : public kvopt::impl::KVAbsorbMLABase<AbsorbMLAPass> {
  using Base::Base;

  void runOnOperation() override {
    DenseSet<Operation *> done;
    while (true) {
      linalg::LinalgOp next;
      getOperation().walk([&](linalg::LinalgOp op) {
        if (!done.contains(op) && isAttentionCandidate(op)) {
          next = op;
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (!next)
        return;
      done.insert(next);
      std::string why;
      if (failed(absorb(next, why)) && emitRemarks)
        next->emitRemark() << "kv-absorb-mla: not absorbed: " << why;
    }
  }

  /// Rewrites one naive MLA attention whose P·V is `pv`.
  LogicalResult absorb(linalg::LinalgOp pv, std::string &why) {
    auto match = matchAttention(pv, why);
    if (failed(match))
      return failure();
    AttentionMatch &m = *match;
    auto keys = m.keys.value.getDefiningOp<tensor::ConcatOp>();
    if (!keys || keys.getDim() != 3 || keys.getInputs().size() != 2 ||
        m.keys.dims.size() != 4 || !m.keys.dropped.empty()) {
      why = "the keys are not [k_nope ; k_rope] joined along the head dim";
      return failure();
    }
    if (m.mask.window) {
      why = "kv.mla_attention has no sliding window";
      return failure();
    }
    // The keys' trace ended at the join, in [B, H, T, D] order.
    Layout keyLayout = m.keys.dims;
    Value nope = keys.getInputs()[0], rope = keys.getInputs()[1];
    int64_t nopeDim = cast<RankedTensorType>(nope.getType()).getDimSize(3);
    int64_t ropeDim = cast<RankedTensorType>(rope.getType()).getDimSize(3);
    auto expectedKeys = [&](int64_t dim) {
      Layout l(4);
      if (m.batch > 1)
        l[0] = {m.batchDigit};
      if (m.qHeads > 1)
        l[1] = {m.headDigit};
      if (m.kvLen > 1)
        l[2] = {Digit{Role::KeyTok, 1, m.kvLen}};
      if (dim > 1)
        l[3] = {Digit{Role::HeadDim, 1, dim}};
      return l;
    };
    if (keyLayout != expectedKeys(m.headDim)) {
      why = "the joined keys are not laid out as [B, H, T, D]";
      return failure();
    }
    auto kNope = matchUpProjection(
        m, traceLayout(nope, expectedKeys(nopeDim), /*peelScales=*/false),
        Digit{Role::HeadDim, 1, nopeDim}, why);
    if (failed(kNope))
      return failure();
    auto values = matchUpProjection(m, m.values,
                                    Digit{Role::ValueDim, 1, m.valueDim}, why);
    if (failed(values))
      return failure();
    // k_rope: one [B, T, R] row slice broadcast over the heads.
    Layout ropeDims = expectedKeys(ropeDim);
    LayoutTrace ropeTrace = traceLayout(rope, ropeDims, /*peelScales=*/false);
    Layout sharedRope = {ropeDims[0], ropeDims[2], ropeDims[3]};
    DimDigits heads = ropeDims[1];
    auto ropeSlice = matchLatentSlice(ropeTrace.value);
    if (ropeTrace.dims != sharedRope || ropeTrace.dropped != heads ||
        failed(ropeSlice)) {
      why = "the RoPE keys are not one latent-cache slice shared by all heads";
      return failure();
    }
    // All three read one view: latent columns [0, L), RoPE columns [L, L+R).
    ViewOp view = kNope->latent.view;
    auto cacheType = cast<LatentCacheType>(view.getCache().getType());
    int64_t latentDim = cacheType.getLatentDim();
    for (const LatentSlice *s : {&kNope->latent, &values->latent})
      if (s->view != view || s->offset != 0 || s->size != latentDim ||
          s->tokens != m.kvLen) {
        why = "keys and values are not up-projected from the latent part "
              "of one latent cache view";
        return failure();
      }
    if (ropeSlice->view != view || ropeSlice->offset != latentDim ||
        ropeSlice->size != cacheType.getRopeDim() ||
        ropeSlice->tokens != m.kvLen || ropeDim != cacheType.getRopeDim()) {
      why = "the RoPE keys are not the RoPE part of the latent cache view";
      return failure();
    }
    // The view must still describe the cache at the attention: nothing may
    // append to the cache between them.
    if (view->getBlock() != pv->getBlock() ||
        llvm::any_of(view.getCache().getUsers(), [&](Operation *user) {
          return isa<AppendOp>(user) && user->getBlock() == pv->getBlock() &&
                 view->isBeforeInBlock(user) && user->isBeforeInBlock(pv);
        })) {
      why = "the latent cache changes between its view and the attention";
      return failure();
    }

    OpBuilder b(pv);
    Location loc = pv->getLoc();
    MLIRContext *ctx = b.getContext();
    Value q = materializeQuery(b, loc, m);
    Value qNope = lastDimSlice(b, loc, q, 0, nopeDim);
    Value qRope = lastDimSlice(b, loc, q, nopeDim, ropeDim);
    AffineExpr bb, h, t, j, i;
    bindDims(ctx, bb, h, t, j, i);
    // q_latent[b, h, t, l] = sum_i q_nope[b, h, t, i] * W_uk[l, h, i].
    Value wUk = perHead(b, loc, kNope->weight, m.qHeads);
    Value qLatent = headContraction(
        b, loc, qNope, wUk, AffineMap::get(5, 0, {j, h, i}, ctx), latentDim);
    Value lens = i32Splat(b, loc, m.batch, m.kvLen);
    auto latentOut = RankedTensorType::get(
        {m.batch, m.qHeads, m.qLen, latentDim}, m.elementType);
    auto attention = MLAAttentionOp::create(
        b, loc, latentOut, /*lse=*/Type(), qLatent, qRope, view.getCache(),
        lens, view.getBlockTable(), b.getF32FloatAttr(float(m.scale)),
        m.mask.causal ? b.getUnitAttr() : UnitAttr());
    // out[b, h, t, j] = sum_l o_latent[b, h, t, l] * W_uv[l, h, j].
    Value wUv = perHead(b, loc, values->weight, m.qHeads);
    Value out =
        headContraction(b, loc, attention.getOutput(), wUv,
                        AffineMap::get(5, 0, {i, h, j}, ctx), m.valueDim);
    pv->getResult(0).replaceAllUsesWith(materializeOutput(b, loc, m, out));
    eraseDeadOps({pv});
    return success();
  }
};

} // namespace
