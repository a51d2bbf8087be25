//===- RaiseAttention.cpp - kv-raise-attention: attention to kv ops ------===//
//
// Rewrites attention over past K/V tensors (the decode step of a model
// graph) into kv.append + kv.attention on an explicit !kv.cache argument,
// and MLA latent concatenations into a !kv.latent_cache.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "kvopt/Transforms/RaisePasses.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/SetVector.h"

namespace kvopt {
#define GEN_PASS_DEF_KVRAISEATTENTION
#include "kvopt/Transforms/RaisePasses.h.inc"

namespace detail {
#define GEN_PASS_REGISTRATION
#include "kvopt/Transforms/RaisePasses.h.inc"
} // namespace detail
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;
using namespace kvopt::raise;

void kvopt::registerKVRaisePasses() { detail::registerKVRaisePasses(); }

namespace {

/// `[past ; fresh]` along `dim`, written as tensor.concat or as two
/// tensor.insert_slice ops that together overwrite a whole tensor.
struct Concatenation {
  BlockArgument past;
  Value fresh;
  int64_t pastLen = 0, freshLen = 0;
  /// The op producing the concatenation (the last insert_slice).
  Operation *last = nullptr;
};

/// A static, unit-stride insert_slice covering its destination except
/// along `dim`; returns [offset, offset + size) along `dim`.
std::optional<std::pair<int64_t, int64_t>>
sliceRange(tensor::InsertSliceOp insert, int64_t dim) {
  auto dest = insert.getDestType();
  auto source = dyn_cast<RankedTensorType>(insert.getSource().getType());
  if (!source || source.getRank() != dest.getRank() || !dest.hasStaticShape())
    return std::nullopt;
  ArrayRef<int64_t> offsets = insert.getStaticOffsets(),
                    sizes = insert.getStaticSizes(),
                    strides = insert.getStaticStrides();
  for (int64_t d = 0; d < dest.getRank(); ++d) {
    if (ShapedType::isDynamic(offsets[d]) || ShapedType::isDynamic(sizes[d]) ||
        strides[d] != 1)
      return std::nullopt;
    if (d != dim && (offsets[d] != 0 || sizes[d] != dest.getDimSize(d)))
      return std::nullopt;
  }
  return std::make_pair(offsets[dim], offsets[dim] + sizes[dim]);
}

FailureOr<Concatenation> matchConcatenation(Value value, int64_t dim,
                                            std::string &why) {
  Concatenation c;
  auto type = cast<RankedTensorType>(value.getType());
  Value first, second;
  if (auto concat = value.getDefiningOp<tensor::ConcatOp>()) {
    if (concat.getDim() != uint64_t(dim) || concat.getInputs().size() != 2) {
      why = "the cache concatenation does not join two tensors along the "
            "tokens";
      return failure();
    }
    first = concat.getInputs()[0];
    second = concat.getInputs()[1];
    c.last = concat;
  } else if (auto outer = value.getDefiningOp<tensor::InsertSliceOp>()) {
    auto inner = outer.getDest().getDefiningOp<tensor::InsertSliceOp>();
    auto r2 = sliceRange(outer, dim);
    auto r1 = inner ? sliceRange(inner, dim) : std::nullopt;
    if (!r1 || !r2) {
      why = "the keys/values are not two tensor.insert_slice covering a "
            "whole tensor along the tokens";
      return failure();
    }
    int64_t total = type.getDimSize(dim);
    if (r1->first == 0 && r1->second == r2->first && r2->second == total) {
      first = inner.getSource();
      second = outer.getSource();
    } else if (r2->first == 0 && r2->second == r1->first &&
               r1->second == total) {
      first = outer.getSource();
      second = inner.getSource();
    } else {
      why = "the two tensor.insert_slice do not tile the tokens exactly";
      return failure();
    }
    if (!inner->hasOneUse()) {
      why = "a partial insert_slice concatenation has other uses";
      return failure();
    }
    c.last = outer;
  } else {
    why = "the keys/values are not a concatenation of a past tensor and new "
          "tokens";
    return failure();
  }
  c.past = dyn_cast<BlockArgument>(first);
  if (!c.past || !isa<func::FuncOp>(c.past.getOwner()->getParentOp()) ||
      !c.past.getOwner()->isEntryBlock()) {
    why = "the past keys/values are not a function argument";
    return failure();
  }
  if (!c.past.hasOneUse()) {
    why = "the past keys/values argument has other uses";
    return failure();
  }
  c.fresh = second;
  c.pastLen = cast<RankedTensorType>(first.getType()).getDimSize(dim);
  c.freshLen = cast<RankedTensorType>(second.getType()).getDimSize(dim);
  return c;
}

/// Ops that become dead once `root`'s results are replaced.
DenseSet<Operation *> deadAfterReplacing(Operation *root) {
  DenseSet<Operation *> dead{root};
  SmallVector<Operation *> worklist{root};
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    for (Value operand : op->getOperands()) {
      Operation *def = operand.getDefiningOp();
      if (!def || dead.contains(def) || !isMemoryEffectFree(def) ||
          (def->getNumRegions() != 0 && !isa<linalg::LinalgOp>(def)))
        continue;
      if (llvm::all_of(def->getUsers(),
                       [&](Operation *user) { return dead.contains(user); })) {
        dead.insert(def);
        worklist.push_back(def);
      }
    }
  }
  return dead;
}

/// The static extract_slice `[0, len)` of `value` along `dim`, or `value`.
Value prefix(OpBuilder &b, Location loc, Value value, int64_t dim,
             int64_t len) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getDimSize(dim) == len)
    return value;
  SmallVector<OpFoldResult> offsets(type.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> strides(type.getRank(), b.getIndexAttr(1));
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    sizes.push_back(b.getIndexAttr(d == dim ? len : type.getDimSize(d)));
  SmallVector<int64_t> shape(type.getShape());
  shape[dim] = len;
  return tensor::ExtractSliceOp::create(
      b, loc, RankedTensorType::get(shape, type.getElementType()), value,
      offsets, sizes, strides);
}

