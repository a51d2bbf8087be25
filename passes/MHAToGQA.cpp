//===- MHAToGQA.cpp - kv-mha-to-gqa: mean-pool KV heads ------------------===//
//
// Converts caches of H KV heads to fewer heads by mean-pooling the key and
// value projection weights of each group of heads (GQA uptraining recipe).
//
//===----------------------------------------------------------------------===//

#include "kvopt/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

namespace kvopt {
#define GEN_PASS_DEF_KVMHATOGQA
#include "kvopt/Transforms/Passes.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

/// The documented projection chain that produces keys or values
/// `[B, H, T, D]`: `linalg.matmul(x [B*T, hidden], w [hidden, H*D])`, then
/// `tensor.expand_shape` to `[B, T, H, D]`, then `linalg.transpose` with
/// permutation [0, 2, 1, 3].
struct ProjectionChain {
  linalg::MatmulOp matmul;
  tensor::ExpandShapeOp expand;
  linalg::TransposeOp transpose;
  /// Optional rotary embedding of the projected keys (per head, so it
  /// commutes with pooling heads).
  RopeOp rope;
};

FailureOr<ProjectionChain> matchProjection(Value rows, int64_t heads,
                                           std::string &why) {
  RopeOp rope = rows.getDefiningOp<RopeOp>();
  if (rope) {
    if (!rows.hasOneUse()) {
      why = "has rotated rows with other uses";
      return failure();
    }
    rows = rope.getInput();
  }
  auto transpose = rows.getDefiningOp<linalg::TransposeOp>();
  if (!transpose ||
      transpose.getPermutation() != ArrayRef<int64_t>{0, 2, 1, 3}) {
    why = "is not a linalg.transpose [0, 2, 1, 3] of the projection";
    return failure();
  }
  auto expand = transpose.getInput().getDefiningOp<tensor::ExpandShapeOp>();
  if (!expand || expand.getResultType().getRank() != 4 ||
      expand.getSrcType().getRank() != 2) {
    why = "is not a tensor.expand_shape of a 2-D projection to [B, T, H, D]";
    return failure();
  }
  auto matmul = expand.getSrc().getDefiningOp<linalg::MatmulOp>();
  if (!matmul || !matmul.hasPureTensorSemantics() ||
      matmul.hasUserDefinedMaps()) {
    why = "does not come from a plain linalg.matmul";
    return failure();
  }
  auto weight = cast<RankedTensorType>(matmul.getInputs()[1].getType());
  if (weight.isDynamicDim(1) || weight.getDimSize(1) % heads != 0) {
    why = "has a projection weight without a static heads * head_dim width";
    return failure();
  }
  if (!rows.hasOneUse() || !transpose.getInput().hasOneUse() ||
      !expand.getSrc().hasOneUse()) {
    why = "has a projection chain with other uses";
    return failure();
  }
  return ProjectionChain{matmul, expand, transpose, rope};
}

/// The shape of `type` with dimension `dim` set to `size`.
RankedTensorType withDim(RankedTensorType type, int64_t dim, int64_t size) {
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = size;
  return RankedTensorType::get(shape, type.getElementType());
}

/// An empty tensor of `type` filled like `init` was (zero for a fill).
Value makeInit(OpBuilder &b, Location loc, RankedTensorType type, Value init,
               ValueRange dynamicSizes = {}) {
  Value empty = tensor::EmptyOp::create(b, loc, type, dynamicSizes);
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return linalg::FillOp::create(b, loc, fill.getInputs()[0], empty)
        .getResult(0);
  return empty;
}

/// `weight [hidden, H*D]` mean-pooled over groups of H / groups adjacent
/// heads: `[hidden, groups*D]`.
Value poolWeight(OpBuilder &b, Location loc, Value weight, int64_t heads,
                 int64_t groups) {
  auto type = cast<RankedTensorType>(weight.getType());
  int64_t hidden = type.getDimSize(0), dim = type.getDimSize(1) / heads;
  int64_t ratio = heads / groups;
  Type element = type.getElementType();
  auto grouped = RankedTensorType::get({hidden, groups, ratio, dim}, element);
  Value expanded = tensor::ExpandShapeOp::create(
      b, loc, grouped, weight, ArrayRef<ReassociationIndices>{{0}, {1, 2, 3}});
  auto pooledType = RankedTensorType::get({hidden, groups, dim}, element);
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(element));
  Value empty = tensor::EmptyOp::create(b, loc, pooledType, ValueRange{});
  Value init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  Value inverse = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(element, 1.0 / double(ratio)));
  MLIRContext *ctx = b.getContext();
  AffineExpr i, g, r, d;
  bindDims(ctx, i, g, r, d);
  auto inMap = AffineMap::get(4, 0, {i, g, r, d}, ctx);
  auto outMap = AffineMap::get(4, 0, {i, g, d}, ctx);
  Value pooled =
      linalg::GenericOp::create(
          b, loc, pooledType, expanded, init,
          ArrayRef<AffineMap>{inMap, outMap},
          ArrayRef<utils::IteratorType>{
              utils::IteratorType::parallel, utils::IteratorType::parallel,
              utils::IteratorType::reduction, utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location nloc, ValueRange args) {
            Value scaled = arith::MulFOp::create(nb, nloc, args[0], inverse);
            Value sum = arith::AddFOp::create(nb, nloc, args[1], scaled);
            linalg::YieldOp::create(nb, nloc, sum);
          })
          .getResult(0);
  auto flatType = RankedTensorType::get({hidden, groups * dim}, element);
  return tensor::CollapseShapeOp::create(
      b, loc, flatType, pooled, ArrayRef<ReassociationIndices>{{0}, {1, 2}});
}

/// Rebuilds `chain` with a pooled weight so it yields `groups` heads;
/// returns the new `[B, groups, T, D]` rows.
Value rebuildProjection(ProjectionChain chain, int64_t heads, int64_t groups) {
  OpBuilder b(chain.rope ? chain.rope.getOperation()
                         : chain.transpose.getOperation());
  Location loc = chain.matmul.getLoc();
  Value weight = poolWeight(b, loc, chain.matmul.getInputs()[1], heads, groups);
  auto mmType = cast<RankedTensorType>(chain.matmul.getResultTypes()[0]);
  int64_t dim = mmType.getDimSize(1) / heads;
  auto newMmType = withDim(mmType, 1, groups * dim);
  SmallVector<Value> dynamic;
  if (newMmType.isDynamicDim(0))
    dynamic.push_back(
        tensor::DimOp::create(b, loc, chain.matmul.getInputs()[0], 0));
  Value init =
      makeInit(b, loc, newMmType, chain.matmul.getOutputs()[0], dynamic);
  Value mm =
      linalg::MatmulOp::create(b, loc, TypeRange{newMmType},
                               ValueRange{chain.matmul.getInputs()[0], weight},
                               ValueRange{init})
          .getResult(0);
  auto expType = withDim(chain.expand.getResultType(), 2, groups);
  SmallVector<OpFoldResult> outputShape = chain.expand.getMixedOutputShape();
  outputShape[2] = b.getIndexAttr(groups);
  Value expanded = tensor::ExpandShapeOp::create(
      b, loc, expType, mm, chain.expand.getReassociationIndices(), outputShape);
  auto trType =
      withDim(cast<RankedTensorType>(chain.transpose.getResult()[0].getType()),
              1, groups);
  Value trInit = makeInit(b, loc, trType, chain.transpose.getInit());
  Value rows = linalg::TransposeOp::create(b, loc, expanded, trInit,
                                           chain.transpose.getPermutation())
                   .getResult()[0];
  if (!chain.rope)
    return rows;
  return RopeOp::create(b, chain.rope.getLoc(), rows.getType(), rows,
                        chain.rope.getPositions(), chain.rope.getThetaAttr());
}