struct RaiseAttentionPass
    : public kvopt::impl::KVRaiseAttentionBase<RaiseAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (capacity < 0) {
      module.emitError() << "kv-raise-attention: option 'capacity' must be "
                            "0 (past + new tokens) or positive, got "
                         << int64_t(capacity);
      return signalPassFailure();
    }
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp func : funcs) {
      if (func.isExternal())
        continue;
      if (failed(raiseFunction(module, func)))
        return signalPassFailure();
    }
    numberLayers(module);
  }

  /// Raises every attention of `func` it can prove.
  LogicalResult raiseFunction(ModuleOp module, func::FuncOp func) {
    bool called = !SymbolTable::symbolKnownUseEmpty(func, module);
    SmallVector<tensor::ConcatOp> latents;
    func.walk([&](tensor::ConcatOp concat) { latents.push_back(concat); });
    for (tensor::ConcatOp concat : latents)
      if (failed(raiseLatent(func, concat, called)))
        return failure();
    DenseSet<Operation *> done;
    while (true) {
      linalg::LinalgOp next;
      func.walk([&](linalg::LinalgOp op) {
        if (!done.contains(op) && isAttentionCandidate(op)) {
          next = op;
          return WalkResult::interrupt();
        }
        return WalkResult::advance();
      });
      if (!next)
        return success();
      done.insert(next);
      std::string why;
      auto match = matchAttention(next, why);
      if (failed(match)) {
        remark(next, why);
        continue;
      }
      if (called) {
        remark(next, "the function is called from within the module; its "
                     "signature cannot change");
        continue;
      }
      FailureOr<bool> raised = raise(func, *match, why);
      if (failed(raised))
        return failure();
      if (!*raised)
        remark(next, why);
    }
  }

  /// Rewrites one matched attention; false (with `why`) when its K/V are
  /// not a past-cache concatenation the pass can make explicit.
  FailureOr<bool> raise(func::FuncOp func, AttentionMatch &m,
                        std::string &why) {
    Operation *pv = m.output;
    if (m.keys.value.getDefiningOp<tensor::ConcatOp>() &&
        m.keys.value.getDefiningOp<tensor::ConcatOp>().getDim() == 3) {
      why = "the keys are joined from parts along the head dim (MLA-style "
            "decoupled RoPE); kv-absorb-mla handles latent caches";
      return false;
    }
    if (failed(checkKVLayout(m, m.keys, Role::HeadDim, why)) ||
        failed(checkKVLayout(m, m.values, Role::ValueDim, why)))
      return false;
    // Unbatched single-head attention keeps its K/V as [T, D] (checked by
    // checkKVLayout); the kv ops see them as [1, 1, T, D].
    bool unbatched =
        cast<RankedTensorType>(m.keys.value.getType()).getRank() == 2;
    int64_t tokenDim = unbatched ? 0 : 2;
    auto keys = matchConcatenation(m.keys.value, tokenDim, why);
    if (failed(keys))
      return false;
    auto values = matchConcatenation(m.values.value, tokenDim, why);
    if (failed(values))
      return false;
    if (keys->past == values->past ||
        keys->past.getOwner() != values->past.getOwner() ||
        keys->past.getOwner()->getParentOp() != func) {
      why = "past keys and values are not two arguments of this function";
      return false;
    }
    if (keys->past.getType() != values->past.getType() ||
        keys->fresh.getType() != values->fresh.getType()) {
      why = "keys and values differ in shape (kv.attention needs one head "
            "dim for both)";
      return false;
    }
    Type element = m.elementType;
    if (!element.isF16() && !element.isBF16() && !element.isF32()) {
      why = "the element type is not f16, bf16 or f32";
      return false;
    }
    Block *block = pv->getBlock();
    Operation *later = keys->last;
    for (Operation *op : {keys->last, values->last})
      if (op->getBlock() != block) {
        why = "the concatenations are not in the attention's block";
        return false;
      }
    if (later->isBeforeInBlock(values->last))
      later = values->last;
    // Uses of the concatenations that outlive the attention must come after
    // the append (placed after the later concatenation).
    DenseSet<Operation *> dead = deadAfterReplacing(pv);
    for (Operation *source : {keys->last, values->last})
      for (Operation *user : source->getUsers()) {
        if (dead.contains(user))
          continue;
        Operation *inBlock = block->findAncestorOpInBlock(*user);
        if (!inBlock || !later->isBeforeInBlock(inBlock)) {
          why = "the concatenated keys/values are used before both are "
                "available";
          return false;
        }
      }
    int64_t used = m.kvLen;
    FailureOr<int64_t> cap = resolveCapacity(func, used,
                                             "an attention of "
                                             "this function reads");
    if (failed(cap))
      return failure();

    // The cache argument takes past_k's place.
    auto cacheType = CacheType::get(m.kvHeads, m.headDim, *cap, element);
    unsigned index = keys->past.getArgNumber();
    Location argLoc = keys->past.getLoc();
    if (failed(func.insertArgument(index, cacheType, {}, argLoc)))
      return func.emitError("kv-raise-attention: cannot add a cache argument");
    BlockArgument cache = func.getArgument(index);
    created.insert(cache);

    OpBuilder b(later->getContext());
    b.setInsertionPointAfter(later);
    Location loc = pv->getLoc();
    Value positions = i32Splat(b, loc, m.batch, keys->pastLen);
    Value freshKeys = keys->fresh, freshValues = values->fresh;
    if (unbatched) {
      auto freshType = RankedTensorType::get(
          {1, 1, keys->freshLen, m.headDim}, element);
      freshKeys = reshapeTo(b, loc, freshKeys, freshType);
      freshValues = reshapeTo(b, loc, freshValues, freshType);
    }
    AppendOp::create(b, loc, cache, positions, freshKeys, freshValues,
                     /*block_table=*/Value(), /*rope_theta=*/FloatAttr());
    auto viewType =
        RankedTensorType::get({m.batch, m.kvHeads, *cap, m.headDim}, element);
    auto view = ViewOp::create(b, loc, TypeRange{viewType, viewType}, cache,
                               /*block_table=*/Value());
    Value viewKeys = prefix(b, loc, view.getKeys(), 2, used);
    Value viewValues = prefix(b, loc, view.getValues(), 2, used);
    SmallVector<Operation *> viewOps{viewKeys.getDefiningOp(),
                                     viewValues.getDefiningOp()};
    if (unbatched) {
      auto flatType = RankedTensorType::get({used, m.headDim}, element);
      viewKeys = reshapeTo(b, loc, viewKeys, flatType);
      viewValues = reshapeTo(b, loc, viewValues, flatType);
      viewOps.append({viewKeys.getDefiningOp(), viewValues.getDefiningOp()});
    }

    b.setInsertionPoint(pv);
    Value q = materializeQuery(b, loc, m);
    Value lens = i32Splat(b, loc, m.batch, used);
    auto outType =
        RankedTensorType::get({m.batch, m.qHeads, m.qLen, m.valueDim}, element);
    auto attention = AttentionOp::create(
        b, loc, outType, /*lse=*/Type(), q, cache, lens,
        /*block_table=*/Value(), b.getF32FloatAttr(float(m.scale)),
        m.mask.causal ? b.getUnitAttr() : UnitAttr(),
        m.mask.window ? b.getI64IntegerAttr(*m.mask.window) : IntegerAttr(),
        m.mask.window && m.mask.sinks ? b.getI64IntegerAttr(m.mask.sinks)
                                      : IntegerAttr());
    Value result = materializeOutput(b, loc, m, attention.getOutput());
    // What still reads the concatenations reads the cache; the attention
    // chain that read them goes away with P·V.
    keys->last->getResult(0).replaceAllUsesWith(viewKeys);
    values->last->getResult(0).replaceAllUsesWith(viewValues);
    pv->getResult(0).replaceAllUsesWith(result);
    SmallVector<Operation *> roots{pv, keys->last, values->last};
    roots.append(viewOps.rbegin(), viewOps.rend());
    roots.push_back(view);
    eraseDeadOps(roots);
    llvm::BitVector erase(func.getNumArguments());
    erase.set(keys->past.getArgNumber());
    erase.set(values->past.getArgNumber());
    if (failed(func.eraseArguments(erase)))
      return func.emitError("kv-raise-attention: cannot drop the past "
                            "key/value arguments");
    return true;
  }

  /// MLA: `concat(past [B, P, W], row [B, T, W])` along the tokens, whose
  /// latent part feeds up-projections, becomes a !kv.latent_cache. Latent
  /// width L and RoPE width R come from the row (`concat(c [B, T, L],
  /// kr [B, T, R])`) or from the slices the graph takes of the
  /// concatenation; without either, R = 0.
  LogicalResult raiseLatent(func::FuncOp func, tensor::ConcatOp concat,
                            bool called) {
    auto type = cast<RankedTensorType>(concat.getType());
    if (concat.getDim() != 1 || concat.getInputs().size() != 2 ||
        type.getRank() != 3 || !type.hasStaticShape())
      return success();
    auto past = dyn_cast<BlockArgument>(concat.getInputs()[0]);
    if (!past || past.getOwner()->getParentOp() != func ||
        !past.getOwner()->isEntryBlock())
      return success();
    Value row = concat.getInputs()[1];
    int64_t batch = type.getDimSize(0), tokens = type.getDimSize(1);
    int64_t width = type.getDimSize(2);
    int64_t pastLen = cast<RankedTensorType>(past.getType()).getDimSize(1);
    // The latent / RoPE split.
    int64_t latent = width;
    auto rowConcat = row.getDefiningOp<tensor::ConcatOp>();
    if (rowConcat && rowConcat.getDim() == 2 &&
        rowConcat.getInputs().size() == 2) {
      latent = cast<RankedTensorType>(rowConcat.getInputs()[0].getType())
                   .getDimSize(2);
    } else {
      for (Operation *user : concat->getUsers())
        if (auto slice = dyn_cast<tensor::ExtractSliceOp>(user)) {
          int64_t offset = slice.getStaticOffsets()[2];
          if (!ShapedType::isDynamic(offset) && offset > 0 && offset < latent)
            latent = offset;
        }
    }
    // Only a latent that feeds up-projections makes this MLA.
    if (!feedsContraction(concat.getResult(), latent))
      return success();
    auto fail = [&](StringRef why) {
      if (emitRemarks)
        concat->emitRemark() << "kv-raise-attention: not raised: " << why;
      return success();
    };
    if (called)
      return fail("the function is called from within the module; its "
                  "signature cannot change");
    if (!past.hasOneUse())
      return fail("the past latent argument has other uses");
    Type element = type.getElementType();
    if (!element.isF16() && !element.isBF16() && !element.isF32())
      return fail("the element type is not f16, bf16 or f32");
    FailureOr<int64_t> cap =
        resolveCapacity(func, tokens, "an MLA latent of this function holds");
    if (failed(cap))
      return failure();
    auto cacheType =
        LatentCacheType::get(latent, width - latent, *cap, element);
    unsigned index = past.getArgNumber();
    if (failed(func.insertArgument(index, cacheType, {}, past.getLoc())))
      return func.emitError("kv-raise-attention: cannot add a cache argument");
    BlockArgument cache = func.getArgument(index);
    created.insert(cache);

    OpBuilder b(concat);
    Location loc = concat.getLoc();
    Value newRow = projectRow(b, loc, row, latent);
    b.setInsertionPointAfter(concat);
    Value positions = i32Splat(b, loc, batch, pastLen);
    AppendOp::create(b, loc, cache, positions, newRow, /*values=*/Value(),
                     /*block_table=*/Value(), /*rope_theta=*/FloatAttr());
    auto viewType = RankedTensorType::get({batch, *cap, width}, element);
    auto view = ViewOp::create(b, loc, TypeRange{viewType}, cache,
                               /*block_table=*/Value());
    Value rows = prefix(b, loc, view.getKeys(), 1, tokens);
    concat.getResult().replaceAllUsesWith(rows);
    // Also erases the graph's own row computation when kv.mla_project
    // replaced it (it is an operand of the concatenation); erasing it in a
    // second call would touch a freed op.
    eraseDeadOps({concat});
    llvm::BitVector erase(func.getNumArguments());
    erase.set(past.getArgNumber());
    if (failed(func.eraseArguments(erase)))
      return func.emitError("kv-raise-attention: cannot drop the past latent "
                            "argument");
    return success();
  }

  /// Whether columns [0, latent) of `rows` reach, through slices and
  /// reshapes, the left operand of a 2-D linalg.matmul (an up-projection).
  static bool feedsContraction(Value rows, int64_t latent) {
    SmallVector<Value> worklist{rows};
    while (!worklist.empty()) {
      Value v = worklist.pop_back_val();
      for (Operation *user : v.getUsers()) {
        if (auto slice = dyn_cast<tensor::ExtractSliceOp>(user)) {
          if (slice.getSourceType().getRank() == 3 &&
              slice.getStaticOffsets()[2] == 0 &&
              slice.getStaticSizes()[2] == latent)
            worklist.push_back(slice.getResult());
        } else if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(user)) {
          worklist.push_back(user->getResult(0));
        } else if (auto matmul = dyn_cast<linalg::MatmulOp>(user)) {
          // An up-projection [B*T, L] x [L, out].
          auto type = cast<RankedTensorType>(v.getType());
          if (matmul.getInputs()[0] == v && type.getRank() == 2 &&
              type.getDimSize(1) == latent)
            return true;
        }
      }
    }
    return false;
  }

  /// `kv.mla_project` for a row written as `concat(expand(x · W_dkv),
  /// expand(x · W_kr))` over one `x`; otherwise the row itself.
  static Value projectRow(OpBuilder &b, Location loc, Value row,
                          int64_t latent) {
    auto rowConcat = row.getDefiningOp<tensor::ConcatOp>();
    if (!rowConcat || rowConcat.getDim() != 2 ||
        rowConcat.getInputs().size() != 2)
      return row;
    SmallVector<linalg::MatmulOp> matmuls;
    for (Value part : rowConcat.getInputs()) {
      auto expand = part.getDefiningOp<tensor::ExpandShapeOp>();
      auto matmul = expand ? expand.getSrc().getDefiningOp<linalg::MatmulOp>()
                           : linalg::MatmulOp();
      if (!matmul || matmul.hasUserDefinedMaps() ||
          !matmul.hasPureTensorSemantics() ||
          expand.getReassociationIndices().size() != 2 ||
          expand.getReassociationIndices()[0].size() != 2)
        return row;
      matmuls.push_back(matmul);
    }
    Value x = matmuls[0].getInputs()[0];
    if (matmuls[1].getInputs()[0] != x)
      return row;
    auto rowType = cast<RankedTensorType>(row.getType());
    auto xType = cast<RankedTensorType>(x.getType());
    auto hiddenType = RankedTensorType::get(
        {rowType.getDimSize(0), rowType.getDimSize(1), xType.getDimSize(1)},
        xType.getElementType());
    auto collapse = x.getDefiningOp<tensor::CollapseShapeOp>();
    Value hidden = collapse && collapse.getSrcType() == hiddenType
                       ? collapse.getSrc()
                       : reshapeTo(b, loc, x, hiddenType);
    return MLAProjectOp::create(b, loc, rowType, hidden,
                                matmuls[0].getInputs()[1],
                                matmuls[1].getInputs()[1]);
  }

  /// The capacity of a cache whose layer reads `used` tokens: the option,
  /// or `used` when it is 0; an error naming the option when too small.
  FailureOr<int64_t> resolveCapacity(func::FuncOp func, int64_t used,
                                     StringRef what) {
    int64_t cap = capacity ? int64_t(capacity) : used;
    if (cap < used)
      return func.emitError()
             << "kv-raise-attention: option 'capacity' = " << cap
             << " is smaller than the " << used << " tokens " << what;
    return cap;
  }

  /// Gives the created cache arguments `kv.layer` numbers in program order,
  /// after any layer numbers the module already uses.
  void numberLayers(ModuleOp module) {
    int64_t next = 0;
    module.walk([&](func::FuncOp func) {
      for (unsigned i = 0; i < func.getNumArguments(); ++i)
        if (auto layer = func.getArgAttrOfType<IntegerAttr>(i, "kv.layer"))
          next = std::max(next, layer.getInt() + 1);
    });
    module.walk([&](AllocCacheOp alloc) {
      if (alloc.getLayer())
        next = std::max(next, int64_t(*alloc.getLayer()) + 1);
    });
    Builder b(module.getContext());
    module.walk([&](AppendOp append) {
      auto cache = dyn_cast<BlockArgument>(append.getCache());
      if (!cache || !created.remove(cache))
        return;
      auto func = cast<func::FuncOp>(cache.getOwner()->getParentOp());
      func.setArgAttr(cache.getArgNumber(), "kv.layer",
                      b.getI64IntegerAttr(next++));
    });
  }

  void remark(Operation *op, StringRef why) {
    if (emitRemarks)
      op->emitRemark() << "kv-raise-attention: not raised: " << why;
  }

  /// Cache arguments created by this run, numbered at the end.
  llvm::SetVector<BlockArgument> created;
};

} // namespace