struct MHAToGQAPass : public kvopt::impl::KVMHAToGQABase<MHAToGQAPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (kvHeads < 1) {
      module.emitError() << "kv-mha-to-gqa: option 'kv-heads' must be "
                            "positive, got "
                         << int64_t(kvHeads);
      return signalPassFailure();
    }
    SmallVector<BlockArgument> caches;
    module.walk([&](func::FuncOp func) {
      for (BlockArgument arg : func.getArguments())
        if (auto type = dyn_cast<CacheType>(arg.getType()))
          if (type.getKvHeads() > kvHeads)
            caches.push_back(arg);
    });
    for (BlockArgument cache : caches)
      if (failed(convert(cache)))
        return signalPassFailure();
  }

  /// Converts one cache argument; leaves it alone with a remark when its
  /// producers are not in the documented form.
  LogicalResult convert(BlockArgument cache) {
    auto type = cast<CacheType>(cache.getType());
    int64_t heads = type.getKvHeads();
    auto func = cast<func::FuncOp>(cache.getOwner()->getParentOp());
    if (heads % kvHeads != 0)
      return func.emitError()
             << "kv-mha-to-gqa: option 'kv-heads' = " << int64_t(kvHeads)
             << " does not divide the " << heads << " KV heads of argument "
             << cache.getArgNumber();
    auto newType = type.cloneWithKvHeads(kvHeads);

    // Every use must be one the pass can update.
    SmallVector<
        std::pair<AppendOp, std::pair<ProjectionChain, ProjectionChain>>>
        appends;
    SmallVector<Operation *> readers;
    // The cache and every kv.share_cache view of it (layers reading it).
    SmallVector<Value> values{cache};
    SmallVector<Operation *> users;
    for (size_t i = 0; i < values.size(); ++i)
      for (Operation *user : values[i].getUsers()) {
        users.push_back(user);
        if (auto share = dyn_cast<ShareCacheOp>(user))
          values.push_back(share.getResult());
      }
    for (Operation *user : users) {
      if (auto append = dyn_cast<AppendOp>(user)) {
        std::string why;
        auto keys = matchProjection(append.getKeys(), heads, why);
        if (failed(keys))
          return remark(append, "keys " + why);
        auto values = matchProjection(append.getValues(), heads, why);
        if (failed(values))
          return remark(append, "values " + why);
        appends.push_back({append, {*keys, *values}});
      } else if (isa<AttentionOp, ShareCacheOp>(user)) {
        readers.push_back(user);
      } else if (auto view = dyn_cast<ViewOp>(user)) {
        for (Operation *viewUser : view->getUsers()) {
          if (isa<func::ReturnOp>(viewUser))
            continue;
          auto slice = dyn_cast<tensor::ExtractSliceOp>(viewUser);
          if (!slice || !isWholeHeadSlice(slice, heads))
            return remark(view, "a view of the cache is used by more than "
                                "returns and slices over whole heads");
          if (!llvm::all_of(slice->getUsers(), [](Operation *op) {
                return isa<func::ReturnOp>(op);
              }))
            return remark(view, "a slice of a view of the cache is used by "
                                "more than a return");
        }
        readers.push_back(user);
      } else {
        return remark(user, "the cache is used by an op the pass does not "
                            "know");
      }
    }

    for (auto &[append, chains] : appends) {
      Value keys = rebuildProjection(chains.first, heads, kvHeads);
      Value values = rebuildProjection(chains.second, heads, kvHeads);
      append.getKeysMutable().assign(keys);
      append.getValuesMutable().assign(values);
      for (ProjectionChain *chain : {&chains.first, &chains.second}) {
        if (chain->rope)
          chain->rope->erase();
        chain->transpose->erase();
        chain->expand->erase();
        Value init = chain->matmul.getOutputs()[0];
        chain->matmul->erase();
        if (Operation *def = init.getDefiningOp(); def && def->use_empty())
          def->erase();
      }
    }
    cache.setType(newType);
    for (Operation *reader : readers) {
      if (auto share = dyn_cast<ShareCacheOp>(reader))
        share.getResult().setType(newType);
      auto view = dyn_cast<ViewOp>(reader);
      if (!view)
        continue;
      for (Value result : view->getResults()) {
        result.setType(
            withDim(cast<RankedTensorType>(result.getType()), 1, kvHeads));
        for (Operation *user : llvm::make_early_inc_range(result.getUsers()))
          if (auto slice = dyn_cast<tensor::ExtractSliceOp>(user))
            shrinkHeadSlice(slice);
      }
    }
    // Views may feed the function's results: refresh its type.
    Operation *terminator = func.getBody().front().getTerminator();
    func.setFunctionType(FunctionType::get(
        func.getContext(), func.getBody().front().getArgumentTypes(),
        terminator->getOperandTypes()));
    return success();
  }

  /// A rank-4 slice that keeps dimension 1 (heads) whole.
  static bool isWholeHeadSlice(tensor::ExtractSliceOp slice, int64_t heads) {
    if (slice.getSourceType().getRank() != 4 ||
        slice.getResultType().getRank() != 4)
      return false;
    return slice.getStaticOffsets()[1] == 0 &&
           slice.getStaticSizes()[1] == heads &&
           slice.getStaticStrides()[1] == 1;
  }

  /// Rebuilds a whole-head slice for the shrunk view.
  void shrinkHeadSlice(tensor::ExtractSliceOp slice) {
    OpBuilder b(slice);
    SmallVector<OpFoldResult> sizes = slice.getMixedSizes();
    sizes[1] = b.getIndexAttr(kvHeads);
    auto replacement = tensor::ExtractSliceOp::create(
        b, slice.getLoc(), slice.getSource(), slice.getMixedOffsets(), sizes,
        slice.getMixedStrides());
    slice.getResult().replaceAllUsesWith(replacement.getResult());
    slice.erase();
  }

  LogicalResult remark(Operation *op, const std::string &why) {
    op->emitRemark() << "kv-mha-to-gqa: left alone: " << why;
    return success();
  }
};

} // namespace
